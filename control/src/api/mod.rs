//! The VPP binary API served on `socksvr { socket-name }`, with handlers on the dataplane.
//!
//! The wire format, message table and per-connection transport (framing, handshake, memclnt
//! built-ins, batched replies) are `rvpp_vppapi::transport`'s; this module owns the accept
//! loop, the router ([`handlers`]: one `register` per message module) and the interface-event publisher, which reaches clients
//! through the transport's [`Events`]. Handling is serialised on one lock, like VPP's single
//! API thread; handlers take the forwarding writer's lock only for the duration of one
//! message, never a worker.

/// A reply of type `$t` carrying only `retval`.
macro_rules! reply {
    ($t:ident, $rv:expr) => {
        rvpp_vppapi::transport::Response::reply(rvpp_vppapi::defs::$t {
            context: 0,
            retval: $rv,
        })
    };
}

mod classify;
pub(crate) mod cnat;
mod convert;
mod devices;
mod features;
mod handlers;
mod ikev2;
mod interfaces;
mod ip;
mod ipsec;
mod memif;
mod misc;
mod npol;
mod pbl;
mod punt;
mod srv6;
mod urpf;
mod wireguard;

pub use punt::PUNT_REASONS;

use crate::daemon::Dataplane;
use handlers::{EventRegs, State};
use rvpp_vppapi::defs as d;
use rvpp_vppapi::transport::{serve_connection, Events, Handler, Request, Response, Router};
use std::collections::BTreeMap;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Requests handed to the handlers, by message name: (answered, answered UNIMPLEMENTED).
/// The memclnt built-ins the transport answers itself (control_ping, keepalives, the
/// handshake) are not counted. Locked by the API thread per message and by a metrics scrape.
#[derive(Default)]
pub struct MessageCounts(Mutex<BTreeMap<&'static str, [u64; 2]>>);

impl MessageCounts {
    fn count(&self, name: &'static str, unimplemented: bool) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(name).or_default()[usize::from(unimplemented)] += 1;
    }
    /// (message, handled, unimplemented), by name.
    pub fn snapshot(&self) -> Vec<(&'static str, u64, u64)> {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|(n, c)| (*n, c[0], c[1])).collect()
    }
}

/// A running API server; dropping it stops accepting and removes the socket.
pub struct ApiServer {
    path: PathBuf,
    counts: Arc<MessageCounts>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    /// Our own handle on the listening socket: shutdown() on it wakes the accept thread even
    /// when the socket file has been removed.
    listener: UnixListener,
    watcher: Option<JoinHandle<()>>,
}

impl ApiServer {
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The listening socket (a live restart hands it to the next process).
    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }
    /// What the handlers have been asked, for the metrics endpoint.
    pub fn message_counts(&self) -> Arc<MessageCounts> {
        self.counts.clone()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept: shutdown() makes a listening socket's accept fail on Linux;
        // a connection attempt covers other systems.
        let _ = rustix::net::shutdown(&self.listener, rustix::net::Shutdown::Both);
        let _ = UnixStream::connect(&self.path);
        if let Some(j) = self.accept.take() {
            let _ = j.join();
        }
        if let Some(j) = self.watcher.take() {
            let _ = j.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serve the binary API on `path` (a stale socket is replaced), reachable by root and `gid`.
pub fn serve(dp: Arc<Dataplane>, path: &Path, gid: Option<u32>) -> std::io::Result<ApiServer> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    crate::socket_access::restrict(path, gid)?;
    serve_on(dp, listener, path)
}

/// Serve the binary API on a socket already listening at `path` (one a live restart handed
/// over: clients keep connecting to the same socket throughout).
pub fn serve_on(
    dp: Arc<Dataplane>,
    listener: UnixListener,
    path: &Path,
) -> std::io::Result<ApiServer> {
    let stop = Arc::new(AtomicBool::new(false));
    let events = Events::default();
    let regs: EventRegs = Arc::new(Mutex::new(BTreeMap::new()));
    let (kick, kicked) = channel();
    // Changes made elsewhere (the CLI, a memif's link) wake the event publisher too.
    dp.svc.subscribe(kick.clone());
    let counts = Arc::new(MessageCounts::default());
    let handler = Arc::new(Mutex::new(Api(
        handlers::router(State::new(dp.clone(), regs.clone(), kick)),
        counts.clone(),
        dp.clone(),
    )));

    let watcher = {
        let (dp, events, regs, stop) = (dp.clone(), events.clone(), regs.clone(), stop.clone());
        std::thread::Builder::new()
            .name("api-events".into())
            .spawn(move || publish_events(dp, events, regs, kicked, stop))?
    };
    let wake = listener.try_clone()?;
    let accept = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("api-accept".into())
            .spawn(move || {
                for s in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(s) = s else { continue };
                    let (h, ev) = (handler.clone(), events.clone());
                    let r =
                        std::thread::Builder::new()
                            .name("api-client".into())
                            .spawn(move || {
                                let _ = serve_connection(s, h, ev);
                            });
                    if let Err(e) = r {
                        log::warn!("api: cannot start a client thread: {e}");
                    }
                }
            })?
    };
    Ok(ApiServer {
        path: path.to_path_buf(),
        counts,
        stop,
        accept: Some(accept),
        listener: wake,
        watcher: Some(watcher),
    })
}

/// The router, counting what it is asked.
struct Api(Router<State>, Arc<MessageCounts>, Arc<Dataplane>);

impl Handler for Api {
    fn handle(&mut self, req: Request<'_>, events: &Events) -> Response {
        let name = req.entry.name();
        let _running = self.2.config_shared();
        let r = self.0.handle(req, events);
        self.1.count(name, matches!(r, Response::Unimplemented));
        r
    }
    fn client_disconnected(&mut self, client_index: u32) {
        self.0.client_disconnected(client_index)
    }
}

/// Interface state as events report it: (flags, present).
fn snapshot(dp: &Dataplane) -> BTreeMap<u32, u32> {
    dp.fwd()
        .ifs()
        .ifs
        .iter()
        .flatten()
        .map(|i| {
            (
                i.sw_if_index,
                u32::from(i.admin_up) | u32::from(i.link_up) << 1,
            )
        })
        .collect()
}

/// VPP's link-state process: send `sw_interface_event` to every registration for each
/// interface whose admin/link state changed, appeared or went away. Woken by handlers after
/// changes, and every 100 ms for changes made elsewhere (CLI, drivers).
fn publish_events(
    dp: Arc<Dataplane>,
    events: Events,
    regs: EventRegs,
    kicked: Receiver<()>,
    stop: Arc<AtomicBool>,
) {
    let mut last = snapshot(&dp);
    while !stop.load(Ordering::Acquire) {
        match kicked.recv_timeout(Duration::from_millis(100)) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        while kicked.try_recv().is_ok() {}
        let now = snapshot(&dp);
        let mut changes: Vec<(u32, u32, bool)> = now
            .iter()
            .filter(|(sw, fl)| last.get(sw) != Some(fl))
            .map(|(&sw, &fl)| (sw, fl, false))
            .collect();
        changes.extend(
            last.keys()
                .filter(|sw| !now.contains_key(sw))
                .map(|&sw| (sw, 0, true)),
        );
        last = now;
        if changes.is_empty() {
            continue;
        }
        let regs: Vec<(u32, u32)> = regs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(a, b)| (*a, *b))
            .collect();
        for (ci, pid) in regs {
            for &(sw, flags, deleted) in &changes {
                events.send(
                    ci,
                    &d::SwInterfaceEvent {
                        client_index: ci,
                        pid,
                        sw_if_index: d::InterfaceIndex(sw),
                        flags: d::IfStatusFlags(flags),
                        deleted,
                    },
                );
            }
        }
    }
}
