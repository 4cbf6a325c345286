//! WireGuard's nodes live in their feature folder, `crate::wireguard`.
pub use crate::wireguard::node::*;
