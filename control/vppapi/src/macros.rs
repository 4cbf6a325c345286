//! The definition macros. One invocation per message / type yields the Rust struct, its
//! wire codec, and its static description (name, fields, CRC inputs, JSON entry).
//!
//! Field grammar: `name [as "api_name"]: kind(args) [ [r#"{json options}"#] ]` with kinds
//! `scalar(T)`, `array(T, N)`, `string(N)`, `vstring()`, `count(T, vla_field)`,
//! `vla(T, count_field, CountT)`.

macro_rules! __vpp_ty {
    (scalar $t:ty) => { $t };
    (array $t:ty, $n:literal) => { [$t; $n] };
    (string $n:literal) => { String };
    (vstring) => { String };
    (count $t:ty, $v:ident) => { $t };
    (vla $t:ty, $c:ident, $ct:ty) => { Vec<$t> };
}

macro_rules! __vpp_default {
    (array $t:ty, $n:literal) => {
        $crate::wire::default_array::<$t, $n>()
    };
    ($($other:tt)*) => {
        Default::default()
    };
}

macro_rules! __vpp_min {
    (scalar $t:ty) => {
        <$t as $crate::wire::Wire>::MIN_SIZE
    };
    (array $t:ty, $n:literal) => {
        $n * <$t as $crate::wire::Wire>::MIN_SIZE
    };
    (string $n:literal) => {
        $n
    };
    (vstring) => {
        4
    };
    (count $t:ty, $v:ident) => {
        <$t as $crate::wire::Wire>::MIN_SIZE
    };
    (vla $t:ty, $c:ident, $ct:ty) => {
        0
    };
}

macro_rules! __vpp_enc {
    ($s:ident, $buf:ident, $v:expr, scalar $t:ty) => {
        $crate::wire::Wire::encode(&$v, $buf)
    };
    ($s:ident, $buf:ident, $v:expr, array $t:ty, $n:literal) => {
        for e in $v.iter() {
            $crate::wire::Wire::encode(e, $buf)
        }
    };
    ($s:ident, $buf:ident, $v:expr, string $n:literal) => {
        $crate::wire::put_fixed_str($buf, &$v, $n)
    };
    ($s:ident, $buf:ident, $v:expr, vstring) => {
        $crate::wire::put_vstr($buf, &$v)
    };
    ($s:ident, $buf:ident, $v:expr, count $t:ty, $vla:ident) => {
        $crate::wire::Wire::encode(&<$t as $crate::wire::Count>::from_len($s.$vla.len()), $buf)
    };
    ($s:ident, $buf:ident, $v:expr, vla $t:ty, $c:ident, $ct:ty) => {{
        let n = $crate::wire::Count::to_usize(<$ct as $crate::wire::Count>::from_len($v.len()));
        for e in $v.iter().take(n) {
            $crate::wire::Wire::encode(e, $buf)
        }
    }};
}

macro_rules! __vpp_dec {
    ($r:ident, scalar $t:ty) => {
        <$t as $crate::wire::Wire>::decode($r)?
    };
    ($r:ident, array $t:ty, $n:literal) => {
        $crate::wire::decode_array::<$t, $n>($r)?
    };
    ($r:ident, string $n:literal) => {
        $crate::wire::get_fixed_str($r, $n)?
    };
    ($r:ident, vstring) => {
        $crate::wire::get_vstr($r)?
    };
    ($r:ident, count $t:ty, $v:ident) => {
        <$t as $crate::wire::Wire>::decode($r)?
    };
    ($r:ident, vla $t:ty, $c:ident, $ct:ty) => {
        $crate::wire::decode_vla::<$t>($r, $crate::wire::Count::to_usize($c))?
    };
}

macro_rules! __vpp_name {
    ($f:ident) => {
        stringify!($f)
    };
    ($f:ident $api:literal) => {
        $api
    };
}

macro_rules! __vpp_opts {
    () => {
        ""
    };
    ($o:literal) => {
        $o
    };
}

macro_rules! __vpp_fdef {
    ($name:expr, $opts:expr, scalar $t:ty) => {
        $crate::schema::FieldDef {
            name: $name,
            ty: <$t as $crate::schema::ApiType>::API_NAME,
            shape: $crate::schema::Shape::Scalar,
            typedef: <$t as $crate::schema::ApiType>::TYPEDEF,
            options: $opts,
        }
    };
    ($name:expr, $opts:expr, array $t:ty, $n:literal) => {
        $crate::schema::FieldDef {
            name: $name,
            ty: <$t as $crate::schema::ApiType>::API_NAME,
            shape: $crate::schema::Shape::Fixed($n),
            typedef: <$t as $crate::schema::ApiType>::TYPEDEF,
            options: $opts,
        }
    };
    ($name:expr, $opts:expr, string $n:literal) => {
        $crate::schema::FieldDef {
            name: $name,
            ty: "string",
            shape: $crate::schema::Shape::Fixed($n),
            typedef: None,
            options: $opts,
        }
    };
    ($name:expr, $opts:expr, vstring) => {
        $crate::schema::FieldDef {
            name: $name,
            ty: "string",
            shape: $crate::schema::Shape::Fixed(0),
            typedef: None,
            options: $opts,
        }
    };
    ($name:expr, $opts:expr, count $t:ty, $v:ident) => {
        __vpp_fdef!($name, $opts, scalar $t)
    };
    ($name:expr, $opts:expr, vla $t:ty, $c:ident, $ct:ty) => {
        $crate::schema::FieldDef {
            name: $name,
            ty: <$t as $crate::schema::ApiType>::API_NAME,
            shape: $crate::schema::Shape::Vla(stringify!($c)),
            typedef: <$t as $crate::schema::ApiType>::TYPEDEF,
            options: $opts,
        }
    };
}

/// A struct with named fields, its codec and its field table (shared by typedefs and messages).
macro_rules! __vpp_record {
    (
        $(#[$m:meta])* $name:ident {
            $( $f:ident $(as $fapi:literal)? : $kind:ident ( $($a:tt)* ) $([$opt:literal])? ),* $(,)?
        }
    ) => {
        #[derive(Debug, Clone, PartialEq)]
        $(#[$m])*
        pub struct $name {
            $( pub $f: __vpp_ty!($kind $($a)*), )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $( $f: __vpp_default!($kind $($a)*), )* }
            }
        }

        impl $crate::wire::Wire for $name {
            const MIN_SIZE: usize = 0 $( + __vpp_min!($kind $($a)*) )*;
            #[allow(unused_variables)]
            fn encode(&self, buf: &mut Vec<u8>) {
                $( __vpp_enc!(self, buf, self.$f, $kind $($a)*); )*
            }
            #[allow(unused_variables)]
            fn decode(r: &mut $crate::wire::Reader<'_>) -> Result<Self, $crate::wire::DecodeError> {
                $( let $f = __vpp_dec!(r, $kind $($a)*); )*
                Ok(Self { $( $f, )* })
            }
        }

        impl $name {
            /// The fields as the .api defines them.
            pub const FIELDS: &'static [$crate::schema::FieldDef] = &[
                $( __vpp_fdef!(__vpp_name!($f $($fapi)?), __vpp_opts!($($opt)?), $kind $($a)*), )*
            ];
        }
    };
}

macro_rules! vpp_typedef {
    (
        $(#[$m:meta])* $name:ident = $api:literal in $module:literal { $($body:tt)* }
    ) => {
        __vpp_record!($(#[$m])* $name { $($body)* });

        impl $name {
            pub const DEF: $crate::schema::TypeDef = $crate::schema::TypeDef {
                name: $api,
                module: $module,
                body: $crate::schema::TypeBody::Struct(Self::FIELDS),
            };
        }

        impl $crate::schema::ApiType for $name {
            const API_NAME: &'static str = concat!("vl_api_", $api, "_t");
            const TYPEDEF: Option<&'static $crate::schema::TypeDef> = Some(&Self::DEF);
        }
    };
}

macro_rules! vpp_message {
    (
        $(#[$m:meta])* $name:ident = $api:literal in $module:literal,
        crc $crc:literal, kind $kind:ident, options $opts:literal { $($body:tt)* }
    ) => {
        __vpp_record!($(#[$m])* $name { $($body)* });

        impl $crate::schema::Message for $name {
            const NAME: &'static str = $api;
            const CRC: u32 = $crc;
            const KIND: $crate::schema::Kind = $crate::schema::Kind::$kind;
            const DEF: $crate::schema::MsgDef = $crate::schema::MsgDef {
                name: $api,
                module: $module,
                kind: $crate::schema::Kind::$kind,
                published_crc: $crc,
                fields: Self::FIELDS,
                options: $opts,
                decode: $crate::schema::decode_boxed::<Self>,
            };
        }
    };
}

macro_rules! vpp_enum {
    (
        $name:ident = $api:literal in $module:literal, $fl:ident $base:ident {
            $( $v:ident = $val:literal $([$bc:ident])? ),* $(,)?
        }
    ) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
        pub struct $name(pub $base);

        #[allow(non_upper_case_globals)]
        impl $name {
            $( pub const $v: Self = Self($val); )*
            pub const DEF: $crate::schema::TypeDef = $crate::schema::TypeDef {
                name: $api,
                module: $module,
                body: $crate::schema::TypeBody::Enum {
                    flags: __vpp_is_flags!($fl),
                    base: stringify!($base),
                    values: &[ $( $crate::schema::EnumValue {
                        name: stringify!($v),
                        value: $val,
                        backwards_compatible: __vpp_is_bc!($($bc)?),
                    }, )* ],
                },
            };
            /// True if every bit of `other` is set in `self` (for flag enums).
            pub fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }
        }

        impl std::ops::BitOr for $name {
            type Output = Self;
            fn bitor(self, o: Self) -> Self {
                Self(self.0 | o.0)
            }
        }

        impl From<$base> for $name {
            fn from(v: $base) -> Self {
                Self(v)
            }
        }

        impl $crate::wire::Wire for $name {
            const MIN_SIZE: usize = <$base as $crate::wire::Wire>::MIN_SIZE;
            fn encode(&self, buf: &mut Vec<u8>) {
                $crate::wire::Wire::encode(&self.0, buf)
            }
            fn decode(r: &mut $crate::wire::Reader<'_>) -> Result<Self, $crate::wire::DecodeError> {
                Ok(Self(<$base as $crate::wire::Wire>::decode(r)?))
            }
        }

        impl $crate::schema::ApiType for $name {
            const API_NAME: &'static str = concat!("vl_api_", $api, "_t");
            const TYPEDEF: Option<&'static $crate::schema::TypeDef> = Some(&Self::DEF);
        }
    };
}

macro_rules! __vpp_is_flags {
    (flags) => {
        true
    };
    (enum) => {
        false
    };
}

macro_rules! __vpp_is_bc {
    () => {
        false
    };
    (bc) => {
        true
    };
}

macro_rules! __vpp_alias_len {
    (scalar $t:ty) => {
        None
    };
    (array $t:ty, $n:literal) => {
        Some($n)
    };
}

macro_rules! __vpp_alias_elem {
    (scalar $t:ty) => {
        $t
    };
    (array $t:ty, $n:literal) => {
        $t
    };
}

macro_rules! vpp_alias {
    (
        $(#[$m:meta])* $name:ident = $api:literal in $module:literal, $kind:ident ( $($a:tt)* )
    ) => {
        #[derive(Debug, Clone, PartialEq)]
        $(#[$m])*
        pub struct $name(pub __vpp_ty!($kind $($a)*));

        impl Default for $name {
            fn default() -> Self {
                Self(__vpp_default!($kind $($a)*))
            }
        }

        impl From<__vpp_ty!($kind $($a)*)> for $name {
            fn from(v: __vpp_ty!($kind $($a)*)) -> Self {
                Self(v)
            }
        }

        impl $name {
            pub const DEF: $crate::schema::TypeDef = $crate::schema::TypeDef {
                name: $api,
                module: $module,
                body: $crate::schema::TypeBody::Alias {
                    ty: <__vpp_alias_elem!($kind $($a)*) as $crate::schema::ApiType>::API_NAME,
                    length: __vpp_alias_len!($kind $($a)*),
                    target: <__vpp_alias_elem!($kind $($a)*) as $crate::schema::ApiType>::TYPEDEF,
                },
            };
        }

        impl $crate::wire::Wire for $name {
            const MIN_SIZE: usize = __vpp_min!($kind $($a)*);
            #[allow(unused_variables)]
            fn encode(&self, buf: &mut Vec<u8>) {
                __vpp_enc!(self, buf, self.0, $kind $($a)*)
            }
            fn decode(r: &mut $crate::wire::Reader<'_>) -> Result<Self, $crate::wire::DecodeError> {
                Ok(Self(__vpp_dec!(r, $kind $($a)*)))
            }
        }

        impl $crate::schema::ApiType for $name {
            const API_NAME: &'static str = concat!("vl_api_", $api, "_t");
            const TYPEDEF: Option<&'static $crate::schema::TypeDef> = Some(&Self::DEF);
        }
    };
}

macro_rules! vpp_union {
    (
        $name:ident = $api:literal in $module:literal, size $size:literal {
            $( $f:ident : $kind:ident ( $($a:tt)* ) $([$opt:literal])? ),* $(,)?
        }
    ) => {
        /// A union: the raw bytes of its largest member (no tag on the wire).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub [u8; $size]);

        impl Default for $name {
            fn default() -> Self {
                Self([0; $size])
            }
        }

        const _: () = {
            let mut max = 0usize;
            $( if __vpp_min!($kind $($a)*) > max { max = __vpp_min!($kind $($a)*); } )*
            assert!(max == $size, "union size");
        };

        impl $name {
            pub const FIELDS: &'static [$crate::schema::FieldDef] = &[
                $( __vpp_fdef!(stringify!($f), __vpp_opts!($($opt)?), $kind $($a)*), )*
            ];
            pub const DEF: $crate::schema::TypeDef = $crate::schema::TypeDef {
                name: $api,
                module: $module,
                body: $crate::schema::TypeBody::Union(Self::FIELDS),
            };
            /// Read the union as member type `T`.
            pub fn get<T: $crate::wire::Wire>(&self) -> Result<T, $crate::wire::DecodeError> {
                T::from_bytes(&self.0)
            }
            /// A union holding `v` (zero padded).
            pub fn from_member<T: $crate::wire::Wire>(v: &T) -> Self {
                let mut b = Vec::with_capacity($size);
                v.encode(&mut b);
                b.resize($size, 0);
                let mut a = [0u8; $size];
                a.copy_from_slice(&b[..$size]);
                Self(a)
            }
        }

        impl $crate::wire::Wire for $name {
            const MIN_SIZE: usize = $size;
            fn encode(&self, buf: &mut Vec<u8>) {
                buf.extend_from_slice(&self.0)
            }
            fn decode(r: &mut $crate::wire::Reader<'_>) -> Result<Self, $crate::wire::DecodeError> {
                Ok(Self(r.take_array::<$size>(stringify!($name))?))
            }
        }

        impl $crate::schema::ApiType for $name {
            const API_NAME: &'static str = concat!("vl_api_", $api, "_t");
            const TYPEDEF: Option<&'static $crate::schema::TypeDef> = Some(&Self::DEF);
        }
    };
}
