//! The memif interface: control channel state machine plus the copying
//! burst API on top of [`Ring`].

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use crate::addr::SocketSpec;
use crate::proto::{self, AddRing, Hello, Init, Mode, Msg, DESC_FLAG_NEXT, MSG_SIZE};
use crate::ring::{Desc, Region, Regions, Ring, RingKind};
use crate::sys::{self, Mmap, Recv, SocketName};

/// Which side of the protocol we play.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Listens on the socket and maps the client's memory (VPP: master).
    Server,
    /// Connects, owns the shared memory (VPP: slave).
    Client,
}

/// A region the caller already created (e.g. its buffer pool on a memfd)
/// that a client registers with the peer, so descriptors can point
/// straight into the caller's buffers. It gets region index 1, 2, ... in
/// the order given; region 0 is always the crate's ring region.
#[derive(Debug)]
pub struct ExternalRegion {
    /// File to share. Duplicated for every connection; never closed by us
    /// while the [`Interface`] lives.
    pub fd: OwnedFd,
    /// Bytes to share (must not exceed the file size).
    pub size: usize,
}

/// Interface configuration. Start from [`Config::new`] and adjust fields.
#[derive(Debug)]
pub struct Config {
    /// Server or client.
    pub role: Role,
    /// Socket specification, see [`SocketSpec::parse`].
    pub socket: String,
    /// Interface id; client and server must agree.
    pub id: u32,
    /// Optional shared secret (at most 24 bytes are used).
    pub secret: Option<String>,
    /// Ethernet or IP; both sides must agree.
    pub mode: Mode,
    /// Client→server queues (client tx, server rx).
    pub num_s2m_rings: u16,
    /// Server→client queues (server tx, client rx).
    pub num_m2s_rings: u16,
    /// Client only: ring size as log2 (default 10 = 1024 slots).
    pub log2_ring_size: u8,
    /// Client only: bytes per buffer (default 2048; must not exceed the
    /// peer's buffer size if the peer is DPDK, which trusts lengths).
    pub buffer_size: u32,
    /// Application name sent in HELLO/INIT.
    pub app_name: String,
    /// Interface name sent in CONNECT/CONNECTED.
    pub if_name: String,
    /// Ask the peer to signal our rx rings' eventfds (else we poll).
    pub rx_interrupts: bool,
    /// Client only: delay between connection attempts.
    pub reconnect_interval: Duration,
    /// Abort a handshake that does not complete in this time.
    pub handshake_timeout: Duration,
    /// Client only: extra regions for zero-copy.
    pub extra_regions: Vec<ExternalRegion>,
}

impl Config {
    /// Defaults: id 0, Ethernet, one queue pair, 1024 x 2048-byte buffers,
    /// polling, reconnect every 100 ms.
    pub fn new(role: Role, socket: &str) -> Config {
        Config {
            role,
            socket: socket.to_string(),
            id: 0,
            secret: None,
            mode: Mode::Ethernet,
            num_s2m_rings: 1,
            num_m2s_rings: 1,
            log2_ring_size: 10,
            buffer_size: 2048,
            app_name: "rvpp-memif".into(),
            if_name: "memif0".into(),
            rx_interrupts: false,
            reconnect_interval: Duration::from_millis(100),
            handshake_timeout: Duration::from_secs(3),
            extra_regions: Vec::new(),
        }
    }
}

/// A server interface's sockets and shared memory, for another process to go on serving the
/// same peer without it noticing ([`Interface::handoff`], [`Interface::adopt`]). Every fd is a
/// duplicate: the giving interface keeps its own.
#[derive(Debug)]
pub struct Handoff {
    /// The listening socket.
    pub listener: OwnedFd,
    /// The connected peer, if the handshake was complete (one under way is not carried: the
    /// peer sees its connection close and connects again).
    pub conn: Option<HandoffConn>,
}

/// The connected peer of a [`Handoff`].
#[derive(Debug)]
pub struct HandoffConn {
    /// The control connection.
    pub sock: OwnedFd,
    /// Peer application name.
    pub remote_name: String,
    /// Peer interface name.
    pub remote_if_name: String,
    /// Regions by index: the file and the mapped size.
    pub regions: Vec<(OwnedFd, usize)>,
    /// Client-to-server rings (the server's rx), by index.
    pub s2m: Vec<HandoffRing>,
    /// Server-to-client rings (the server's tx), by index.
    pub m2s: Vec<HandoffRing>,
}

/// Where one ring of a [`HandoffConn`] is. Its head and tail are in the shared memory.
#[derive(Debug)]
pub struct HandoffRing {
    /// Region index of the header.
    pub region: u16,
    /// Byte offset of the header in that region.
    pub offset: u32,
    /// log2 of the slot count.
    pub log2: u8,
    /// Interrupt eventfd.
    pub intr: Option<OwnedFd>,
}

/// Something that happened on the control channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Rings are live; bursts now move packets.
    Connected {
        /// Peer application name.
        remote_name: String,
        /// Peer interface name.
        remote_if_name: String,
    },
    /// The connection went away (peer left, protocol error, or local
    /// request). A client reconnects by itself; a server accepts anew.
    Disconnected {
        /// Human readable reason.
        reason: String,
    },
}

/// Counters; reset only by dropping the interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Received packets dropped (too big for the caller's buffer or with
    /// a descriptor outside its region).
    pub rx_dropped: u64,
    /// Ring corruption seen (bad head/tail or descriptors).
    pub ring_errors: u64,
    /// Connections established.
    pub connects: u64,
}

/// A packet buffer for the copying API. Allocate once, reuse forever.
#[derive(Clone, Debug)]
pub struct PacketBuf {
    data: Box<[u8]>,
    len: usize,
}

impl PacketBuf {
    /// Buffer able to hold `capacity` bytes.
    pub fn new(capacity: usize) -> PacketBuf {
        PacketBuf {
            data: vec![0u8; capacity].into_boxed_slice(),
            len: 0,
        }
    }
    /// Maximum packet size.
    pub fn capacity(&self) -> usize {
        self.data.len()
    }
    /// Current length.
    pub fn len(&self) -> usize {
        self.len
    }
    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Packet bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.data[..self.len]
    }
    /// Packet bytes, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.data[..self.len]
    }
    /// Set the length; returns false (and does nothing) past capacity.
    pub fn set_len(&mut self, len: usize) -> bool {
        if len > self.data.len() {
            return false;
        }
        self.len = len;
        true
    }
    /// Replace contents; returns false if `src` does not fit.
    pub fn copy_from(&mut self, src: &[u8]) -> bool {
        if src.len() > self.data.len() {
            return false;
        }
        self.data[..src.len()].copy_from_slice(src);
        self.len = src.len();
        true
    }
}

impl AsRef<[u8]> for PacketBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

/// One queue: a ring plus, for a client, where its own buffers live.
struct Queue {
    ring: Ring,
    /// Offset in region 0 of this ring's first buffer (client only).
    buf_base: u32,
}

/// Live (or being set up) shared memory state of one connection.
struct Conn {
    regions: Regions,
    rx: Vec<Queue>,
    tx: Vec<Queue>,
}

/// What the client still has to send, one per ACK.
#[derive(Clone, Copy, Debug)]
enum Pending {
    Region(u16),
    /// Ring in direction (true = S2M), index.
    Ring(bool, u16),
    Connect,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No control channel.
    Idle,
    /// Client: waiting for HELLO.
    AwaitHello,
    /// Client: waiting for the ACK of the message just sent.
    AwaitAck,
    /// Client: CONNECT sent.
    AwaitConnected,
    /// Server: HELLO sent.
    AwaitInit,
    /// Server: INIT accepted; regions/rings until CONNECT.
    AwaitConfig,
    /// Up.
    Connected,
}

/// A ring the server learned of but has not yet built.
struct RingSpec {
    region: u16,
    offset: u32,
    log2: u8,
    intr: Option<OwnedFd>,
}

/// A memif interface, server or client. Single owner: drive it with
/// [`poll_control`](Interface::poll_control) and move packets with
/// [`rx_burst`](Interface::rx_burst)/[`tx_burst`](Interface::tx_burst)
/// from the same thread (or wrap it in your own lock).
pub struct Interface {
    cfg: Config,
    spec: SocketSpec,
    listener: Option<OwnedFd>,
    sock: Option<OwnedFd>,
    phase: Phase,
    deadline: Instant,
    next_attempt: Instant,
    connect_failures: u32,
    pending: VecDeque<Pending>,
    // Server-side handshake scratch.
    srv_regions: Vec<Region>,
    srv_s2m: Vec<Option<RingSpec>>,
    srv_m2s: Vec<Option<RingSpec>>,
    conn: Option<Conn>,
    events: VecDeque<Event>,
    remote_name: String,
    remote_if_name: String,
    stats: Stats,
}

const MAX_REGIONS: usize = 256;
/// Largest region a peer may ask us to map (offsets are u32 anyway).
const MAX_REGION_SIZE: u64 = 1 << 33;
/// Control messages handled per poll_control call, so a flooding peer
/// cannot starve the caller.
const MSGS_PER_POLL: usize = 64;

fn rate_limited(count: u64) -> bool {
    count.is_power_of_two()
}

impl Interface {
    /// Create the interface. A server binds and listens now (errors are
    /// returned); a client makes its first connection attempt on the
    /// first [`poll_control`](Self::poll_control).
    pub fn new(cfg: Config) -> io::Result<Interface> {
        let mut ifc = Interface::new_unbound(cfg)?;
        if ifc.cfg.role == Role::Server {
            let spec = &ifc.spec;
            let fd = sys::seqpacket_socket(spec.netns.as_deref())?;
            if let SocketName::Path(p) = &spec.name {
                // A stale socket file from a previous run blocks bind().
                if let Ok(md) = std::fs::symlink_metadata(p) {
                    use std::os::unix::fs::FileTypeExt;
                    if md.file_type().is_socket() {
                        let _ = std::fs::remove_file(p);
                    }
                }
            }
            sys::listen(&fd, &spec.name)?;
            info!("memif: listening on {:?}", ifc.cfg.socket);
            ifc.listener = Some(fd);
        }
        Ok(ifc)
    }

    /// The interface for a checked `cfg`, without a socket.
    fn new_unbound(cfg: Config) -> io::Result<Interface> {
        let spec = SocketSpec::parse(&cfg.socket)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let bad = |m: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, m.to_string()));
        if cfg.num_s2m_rings == 0
            || cfg.num_m2s_rings == 0
            || cfg.num_s2m_rings > 256
            || cfg.num_m2s_rings > 256
        {
            return bad("queue counts must be 1..=256");
        }
        if cfg.log2_ring_size > proto::MAX_LOG2_RING_SIZE {
            return bad("log2_ring_size must be <= 14");
        }
        if cfg.buffer_size < 64 {
            return bad("buffer_size must be >= 64");
        }
        if cfg.mode == Mode::PuntInject {
            return bad("punt/inject mode is not supported");
        }
        let now = Instant::now();
        Ok(Interface {
            cfg,
            spec,
            listener: None,
            sock: None,
            phase: Phase::Idle,
            deadline: now,
            next_attempt: now,
            connect_failures: 0,
            pending: VecDeque::new(),
            srv_regions: Vec::new(),
            srv_s2m: Vec::new(),
            srv_m2s: Vec::new(),
            conn: None,
            events: VecDeque::new(),
            remote_name: String::new(),
            remote_if_name: String::new(),
            stats: Stats::default(),
        })
    }

    /// Duplicates of a server's listening socket and, while connected, of its control
    /// connection, regions and ring eventfds, for a process taking over
    /// ([`adopt`](Self::adopt)). The caller stops driving this interface first: two processes
    /// reading one control connection would each see half of its messages.
    pub fn handoff(&self) -> io::Result<Handoff> {
        let (Role::Server, Some(l)) = (self.cfg.role, &self.listener) else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "only a server interface can be handed over",
            ));
        };
        let listener = l.try_clone()?;
        let (Some(conn), Some(sock)) = (self.live(), &self.sock) else {
            return Ok(Handoff {
                listener,
                conn: None,
            });
        };
        let mut regions = Vec::new();
        for r in conn.regions.iter() {
            let fd =
                r.fd.as_ref()
                    .ok_or_else(|| io::Error::other("a region without its fd"))?;
            regions.push((fd.try_clone()?, r.size()));
        }
        let ring = |q: &Queue| -> io::Result<HandoffRing> {
            let (region, offset) = q.ring.location();
            Ok(HandoffRing {
                region,
                offset,
                log2: q.ring.log2_size(),
                intr: q.ring.intr.as_ref().map(|f| f.try_clone()).transpose()?,
            })
        };
        Ok(Handoff {
            listener,
            conn: Some(HandoffConn {
                sock: sock.try_clone()?,
                remote_name: self.remote_name.clone(),
                remote_if_name: self.remote_if_name.clone(),
                regions,
                s2m: conn.rx.iter().map(ring).collect::<io::Result<_>>()?,
                m2s: conn.tx.iter().map(ring).collect::<io::Result<_>>()?,
            }),
        })
    }

    /// A server interface going on where another process's left off ([`handoff`](Self::handoff)):
    /// it listens on the handed-over socket and, with a connection, maps the same regions
    /// and is connected at once (the first [`poll_control`](Self::poll_control) reports
    /// [`Event::Connected`]); the peer sees no new handshake. The rings are checked as a new
    /// connection's are.
    pub fn adopt(cfg: Config, h: Handoff) -> io::Result<Interface> {
        let bad = |m: String| io::Error::new(io::ErrorKind::InvalidData, m);
        if cfg.role != Role::Server {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "only a server interface can be adopted",
            ));
        }
        // The sockets go in last: dropping an interface that holds them would tell the peer
        // goodbye and remove the socket file the giving process still serves.
        let mut ifc = Interface::new_unbound(cfg)?;
        let Some(c) = h.conn else {
            ifc.listener = Some(h.listener);
            return Ok(ifc);
        };
        let mut regions = Vec::new();
        for (i, (fd, size)) in c.regions.into_iter().enumerate() {
            let fsize = sys::fd_size(fd.as_raw_fd())?;
            if size == 0 || size as u64 > MAX_REGION_SIZE || size as u64 > fsize {
                return Err(bad(format!("region {i}: size {size}, file {fsize}")));
            }
            let map = Mmap::map(fd.as_raw_fd(), size)?;
            regions.push(Region { map, fd: Some(fd) });
        }
        let regions: Regions = Arc::new(regions);
        let mk = |r: HandoffRing, kind| -> io::Result<Queue> {
            let ring = Ring::new(regions.clone(), r.region, r.offset, r.log2, kind, r.intr)
                .map_err(bad)?;
            if ring.cookie() != proto::COOKIE {
                return Err(bad(format!("wrong ring cookie {:#x}", ring.cookie())));
            }
            Ok(Queue { ring, buf_base: 0 })
        };
        let (n_rx, n_tx) = (c.s2m.len(), c.m2s.len());
        if n_rx == 0
            || n_tx == 0
            || n_rx > ifc.cfg.num_s2m_rings as usize
            || n_tx > ifc.cfg.num_m2s_rings as usize
        {
            return Err(bad(format!("{n_rx} s2m and {n_tx} m2s rings")));
        }
        let rx = c
            .s2m
            .into_iter()
            .map(|r| mk(r, RingKind::ClientToServer))
            .collect::<io::Result<Vec<_>>>()?;
        let tx = c
            .m2s
            .into_iter()
            .map(|r| mk(r, RingKind::ServerToClient))
            .collect::<io::Result<Vec<_>>>()?;
        ifc.conn = Some(Conn { regions, rx, tx });
        ifc.listener = Some(h.listener);
        ifc.sock = Some(c.sock);
        ifc.remote_name = c.remote_name;
        ifc.established(c.remote_if_name);
        Ok(ifc)
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.cfg.role
    }

    /// True once the handshake completed and until disconnect.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// File descriptors to wait on (readable) before calling
    /// [`poll_control`](Self::poll_control): the listener (server) and
    /// the control connection, when present. A client that is not
    /// connected must also poll on a timer to retry.
    pub fn control_fds(&self) -> [Option<RawFd>; 2] {
        [
            self.listener.as_ref().map(|f| f.as_raw_fd()),
            self.sock.as_ref().map(|f| f.as_raw_fd()),
        ]
    }

    /// Drive the control channel without blocking: accept or (re)connect,
    /// process pending messages, enforce the handshake timeout. Returns
    /// the next event, if any; call until it returns `None` to drain.
    pub fn poll_control(&mut self) -> Option<Event> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        let now = Instant::now();
        if self.sock.is_some() {
            self.service_socket();
            if self.sock.is_some() && self.phase != Phase::Connected && now > self.deadline {
                self.teardown("handshake timeout", true);
            }
        }
        match self.cfg.role {
            Role::Server => self.accept_pending(),
            Role::Client => {
                if self.sock.is_none() && now >= self.next_attempt {
                    self.try_connect();
                    if self.sock.is_some() {
                        self.service_socket();
                    }
                }
            }
        }
        self.events.pop_front()
    }

    /// Tear down the current connection (if any), telling the peer why.
    /// A client will reconnect after `reconnect_interval`.
    pub fn disconnect(&mut self, reason: &str) {
        if self.sock.is_some() {
            self.teardown(reason, true);
        }
    }

    fn accept_pending(&mut self) {
        loop {
            let Some(l) = &self.listener else { return };
            match sys::accept(l) {
                Ok(Some(s)) => {
                    if self.sock.is_some() {
                        // One peer per interface; tell the newcomer.
                        let m = Msg::Disconnect(0, "Already connected".into()).encode();
                        let _ = sys::set_send_timeout(&s, Duration::from_millis(100));
                        let _ = sys::send_msg(&s, &m, None);
                        warn!(
                            "memif {}: rejected second client: already connected",
                            self.cfg.socket
                        );
                        continue;
                    }
                    let _ = sys::set_send_timeout(&s, Duration::from_secs(1));
                    let hello = Msg::Hello(Hello {
                        name: self.cfg.app_name.clone(),
                        min_version: proto::VERSION,
                        max_version: proto::VERSION,
                        max_region: (MAX_REGIONS - 1) as u16,
                        max_m2s_ring: self.cfg.num_m2s_rings - 1,
                        max_s2m_ring: self.cfg.num_s2m_rings - 1,
                        max_log2_ring_size: proto::MAX_LOG2_RING_SIZE,
                    });
                    if let Err(e) = sys::send_msg(&s, &hello.encode(), None) {
                        warn!("memif {}: sending HELLO failed: {e}", self.cfg.socket);
                        continue;
                    }
                    debug!("memif {}: client accepted, HELLO sent", self.cfg.socket);
                    self.sock = Some(s);
                    self.phase = Phase::AwaitInit;
                    self.deadline = Instant::now() + self.cfg.handshake_timeout;
                    // Process anything the client already sent.
                    self.service_socket();
                }
                Ok(None) => break,
                Err(e) => {
                    warn!("memif {}: accept failed: {e}", self.cfg.socket);
                    break;
                }
            }
        }
    }

    fn try_connect(&mut self) {
        let res = sys::seqpacket_socket(self.spec.netns.as_deref()).and_then(|s| {
            sys::connect(&s, &self.spec.name)?;
            sys::set_send_timeout(&s, Duration::from_secs(1))?;
            Ok(s)
        });
        match res {
            Ok(s) => {
                debug!("memif {}: connected, awaiting HELLO", self.cfg.socket);
                self.connect_failures = 0;
                self.sock = Some(s);
                self.phase = Phase::AwaitHello;
                self.deadline = Instant::now() + self.cfg.handshake_timeout;
            }
            Err(e) => {
                if rate_limited(self.connect_failures as u64 + 1) {
                    debug!("memif {}: connect failed: {e}; retrying", self.cfg.socket);
                }
                self.connect_failures = self.connect_failures.saturating_add(1);
                self.next_attempt = Instant::now() + self.cfg.reconnect_interval;
            }
        }
    }

    fn service_socket(&mut self) {
        let mut buf = [0u8; MSG_SIZE];
        for _ in 0..MSGS_PER_POLL {
            let Some(s) = &self.sock else { return };
            let r = sys::recv_msg(s, &mut buf);
            match r {
                Ok(Recv::Empty) => return,
                Ok(Recv::Closed) => {
                    self.teardown("peer closed the control connection", false);
                    return;
                }
                Err(e) => {
                    self.teardown(&format!("control socket error: {e}"), false);
                    return;
                }
                Ok(Recv::Msg { len, fd, truncated }) => {
                    if truncated || len != MSG_SIZE {
                        warn!("memif {}: bad control message size {len}", self.cfg.socket);
                        self.teardown("Invalid message size", true);
                        return;
                    }
                    let msg = match Msg::decode(&buf) {
                        Ok(m) => m,
                        Err(e) => {
                            warn!("memif {}: {e}", self.cfg.socket);
                            self.teardown("Unknown message type", true);
                            return;
                        }
                    };
                    if let Err(reason) = self.handle(msg, fd) {
                        warn!("memif {}: rejecting peer: {reason}", self.cfg.socket);
                        self.teardown(&reason, true);
                        return;
                    }
                }
            }
        }
    }

    fn send(&mut self, m: &Msg, fd: Option<RawFd>) -> Result<(), String> {
        let Some(s) = &self.sock else {
            return Err("no control channel".into());
        };
        sys::send_msg(s, &m.encode(), fd).map_err(|e| format!("sending {} failed: {e}", m.kind()))
    }

    fn handle(&mut self, msg: Msg, fd: Option<OwnedFd>) -> Result<(), String> {
        if let Msg::Disconnect(code, reason) = &msg {
            info!(
                "memif {}: peer disconnected (code {code}): {reason}",
                self.cfg.socket
            );
            self.teardown(&format!("peer: {reason}"), false);
            return Ok(());
        }
        match (self.cfg.role, self.phase, msg) {
            (Role::Client, Phase::AwaitHello, Msg::Hello(h)) => self.client_on_hello(h),
            (Role::Client, Phase::AwaitAck, Msg::Ack) => self.client_send_next(),
            (Role::Client, Phase::AwaitConnected, Msg::Connected(name)) => {
                self.client_on_connected(name)
            }
            (Role::Server, Phase::AwaitInit, Msg::Init(i)) => self.server_on_init(i),
            (Role::Server, Phase::AwaitConfig, Msg::AddRegion(r)) => {
                self.server_on_add_region(r, fd)
            }
            (Role::Server, Phase::AwaitConfig, Msg::AddRing(r)) => self.server_on_add_ring(r, fd),
            (Role::Server, Phase::AwaitConfig, Msg::Connect(name)) => self.server_on_connect(name),
            (_, phase, m) => Err(format!("unexpected {} in state {phase:?}", m.kind())),
        }
    }

    // ----- client side -----

    fn client_on_hello(&mut self, h: Hello) -> Result<(), String> {
        if h.min_version > proto::VERSION || h.max_version < proto::VERSION {
            return Err(format!(
                "Incompatible memif version: peer supports {:#x}..{:#x}, we need {:#x}",
                h.min_version,
                h.max_version,
                proto::VERSION
            ));
        }
        if (h.max_region as usize) < self.cfg.extra_regions.len() {
            return Err(format!(
                "peer accepts only {} regions",
                h.max_region as usize + 1
            ));
        }
        self.remote_name = h.name;
        let n_s2m = self.cfg.num_s2m_rings.min(h.max_s2m_ring.saturating_add(1));
        let n_m2s = self.cfg.num_m2s_rings.min(h.max_m2s_ring.saturating_add(1));
        let log2 = self.cfg.log2_ring_size.min(h.max_log2_ring_size);
        let conn = self
            .client_build(n_s2m, n_m2s, log2)
            .map_err(|e| format!("setting up shared memory failed: {e}"))?;
        let n_regions = conn.regions.len() as u16;
        self.conn = Some(conn);
        self.pending.clear();
        self.pending.extend((0..n_regions).map(Pending::Region));
        self.pending
            .extend((0..n_s2m).map(|i| Pending::Ring(true, i)));
        self.pending
            .extend((0..n_m2s).map(|i| Pending::Ring(false, i)));
        self.pending.push_back(Pending::Connect);
        let init = Msg::Init(Init {
            version: proto::VERSION,
            id: self.cfg.id,
            mode: self.cfg.mode.to_u8(),
            secret: proto::secret_field(self.cfg.secret.as_deref().unwrap_or("")),
            name: self.cfg.app_name.clone(),
        });
        self.send(&init, None)?;
        self.phase = Phase::AwaitAck;
        Ok(())
    }

    /// Create region 0 (rings, then buffers), map extra regions, lay out
    /// rings and fill descriptors.
    fn client_build(&self, n_s2m: u16, n_m2s: u16, log2: u8) -> io::Result<Conn> {
        let n_rings = n_s2m as usize + n_m2s as usize;
        let slots = 1usize << log2;
        let ring_bytes = proto::ring_bytes(log2);
        let buf_start = (n_rings * ring_bytes).div_ceil(128) * 128;
        let per_ring = slots * self.cfg.buffer_size as usize;
        let total = buf_start + n_rings * per_ring;
        if total > u32::MAX as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "region 0 exceeds 4 GiB",
            ));
        }
        let (fd, size) = sys::memfd("memif_region_0", total)?;
        let map = Mmap::map(fd.as_raw_fd(), size)?;
        let mut regions = vec![Region { map, fd: Some(fd) }];
        for (i, x) in self.cfg.extra_regions.iter().enumerate() {
            let fsize = sys::fd_size(x.fd.as_raw_fd())?;
            if x.size == 0 || x.size as u64 > fsize {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("external region {i}: size {} vs file size {fsize}", x.size),
                ));
            }
            let dup = x.fd.try_clone()?;
            let map = Mmap::map(dup.as_raw_fd(), x.size)?;
            regions.push(Region { map, fd: Some(dup) });
        }
        let regions: Regions = Arc::new(regions);
        let mut rx = Vec::new();
        let mut tx = Vec::new();
        for g in 0..n_rings {
            let s2m = g < n_s2m as usize;
            let kind = if s2m {
                RingKind::ClientToServer
            } else {
                RingKind::ServerToClient
            };
            let off = (g * ring_bytes) as u32;
            let ring = Ring::new(regions.clone(), 0, off, log2, kind, Some(sys::eventfd()?))
                .map_err(io::Error::other)?;
            ring.set_cookie(proto::COOKIE);
            ring.set_flags(0);
            ring.set_head(0);
            ring.set_tail(0);
            let buf_base = (buf_start + g * per_ring) as u32;
            let q = Queue { ring, buf_base };
            for s in 0..slots as u16 {
                q.ring.set_desc(s, self.own_desc(&q, s));
            }
            if s2m {
                tx.push(q)
            } else {
                rx.push(q)
            }
        }
        Ok(Conn { regions, rx, tx })
    }

    fn own_desc(&self, q: &Queue, slot: u16) -> Desc {
        let i = (slot & q.ring.mask()) as u32;
        Desc {
            flags: 0,
            region: 0,
            length: self.cfg.buffer_size,
            offset: q.buf_base + i * self.cfg.buffer_size,
            metadata: 0,
        }
    }

    fn client_send_next(&mut self) -> Result<(), String> {
        let Some(p) = self.pending.pop_front() else {
            return Err("unexpected ACK".into());
        };
        let conn = self.conn.as_ref().ok_or("no connection state")?;
        let (msg, fd) = match p {
            Pending::Region(i) => {
                let r = &conn.regions[i as usize];
                (
                    Msg::AddRegion(proto::AddRegion {
                        index: i,
                        size: r.size() as u64,
                    }),
                    r.fd(),
                )
            }
            Pending::Ring(s2m, i) => {
                let q = if s2m {
                    &conn.tx[i as usize]
                } else {
                    &conn.rx[i as usize]
                };
                let off = q.ring.regions()[0].base() as usize;
                let hdr = q.ring_offset(off);
                (
                    Msg::AddRing(AddRing {
                        flags: if s2m { proto::ADD_RING_FLAG_S2M } else { 0 },
                        index: i,
                        region: 0,
                        offset: hdr,
                        log2_ring_size: q.ring.log2_size(),
                        private_hdr_size: 0,
                    }),
                    q.ring.interrupt_fd(),
                )
            }
            Pending::Connect => (Msg::Connect(self.cfg.if_name.clone()), None),
        };
        self.send(&msg, fd)?;
        if matches!(p, Pending::Connect) {
            self.phase = Phase::AwaitConnected;
        }
        Ok(())
    }

    fn client_on_connected(&mut self, name: String) -> Result<(), String> {
        let mask = if self.cfg.rx_interrupts {
            0
        } else {
            proto::RING_FLAG_MASK_INT
        };
        let conn = self.conn.as_ref().ok_or("no connection state")?;
        for q in &conn.tx {
            q.ring.set_head(0);
            q.ring.set_tail(0);
        }
        for q in &conn.rx {
            q.ring.set_flags(mask);
            q.ring.set_tail(0);
            // Hand the whole ring to the server.
            let size = q.ring.size();
            for s in 0..size {
                q.ring.set_desc(s, self.own_desc(q, s));
            }
            q.ring.set_head(size);
        }
        self.established(name);
        Ok(())
    }

    fn established(&mut self, remote_if_name: String) {
        self.phase = Phase::Connected;
        self.remote_if_name = remote_if_name.clone();
        self.stats.connects += 1;
        info!(
            "memif {}: connected to {} ({remote_if_name})",
            self.cfg.socket, self.remote_name
        );
        self.events.push_back(Event::Connected {
            remote_name: self.remote_name.clone(),
            remote_if_name,
        });
    }

    // ----- server side -----

    fn server_on_init(&mut self, i: Init) -> Result<(), String> {
        if i.version != proto::VERSION {
            return Err(format!("Incompatible memif version {:#x}", i.version));
        }
        if i.id != self.cfg.id {
            return Err(format!("ID not found ({})", i.id));
        }
        match Mode::from_u8(i.mode) {
            Some(m) if m == self.cfg.mode => {}
            _ => {
                return Err(format!(
                    "Mode mismatch (peer {}, ours {:?})",
                    i.mode, self.cfg.mode
                ))
            }
        }
        if let Some(secret) = &self.cfg.secret {
            if !secret.is_empty() && proto::secret_field(secret) != i.secret {
                return Err("Incorrect secret".into());
            }
        }
        self.remote_name = i.name;
        self.srv_regions.clear();
        self.srv_s2m = (0..self.cfg.num_s2m_rings).map(|_| None).collect();
        self.srv_m2s = (0..self.cfg.num_m2s_rings).map(|_| None).collect();
        self.send(&Msg::Ack, None)?;
        self.phase = Phase::AwaitConfig;
        Ok(())
    }

    fn server_on_add_region(
        &mut self,
        r: proto::AddRegion,
        fd: Option<OwnedFd>,
    ) -> Result<(), String> {
        let fd = fd.ok_or("Missing region fd")?;
        if r.index as usize != self.srv_regions.len() || self.srv_regions.len() >= MAX_REGIONS {
            return Err(format!(
                "Invalid region index {} (expected {})",
                r.index,
                self.srv_regions.len()
            ));
        }
        let fsize =
            sys::fd_size(fd.as_raw_fd()).map_err(|e| format!("fstat on region fd failed: {e}"))?;
        if r.size == 0 || r.size > MAX_REGION_SIZE || r.size > fsize {
            return Err(format!("Invalid region size {} (file has {fsize})", r.size));
        }
        let map = Mmap::map(fd.as_raw_fd(), r.size as usize)
            .map_err(|e| format!("mmap of region failed: {e}"))?;
        self.srv_regions.push(Region { map, fd: Some(fd) });
        self.send(&Msg::Ack, None)
    }

    fn server_on_add_ring(&mut self, r: AddRing, fd: Option<OwnedFd>) -> Result<(), String> {
        let s2m = r.flags & proto::ADD_RING_FLAG_S2M != 0;
        if r.private_hdr_size != 0 {
            return Err("private headers are not supported".into());
        }
        if r.log2_ring_size > proto::MAX_LOG2_RING_SIZE {
            return Err(format!("Invalid ring size 2^{}", r.log2_ring_size));
        }
        let region = self
            .srv_regions
            .get(r.region as usize)
            .ok_or(format!("Invalid ring region {}", r.region))?;
        let end = r.offset as u64 + proto::ring_bytes(r.log2_ring_size) as u64;
        if end > region.size() as u64 || r.offset & 7 != 0 {
            return Err(format!(
                "Invalid ring offset {} for region of {} bytes",
                r.offset,
                region.size()
            ));
        }
        let list = if s2m {
            &mut self.srv_s2m
        } else {
            &mut self.srv_m2s
        };
        let slot = list
            .get_mut(r.index as usize)
            .ok_or(format!("Invalid ring index {}", r.index))?;
        if slot.is_some() {
            return Err(format!("Duplicate ring index {}", r.index));
        }
        *slot = Some(RingSpec {
            region: r.region,
            offset: r.offset,
            log2: r.log2_ring_size,
            intr: fd,
        });
        self.send(&Msg::Ack, None)
    }

    fn server_on_connect(&mut self, name: String) -> Result<(), String> {
        // Rings in use must be 0..n without gaps; unused trailing ones are fine.
        fn take(list: &mut Vec<Option<RingSpec>>) -> Result<Vec<RingSpec>, String> {
            let n = list.iter().take_while(|s| s.is_some()).count();
            if n == 0 || list[n..].iter().any(|s| s.is_some()) {
                return Err("missing rings".into());
            }
            Ok(list.drain(..n).map(|s| s.expect("counted above")).collect())
        }
        let s2m = take(&mut self.srv_s2m)?;
        let m2s = take(&mut self.srv_m2s)?;
        let regions: Regions = Arc::new(std::mem::take(&mut self.srv_regions));
        let mk = |spec: RingSpec, kind| -> Result<Queue, String> {
            let ring = Ring::new(
                regions.clone(),
                spec.region,
                spec.offset,
                spec.log2,
                kind,
                spec.intr,
            )?;
            if ring.cookie() != proto::COOKIE {
                return Err(format!("Wrong ring cookie {:#x}", ring.cookie()));
            }
            // head/tail are left as the client set them (it may have
            // pre-filled); bursts validate them on every use anyway.
            Ok(Queue { ring, buf_base: 0 })
        };
        let rx = s2m
            .into_iter()
            .map(|s| mk(s, RingKind::ClientToServer))
            .collect::<Result<Vec<_>, _>>()?;
        let tx = m2s
            .into_iter()
            .map(|s| mk(s, RingKind::ServerToClient))
            .collect::<Result<Vec<_>, _>>()?;
        let mask = if self.cfg.rx_interrupts {
            0
        } else {
            proto::RING_FLAG_MASK_INT
        };
        for q in &rx {
            q.ring.set_flags(mask);
        }
        self.conn = Some(Conn { regions, rx, tx });
        self.send(&Msg::Connected(self.cfg.if_name.clone()), None)?;
        self.established(name);
        Ok(())
    }

    fn teardown(&mut self, reason: &str, notify: bool) {
        if notify {
            if let Some(s) = &self.sock {
                let _ = sys::send_msg(s, &Msg::Disconnect(0, reason.to_string()).encode(), None);
            }
        }
        let was_connected = self.phase == Phase::Connected;
        self.sock = None;
        self.conn = None;
        self.pending.clear();
        self.srv_regions.clear();
        self.srv_s2m.clear();
        self.srv_m2s.clear();
        self.phase = Phase::Idle;
        self.next_attempt = Instant::now() + self.cfg.reconnect_interval;
        if was_connected {
            info!("memif {}: disconnected: {reason}", self.cfg.socket);
            self.events.push_back(Event::Disconnected {
                reason: reason.to_string(),
            });
        } else {
            debug!("memif {}: handshake aborted: {reason}", self.cfg.socket);
        }
    }

    // ----- data path -----

    fn live(&self) -> Option<&Conn> {
        if self.phase == Phase::Connected {
            self.conn.as_ref()
        } else {
            None
        }
    }

    /// Number of receive queues while connected (0 otherwise).
    pub fn rx_queues(&self) -> usize {
        self.live().map_or(0, |c| c.rx.len())
    }

    /// Number of transmit queues while connected (0 otherwise).
    pub fn tx_queues(&self) -> usize {
        self.live().map_or(0, |c| c.tx.len())
    }

    /// Eventfd signalled by the peer when it fills rx queue `q` (only if
    /// `rx_interrupts` was set). Valid until the next disconnect.
    pub fn rx_interrupt_fd(&self, q: usize) -> Option<RawFd> {
        self.live()?.rx.get(q)?.ring.interrupt_fd()
    }

    fn ring_error(&mut self, what: &str) {
        self.stats.ring_errors += 1;
        if rate_limited(self.stats.ring_errors) {
            warn!(
                "memif {}: {what} (ring errors: {})",
                self.cfg.socket, self.stats.ring_errors
            );
        }
    }

    /// Receive up to `bufs.len()` packets from queue `q`, copying them
    /// into `bufs[..n]`; returns `n`. Chained descriptors are joined.
    /// Packets larger than the buffer they land in, or with descriptors
    /// outside their region, are dropped and counted.
    pub fn rx_burst(&mut self, q: usize, bufs: &mut [PacketBuf]) -> usize {
        let role = self.cfg.role;
        let rx_interrupts = self.cfg.rx_interrupts;
        let Some(conn) = self.live() else { return 0 };
        let Some(queue) = conn.rx.get(q) else {
            return 0;
        };
        let ring = &queue.ring;
        if rx_interrupts {
            if let Some(fd) = ring.interrupt_fd() {
                sys::eventfd_drain(fd);
            }
        }
        let size = ring.size();
        // Start of unread data: a server owns tail; a client keeps every
        // consumed slot refilled, so its cursor is head - size.
        let (start, last) = match role {
            Role::Server => (ring.tail(), ring.head()),
            Role::Client => (ring.head().wrapping_sub(size), ring.tail()),
        };
        let avail = last.wrapping_sub(start);
        if avail > size {
            self.ring_error("rx ring indices out of range");
            return 0;
        }
        let mut cur = start;
        let mut n = 0;
        let mut dropped = 0u64;
        let mut errors = 0u64;
        while n < bufs.len() && cur != last {
            let mut len = 0usize;
            let mut slot = cur;
            // 0 = fine, 1 = too big for the caller's buffer, 2 = bad descriptor.
            let mut status = 0u8;
            let mut complete = false;
            while slot != last {
                let d = ring.desc(slot);
                slot = slot.wrapping_add(1);
                let seg = d.length as usize;
                if status == 0 {
                    match bufs[n].data.get_mut(len..) {
                        Some(rest) if seg <= rest.len() => {
                            if ring.read_buffer(&d, rest).is_none() {
                                status = 2;
                            }
                        }
                        _ => status = 1,
                    }
                }
                len = len.saturating_add(seg);
                if d.flags & DESC_FLAG_NEXT == 0 {
                    complete = true;
                    break;
                }
            }
            if !complete {
                if slot.wrapping_sub(start) == size {
                    // A full ring of NEXT flags can never complete: drop it.
                    errors += 1;
                    cur = slot;
                }
                // Otherwise the producer has not published the rest yet.
                break;
            }
            cur = slot;
            match status {
                0 => {
                    bufs[n].len = len;
                    n += 1;
                }
                1 => dropped += 1,
                _ => {
                    dropped += 1;
                    errors += 1;
                }
            }
        }
        match role {
            Role::Server => ring.set_tail(cur),
            Role::Client => {
                // Refill what we consumed with our own buffers.
                let mut h = ring.head();
                let target = cur.wrapping_add(size);
                while h != target {
                    let d = self.own_desc(queue, h);
                    queue.ring.set_desc(h, d);
                    h = h.wrapping_add(1);
                }
                ring.set_head(target);
            }
        }
        self.stats.rx_packets += n as u64;
        self.stats.rx_dropped += dropped;
        if errors > 0 {
            self.ring_error("rx descriptor outside its region");
        }
        n
    }

    /// Send packets on queue `q`, copying them into shared buffers; packets
    /// longer than one buffer are chained. Returns how many were queued
    /// (fewer than `pkts.len()` when the ring is full).
    pub fn tx_burst<B: AsRef<[u8]>>(&mut self, q: usize, pkts: &[B]) -> usize {
        let role = self.cfg.role;
        let Some(conn) = self.live() else { return 0 };
        let Some(queue) = conn.tx.get(q) else {
            return 0;
        };
        let ring = &queue.ring;
        let size = ring.size();
        let (h, t) = (ring.head(), ring.tail());
        let (mut cur, mut free) = match role {
            // Client produces at head; tail is what the server consumed.
            Role::Client => (h, size.wrapping_sub(h.wrapping_sub(t))),
            // Server fills slots the client handed over: tail..head.
            Role::Server => (t, h.wrapping_sub(t)),
        };
        if h.wrapping_sub(t) > size {
            self.ring_error("tx ring indices out of range");
            return 0;
        }
        let mut sent = 0;
        let mut bad = false;
        'pkts: for p in pkts {
            let p = p.as_ref();
            let mut slot = cur;
            let mut left = free;
            let mut off = 0usize;
            loop {
                if left == 0 {
                    break 'pkts; // ring full: leave this packet for later
                }
                let d = match role {
                    Role::Client => self.own_desc(queue, slot),
                    Role::Server => ring.desc(slot),
                };
                let cap = d.length as usize;
                if cap == 0 || ring.buffer_ptr(&d, d.length).is_none() {
                    bad = true;
                    break 'pkts;
                }
                let chunk = (p.len() - off).min(cap);
                let _ = ring.write_buffer(&d, 0, &p[off..off + chunk]);
                off += chunk;
                let flags = if off < p.len() { DESC_FLAG_NEXT } else { 0 };
                match role {
                    Role::Client => ring.set_desc(
                        slot,
                        Desc {
                            flags,
                            length: chunk as u32,
                            ..d
                        },
                    ),
                    Role::Server => ring.set_len_flags(slot, chunk as u32, flags),
                }
                slot = slot.wrapping_add(1);
                left -= 1;
                if off >= p.len() {
                    break;
                }
            }
            cur = slot;
            free = left;
            sent += 1;
        }
        if sent > 0 {
            match role {
                Role::Client => ring.set_head(cur),
                Role::Server => ring.set_tail(cur),
            }
            ring.kick();
        }
        self.stats.tx_packets += sent as u64;
        if bad {
            self.ring_error("tx descriptor outside its region or empty");
        }
        sent
    }

    // ----- zero-copy access -----

    /// The ring behind rx queue `q` while connected. For zero-copy users:
    /// you take over head/tail management of this queue; do not mix with
    /// [`rx_burst`](Self::rx_burst) on the same queue.
    pub fn rx_ring(&self, q: usize) -> Option<&Ring> {
        self.live()?.rx.get(q).map(|q| &q.ring)
    }

    /// The ring behind tx queue `q` while connected (see [`rx_ring`](Self::rx_ring)).
    pub fn tx_ring(&self, q: usize) -> Option<&Ring> {
        self.live()?.tx.get(q).map(|q| &q.ring)
    }

    /// Mapped regions of the current connection (index = region number).
    pub fn regions(&self) -> &[Region] {
        self.live().map_or(&[], |c| &c.regions[..])
    }
}

impl Queue {
    fn ring_offset(&self, region_base: usize) -> u32 {
        // The ring header lives in region 0 (client layout); its offset is
        // the address difference, which fits u32 by construction.
        (self.ring_hdr_addr() - region_base) as u32
    }
    fn ring_hdr_addr(&self) -> usize {
        self.ring.hdr_addr()
    }
}

impl Drop for Interface {
    fn drop(&mut self) {
        if self.sock.is_some() {
            self.teardown("interface deleted", true);
        }
        if self.listener.is_some() {
            if let SocketName::Path(p) = &self.spec.name {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}
