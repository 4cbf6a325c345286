//! Static descriptions of messages and types, produced by the definition macros, and the
//! vppapigen CRC computed from them.

use crate::crc::{crc32, crc32_update};
use crate::wire::{DecodeError, Reader, Wire};
use std::any::Any;
use std::fmt::Debug;

/// The shape of one field, as vppapigen sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `T name;`
    Scalar,
    /// `T name[N];` — for `string name[N]` a NUL padded string; `string name[]` is `Fixed(0)`.
    Fixed(u32),
    /// `T name[count_field];`
    Vla(&'static str),
}

/// One field of a message, typedef or union.
#[derive(Debug, Clone, Copy)]
pub struct FieldDef {
    pub name: &'static str,
    /// The .api type name: `u32`, `string`, `vl_api_address_t`, ...
    pub ty: &'static str,
    pub shape: Shape,
    /// The user-defined type behind `ty`, if any.
    pub typedef: Option<&'static TypeDef>,
    /// Field options as a JSON object (`{"default":...}`), or "" for none.
    pub options: &'static str,
}

/// A member of an enum / enumflag.
#[derive(Debug, Clone, Copy)]
pub struct EnumValue {
    pub name: &'static str,
    pub value: i64,
    /// `[backwards_compatible]`: excluded from the enum's CRC text.
    pub backwards_compatible: bool,
}

#[derive(Debug, Clone, Copy)]
pub enum TypeBody {
    Struct(&'static [FieldDef]),
    Union(&'static [FieldDef]),
    Enum {
        flags: bool,
        base: &'static str,
        values: &'static [EnumValue],
    },
    /// `typedef`-like `using name = ty[len]`.
    Alias {
        ty: &'static str,
        length: Option<u32>,
        target: Option<&'static TypeDef>,
    },
}

/// A user-defined API type.
#[derive(Debug, Clone, Copy)]
pub struct TypeDef {
    /// Name without `vl_api_` / `_t`.
    pub name: &'static str,
    /// The .api module that defines it.
    pub module: &'static str,
    pub body: TypeBody,
}

impl TypeDef {
    /// The text vppapigen feeds to the CRC for this type.
    pub fn crc_text(&self) -> String {
        match self.body {
            TypeBody::Struct(f) | TypeBody::Union(f) => block_repr(f),
            TypeBody::Enum { values, .. } => {
                let parts: Vec<String> = values
                    .iter()
                    .filter(|v| !v.backwards_compatible)
                    .map(|v| format!("['{}', {}]", v.name, v.value))
                    .collect();
                format!("[{}]", parts.join(", "))
            }
            // vppapigen keeps the empty block for aliases (backwards compatibility).
            TypeBody::Alias { .. } => "[]".to_string(),
        }
    }
    pub fn api_name(&self) -> String {
        format!("vl_api_{}_t", self.name)
    }
}

/// Which role a message has on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// client -> VPP, `u16 id, u32 client_index, u32 context, ...`
    Request,
    /// VPP -> client, `u16 id, u32 context, ...`
    Reply,
    /// VPP -> client stream element of a dump.
    Details,
    /// VPP -> client asynchronous, no context.
    Event,
    Other,
}

/// Decodes a whole payload (id first) into a boxed message.
pub type DecodeFn = fn(&[u8]) -> Result<Box<dyn DynMessage>, DecodeError>;

/// Everything about one message.
#[derive(Debug, Clone, Copy)]
pub struct MsgDef {
    pub name: &'static str,
    pub module: &'static str,
    pub kind: Kind,
    /// The CRC published by VPP for this message (checked against [`MsgDef::compute_crc`]
    /// by the tests; the registry advertises the computed one).
    pub published_crc: u32,
    /// Fields after `_vl_msg_id`.
    pub fields: &'static [FieldDef],
    /// Message options as a JSON object.
    pub options: &'static str,
    /// Decode a whole payload (starting with the message id) into a boxed message.
    pub decode: DecodeFn,
}

impl MsgDef {
    /// vppapigen's CRC: crc32 of the block text, folded with the CRCs of the types used.
    pub fn compute_crc(&self) -> u32 {
        fold_types(self.fields, crc32(block_repr(self.fields).as_bytes()))
    }
    /// `"<name>_<crc>"` with the computed CRC, as registered in VPP's message table.
    pub fn name_crc(&self) -> String {
        format!("{}_{:08x}", self.name, self.compute_crc())
    }
    /// Byte offset of the `context` field in the payload, if the message has one in the
    /// standard header position.
    pub fn context_offset(&self) -> Option<usize> {
        match self.fields {
            [a, b, ..] if a.name == "client_index" && b.name == "context" => Some(6),
            [a, ..] if a.name == "context" => Some(2),
            _ => None,
        }
    }
    /// Byte offset of the `client_index` field, if the message starts with one.
    pub fn client_index_offset(&self) -> Option<usize> {
        match self.fields {
            [a, ..] if a.name == "client_index" => Some(2),
            _ => None,
        }
    }
}

/// A `service { rpc caller returns reply ... }` entry.
#[derive(Debug, Clone, Copy)]
pub struct ServiceDef {
    pub caller: &'static str,
    /// `"null"` when the caller gets no reply.
    pub reply: &'static str,
    pub stream: bool,
    pub stream_msg: Option<&'static str>,
    pub events: &'static [&'static str],
}

/// One API module (`<module>.api`).
#[derive(Debug)]
pub struct ModuleDef {
    pub name: &'static str,
    /// The file CRC VPP publishes as `vl_api_version` (over the whole .api file).
    pub vl_api_version: u32,
    pub options: &'static str,
    /// Carried messages, in VPP registration order.
    pub messages: &'static [&'static MsgDef],
    pub services: &'static [ServiceDef],
}

fn field_repr(f: &FieldDef) -> String {
    match f.shape {
        Shape::Scalar => format!("['{}', '{}']", f.ty, f.name),
        Shape::Fixed(n) => format!("['{}', '{}', {}, None]", f.ty, f.name, n),
        Shape::Vla(l) => format!("['{}', '{}', 0, '{}']", f.ty, f.name, l),
    }
}

/// The Python `str()` of a vppapigen block (list of fields).
pub fn block_repr(fields: &[FieldDef]) -> String {
    let parts: Vec<String> = fields.iter().map(field_repr).collect();
    format!("[{}]", parts.join(", "))
}

fn fold_types(fields: &[FieldDef], mut crc: u32) -> u32 {
    for f in fields {
        if let Some(t) = f.typedef {
            crc = crc32_update(crc, t.crc_text().as_bytes());
            match t.body {
                TypeBody::Struct(sub) | TypeBody::Union(sub) => crc = fold_types(sub, crc),
                TypeBody::Enum { .. } | TypeBody::Alias { .. } => {}
            }
        }
    }
    crc
}

/// A Rust type that stands for an .api type.
pub trait ApiType {
    /// The .api type name (`u32`, `vl_api_address_t`).
    const API_NAME: &'static str;
    const TYPEDEF: Option<&'static TypeDef> = None;
}

macro_rules! prim_api {
    ($($t:ty),*) => {$( impl ApiType for $t { const API_NAME: &'static str = stringify!($t); } )*};
}
prim_api!(u8, u16, u32, u64, i8, i16, i32, i64, f64, bool);

/// A message type.
pub trait Message: Wire + Debug + Clone + Default + Send + Sync + 'static {
    const NAME: &'static str;
    /// Published CRC (see [`MsgDef::published_crc`]).
    const CRC: u32;
    const KIND: Kind;
    const DEF: MsgDef;

    /// Encode with the given message id in front.
    fn encode_msg(&self, msg_id: u16) -> Vec<u8> {
        let mut v = Vec::with_capacity(2 + Self::MIN_SIZE);
        msg_id.encode(&mut v);
        self.encode(&mut v);
        v
    }
    /// Decode a payload that starts with the 2-byte message id (not checked).
    /// Trailing bytes are tolerated, as VPP does.
    fn decode_msg(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(payload);
        r.take(2, "_vl_msg_id")?;
        Self::decode(&mut r)
    }
}

/// Object-safe view of any message, for dynamic dispatch.
pub trait DynMessage: Any + Debug + Send + Sync {
    fn def(&self) -> &'static MsgDef;
    /// Encode the body (everything after `_vl_msg_id`).
    fn encode_body(&self, buf: &mut Vec<u8>);
    fn as_any(&self) -> &dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

impl<M: Message> DynMessage for M {
    fn def(&self) -> &'static MsgDef {
        &M::DEF
    }
    fn encode_body(&self, buf: &mut Vec<u8>) {
        self.encode(buf)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

impl dyn DynMessage {
    /// Borrow as a concrete message type.
    pub fn downcast_ref<M: Message>(&self) -> Option<&M> {
        self.as_any().downcast_ref::<M>()
    }
    /// Take as a concrete message type.
    pub fn downcast<M: Message>(self: Box<Self>) -> Result<M, Box<dyn Any + Send>> {
        self.into_any().downcast::<M>().map(|b| *b)
    }
    /// Encode with the given id in front.
    pub fn encode_msg(&self, msg_id: u16) -> Vec<u8> {
        let mut v = Vec::new();
        msg_id.encode(&mut v);
        self.encode_body(&mut v);
        v
    }
}

/// Decoder used in [`MsgDef::decode`].
pub fn decode_boxed<M: Message>(payload: &[u8]) -> Result<Box<dyn DynMessage>, DecodeError> {
    Ok(Box::new(M::decode_msg(payload)?))
}
