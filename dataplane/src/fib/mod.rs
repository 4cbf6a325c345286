//! Forwarding information bases: longest-prefix match from an address to a leaf (a load-balance index).
//!
//! Readers (workers) take `&Ip4Fib` / `&Ip6Fib` and never lock, allocate or panic. The single
//! writer (control thread) owns an [`Ip4FibWriter`] / [`Ip6FibWriter`], which updates the shared
//! table in place and keeps the route set needed for covering routes, gets and dumps. Memory the
//! readers may still be walking is reused only after a [`crate::rcu::GracePeriod`].

pub mod ip4;
pub mod ip6;
pub(crate) mod mem;

pub use ip4::{Ip4Fib, Ip4FibConfig, Ip4FibWriter, LookupImpl};
pub use ip6::{Ip6Fib, Ip6FibWriter};
pub use mem::TableBacking;

/// What a lookup returns when no prefix (not even a /0) covers the address.
pub const LEAF_MISS: u32 = u32::MAX;

/// Leaves are load-balance indexes below this bound.
pub const LEAF_LIMIT: u32 = 1 << 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FibError {
    /// Prefix length above 32 (IPv4) or 128 (IPv6).
    BadPrefixLength(u8),
    /// Leaf not below [`LEAF_LIMIT`].
    LeafOutOfRange(u32),
    /// No free tbl8 group; `retired` groups are waiting for a grace period.
    Tbl8Exhausted { retired: usize },
    /// The table's backing memory could not be mapped.
    OutOfMemory,
}

impl std::fmt::Display for FibError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FibError::BadPrefixLength(l) => write!(f, "bad prefix length /{l}"),
            FibError::LeafOutOfRange(l) => write!(f, "leaf {l} out of range"),
            FibError::Tbl8Exhausted { retired } => {
                write!(
                    f,
                    "tbl8 groups exhausted ({retired} awaiting a grace period)"
                )
            }
            FibError::OutOfMemory => write!(f, "cannot map FIB memory"),
        }
    }
}

impl std::error::Error for FibError {}
