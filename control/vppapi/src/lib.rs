//! VPP binary-API messages defined in Rust.
//!
//! * [`defs`]: one Rust struct per message and API type, generated as macro invocations
//!   (see `gen/gen.py`); each yields the struct, its big-endian packed codec, and a static
//!   description ([`schema::MsgDef`], [`schema::TypeDef`]).
//! * [`schema`]: the descriptions and the vppapigen CRC computed from them.
//! * [`registry`]: all messages with VPP-style message ids, `name_crc`, and dynamic decode.
//! * [`apijson`]: `<module>.api.json` emission for clients such as vpp_papi.
//! * [`transport`]: the unix-socket API server core (framing, handshake, dispatch).
#![forbid(unsafe_code)]

#[macro_use]
mod macros;

pub mod apijson;
pub mod crc;
pub mod defs;
pub mod registry;
pub mod schema;
pub mod transport;
pub mod wire;

pub use registry::Registry;
pub use schema::{DynMessage, Kind, Message, MsgDef};
pub use wire::{DecodeError, Wire};
