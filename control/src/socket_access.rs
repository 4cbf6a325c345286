//! Who may connect to rvpp's unix sockets (binary API, CLI, stats segment): root, which owns
//! them, and the group named by `unix { gid }`; nobody else. Connecting to a unix socket needs
//! write permission on its file, so mode 0770 with that group is the whole check. VPP lets the
//! group write too (CLIB_SOCKET_F_ALLOW_GROUP_WRITE) but leaves "other" to the umask; rvpp
//! closes it, since any local user who reaches the API can reprogram the node.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The mode every rvpp socket file gets.
pub const SOCKET_MODE: u32 = 0o770;

/// Give the socket at `path` [`SOCKET_MODE`] and, when set, the group `gid`.
pub fn restrict(path: &Path, gid: Option<u32>) -> std::io::Result<()> {
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
}
