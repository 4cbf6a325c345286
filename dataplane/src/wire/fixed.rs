//! The pattern every fixed-size header view here follows: a read view over `&[u8; N]` and a
//! write view over `&mut [u8; N]`, each built only from a slice at least N bytes long, so every
//! field access indexes a fixed-size array and compiles to a plain load or store.

/// Declares `$view` (read) and `$view_mut` (write) over the first `$len` bytes of a slice, with
/// big-endian fields: `name: u8|u16|u32 @ offset` gives a getter on both and `set_name` on the
/// write view.
macro_rules! fixed_header {
    (
        $(#[$doc:meta])*
        $view:ident, $view_mut:ident, $len:expr;
        $( $(#[$fdoc:meta])* $field:ident, $setter:ident : $ty:ident @ $off:expr; )*
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub struct $view<'a>(pub &'a [u8; $len]);

        $(#[$doc])*
        pub struct $view_mut<'a>(pub &'a mut [u8; $len]);

        impl<'a> $view<'a> {
            /// Bytes of the fixed header.
            pub const LEN: usize = $len;
            /// The view of `buf`'s first bytes; None if `buf` is shorter than the header.
            #[inline(always)]
            pub fn new(buf: &'a [u8]) -> Option<Self> {
                buf.first_chunk::<{ $len }>().map(Self)
            }
            $(
                $(#[$fdoc])*
                #[inline(always)]
                pub fn $field(&self) -> $ty {
                    fixed_header!(@get $ty, self.0, $off)
                }
            )*
        }

        impl<'a> $view_mut<'a> {
            /// The write view of `buf`'s first bytes; None if `buf` is shorter than the header.
            #[inline(always)]
            pub fn new(buf: &'a mut [u8]) -> Option<Self> {
                buf.first_chunk_mut::<{ $len }>().map(Self)
            }
            /// Read the fields back.
            #[inline(always)]
            pub fn view(&self) -> $view<'_> {
                $view(self.0)
            }
            $(
                #[inline(always)]
                pub fn $setter(&mut self, v: $ty) {
                    fixed_header!(@set $ty, self.0, $off, v)
                }
            )*
        }
    };
    (@get u8, $b:expr, $o:expr) => { $b[$o] };
    (@get u16, $b:expr, $o:expr) => { u16::from_be_bytes([$b[$o], $b[$o + 1]]) };
    (@get u32, $b:expr, $o:expr) => {
        u32::from_be_bytes([$b[$o], $b[$o + 1], $b[$o + 2], $b[$o + 3]])
    };
    (@set u8, $b:expr, $o:expr, $v:expr) => { $b[$o] = $v };
    (@set u16, $b:expr, $o:expr, $v:expr) => { $b[$o..$o + 2].copy_from_slice(&$v.to_be_bytes()) };
    (@set u32, $b:expr, $o:expr, $v:expr) => { $b[$o..$o + 4].copy_from_slice(&$v.to_be_bytes()) };
}

pub(crate) use fixed_header;
