//! rvpp's packet engine: buffers, vectors, the node graph, nodes and tables. No I/O lives here.
//!
//! `unsafe` is confined to `buffer` (the shared packet memory), `runtime::clocks` (rdtsc) and
//! `fib::mem` (zeroed table memory and SIMD gathers); every block carries a `// SAFETY:` note.
pub mod buffer;
pub mod cnat;
pub mod device;
pub mod feature;
pub mod fib;
pub mod forwarding;
pub mod graph;
pub mod handover;
pub mod ipsec;
pub mod nodes;
pub mod npol;
pub mod rcu;
pub mod runtime;
pub mod srv6;
pub mod tables;
pub mod tx_spread;
pub mod wire;
pub mod wireguard;
