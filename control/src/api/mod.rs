//! The VPP binary API served on `socksvr { socket-name }`, with handlers on the dataplane.
//! (Being built: until then the socket is not served.)

use crate::daemon::Dataplane;
use std::path::Path;
use std::sync::Arc;

/// A running API server; dropping it stops serving.
pub struct ApiServer {
    _private: (),
}

/// Serve the binary API on `path`.
pub fn serve(_dp: Arc<Dataplane>, path: &Path) -> std::io::Result<ApiServer> {
    Err(std::io::Error::other(format!("binary API not served yet ({})", path.display())))
}
