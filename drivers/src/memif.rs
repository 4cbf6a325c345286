//! memif interfaces in the engine, on top of the `memif` protocol crate.
//!
//! # Threads
//! A device has one small control thread that owns the [`memif::Interface`]: it accepts or
//! connects, runs the handshake, reconnects, and reports link changes. The data path never
//! touches the `Interface`. When the link comes up the control thread clones each ring
//! ([`Ring::try_clone`]), puts the clones in a mailbox and bumps a generation counter. Every
//! queue object checks the generation once per burst (one relaxed-cached atomic load) and picks
//! up its ring when it changes; when the link goes down the mailbox is emptied and the queues
//! drop their rings, giving back every buffer the ring held.
//!
//! Rx queue `q` is memif rx ring `q` and lives on exactly one worker, so it needs no lock. Each
//! worker has a tx queue object; worker `w` sends on ring `w % rings`. A ring shared by several
//! workers is behind a mutex taken once per burst (never per packet); with as many rings as
//! workers the mutex is never contended.
//!
//! # Copies
//! * **Server** (calico's default): the peer owns the memory, so packets are copied between
//!   its buffers and rvpp buffers, both ways (VPP does the same).
//! * **Client**: rvpp's buffer pool memfd is registered as region 1, so descriptors point
//!   straight at rvpp buffers: rx buffers are handed to the server empty and come back filled,
//!   tx descriptors point at the packet in place; no packet byte is copied. Only the first
//!   ring's worth of rx buffers after each connect (pre-filled by the protocol crate in its own
//!   region 0) is copied once. Sharing the pool means the peer can write any rvpp buffer, so
//!   use the client role only with a trusted peer (as with VPP's zero-copy memif).
//!
//! # Live restart
//! A server device can be handed to another process (`rvpp --take-over`): [`MemifDevice::handoff`]
//! stops its control thread and gives duplicates of the listening socket, the control
//! connection, the regions and the ring eventfds; [`MemifDevice::adopt`] in the new process maps
//! the regions again and goes on as connected, so the peer sees no new handshake. A ring's
//! head and tail live in the shared memory and a server keeps no other position (it reads its
//! tail back from the ring at every call), so whichever process holds a ring goes on where the
//! other left it. While both processes run, each ring has a lock in a memfd page they share
//! (`RingLocks`, handed over with the rings): one process at a time reads an rx ring or
//! writes a tx ring, and both keep forwarding, so neither drops what it read from other
//! devices for want of the memif ring. A client's rings point into its own buffer pool, which
//! no other process maps: clients are not handed over.
//!
//! # Interrupts
//! `rx_fd` is a per-queue epoll descriptor that never changes: it watches the current ring's
//! interrupt eventfd (swapped on reconnect) and a wake eventfd the control thread rings on
//! link changes, so a sleeping worker picks up a new connection.

use crate::shm::SharedMem;
use crate::wait::EventFd;
use memif::{proto, Config, Desc, Event, ExternalRegion, Interface, Ring};
/// Re-exported so users of the device need not depend on the protocol crate.
pub use memif::{Handoff, HandoffConn, HandoffRing, Mode, Role, SocketSpec};
use rvpp_dataplane::buffer::{flags, BufferPool, Buffers, NO_BUFFER};
use rvpp_dataplane::device::{RxQueue, TxQueue};
use rvpp_dataplane::graph::rx_next;
use rvpp_dataplane::graph::DeviceNodes;
use rvpp_dataplane::tx_spread::{Framing, Spreader};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// The graph nodes of memif interfaces.
pub const INPUT_NODE: &str = "memif-input";
pub const TX_NODE: &str = "memif-tx";
pub const NODES: DeviceNodes = DeviceNodes::new(INPUT_NODE, TX_NODE);

/// Largest number of buffers one received packet may span.
const MAX_CHAIN: usize = 64;
/// Region index of rvpp's buffer pool when we are the client.
const POOL_REGION: u16 = 1;

/// What `create interface memif` asks for.
#[derive(Clone, Debug)]
pub struct MemifConfig {
    pub role: Role,
    /// Socket spec: a path, `abstract:name` or `@name`, optionally `,netns_name=...`.
    pub socket: String,
    pub id: u32,
    pub mode: Mode,
    pub rx_queues: u16,
    pub tx_queues: u16,
    /// Client only: log2 of the ring size.
    pub log2_ring_size: u8,
    /// Client only: buffer size of the protocol crate's own region (rvpp buffers are used for
    /// the data path; see the module docs).
    pub buffer_size: u32,
    pub secret: Option<String>,
    /// Name sent to the peer in CONNECT/CONNECTED.
    pub if_name: String,
    /// Client only: point descriptors into rvpp's buffer pool (default). Off: the device
    /// refuses to start as client (copy mode is not implemented for the client role).
    pub zero_copy: bool,
}

impl MemifConfig {
    pub fn new(role: Role, socket: &str, id: u32) -> Self {
        Self {
            role,
            socket: socket.into(),
            id,
            mode: Mode::Ethernet,
            rx_queues: 1,
            tx_queues: 1,
            log2_ring_size: 10,
            buffer_size: 2048,
            secret: None,
            if_name: format!("memif{id}"),
            zero_copy: true,
        }
    }
}

/// Error and event counters of one device (packet counts are the engine's interface counters).
#[derive(Default)]
pub struct MemifCounters {
    /// Head/tail out of range or descriptors outside their region (peer bug or attack).
    pub ring_errors: AtomicU64,
    /// Received packets dropped (bad descriptors, too long).
    pub rx_dropped: AtomicU64,
    /// Received packets left in the ring for lack of rvpp buffers.
    pub rx_no_buffers: AtomicU64,
    /// Packets not sent because the ring was full.
    pub tx_full: AtomicU64,
    /// Packets dropped on tx (too long for the peer's buffers, bad descriptors).
    pub tx_dropped: AtomicU64,
    /// Bytes copied between peer memory and rvpp buffers (0 on a zero-copy path).
    pub copied_bytes: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    if n > 0 {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// Connection state for `show memif`.
#[derive(Clone, Debug, Default)]
pub struct MemifStatus {
    pub connected: bool,
    pub remote_name: String,
    pub remote_if_name: String,
    pub connects: u64,
    pub last_disconnect: String,
    pub rx_rings: usize,
    pub tx_rings: usize,
    pub ring_size: u16,
    pub regions: Vec<usize>,
}

/// Lock words of the rings of one device, in a memfd page a take-over hands over with the rings,
/// so that while two processes run one at a time moves a ring. A word holds the holder's pid
/// (0: free); taken once per burst, never per packet.
struct RingLocks {
    mem: SharedMem,
    pid: u32,
}

/// Words per page: rx rings first, then tx rings from [`TX_LOCKS`].
const LOCK_WORDS: usize = 1024;
const TX_LOCKS: usize = 512;
/// Spins, then yields up to [`LOCK_WAIT`], before a burst gives up on a ring the other process
/// holds. It holds a ring for one burst, but on shared cores it can be preempted in one for a
/// scheduler slice (seen: 3 ms, 6 packets lost with a 4,000-yield budget); yielding lets it run.
const LOCK_SPINS: u32 = 1 << 10;
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

impl RingLocks {
    fn new() -> io::Result<Self> {
        Ok(Self {
            mem: SharedMem::create("rvpp-memif-locks", LOCK_WORDS * 4)?,
            pid: std::process::id(),
        })
    }

    fn adopt(fd: OwnedFd) -> io::Result<Self> {
        let mem = SharedMem::map_shared(fd)?;
        if mem.atomic_u32((LOCK_WORDS - 1) * 4).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "memif ring locks: page too small",
            ));
        }
        Ok(Self {
            mem,
            pid: std::process::id(),
        })
    }

    /// Lock word `i`, waiting a bounded time for the other process; None: not got.
    #[inline]
    fn lock(&self, i: usize) -> Option<RingGuard<'_>> {
        let w = self.mem.atomic_u32(i * 4)?;
        let take = || {
            w.compare_exchange(0, self.pid, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        };
        if take() {
            return Some(RingGuard(w));
        }
        self.lock_slow(w, take)
    }

    #[cold]
    fn lock_slow<'a>(&self, w: &'a AtomicU32, take: impl Fn() -> bool) -> Option<RingGuard<'a>> {
        for _ in 0..LOCK_SPINS {
            std::hint::spin_loop();
            if take() {
                return Some(RingGuard(w));
            }
        }
        let t = std::time::Instant::now();
        while t.elapsed() < LOCK_WAIT {
            std::thread::yield_now();
            if take() {
                return Some(RingGuard(w));
            }
        }
        // A holder that died (a take-over's process killed in a burst) never lets go.
        let holder = w.load(Ordering::Relaxed);
        // SAFETY: kill with signal 0 only checks that the process exists.
        let gone = holder != 0
            && unsafe { libc::kill(holder as libc::pid_t, 0) } < 0
            && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone
            && w.compare_exchange(holder, self.pid, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return Some(RingGuard(w));
        }
        None
    }

    fn fd(&self) -> io::Result<OwnedFd> {
        self.mem.fd().try_clone_to_owned()
    }

    /// Free the words another process holds: it is gone (it may still be a zombie, or the
    /// stand-in with its pid, so the dead-holder check would not see it).
    fn release_foreign(&self) {
        for i in 0..LOCK_WORDS {
            if let Some(w) = self.mem.atomic_u32(i * 4) {
                let v = w.load(Ordering::Relaxed);
                if v != 0 && v != self.pid {
                    let _ = w.compare_exchange(v, 0, Ordering::Release, Ordering::Relaxed);
                }
            }
        }
    }
}

struct RingGuard<'a>(&'a AtomicU32);

impl Drop for RingGuard<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Release);
    }
}

/// A ring lock for a server, nothing to lock for a client (never handed over). Err: the
/// other process held the ring too long; skip this burst.
#[inline]
fn ring_lock(sh: &DevShared, i: usize) -> Result<Option<RingGuard<'_>>, ()> {
    match &sh.locks {
        None => Ok(None),
        Some(l) => l.lock(i).map(Some).ok_or(()),
    }
}

struct Mailbox {
    gen: u64,
    rx: Vec<Option<Ring>>,
    tx: Vec<Arc<Mutex<TxRing>>>,
}

struct DevShared {
    role: Role,
    mode: Mode,
    sw_if_index: u32,
    pool: Arc<BufferPool>,
    zero_copy: bool,
    gen: AtomicU64,
    mailbox: Mutex<Mailbox>,
    status: Mutex<MemifStatus>,
    counters: MemifCounters,
    wakes: Vec<Arc<EventFd>>,
    /// Server only.
    locks: Option<RingLocks>,
    /// Packets not sent because the other process of a take-over held the tx ring too long.
    lock_busy: AtomicU64,
}

/// What the device and its control thread share of the protocol interface.
struct Control {
    /// None once the control thread has ended.
    ifc: Mutex<Option<Interface>>,
    /// The interface was handed to another process: the control thread leaves it alone.
    paused: AtomicBool,
    /// Leave the peer connected when the device goes (this process has not yet taken it
    /// over, or has handed it on): the interface is forgotten, not dropped.
    quiet: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running memif device: its control thread and shared state. Dropping it disconnects the
/// peer and stops the thread; the queues given out stop moving packets and release their
/// buffers at their next call (or when dropped).
pub struct MemifDevice {
    sh: Arc<DevShared>,
    control: Arc<Control>,
    stop: Arc<AtomicBool>,
    ctl: Option<JoinHandle<()>>,
    cfg: MemifConfig,
}

/// The queues of a new device: one rx queue per configured rx queue, one tx queue per worker.
pub struct MemifQueues {
    pub device: MemifDevice,
    pub rx: Vec<MemifRxQueue>,
    pub tx: Vec<MemifTxQueue>,
}

/// A server device's state for the process taking over ([`MemifDevice::handoff`]).
#[derive(Debug)]
pub struct MemifHandoff {
    pub ifc: Handoff,
    /// The ring locks' memfd.
    pub locks: OwnedFd,
}

/// Lets an adopted device say goodbye to its peer when it goes, once this process owns it.
pub struct MemifOwner {
    sh: Arc<DevShared>,
    ctl: Arc<Control>,
}

impl MemifOwner {
    /// The giving process has stopped: the device is this process's, and its rx queues look at
    /// their rings at once (a sleeping worker may have missed the peer's last interrupt, which
    /// the other process took).
    pub fn own(&self) {
        self.ctl.quiet.store(false, Ordering::Release);
        if let Some(l) = &self.sh.locks {
            l.release_foreign();
        }
        for w in &self.sh.wakes {
            w.ring();
        }
    }
}

impl MemifDevice {
    /// Create the device. A server binds its socket now (errors are returned); a client starts
    /// connecting in the background. `on_link` is called from the control thread on every
    /// link change.
    pub fn start(
        cfg: MemifConfig,
        sw_if_index: u32,
        pool: Arc<BufferPool>,
        workers: usize,
        on_link: Box<dyn FnMut(bool) + Send>,
    ) -> io::Result<MemifQueues> {
        Self::launch(cfg, sw_if_index, pool, workers, on_link, None)
    }

    /// A server device going on with another process's connection ([`handoff`](Self::handoff)).
    /// Until [`MemifOwner::own`] it leaves the peer connected when dropped (a take-over that
    /// fails leaves the peer to the giving process).
    pub fn adopt(
        cfg: MemifConfig,
        handoff: MemifHandoff,
        sw_if_index: u32,
        pool: Arc<BufferPool>,
        workers: usize,
        on_link: Box<dyn FnMut(bool) + Send>,
    ) -> io::Result<MemifQueues> {
        if cfg.role != Role::Server {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "only a memif server is handed over",
            ));
        }
        Self::launch(cfg, sw_if_index, pool, workers, on_link, Some(handoff))
    }

    fn launch(
        cfg: MemifConfig,
        sw_if_index: u32,
        pool: Arc<BufferPool>,
        workers: usize,
        on_link: Box<dyn FnMut(bool) + Send>,
        handoff: Option<MemifHandoff>,
    ) -> io::Result<MemifQueues> {
        let bad = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
        if cfg.rx_queues == 0 || cfg.tx_queues == 0 {
            return Err(bad("rx-queues and tx-queues must be at least 1".into()));
        }
        if cfg.role == Role::Client {
            if !cfg.zero_copy {
                return Err(bad("memif client without zero-copy is not supported".into()));
            }
            if pool.region_len() > u32::MAX as usize {
                return Err(bad(
                    "buffer pool larger than 4 GiB cannot be a memif region".into(),
                ));
            }
        }
        let mut mc = Config::new(cfg.role, &cfg.socket);
        mc.id = cfg.id;
        mc.mode = cfg.mode;
        mc.secret = cfg.secret.clone();
        mc.log2_ring_size = cfg.log2_ring_size;
        mc.buffer_size = cfg.buffer_size;
        mc.app_name = "rvpp".into();
        mc.if_name = cfg.if_name.clone();
        mc.rx_interrupts = false;
        let (s2m, m2s) = match cfg.role {
            Role::Server => (cfg.rx_queues, cfg.tx_queues),
            Role::Client => (cfg.tx_queues, cfg.rx_queues),
        };
        mc.num_s2m_rings = s2m;
        mc.num_m2s_rings = m2s;
        if cfg.role == Role::Client {
            // SAFETY: region_fd() is a descriptor the pool keeps open for its whole life, and
            // the pool outlives this call; we only duplicate it.
            let fd = unsafe { BorrowedFd::borrow_raw(pool.region_fd()) }.try_clone_to_owned()?;
            mc.extra_regions.push(ExternalRegion {
                fd,
                size: pool.region_len(),
            });
        }
        let (handed, locks) = match handoff {
            Some(h) => (Some(h.ifc), Some(RingLocks::adopt(h.locks)?)),
            None => (
                None,
                match cfg.role {
                    Role::Server => Some(RingLocks::new()?),
                    Role::Client => None,
                },
            ),
        };
        let adopted = handed.is_some();
        let wakes = (0..cfg.rx_queues)
            .map(|_| EventFd::new().map(Arc::new))
            .collect::<io::Result<Vec<_>>>()?;
        let sh = Arc::new(DevShared {
            role: cfg.role,
            mode: cfg.mode,
            sw_if_index,
            pool,
            zero_copy: cfg.role == Role::Client,
            gen: AtomicU64::new(0),
            mailbox: Mutex::new(Mailbox {
                gen: 0,
                rx: Vec::new(),
                tx: Vec::new(),
            }),
            status: Mutex::new(MemifStatus::default()),
            counters: MemifCounters::default(),
            wakes,
            locks,
            lock_busy: AtomicU64::new(0),
        });
        let mut rx = Vec::new();
        for q in 0..cfg.rx_queues {
            rx.push(MemifRxQueue::new(sh.clone(), q)?);
        }
        let tx = (0..workers.max(1))
            .map(|w| MemifTxQueue {
                sh: sh.clone(),
                worker: w,
                workers: workers.max(1),
                gen: 0,
                rings: Vec::new(),
                spread: Spreader::new(1, Framing::Ethernet),
            })
            .collect();
        // An adopted interface is made last and, on any error after it, forgotten rather than
        // dropped: dropping it would tell the peer goodbye and unlink the socket the giving
        // process still serves.
        let mut ifc = match handed {
            Some(h) => Interface::adopt(mc, h)?,
            None => Interface::new(mc)?,
        };
        // An adopted connection's rings go to the queues now, not when the control thread first
        // runs: the workers already send to this device (seen: packets from a tun dropped as
        // "tx queue full" for a few ms).
        let mut up = false;
        if adopted {
            if let Some(Event::Connected {
                remote_name,
                remote_if_name,
            }) = ifc.poll_control()
            {
                if let Err(e) = publish(&ifc, &sh, remote_name, remote_if_name) {
                    std::mem::forget(ifc);
                    return Err(e);
                }
                up = true;
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let control = Arc::new(Control {
            ifc: Mutex::new(Some(ifc)),
            paused: AtomicBool::new(false),
            quiet: AtomicBool::new(adopted),
        });
        let (sh2, stop2, ctl2) = (sh.clone(), stop.clone(), control.clone());
        let ctl = match std::thread::Builder::new()
            .name(format!("memif-ctl-{sw_if_index}"))
            .spawn(move || control_main(ctl2, sh2, stop2, on_link, up))
        {
            Ok(j) => j,
            Err(e) => {
                if adopted {
                    std::mem::forget(lock(&control.ifc).take());
                }
                return Err(e);
            }
        };
        Ok(MemifQueues {
            device: MemifDevice {
                sh,
                control,
                stop,
                ctl: Some(ctl),
                cfg,
            },
            rx,
            tx,
        })
    }

    pub fn config(&self) -> &MemifConfig {
        &self.cfg
    }
    pub fn status(&self) -> MemifStatus {
        lock(&self.sh.status).clone()
    }
    pub fn counters(&self) -> &MemifCounters {
        &self.sh.counters
    }
    pub fn is_connected(&self) -> bool {
        lock(&self.sh.status).connected
    }
    /// True when descriptors point into rvpp's buffers (client role).
    pub fn zero_copy(&self) -> bool {
        self.sh.zero_copy
    }
    /// Packets not sent because the other process of a take-over held the tx ring too long.
    pub fn lock_busy(&self) -> u64 {
        self.sh.lock_busy.load(Ordering::Relaxed)
    }

    /// Stop the control thread and give duplicates of everything another process needs to go
    /// on serving the peer ([`adopt`](Self::adopt)); the data path goes on (the rings are
    /// locked per burst). Servers only. [`resume`](Self::resume) if the other process does not
    /// take over; until then, dropping the device leaves the peer connected.
    pub fn handoff(&self) -> io::Result<MemifHandoff> {
        let Some(locks) = &self.sh.locks else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a memif client is not handed over",
            ));
        };
        // Under the interface's lock: the control thread is not in the middle of a message.
        let g = lock(&self.control.ifc);
        let ifc = g
            .as_ref()
            .ok_or_else(|| io::Error::other("the memif control thread has ended"))?;
        self.control.paused.store(true, Ordering::Release);
        let r = ifc.handoff().and_then(|ifc| {
            Ok(MemifHandoff {
                ifc,
                locks: locks.fd()?,
            })
        });
        if r.is_err() {
            self.control.paused.store(false, Ordering::Release);
        }
        r
    }

    /// Drive the control connection again (a take-over did not happen).
    pub fn resume(&self) {
        self.control.paused.store(false, Ordering::Release);
    }

    /// For an adopted device: what makes it this process's once the take-over is done.
    pub fn owner(&self) -> MemifOwner {
        MemifOwner {
            sh: self.sh.clone(),
            ctl: self.control.clone(),
        }
    }

    /// Disconnect the peer and stop the control thread.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(j) = self.ctl.take() {
            let _ = j.join();
        }
    }
}

impl Drop for MemifDevice {
    fn drop(&mut self) {
        self.stop();
    }
}

fn control_main(
    ctl: Arc<Control>,
    sh: Arc<DevShared>,
    stop: Arc<AtomicBool>,
    mut on_link: Box<dyn FnMut(bool) + Send>,
    mut up: bool,
) {
    let mut links = Vec::new();
    while !stop.load(Ordering::Acquire) {
        let fds = {
            let mut g = lock(&ctl.ifc);
            match g.as_mut() {
                Some(ifc) if !ctl.paused.load(Ordering::Acquire) => {
                    while let Some(ev) = ifc.poll_control() {
                        match ev {
                            Event::Connected {
                                remote_name,
                                remote_if_name,
                            } => {
                                if let Err(e) = publish(ifc, &sh, remote_name, remote_if_name) {
                                    log::warn!("memif sw_if_index {}: {e}", sh.sw_if_index);
                                    ifc.disconnect(&format!("rvpp: {e}"));
                                    continue;
                                }
                                if !up {
                                    up = true;
                                    links.push(true);
                                }
                            }
                            Event::Disconnected { reason } => {
                                unpublish(&sh, reason);
                                if up {
                                    up = false;
                                    links.push(false);
                                }
                            }
                        }
                    }
                    Some(ifc.control_fds())
                }
                _ => None,
            }
        };
        // Outside the interface's lock: on_link takes the forwarding lock, which a take-over
        // holds while it asks for the interface (handoff).
        for l in links.drain(..) {
            on_link(l);
        }
        match fds {
            Some(fds) => wait_readable(&fds, 20),
            None => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    let ifc = lock(&ctl.ifc).take();
    if ctl.quiet.load(Ordering::Acquire) || ctl.paused.load(Ordering::Acquire) {
        // The peer belongs to the other process of a take-over (this one has not taken it over
        // yet, or has handed it on): no goodbye, no unlink.
        std::mem::forget(ifc);
        return;
    }
    drop(ifc);
    unpublish(&sh, "interface deleted".into());
    if up {
        on_link(false);
    }
}

/// Sleep until a control fd is readable or `ms` passes (clients retry on the timer).
fn wait_readable(fds: &[Option<RawFd>], ms: i32) {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .flatten()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: p is a valid array of p.len() pollfd structures for the duration of the call.
    unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) };
}

fn publish(
    ifc: &Interface,
    sh: &DevShared,
    remote_name: String,
    remote_if_name: String,
) -> io::Result<()> {
    let mut rx = Vec::new();
    for q in 0..ifc.rx_queues() {
        let r = ifc
            .rx_ring(q)
            .ok_or_else(|| io::Error::other("rx ring vanished"))?;
        let r = r.try_clone()?;
        if let Some(fd) = r.interrupt_fd() {
            set_nonblocking(fd);
        }
        rx.push(Some(r));
    }
    let mut tx = Vec::new();
    for q in 0..ifc.tx_queues() {
        let r = ifc
            .tx_ring(q)
            .ok_or_else(|| io::Error::other("tx ring vanished"))?;
        tx.push(Arc::new(Mutex::new(TxRing::new(
            r.try_clone()?,
            q as u16,
            sh,
        )?)));
    }
    {
        let mut st = lock(&sh.status);
        st.connected = true;
        st.remote_name = remote_name;
        st.remote_if_name = remote_if_name;
        st.connects += 1;
        st.rx_rings = rx.len();
        st.tx_rings = tx.len();
        st.ring_size = ifc.rx_ring(0).map_or(0, |r| r.size());
        st.regions = ifc.regions().iter().map(|r| r.size()).collect();
    }
    let mut mb = lock(&sh.mailbox);
    mb.gen += 1;
    mb.rx = rx;
    mb.tx = tx;
    sh.gen.store(mb.gen, Ordering::Release);
    drop(mb);
    for w in &sh.wakes {
        w.ring();
    }
    Ok(())
}

fn unpublish(sh: &DevShared, reason: String) {
    {
        let mut st = lock(&sh.status);
        st.connected = false;
        st.last_disconnect = reason;
        st.rx_rings = 0;
        st.tx_rings = 0;
    }
    let mut mb = lock(&sh.mailbox);
    mb.gen += 1;
    mb.rx.clear();
    mb.tx.clear();
    sh.gen.store(mb.gen, Ordering::Release);
    drop(mb);
    for w in &sh.wakes {
        w.ring();
    }
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we hold; no memory is passed.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
}

fn drain_fd(fd: RawFd) {
    let mut v = [0u8; 8];
    // SAFETY: reads at most 8 bytes into a valid array; the fd was made non-blocking.
    unsafe { libc::read(fd, v.as_mut_ptr().cast(), 8) };
}

/// The epoll set behind a queue's `rx_fd`: itself pollable, so the worker can wait on it.
struct QueueEpoll(OwnedFd);

impl QueueEpoll {
    fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the result is checked before it becomes an OwnedFd.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }
    fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
    fn add(&self, fd: RawFd) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd as u64,
        };
        // SAFETY: both descriptors are open; ev is valid for the call.
        let rc = unsafe { libc::epoll_ctl(self.fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    fn remove(&self, fd: RawFd) {
        // SAFETY: a null event is allowed for DEL; an unknown fd just fails.
        unsafe { libc::epoll_ctl(self.fd(), libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
    }
}

fn rate_limited(n: u64) -> bool {
    n.is_power_of_two()
}

fn ring_error(sh: &DevShared, what: &str, n: u64) {
    let before = sh.counters.ring_errors.fetch_add(n, Ordering::Relaxed);
    if rate_limited(before + 1) {
        log::warn!(
            "memif sw_if_index {}: {what} (ring errors: {})",
            sh.sw_if_index,
            before + n
        );
    }
}

/// Offset of the first byte of `bi`'s packet in the pool region.
#[inline(always)]
fn pool_offset(pool: &BufferPool, bufs: &mut Buffers, bi: u32) -> u32 {
    let cd = bufs.meta(bi).current_data as isize;
    (pool.data_offset(bi) as isize + cd) as u32
}

// ------------------------------------------------------------------------------------------
// rx

struct RxRing {
    ring: Ring,
    /// Next slot to consume.
    cursor: u16,
    /// Client: next slot to hand to the server (we own head).
    head: u16,
    /// Client: rvpp buffer placed in each slot, NO_BUFFER for the protocol crate's own.
    shadow: Vec<u32>,
    pool: Arc<BufferPool>,
}

impl Drop for RxRing {
    fn drop(&mut self) {
        let held: Vec<u32> = self
            .shadow
            .iter()
            .copied()
            .filter(|&b| b != NO_BUFFER)
            .collect();
        if !held.is_empty() {
            self.pool.local().free(&held);
        }
    }
}

/// One memif rx ring, polled by one worker.
pub struct MemifRxQueue {
    sh: Arc<DevShared>,
    q: u16,
    gen: u64,
    st: Option<RxRing>,
    ep: QueueEpoll,
    wake: Arc<EventFd>,
    intr_fd: Option<RawFd>,
    interrupt: bool,
    alloc: Vec<u32>,
}

impl MemifRxQueue {
    fn new(sh: Arc<DevShared>, q: u16) -> io::Result<Self> {
        let ep = QueueEpoll::new()?;
        let wake = sh.wakes[q as usize].clone();
        ep.add(wake.fd())?;
        Ok(Self {
            sh,
            q,
            gen: 0,
            st: None,
            ep,
            wake,
            intr_fd: None,
            interrupt: false,
            alloc: vec![0; 256 + MAX_CHAIN],
        })
    }

    #[cold]
    fn resync(&mut self, g: u64) {
        if let Some(fd) = self.intr_fd.take() {
            self.ep.remove(fd);
        }
        self.st = None; // gives the old ring's buffers back
        let mut mb = lock(&self.sh.mailbox);
        self.gen = mb.gen.max(g);
        let ring = mb.rx.get_mut(self.q as usize).and_then(|r| r.take());
        drop(mb);
        let Some(ring) = ring else { return };
        let size = ring.size();
        let (cursor, head) = match self.sh.role {
            // We own tail; the client may have pre-filled head.
            Role::Server => (ring.tail(), 0),
            // The protocol crate handed the whole ring (its own buffers) to the server.
            Role::Client => (ring.head().wrapping_sub(size), ring.head()),
        };
        ring.set_flags(if self.interrupt {
            0
        } else {
            proto::RING_FLAG_MASK_INT
        });
        if let Some(fd) = ring.interrupt_fd() {
            if self.ep.add(fd).is_ok() {
                self.intr_fd = Some(fd);
            }
        }
        let shadow = if self.sh.role == Role::Client {
            vec![NO_BUFFER; size as usize]
        } else {
            Vec::new()
        };
        self.st = Some(RxRing {
            ring,
            cursor,
            head,
            shadow,
            pool: self.sh.pool.clone(),
        });
    }
}

impl RxQueue for MemifRxQueue {
    fn input_node(&self) -> &'static str {
        INPUT_NODE
    }
    fn sw_if_index(&self) -> u32 {
        self.sh.sw_if_index
    }
    fn queue_id(&self) -> u16 {
        self.q
    }
    fn rx_fd(&self) -> Option<RawFd> {
        Some(self.ep.fd())
    }
    fn set_interrupt(&mut self, on: bool) {
        self.interrupt = on;
        if let Some(st) = &self.st {
            st.ring
                .set_flags(if on { 0 } else { proto::RING_FLAG_MASK_INT });
        }
    }
    fn ack_interrupt(&mut self) {
        self.wake.drain();
        if let Some(fd) = self.intr_fd {
            drain_fd(fd);
        }
    }

    #[inline]
    fn rx(&mut self, bufs: &mut Buffers, out: &mut [u32], nexts: &mut [u16]) -> usize {
        let g = self.sh.gen.load(Ordering::Acquire);
        if g != self.gen {
            self.resync(g);
        }
        let Some(st) = self.st.as_mut() else {
            return 0;
        };
        // Nothing to read: no lock taken, so a take-over's other process rarely waits.
        if self.sh.role == Role::Server && st.ring.head() == st.ring.tail() {
            return 0;
        }
        // Busy: the other process is reading it; what it leaves stays for the next call.
        let Ok(_ring) = ring_lock(&self.sh, self.q as usize) else {
            return 0;
        };
        let max = out.len().min(nexts.len()).min(256);
        let n = match self.sh.role {
            Role::Server => rx_copy(&self.sh, st, bufs, &mut self.alloc, &mut out[..max]),
            Role::Client => rx_zero_copy(&self.sh, st, bufs, &mut self.alloc, &mut out[..max]),
        };
        let ip = self.sh.mode == Mode::Ip;
        for i in 0..n {
            nexts[i] = if ip {
                let b = bufs.get(out[i]);
                match b.data().first().map(|v| v >> 4) {
                    Some(4) => rx_next::IP4,
                    Some(6) => rx_next::IP6,
                    _ => rx_next::DROP,
                }
            } else {
                rx_next::ETHERNET
            };
        }
        n
    }
}

/// Where a packet's bytes go while it is assembled into rvpp buffers.
struct Chain {
    head: u32,
    tail: u32,
    total: usize,
}

/// Append `len` bytes at `src` (inside a checked region) to the chain, allocating buffers as
/// needed. Returns false when buffers run out.
#[inline(always)]
fn append(bufs: &mut Buffers, c: &mut Chain, mut src: *const u8, mut len: usize) -> bool {
    while len > 0 {
        let (used, room) = {
            let b = bufs.get(c.tail);
            let used = b.meta.current_length as usize;
            (used, b.capacity() - used)
        };
        if room == 0 {
            let Some(nb) = bufs.alloc_one() else {
                return false;
            };
            let m = bufs.meta(c.tail);
            m.flags |= flags::NEXT_PRESENT;
            m.next_buffer = nb;
            c.tail = nb;
            continue;
        }
        let k = room.min(len);
        let mut b = bufs.get(c.tail);
        let dst = b.tail_room_mut()[used..used + k].as_mut_ptr();
        // SAFETY: src..src+len lies inside a mapped region (checked by Ring::buffer_ptr before
        // the call); dst has k writable bytes in a buffer we own; the peer's mapping and the
        // rvpp pool never overlap on this (server) path.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, k) };
        b.meta.current_length = (used + k) as u16;
        c.total += k;
        // SAFETY: k <= len, so src + k stays inside (or one past) the checked range.
        src = unsafe { src.add(k) };
        len -= k;
    }
    true
}

fn finish_chain(bufs: &mut Buffers, c: &Chain, sw: u32) {
    let m = bufs.meta(c.head);
    m.rx_sw_if_index = sw;
    if m.flags & flags::NEXT_PRESENT != 0 {
        m.total_length_not_including_first_buffer = (c.total - m.current_length as usize) as u32;
    }
}

/// Server rx: copy each packet out of the client's buffers, then advance tail. Tail is read
/// back from the ring: the other process of a take-over may have moved it.
fn rx_copy(
    sh: &DevShared,
    st: &mut RxRing,
    bufs: &mut Buffers,
    alloc: &mut [u32],
    out: &mut [u32],
) -> usize {
    let ring = &st.ring;
    let size = ring.size();
    let head = ring.head();
    let mut cur = ring.tail();
    let avail = head.wrapping_sub(cur);
    if avail == 0 {
        return 0;
    }
    if avail > size {
        ring_error(sh, "rx head out of range", 1);
        return 0;
    }
    let want = (avail as usize).min(out.len());
    let got = bufs.alloc(&mut alloc[..want]);
    let mut used = 0usize;
    let mut n = 0usize;
    let (mut dropped, mut errors, mut nobuf, mut copied) = (0u64, 0u64, 0u64, 0u64);
    let ds = st.pool.data_size();
    let limit = MAX_CHAIN * ds;
    while n < out.len() && cur != head {
        if used == got {
            nobuf += 1;
            break;
        }
        let first = alloc[used];
        // Fast path: a packet in one descriptor that fits one rvpp buffer.
        let d = ring.desc(cur);
        if d.flags & proto::DESC_FLAG_NEXT == 0 && d.length as usize <= ds {
            if let Some(p) = ring.buffer_ptr(&d, d.length) {
                let len = d.length as usize;
                let mut b = bufs.get(first);
                let dst = b.tail_room_mut().as_mut_ptr();
                // SAFETY: p..p+len is inside the peer's mapped region (checked just above);
                // dst is the data area of a buffer we own, at least ds >= len bytes long.
                unsafe { std::ptr::copy_nonoverlapping(p, dst, len) };
                b.meta.current_length = len as u16;
                b.meta.rx_sw_if_index = sh.sw_if_index;
                cur = cur.wrapping_add(1);
                used += 1;
                copied += len as u64;
                out[n] = first;
                n += 1;
                continue;
            }
        }
        let mut c = Chain {
            head: first,
            tail: first,
            total: 0,
        };
        let mut slot = cur;
        let mut ok = true;
        let mut complete = false;
        while slot != head {
            let d = ring.desc(slot);
            slot = slot.wrapping_add(1);
            if ok {
                match ring.buffer_ptr(&d, d.length) {
                    Some(p) => {
                        if c.total + d.length as usize > limit
                            || !append(bufs, &mut c, p, d.length as usize)
                        {
                            ok = false;
                        }
                    }
                    None => {
                        errors += 1;
                        ok = false;
                    }
                }
            }
            if d.flags & proto::DESC_FLAG_NEXT == 0 {
                complete = true;
                break;
            }
        }
        if !complete || !ok {
            // Reuse the head buffer for the next packet; give its tail back.
            bufs.free_tail(first);
            bufs.meta(first).current_length = 0;
        }
        if !complete {
            if slot.wrapping_sub(cur) == size {
                errors += 1; // a ring full of NEXT flags never completes
                cur = slot;
            }
            // Otherwise the producer has not published the rest yet.
            break;
        }
        cur = slot;
        if !ok {
            dropped += 1;
            continue;
        }
        used += 1;
        copied += c.total as u64;
        finish_chain(bufs, &c, sh.sw_if_index);
        out[n] = first;
        n += 1;
    }
    if used < got {
        bufs.free(&alloc[used..got]);
    }
    ring.set_tail(cur);
    st.cursor = cur;
    let k = &sh.counters;
    bump(&k.rx_dropped, dropped);
    bump(&k.rx_no_buffers, nobuf);
    bump(&k.copied_bytes, copied);
    if errors > 0 {
        ring_error(sh, "rx descriptor outside its region", errors);
    }
    n
}

/// Client rx: the server filled rvpp buffers we handed it; take them as they are, then hand
/// over fresh ones.
fn rx_zero_copy(
    sh: &DevShared,
    st: &mut RxRing,
    bufs: &mut Buffers,
    alloc: &mut [u32],
    out: &mut [u32],
) -> usize {
    let size = st.ring.size();
    let mask = st.ring.mask();
    let ds = st.pool.data_size();
    let tail = st.ring.tail();
    let mut cur = st.cursor;
    let avail = tail.wrapping_sub(cur);
    if avail > st.head.wrapping_sub(cur) {
        ring_error(sh, "rx tail out of range", 1);
        return 0;
    }
    let mut n = 0usize;
    let (mut dropped, mut errors, mut copied) = (0u64, 0u64, 0u64);
    while n < out.len() && cur != tail {
        // Find the end of the packet first.
        let mut slot = cur;
        let mut complete = false;
        while slot != tail {
            let d = st.ring.desc(slot);
            slot = slot.wrapping_add(1);
            if d.flags & proto::DESC_FLAG_NEXT == 0 {
                complete = true;
                break;
            }
        }
        if !complete {
            if slot.wrapping_sub(cur) == size {
                errors += 1;
                // Drop the whole ring's worth.
                let mut s = cur;
                while s != slot {
                    let b = std::mem::replace(&mut st.shadow[(s & mask) as usize], NO_BUFFER);
                    if b != NO_BUFFER {
                        bufs.free(&[b]);
                    }
                    s = s.wrapping_add(1);
                }
                cur = slot;
            }
            break;
        }
        let end = slot;
        let mut head = NO_BUFFER;
        let mut last = NO_BUFFER;
        let mut total = 0usize;
        let mut ok = (end.wrapping_sub(cur) as usize) <= MAX_CHAIN;
        let mut s = cur;
        while s != end {
            let d = st.ring.desc(s);
            let i = (s & mask) as usize;
            let own = std::mem::replace(&mut st.shadow[i], NO_BUFFER);
            s = s.wrapping_add(1);
            let bi = if own != NO_BUFFER {
                if d.length as usize > ds {
                    errors += 1;
                    ok = false;
                }
                let m = bufs.meta(own);
                m.reset_for_rx();
                m.current_length = (d.length as usize).min(ds) as u16;
                own
            } else {
                // One of the protocol crate's buffers (first lap after connect): copy once.
                let Some(nb) = bufs.alloc_one() else {
                    ok = false;
                    continue;
                };
                let mut b = bufs.get(nb);
                let room = b.tail_room_mut();
                let len = d.length as usize;
                if len <= room.len() && st.ring.read_buffer(&d, &mut room[..len]).is_some() {
                    b.meta.current_length = len as u16;
                    copied += len as u64;
                } else {
                    errors += 1;
                    ok = false;
                }
                nb
            };
            total += bufs.meta(bi).current_length as usize;
            if head == NO_BUFFER {
                head = bi;
            } else {
                let m = bufs.meta(last);
                m.flags |= flags::NEXT_PRESENT;
                m.next_buffer = bi;
            }
            last = bi;
        }
        cur = end;
        if head == NO_BUFFER {
            dropped += 1;
            continue;
        }
        if !ok {
            bufs.free(&[head]);
            dropped += 1;
            continue;
        }
        let first_len = bufs.meta(head).current_length as usize;
        let m = bufs.meta(head);
        m.rx_sw_if_index = sh.sw_if_index;
        if last != head {
            m.total_length_not_including_first_buffer = (total - first_len) as u32;
        }
        out[n] = head;
        n += 1;
    }
    st.cursor = cur;
    // Hand every consumed slot back to the server with a fresh rvpp buffer.
    let target = cur.wrapping_add(size);
    let want = target.wrapping_sub(st.head) as usize;
    if want > 0 {
        let want = want.min(alloc.len());
        let got = bufs.alloc(&mut alloc[..want]);
        let mut h = st.head;
        for &bi in &alloc[..got] {
            let off = st.pool.data_offset(bi) as u32;
            st.ring.set_desc(
                h,
                Desc {
                    flags: 0,
                    region: POOL_REGION,
                    length: ds as u32,
                    offset: off,
                    metadata: 0,
                },
            );
            st.shadow[(h & mask) as usize] = bi;
            h = h.wrapping_add(1);
        }
        if got < want {
            bump(&sh.counters.rx_no_buffers, (want - got) as u64);
        }
        st.head = h;
        st.ring.set_head(h);
    }
    let k = &sh.counters;
    bump(&k.rx_dropped, dropped);
    bump(&k.copied_bytes, copied);
    if errors > 0 {
        ring_error(sh, "bad rx descriptor", errors);
    }
    n
}

// ------------------------------------------------------------------------------------------
// tx

struct TxRing {
    ring: Ring,
    /// Ring index (its lock word).
    q: u16,
    role: Role,
    /// Server: next slot to fill (we own tail). Client: next slot to produce (we own head).
    cursor: u16,
    /// Client: the server's tail last seen; slots before it are done.
    done: u16,
    /// Client: rvpp packet whose last descriptor is in each slot.
    shadow: Vec<u32>,
    pool: Arc<BufferPool>,
}

impl TxRing {
    fn new(ring: Ring, q: u16, sh: &DevShared) -> io::Result<Self> {
        let (cursor, done) = match sh.role {
            Role::Server => (ring.tail(), 0),
            Role::Client => (ring.head(), ring.tail()),
        };
        let shadow = if sh.role == Role::Client {
            vec![NO_BUFFER; ring.size() as usize]
        } else {
            Vec::new()
        };
        Ok(Self {
            q,
            role: sh.role,
            cursor,
            done,
            shadow,
            pool: sh.pool.clone(),
            ring,
        })
    }

    /// Client: free packets the server has consumed.
    #[inline]
    fn reclaim(&mut self, sh: &DevShared, bufs: &mut Buffers) {
        let t = self.ring.tail();
        if t == self.done {
            return;
        }
        let fin = t.wrapping_sub(self.done);
        if fin > self.cursor.wrapping_sub(self.done) {
            ring_error(sh, "tx tail out of range", 1);
            return;
        }
        let mask = self.ring.mask();
        let mut s = self.done;
        while s != t {
            let b = std::mem::replace(&mut self.shadow[(s & mask) as usize], NO_BUFFER);
            if b != NO_BUFFER {
                bufs.free(&[b]);
            }
            s = s.wrapping_add(1);
        }
        self.done = t;
    }

    fn tx_client(&mut self, sh: &DevShared, bufs: &mut Buffers, pkts: &[u32]) -> usize {
        self.reclaim(sh, bufs);
        let size = self.ring.size();
        let mask = self.ring.mask();
        let mut free = size - self.cursor.wrapping_sub(self.done);
        let mut h = self.cursor;
        let mut done = 0usize;
        let mut full = 0u64;
        for &pkt in pkts {
            // Count segments first: a packet goes in whole or not at all.
            let mut segs = 1u16;
            let mut bi = pkt;
            loop {
                let m = bufs.meta(bi);
                if m.flags & flags::NEXT_PRESENT == 0 {
                    break;
                }
                bi = m.next_buffer;
                segs += 1;
                if segs as usize > MAX_CHAIN {
                    break;
                }
            }
            if segs > free {
                full = (pkts.len() - done) as u64;
                break;
            }
            let mut bi = pkt;
            loop {
                let off = pool_offset(&self.pool, bufs, bi);
                let m = bufs.meta(bi);
                let more = m.flags & flags::NEXT_PRESENT != 0;
                let (len, next) = (m.current_length as u32, m.next_buffer);
                self.ring.set_desc(
                    h,
                    Desc {
                        flags: if more { proto::DESC_FLAG_NEXT } else { 0 },
                        region: POOL_REGION,
                        length: len,
                        offset: off,
                        metadata: 0,
                    },
                );
                if !more {
                    self.shadow[(h & mask) as usize] = pkt;
                }
                h = h.wrapping_add(1);
                if !more {
                    break;
                }
                bi = next;
            }
            free -= segs;
            done += 1;
        }
        if done > 0 {
            self.cursor = h;
            self.ring.set_head(h);
            self.ring.kick();
        }
        bump(&sh.counters.tx_full, full);
        done
    }

    /// Server tx: fill the client's free buffers from tail on. Tail is read back from the ring:
    /// the other process of a take-over may have moved it.
    fn tx_server(&mut self, sh: &DevShared, bufs: &mut Buffers, pkts: &[u32]) -> usize {
        let ring = &self.ring;
        let size = ring.size();
        let head = ring.head();
        let start = ring.tail();
        let mut t = start;
        let avail = head.wrapping_sub(t);
        if avail > size {
            ring_error(sh, "tx head out of range", 1);
            return 0;
        }
        let mut left = avail;
        let mut done = 0usize;
        let (mut errors, mut full, mut copied) = (0u64, 0u64, 0u64);
        'pkts: for &pkt in pkts {
            // Fast path: a one-buffer packet that fits the next peer buffer.
            if left > 0 {
                let b = bufs.get(pkt);
                if b.meta.flags & flags::NEXT_PRESENT == 0 {
                    let data = b.data();
                    let d = ring.desc(t);
                    if data.len() <= d.length as usize
                        && !data.is_empty()
                        && ring.write_buffer(&d, 0, data).is_some()
                    {
                        ring.set_len_flags(t, data.len() as u32, 0);
                        copied += data.len() as u64;
                        t = t.wrapping_add(1);
                        left -= 1;
                        done += 1;
                        continue 'pkts;
                    }
                }
            }
            let mut slot = t;
            let mut room = left;
            // The peer descriptor being filled, and how much of it is filled.
            let mut cur: Option<Desc> = None;
            let mut fill = 0u32;
            let mut bi = pkt;
            loop {
                let b = bufs.get(bi);
                let more = b.meta.flags & flags::NEXT_PRESENT != 0;
                let next = b.meta.next_buffer;
                let data = b.data();
                let mut off = 0usize;
                while off < data.len() || cur.is_none() {
                    if cur.is_none_or(|d| fill == d.length) {
                        if cur.is_some() {
                            ring.set_len_flags(slot, fill, proto::DESC_FLAG_NEXT);
                            slot = slot.wrapping_add(1);
                        }
                        if room == 0 {
                            full = (pkts.len() - done) as u64;
                            break 'pkts;
                        }
                        let nd = ring.desc(slot);
                        if nd.length == 0 || ring.buffer_ptr(&nd, nd.length).is_none() {
                            // Nothing was published; drop the packet (the bad descriptor
                            // stays the peer's problem).
                            errors += 1;
                            done += 1;
                            continue 'pkts;
                        }
                        room -= 1;
                        cur = Some(nd);
                        fill = 0;
                    }
                    let Some(d) = cur else { break };
                    let k = ((d.length - fill) as usize).min(data.len() - off);
                    if k > 0 {
                        let _ = ring.write_buffer(&d, fill, &data[off..off + k]);
                    }
                    off += k;
                    fill += k as u32;
                    copied += k as u64;
                    if data.is_empty() {
                        break;
                    }
                }
                if !more {
                    break;
                }
                bi = next;
            }
            ring.set_len_flags(slot, fill, 0);
            t = slot.wrapping_add(1);
            left = room;
            done += 1;
        }
        if t != start {
            self.cursor = t;
            ring.set_tail(t);
            ring.kick();
        }
        bufs.free(&pkts[..done]);
        let k = &sh.counters;
        bump(&k.tx_full, full);
        bump(&k.copied_bytes, copied);
        if errors > 0 {
            bump(&k.tx_dropped, errors);
            ring_error(sh, "tx descriptor outside its region or empty", errors);
        }
        done
    }
}

impl Drop for TxRing {
    fn drop(&mut self) {
        let held: Vec<u32> = self
            .shadow
            .iter()
            .copied()
            .filter(|&b| b != NO_BUFFER)
            .collect();
        if !held.is_empty() {
            self.pool.local().free(&held);
        }
    }
}

/// One worker's transmit side of a memif device. With more rings than workers it sends on
/// rings `worker`, `worker + workers`, ... by flow hash; otherwise on ring `worker % rings`.
pub struct MemifTxQueue {
    sh: Arc<DevShared>,
    worker: usize,
    workers: usize,
    gen: u64,
    rings: Vec<Arc<Mutex<TxRing>>>,
    spread: Spreader,
}

impl MemifTxQueue {
    #[cold]
    fn resync(&mut self, g: u64) {
        self.rings.clear();
        let mb = lock(&self.sh.mailbox);
        self.gen = mb.gen.max(g);
        let n = mb.tx.len();
        if n > self.workers {
            self.rings.extend(
                (self.worker..n)
                    .step_by(self.workers)
                    .map(|q| mb.tx[q].clone()),
            );
        } else if n > 0 {
            self.rings.push(mb.tx[self.worker % n].clone());
        }
        let framing = match self.sh.mode {
            Mode::Ip => Framing::Ip,
            _ => Framing::Ethernet,
        };
        self.spread = Spreader::new(self.rings.len(), framing);
    }

    #[inline]
    fn sync(&mut self) {
        let g = self.sh.gen.load(Ordering::Acquire);
        if g != self.gen {
            self.resync(g);
        }
    }
}

/// Send on one ring under its lock (shared with other workers when rings are fewer).
#[inline]
fn ring_tx(sh: &DevShared, ring: &Mutex<TxRing>, bufs: &mut Buffers, pkts: &[u32]) -> usize {
    let mut r = lock(ring);
    let Ok(_ring) = ring_lock(sh, TX_LOCKS + r.q as usize) else {
        bump(&sh.lock_busy, pkts.len() as u64);
        return 0;
    };
    match r.role {
        Role::Server => r.tx_server(sh, bufs, pkts),
        Role::Client => r.tx_client(sh, bufs, pkts),
    }
}

impl TxQueue for MemifTxQueue {
    fn tx_node(&self) -> &'static str {
        TX_NODE
    }

    #[inline]
    fn tx(&mut self, bufs: &mut Buffers, pkts: &[u32]) -> usize {
        self.sync();
        let (sh, rings) = (&self.sh, &self.rings);
        match rings.len() {
            0 => 0,
            1 => ring_tx(sh, &rings[0], bufs, pkts),
            _ => self
                .spread
                .send_in_order(bufs, pkts, |q, bufs, p| ring_tx(sh, &rings[q], bufs, p)),
        }
    }

    #[inline]
    fn tx_reorder(&mut self, bufs: &mut Buffers, pkts: &mut [u32]) -> usize {
        self.sync();
        let (sh, rings) = (&self.sh, &self.rings);
        match rings.len() {
            0 => 0,
            1 => ring_tx(sh, &rings[0], bufs, pkts),
            _ => self
                .spread
                .send_reorder(bufs, pkts, |q, bufs, p| ring_tx(sh, &rings[q], bufs, p)),
        }
    }

    fn flush(&mut self, bufs: &mut Buffers) {
        self.sync();
        if self.sh.role == Role::Client {
            for r in &self.rings {
                lock(r).reclaim(&self.sh, bufs);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pid that existed a moment ago and no longer does (reaped), as a killed take-over
    /// process leaves in a lock word.
    fn dead_pid() -> u32 {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    }

    fn word(l: &RingLocks, i: usize) -> &AtomicU32 {
        l.mem.atomic_u32(i * 4).unwrap()
    }

    #[test]
    fn a_dead_holders_ring_lock_is_reclaimed() {
        let l = RingLocks::new().unwrap();
        let dead = dead_pid();
        word(&l, 3).store(dead, Ordering::Relaxed);
        let t = std::time::Instant::now();
        let g = l.lock(3).expect("a dead holder's lock is taken over");
        assert!(
            t.elapsed() >= LOCK_WAIT,
            "reclaimed before waiting for the holder"
        );
        assert_eq!(word(&l, 3).load(Ordering::Relaxed), l.pid);
        drop(g);
        assert_eq!(word(&l, 3).load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_live_holders_ring_lock_is_not_taken() {
        let l = RingLocks::new().unwrap();
        // pid 1 lives as long as the namespace does.
        word(&l, 5).store(1, Ordering::Relaxed);
        assert!(l.lock(5).is_none(), "took a ring a live process holds");
        assert_eq!(word(&l, 5).load(Ordering::Relaxed), 1);
        // Other words are free and taken at once.
        assert!(l.lock(6).is_some());
    }

    #[test]
    fn release_foreign_frees_only_the_other_process_words() {
        let l = RingLocks::new().unwrap();
        word(&l, 1).store(1, Ordering::Relaxed);
        word(&l, TX_LOCKS).store(dead_pid(), Ordering::Relaxed);
        let mine = l.lock(2).unwrap();
        l.release_foreign();
        assert_eq!(word(&l, 1).load(Ordering::Relaxed), 0);
        assert_eq!(word(&l, TX_LOCKS).load(Ordering::Relaxed), 0);
        assert_eq!(word(&l, 2).load(Ordering::Relaxed), l.pid);
        drop(mine);
    }
}
