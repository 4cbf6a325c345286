//! IKEv2 with pre-shared keys (RFC 7296): the wire format, the key derivation and a sans-I/O
//! engine (initiator and responder) whose outputs are datagrams and negotiated child SAs, plus a
//! small tokio UDP driver. Depends on nothing else of rvpp's.

pub mod crypto;
#[cfg(feature = "driver")]
pub mod driver;
pub mod engine;
pub mod wire;

pub use engine::{
    ChildSa, ChildSaSink, Config, Counters, DownReason, Engine, EspSuite, Event, IkeSaInfo, Profile,
};
