//! VPP's stats segment (being built): shared memory with counters, served on `statseg { socket-name }`.

use crate::daemon::Dataplane;
use std::path::Path;
use std::sync::Arc;

/// A served stats segment; dropping it stops serving and removes the socket.
pub struct StatsSegment {
    _private: (),
}

/// Create the segment of `size` bytes and serve it on `path`.
pub fn start(_dp: Arc<Dataplane>, path: &Path, _size: u64) -> std::io::Result<StatsSegment> {
    Err(std::io::Error::other(format!("stats segment not served yet ({})", path.display())))
}

impl StatsSegment {
    /// Copy the current counters into the segment (control thread, every few ms).
    pub fn update(&self) {}
}
