//! CLI for Linux-facing devices: tap/tun, af_packet (host-interface), af_xdp. (Being built.)

use crate::daemon::Dataplane;
use std::sync::Arc;

/// Handle a device CLI line; None if the line is not one of these commands.
pub fn execute(_dp: &Arc<Dataplane>, _words: &[&str]) -> Option<Result<String, String>> {
    None
}
