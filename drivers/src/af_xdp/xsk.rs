//! The AF_XDP sockets and queues (xsk-rs). See the parent module for the design.

use super::{bpf, probe, AfXdpConfig, AfXdpInfo, XdpAttach, XdpMode, FRAME_SIZE, MAX_FRAME};
use crate::netdev::{QueueStats, Queues};
use crate::netns;
use rvpp_dataplane::buffer::{flags, Buffers};
use rvpp_dataplane::device::{RxQueue, TxQueue};
use rvpp_dataplane::graph::rx_next;
use std::io::{self, Write};
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, Socket, Umem};

use super::{INPUT_NODE, TX_NODE};

/// Most descriptors taken off a ring at once.
const BATCH: usize = 256;
/// `sendto` kicks per flush at most (copy mode sends a limited batch per call).
const MAX_KICKS: usize = 64;

/// The program on the interface, detached when the last queue holding it is dropped.
struct Attachment {
    prog: bpf::Program,
    /// The bpf_link: closing it detaches the program.
    link: Option<OwnedFd>,
    /// Attached through netlink instead (no XDP links): (ifindex, mode flags, namespace).
    legacy: Option<(u32, u32, Option<String>)>,
    name: String,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        if let Some((ifindex, mode, ns)) = self.legacy.take() {
            let r = netns::run(ns.as_deref(), || bpf::netlink_set(ifindex, None, mode));
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) | Err(e) => {
                    log::warn!("af_xdp {}: removing XDP program: {e}", self.name)
                }
            }
        }
        drop(self.link.take());
        log::info!("af_xdp {}: XDP program {} removed", self.name, self.prog.id);
    }
}

/// Entry points for AF_XDP interfaces.
pub struct AfXdp;

impl AfXdp {
    /// Attach rvpp's XDP program to the interface and open one socket per queue.
    pub fn create(cfg: &AfXdpConfig, sw_if_index: u32) -> io::Result<Queues<AfXdpInfo>> {
        Self::create_queues(cfg, sw_if_index).map(crate::netdev::boxed)
    }

    /// As [`AfXdp::create`], with the concrete queue types.
    pub fn create_queues(
        cfg: &AfXdpConfig,
        sw_if_index: u32,
    ) -> io::Result<(Vec<AfXdpRxQueue>, Vec<AfXdpTxQueue>, AfXdpInfo)> {
        if cfg.queues == 0 || cfg.queues > 64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("af_xdp: bad queue count {}", cfg.queues),
            ));
        }
        if !cfg.ring_size.is_power_of_two() || !(64..=16384).contains(&cfg.ring_size) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "af_xdp: ring size {} is not a power of two in 64..=16384",
                    cfg.ring_size
                ),
            ));
        }
        netns::run(cfg.netns.as_deref(), || open_here(cfg, sw_if_index))?
    }
}

fn err(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("af_xdp: {what}: {e}"))
}

/// Attach `prog` in the modes the config allows, link first. Returns (link, legacy, native).
#[allow(clippy::type_complexity)]
fn attach(
    cfg: &AfXdpConfig,
    prog: RawFd,
    ifindex: u32,
) -> io::Result<(Option<OwnedFd>, Option<(u32, u32, Option<String>)>, bool)> {
    let modes: &[u32] = match cfg.attach {
        XdpAttach::Auto => &[bpf::XDP_FLAGS_DRV_MODE, bpf::XDP_FLAGS_SKB_MODE],
        XdpAttach::Native => &[bpf::XDP_FLAGS_DRV_MODE],
        XdpAttach::Generic => &[bpf::XDP_FLAGS_SKB_MODE],
    };
    let mut last = io::Error::other("no XDP mode tried");
    let mut links_work = true;
    for &m in modes {
        match bpf::link_create(prog, ifindex, m) {
            Ok(l) => return Ok((Some(l), None, m == bpf::XDP_FLAGS_DRV_MODE)),
            Err(e) => {
                let en = e.raw_os_error().unwrap_or(0);
                if en == libc::EBUSY || en == libc::EEXIST {
                    return Err(err(
                        "attach",
                        format!(
                            "{}: another XDP program is attached ({e})",
                            cfg.host_if_name
                        ),
                    ));
                }
                last = e;
                // EINVAL: a kernel without XDP links (before 5.9); EOPNOTSUPP: no such mode
                // in this driver, try the next.
                if en == libc::EINVAL {
                    links_work = false;
                    break;
                }
            }
        }
    }
    if !links_work {
        for &m in modes {
            let f = m | bpf::XDP_FLAGS_UPDATE_IF_NOEXIST;
            match bpf::netlink_set(ifindex, Some(prog), f) {
                Ok(()) => {
                    return Ok((
                        None,
                        Some((ifindex, m, cfg.netns.clone())),
                        m == bpf::XDP_FLAGS_DRV_MODE,
                    ))
                }
                Err(e) => last = e,
            }
        }
    }
    Err(err("attach XDP program", last))
}

struct Sock {
    umem: Umem,
    frames: Vec<FrameDesc>,
    tx: xsk_rs::TxQueue,
    rx: xsk_rs::RxQueue,
    fq: FillQueue,
    cq: CompQueue,
}

fn open_socket(cfg: &AfXdpConfig, queue: u32, zero_copy: bool) -> io::Result<Sock> {
    let ring = QueueSize::new(cfg.ring_size).map_err(|e| err("ring size", e))?;
    let ucfg = UmemConfig::builder()
        .frame_size(FrameSize::new(FRAME_SIZE).map_err(|e| err("frame size", e))?)
        .fill_queue_size(ring)
        .comp_queue_size(ring)
        .build()
        .map_err(|e| err("umem config", e))?;
    let count = NonZeroU32::new(2 * cfg.ring_size).ok_or_else(|| err("umem", "no frames"))?;
    let (umem, frames) = Umem::new(ucfg, count, false).map_err(|e| err("umem", e))?;
    let mut bind = BindFlags::XDP_USE_NEED_WAKEUP;
    bind |= if zero_copy {
        BindFlags::XDP_ZEROCOPY
    } else {
        BindFlags::XDP_COPY
    };
    let scfg = SocketConfig::builder()
        .rx_queue_size(ring)
        .tx_queue_size(ring)
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(bind)
        .build();
    let iface: Interface = cfg
        .host_if_name
        .parse()
        .map_err(|e| err("interface name", e))?;
    // SAFETY: the UMEM is fresh and bound to no (interface, queue) pair yet, and program
    // loading is inhibited, which is what Socket::new requires.
    let (tx, rx, fqcq) = unsafe { Socket::new(scfg, &umem, &iface, queue) }.map_err(|e| {
        let src = std::error::Error::source(&e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        err(
            &format!("socket on {} queue {queue}", cfg.host_if_name),
            format!("{e}{src}"),
        )
    })?;
    let (fq, cq) = fqcq.ok_or_else(|| err("socket", "no fill/completion rings"))?;
    Ok(Sock {
        umem,
        frames,
        tx,
        rx,
        fq,
        cq,
    })
}

fn open_here(
    cfg: &AfXdpConfig,
    sw_if_index: u32,
) -> io::Result<(Vec<AfXdpRxQueue>, Vec<AfXdpTxQueue>, AfXdpInfo)> {
    let name = &cfg.host_if_name;
    let (ifindex, mac, mtu) = probe(name)?;
    if mtu as usize + 18 > MAX_FRAME {
        return Err(err(
            "mtu",
            format!("{name} has MTU {mtu}; frames above {MAX_FRAME} bytes do not fit a UMEM frame"),
        ));
    }
    let removed_stale = bpf::remove_stale(ifindex)?;
    for id in &removed_stale {
        log::warn!("af_xdp {name}: removed stale rvpp XDP program {id} left by an earlier run");
    }
    let prog = bpf::load(cfg.queues as u32)?;
    // Sockets first, then the program: nothing is redirected to a queue without a socket.
    let mut socks = Vec::new();
    let mut zero_copy = cfg.mode == XdpMode::ZeroCopy;
    for q in 0..cfg.queues as u32 {
        let s = match cfg.mode {
            XdpMode::Copy => open_socket(cfg, q, false)?,
            XdpMode::ZeroCopy => open_socket(cfg, q, true)?,
            XdpMode::Auto if q == 0 || zero_copy => match open_socket(cfg, q, true) {
                Ok(s) => {
                    zero_copy = true;
                    s
                }
                Err(e) if q == 0 => {
                    log::debug!("af_xdp {name}: no zero-copy ({e}); copy mode");
                    open_socket(cfg, q, false)?
                }
                Err(e) => return Err(e),
            },
            XdpMode::Auto => open_socket(cfg, q, false)?,
        };
        bpf::map_set(prog.map.as_raw_fd(), q, s.rx.fd().as_raw_fd())?;
        socks.push(s);
    }
    let (link, legacy, native) = attach(cfg, prog.prog.as_raw_fd(), ifindex)?;
    let prog_id = prog.id;
    let att = Arc::new(Attachment {
        prog,
        link,
        legacy,
        name: name.clone(),
    });
    log::info!(
        "af_xdp {name}: XDP program {prog_id} attached ({} mode), {} queue(s), {}",
        if native { "native" } else { "generic" },
        cfg.queues,
        if zero_copy { "zero-copy" } else { "copy" }
    );
    let stats: Vec<_> = (0..cfg.queues)
        .map(|_| Arc::new(QueueStats::default()))
        .collect();
    let mut rxs = Vec::new();
    let mut txs = Vec::new();
    let half = cfg.ring_size as usize;
    for (q, s) in socks.into_iter().enumerate() {
        let Sock {
            umem,
            mut frames,
            tx,
            rx,
            fq,
            cq,
        } = s;
        let tx_frames = frames.split_off(half);
        let mut r = AfXdpRxQueue {
            rx,
            fq,
            umem: umem.clone(),
            descs: vec![FrameDesc::default(); BATCH],
            refill: frames,
            sw_if_index,
            queue_id: q as u16,
            stats: stats[q].clone(),
            _att: att.clone(),
        };
        r.give_back();
        rxs.push(r);
        txs.push(AfXdpTxQueue {
            tx,
            cq,
            umem,
            free: tx_frames,
            batch: Vec::with_capacity(BATCH),
            scratch: vec![FrameDesc::default(); BATCH],
            in_flight: 0,
            ring_size: cfg.ring_size,
            stats: stats[q].clone(),
            _att: att.clone(),
            error_logged: false,
        });
    }
    Ok((
        rxs,
        txs,
        AfXdpInfo {
            host_if_name: name.clone(),
            netns: cfg.netns.clone(),
            ifindex,
            mac,
            mtu,
            queues: cfg.queues,
            zero_copy,
            native,
            prog_id,
            removed_stale,
            stats,
        },
    ))
}

/// Receive side of one socket: the rx ring, and the fill ring it is fed from.
pub struct AfXdpRxQueue {
    rx: xsk_rs::RxQueue,
    fq: FillQueue,
    umem: Umem,
    descs: Vec<FrameDesc>,
    /// Frames read and waiting to go back on the fill ring.
    refill: Vec<FrameDesc>,
    sw_if_index: u32,
    queue_id: u16,
    stats: Arc<QueueStats>,
    _att: Arc<Attachment>,
}

impl AfXdpRxQueue {
    pub fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }

    /// Put read frames back on the fill ring and wake the kernel if it asks.
    fn give_back(&mut self) {
        if !self.refill.is_empty() {
            // SAFETY: these frames belong to this socket's UMEM and to this queue's rx half:
            // they came off our rx ring (or are the initial set) and we read them no more.
            let k = unsafe { self.fq.produce(&self.refill) };
            if k == self.refill.len() {
                self.refill.clear();
            } else {
                self.refill.drain(..k);
            }
        }
        if self.fq.needs_wakeup() {
            let _ = self.fq.wakeup(self.rx.fd_mut(), 0);
        }
    }
}

impl RxQueue for AfXdpRxQueue {
    fn input_node(&self) -> &'static str {
        INPUT_NODE
    }
    fn sw_if_index(&self) -> u32 {
        self.sw_if_index
    }
    fn queue_id(&self) -> u16 {
        self.queue_id
    }
    fn rx_fd(&self) -> Option<RawFd> {
        Some(self.rx.fd().as_raw_fd())
    }

    fn rx(&mut self, bufs: &mut Buffers, out: &mut [u32], nexts: &mut [u16]) -> usize {
        let limit = out.len().min(nexts.len()).min(self.descs.len());
        // SAFETY: descriptors come from this socket's rx ring, which only carries frames of
        // its UMEM; they are ours until we put them back on the fill ring.
        let n = unsafe { self.rx.consume(&mut self.descs[..limit]) };
        let (mut got, mut bytes, mut nobuf) = (0usize, 0u64, 0u64);
        for i in 0..n {
            let d = self.descs[i];
            // SAFETY: the frame came off the rx ring and is not on the fill ring, so the
            // kernel does not write it while we read.
            let data = unsafe { self.umem.data(&d) };
            match bufs.alloc_from_bytes(data.contents()) {
                Some(bi) => {
                    bufs.meta(bi).rx_sw_if_index = self.sw_if_index;
                    out[got] = bi;
                    nexts[got] = rx_next::ETHERNET;
                    got += 1;
                    bytes += data.contents().len() as u64;
                }
                None => nobuf += 1,
            }
            self.refill.push(d);
        }
        if n > 0 || !self.refill.is_empty() {
            self.give_back();
        }
        let s = &self.stats;
        QueueStats::add(&s.rx_packets, got as u64);
        QueueStats::add(&s.rx_bytes, bytes);
        QueueStats::add(&s.rx_no_buffers, nobuf);
        got
    }
}

/// Transmit side of one socket: the tx ring, and the completion ring its frames return on.
pub struct AfXdpTxQueue {
    tx: xsk_rs::TxQueue,
    cq: CompQueue,
    umem: Umem,
    /// Tx frames we own.
    free: Vec<FrameDesc>,
    batch: Vec<FrameDesc>,
    scratch: Vec<FrameDesc>,
    /// Frames on the tx ring or in the kernel, not yet completed.
    in_flight: usize,
    ring_size: u32,
    stats: Arc<QueueStats>,
    _att: Arc<Attachment>,
    error_logged: bool,
}

impl AfXdpTxQueue {
    pub fn stats(&self) -> &Arc<QueueStats> {
        &self.stats
    }

    /// Take completed frames back.
    fn reclaim(&mut self) {
        loop {
            // SAFETY: the completion ring returns frames of this UMEM that we put on the tx
            // ring; the kernel is done with them.
            let n = unsafe { self.cq.consume(&mut self.scratch) };
            self.free.extend_from_slice(&self.scratch[..n]);
            self.in_flight = self.in_flight.saturating_sub(n);
            if n < self.scratch.len() {
                break;
            }
        }
    }

    /// Ask the kernel to send what is on the tx ring, when it wants to be asked.
    fn kick(&mut self) {
        for _ in 0..MAX_KICKS {
            if self.in_flight == 0 || !self.tx.needs_wakeup() {
                break;
            }
            // SAFETY: an empty sendto on our own AF_XDP socket only processes its tx ring.
            let rc = unsafe {
                libc::sendto(
                    self.tx.fd().as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            let e = (rc < 0).then(io::Error::last_os_error);
            self.reclaim();
            match e.as_ref().and_then(|e| e.raw_os_error()) {
                None => {
                    // Everything handed over; the rest completes asynchronously.
                    if self.tx.nb_free_exact() >= self.ring_size {
                        break;
                    }
                }
                // Copy mode sends a batch per call: go again.
                Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::EINTR) => {}
                Some(libc::ENOBUFS) => {
                    QueueStats::add(&self.stats.tx_full, 1);
                    break;
                }
                Some(_) => {
                    if !self.error_logged {
                        self.error_logged = true;
                        if let Some(e) = e {
                            log::warn!("af_xdp tx: sendto: {e}");
                        }
                    }
                    QueueStats::add(&self.stats.tx_errors, 1);
                    break;
                }
            }
        }
    }
}

impl TxQueue for AfXdpTxQueue {
    fn tx_node(&self) -> &'static str {
        TX_NODE
    }

    fn tx(&mut self, bufs: &mut Buffers, pkts: &[u32]) -> usize {
        if self.free.len() < pkts.len() {
            self.reclaim();
        }
        self.batch.clear();
        let (mut done, mut bytes, mut errs, mut full) = (0usize, 0u64, 0u64, 0u64);
        for &head in pkts {
            let mut d = match self.free.pop() {
                Some(d) => d,
                None => {
                    // Every frame in flight: push them out and look again once.
                    self.flush_batch();
                    self.kick();
                    match self.free.pop() {
                        Some(d) => d,
                        None => {
                            full += 1;
                            break;
                        }
                    }
                }
            };
            let total = bufs.get(head).total_len();
            if total == 0 || total > MAX_FRAME {
                self.free.push(d);
                errs += 1;
                done += 1;
                continue;
            }
            {
                // SAFETY: d is a tx frame we own (free list): not on the tx ring, not in flight.
                let mut data = unsafe { self.umem.data_mut(&mut d) };
                let mut cur = data.cursor();
                cur.set_pos(0);
                let mut bi = head;
                loop {
                    let b = bufs.get(bi);
                    // Cannot fail: total fits the frame (checked above).
                    let _ = cur.write_all(b.data());
                    if b.meta.flags & flags::NEXT_PRESENT == 0 {
                        break;
                    }
                    bi = b.meta.next_buffer;
                }
            }
            self.batch.push(d);
            bytes += total as u64;
            done += 1;
            if self.batch.len() == BATCH {
                self.flush_batch();
            }
        }
        self.flush_batch();
        bufs.free(&pkts[..done]);
        let s = &self.stats;
        QueueStats::add(&s.tx_packets, (done as u64).saturating_sub(errs));
        QueueStats::add(&s.tx_bytes, bytes);
        QueueStats::add(&s.tx_errors, errs);
        QueueStats::add(&s.tx_full, full);
        done
    }

    fn flush(&mut self, _bufs: &mut Buffers) {
        self.kick();
        if self.in_flight > 0 {
            self.reclaim();
        }
    }
}

impl AfXdpTxQueue {
    /// Put the filled frames on the tx ring.
    fn flush_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        // SAFETY: the frames belong to this UMEM's tx half, hold a packet each, and are ours
        // until they come back on the completion ring.
        let k = unsafe { self.tx.produce(&self.batch) };
        self.in_flight += k;
        // The ring has as many slots as there are tx frames, so it takes them all; anything
        // refused would be lost: count it and keep the frames.
        let refused = self.batch.len() - k;
        QueueStats::add(&self.stats.tx_errors, refused as u64);
        self.free.extend(self.batch.drain(..).skip(k));
    }
}
