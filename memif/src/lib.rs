//! # memif — shared memory packet interface, protocol version 2
//!
//! A Rust implementation of the memif protocol as spoken by VPP's memif
//! plugin, libmemif and DPDK's `net_memif`, usable in either role:
//!
//! * **server** (VPP calls it *master*): listens on a unix `SOCK_SEQPACKET`
//!   socket and maps the memory the client shares;
//! * **client** (*slave*): connects, creates the shared memory (memfd,
//!   hugepages when available), lays out rings and buffers.
//!
//! ## Copying API
//!
//! ```no_run
//! use memif::{Config, Event, Interface, PacketBuf, Role};
//!
//! let mut cfg = Config::new(Role::Server, "abstract:vpp/memif-eth0");
//! cfg.id = 0;
//! let mut ifc = Interface::new(cfg)?;
//! let mut bufs: Vec<PacketBuf> = (0..32).map(|_| PacketBuf::new(9216)).collect();
//! loop {
//!     while let Some(ev) = ifc.poll_control() {
//!         if let Event::Disconnected { reason } = ev { eprintln!("down: {reason}"); }
//!     }
//!     let n = ifc.rx_burst(0, &mut bufs);
//!     ifc.tx_burst(0, &bufs[..n]); // echo back
//! #   break;
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## Zero-copy API
//!
//! [`Interface::rx_ring`]/[`Interface::tx_ring`] expose each [`Ring`]:
//! head/tail (atomic, acquire/release), descriptors ([`Desc`]: flags,
//! region, length, offset) and the mapped [`Region`]s. A client can add
//! its own memory as extra regions ([`Config::extra_regions`]) so that
//! descriptors point straight into the caller's buffer pool.
//!
//! Ring ownership rules (v2): on a client→server ring the client writes
//! descriptors and advances `head`, the server consumes and advances
//! `tail`. On a server→client ring the client hands free buffers over by
//! advancing `head`; the server fills them, sets `length`/`flags` and
//! advances `tail`.
//!
//! ## Robustness
//!
//! Everything the peer controls — messages, region sizes, ring offsets,
//! head/tail and every descriptor — is validated before use. A bad
//! message ends the connection with a `DISCONNECT` reason and a
//! `log::warn!`; bad ring state is counted ([`Stats::ring_errors`]) and
//! never dereferenced.

#![deny(missing_docs)]

mod addr;
mod iface;
pub mod proto;
mod ring;
mod sys;

pub use addr::SocketSpec;
pub use iface::{
    Config, Event, ExternalRegion, Handoff, HandoffConn, HandoffRing, Interface, PacketBuf, Role,
    Stats,
};
pub use proto::Mode;
pub use ring::{Desc, Region, Ring, RingKind};
pub use sys::SocketName;

// An interface can be moved to the thread that polls it.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Interface>();
};
