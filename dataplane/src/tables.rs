//! Tables the workers read: interfaces, adjacencies, load-balances, FIBs.
//!
//! Interfaces and forwarding objects are small and change rarely: the control thread edits a
//! private copy and publishes it whole ([`Published`]). FIBs are large and change often: each
//! is shared once (`Arc`) and updated in place with atomics by its single writer, with retired
//! memory reused only after a grace period. A FIB leaf is a load-balance index; a worker
//! therefore must see a load-balance before any leaf that names it, which the writer ensures
//! by publishing the forwarding table and waiting one grace period before it writes the leaf.

use crate::fib::ip4::Ip4Fib;
use crate::fib::ip6::Ip6Fib;
use crate::rcu::{GracePeriod, Published, Snapshot};
use crate::wire::Mac;
use crossbeam_queue::ArrayQueue;
use std::sync::Arc;

/// Interfaces one process can have (sizes the per-thread counter arrays).
pub const MAX_INTERFACES: usize = 4096;
/// Most paths of one ECMP load-balance.
pub const MAX_ECMP: usize = 16;
/// Features one arc can carry.
pub const MAX_FEATURES: usize = 32;

/// Hot per-interface state, looked up per packet by sw_if_index.
#[derive(Clone, Copy, Debug)]
pub struct IfFast {
    pub flags: u16,
    pub mac: Mac,
    pub ip4_fib: u32,
    pub ip6_fib: u32,
    /// Enabled features on the ip4-unicast / ip6-unicast arcs (bit = position on the arc).
    pub feat_ip4: u32,
    pub feat_ip6: u32,
    /// Enabled features on the ip4-local / ip6-local arcs (packets for us received here).
    pub feat_ip4_local: u32,
    pub feat_ip6_local: u32,
    /// L3 MTU in bytes.
    pub mtu: u16,
    /// L2 cross-connect: every frame received here leaves on this interface (u32::MAX: none).
    pub xconnect: u32,
}

impl Default for IfFast {
    fn default() -> Self {
        Self {
            flags: 0,
            mac: [0; 6],
            ip4_fib: 0,
            ip6_fib: 0,
            feat_ip4: 0,
            feat_ip6: 0,
            feat_ip4_local: 0,
            feat_ip6_local: 0,
            mtu: 0,
            xconnect: u32::MAX,
        }
    }
}

pub mod if_flags {
    pub const EXISTS: u16 = 1 << 0;
    pub const ADMIN_UP: u16 = 1 << 1;
    pub const LINK_UP: u16 = 1 << 2;
    pub const IP4: u16 = 1 << 3;
    pub const IP6: u16 = 1 << 4;
    /// Ethernet framing (tap, af_packet, memif ethernet); otherwise IP (tun, memif ip).
    pub const L2: u16 = 1 << 5;
    /// Accept frames to any destination MAC.
    pub const PROMISC: u16 = 1 << 6;
    /// The device takes GSO super-frames (e.g. a tap with a vnet header).
    pub const TX_GSO: u16 = 1 << 7;
    /// The device computes L4 checksums that are marked `OFFLOAD_L4_CKSUM`.
    pub const TX_CSUM: u16 = 1 << 8;
    /// Answer ARP requests for targets in a proxy range of the interface's table.
    pub const PROXY_ARP: u16 = 1 << 9;
    /// Answer neighbor solicitations from global sources for any target (ND proxy).
    pub const ND_PROXY: u16 = 1 << 10;
    /// A VXLAN tunnel: no device, what interface-output gets for it (an ARP reply, an L2
    /// frame) is its encap's (VPP's tunnel device class, whose tx is the encap node).
    pub const TX_VXLAN: u16 = 1 << 11;
}

/// Full interface state, for the control surface.
#[derive(Clone, Debug, Default)]
pub struct Interface {
    pub sw_if_index: u32,
    pub name: String,
    pub dev_type: String,
    pub tag: String,
    pub mac: Mac,
    pub admin_up: bool,
    pub link_up: bool,
    pub l2: bool,
    pub mtu: u16,
    pub ip4_fib: u32,
    pub ip6_fib: u32,
    pub ip4_addrs: Vec<(u32, u8)>,
    pub ip6_addrs: Vec<(u128, u8)>,
    pub ip6_enabled: bool,
    /// For a VLAN sub-interface: (parent sw_if_index, vlan id).
    pub sub_of: Option<(u32, u16)>,
    /// Take source addresses from this interface.
    pub unnumbered_of: Option<u32>,
    /// Accept frames to any destination MAC.
    pub promisc: bool,
    /// The device takes GSO super-frames / computes marked L4 checksums itself.
    pub tx_gso: bool,
    pub tx_csum: bool,
    /// Proxy ARP (for the ranges in `IfTable::proxy_arp`) and ND proxy are enabled.
    pub proxy_arp: bool,
    pub nd_proxy: bool,
    /// L2 cross-connect target.
    pub xconnect: Option<u32>,
    /// Enabled features per arc (index: `feature::arc`; bit = position on the arc).
    pub features: [u32; crate::feature::arc::COUNT],
}

/// All interfaces, indexed by sw_if_index.
#[derive(Clone, Default)]
pub struct IfTable {
    pub fast: Vec<IfFast>,
    pub ifs: Vec<Option<Interface>>,
    /// (parent sw_if_index, vlan) -> sub-interface sw_if_index, for ethernet-input.
    pub vlans: Vec<(u32, u16, u32)>,
    /// Proxy ARP ranges, VPP's: (fib index, first, last address), for every interface with
    /// proxy ARP enabled whose IPv4 table is that fib.
    pub proxy_arp: Vec<(u32, u32, u32)>,
}

impl IfTable {
    #[inline(always)]
    pub fn fast(&self, sw_if_index: u32) -> IfFast {
        self.fast
            .get(sw_if_index as usize)
            .copied()
            .unwrap_or_default()
    }
    pub fn get(&self, sw_if_index: u32) -> Option<&Interface> {
        self.ifs.get(sw_if_index as usize).and_then(|i| i.as_ref())
    }
    /// An ARP request on `sw` for `target` is answered by proxy.
    #[inline]
    pub fn proxies_arp(&self, sw: u32, target: u32) -> bool {
        let f = self.fast(sw);
        f.flags & if_flags::PROXY_ARP != 0
            && self
                .proxy_arp
                .iter()
                .any(|&(fib, lo, hi)| fib == f.ip4_fib && (lo..=hi).contains(&target))
    }
    pub fn by_name(&self, name: &str) -> Option<&Interface> {
        self.ifs.iter().flatten().find(|i| i.name == name)
    }
    #[inline]
    pub fn vlan_subif(&self, parent: u32, vlan: u16) -> Option<u32> {
        self.vlans
            .iter()
            .find(|(p, v, _)| *p == parent && *v == vlan)
            .map(|t| t.2)
    }
    /// First IPv4 address of an interface, following unnumbered.
    pub fn ip4_source(&self, sw_if_index: u32) -> Option<u32> {
        let i = self.get(sw_if_index)?;
        let i = match i.unnumbered_of {
            Some(u) => self.get(u)?,
            None => i,
        };
        i.ip4_addrs.first().map(|a| a.0)
    }
    /// First global IPv6 address of an interface, following unnumbered.
    pub fn ip6_source(&self, sw_if_index: u32) -> Option<u128> {
        let i = self.get(sw_if_index)?;
        let i = match i.unnumbered_of {
            Some(u) => self.get(u)?,
            None => i,
        };
        i.ip6_addrs.first().map(|a| a.0)
    }
}

/// What a packet that resolves to an adjacency gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum AdjKind {
    /// Drop silently (counted).
    #[default]
    Drop,
    /// Addressed to us: ip4-local / ip6-local.
    Local,
    /// A connected subnet with no neighbour entry: resolve the packet's destination (ARP/ND).
    Glean,
    /// A next hop not resolved yet: resolve `next_hop`.
    Incomplete,
    /// Rewrite the L2 header and send out of `sw_if_index`.
    Rewrite,
    /// Send an ICMP unreachable.
    Unreachable,
    /// Send an ICMP administratively prohibited.
    Prohibit,
    /// Hand to the host through the punt path.
    Punt,
    /// Look the destination up again in another table (`lookup_fib`).
    Lookup,
    /// A PBL client (calico's plugin) interposed on a host route: ip4-pbl / ip6-pbl send the
    /// packet along the client's path or the route's. `lookup_fib` is the client's id.
    Pbl,
    /// Encapsulate in SR policy `lookup_fib` (its index in `srv6::Srv6`): sr-pl-rewrite-encaps.
    SrPolicy,
    /// An SRv6 localsid, `lookup_fib` its index: sr-localsid.
    SrLocalsid,
}

/// A forwarding adjacency.
#[derive(Clone, Copy, Debug, Default)]
pub struct Adjacency {
    pub kind: AdjKind,
    pub sw_if_index: u32,
    /// L3 MTU of the egress interface.
    pub mtu: u16,
    pub rewrite_len: u8,
    /// L2 header to prepend (dst mac, src mac, ethertype), `rewrite_len` bytes.
    pub rewrite: [u8; 24],
    /// Next hop (IPv4 in the low 32 bits when `is_ip6` is false).
    pub next_hop: u128,
    pub is_ip6: bool,
    /// For `Lookup`: the fib index to look up in; for `SrPolicy` / `SrLocalsid`: the policy's
    /// or localsid's index.
    pub lookup_fib: u32,
    /// Output-arc features enabled on `sw_if_index` (ip4-output or ip6-output by `is_ip6`);
    /// the writer keeps it in step with the interface, so the rewrite nodes test one word.
    pub out_features: u32,
}

/// An ECMP set of adjacencies, chosen by flow hash.
#[derive(Clone, Copy, Debug)]
pub struct LoadBalance {
    pub n_buckets: u8,
    pub buckets: [u32; MAX_ECMP],
}

impl LoadBalance {
    pub fn single(adj: u32) -> Self {
        let mut b = [0u32; MAX_ECMP];
        b[0] = adj;
        Self {
            n_buckets: 1,
            buckets: b,
        }
    }
    #[inline(always)]
    pub fn pick(&self, flow_hash: u32) -> u32 {
        let n = self.n_buckets.max(1) as u32;
        self.buckets[(flow_hash % n) as usize % MAX_ECMP]
    }
}

/// Where ip4-local / ip6-local send packets they do not handle themselves.
#[derive(Clone, Copy, Debug)]
pub struct PuntRedirect {
    /// Only packets received on this interface (None: any).
    pub rx_sw_if_index: Option<u32>,
    /// Adjacency to send them through (a rewrite to the host tap).
    pub adj: u32,
}

/// Adjacencies and load-balances, published whole.
#[derive(Clone)]
pub struct FwdTable {
    pub adjs: Vec<Adjacency>,
    pub lbs: Vec<LoadBalance>,
    pub punt4: Vec<PuntRedirect>,
    pub punt6: Vec<PuntRedirect>,
    /// Multicast routes, longest group prefix first.
    pub mroutes: Vec<Mroute>,
    /// PBL clients by id (`AdjKind::Pbl`).
    pub pbl: Vec<Option<PblClient>>,
    /// UDP ports other than 4789 that VXLAN is received on, over IPv4 and over IPv6: each
    /// tunnel's local port (VPP's udp_register_dst_port), while a tunnel has it.
    pub vxlan_ports: [Vec<u16>; 2],
}

/// A PBL client as the data path uses it: packets to its address whose (protocol,
/// destination port) is in `ranges` go to `path_adj`; the others along `parent_lb`, the
/// forwarding of the route the client interposed on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PblClient {
    pub is_ip6: bool,
    pub fib: u32,
    pub addr: u128,
    /// (IP protocol, first port, last port).
    pub ranges: Vec<(u8, u16, u16)>,
    pub path_adj: u32,
    pub parent_lb: u32,
    /// The load-balance the FIB entry names while the client is there.
    pub pbl_lb: u32,
}

impl PblClient {
    #[inline]
    pub fn matches(&self, proto: u8, port: u16) -> bool {
        self.ranges
            .iter()
            .any(|&(p, a, b)| p == proto && (a..=b).contains(&port))
    }
}

/// A multicast route, as the data path uses it: packets to `group/len` in fib `fib`, received
/// on an `accept` interface, leave by the `forward` ones; `lookup` sends the search on to
/// another fib (calico's default mroute from a pod VRF).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mroute {
    pub is_ip6: bool,
    pub fib: u32,
    pub group: u128,
    pub len: u8,
    pub accept: Vec<u32>,
    pub forward: Vec<u32>,
    pub lookup: Option<u32>,
}

impl FwdTable {
    /// The interface a multicast packet to `dst`, received on `rx` in fib `fib`, is relayed
    /// to: the first forward interface other than `rx` of the longest matching route that
    /// accepts from `rx` (through at most [`MAX_RELOOKUPS`] table lookups).
    #[inline]
    pub fn mcast_forward(&self, is_ip6: bool, mut fib: u32, dst: u128, rx: u32) -> Option<u32> {
        if self.mroutes.is_empty() {
            return None;
        }
        let bits: u32 = if is_ip6 { 128 } else { 32 };
        for _ in 0..=MAX_RELOOKUPS {
            let m = self.mroutes.iter().find(|m| {
                let shift = bits - (m.len as u32).min(bits);
                m.is_ip6 == is_ip6
                    && m.fib == fib
                    && (shift >= 128 || (m.group ^ dst) >> shift == 0)
            })?;
            match m.lookup {
                Some(next) => fib = next,
                None if m.accept.contains(&rx) => {
                    return m.forward.iter().copied().find(|&t| t != rx)
                }
                None => return None,
            }
        }
        None
    }
}

/// Table-lookup adjacencies a packet may pass before it is dropped as a loop.
pub const MAX_RELOOKUPS: u8 = 4;

/// Index of the always-present drop adjacency and load-balance.
pub const DROP_ADJ: u32 = 0;
pub const DROP_LB: u32 = 0;
/// Index of the always-present unreachable adjacency and load-balance (FIB misses).
pub const UNREACH_ADJ: u32 = 1;
pub const UNREACH_LB: u32 = 1;

impl Default for FwdTable {
    fn default() -> Self {
        let drop = Adjacency::default();
        let unreach = Adjacency {
            kind: AdjKind::Unreachable,
            ..Default::default()
        };
        Self {
            adjs: vec![drop, unreach],
            lbs: vec![
                LoadBalance::single(DROP_ADJ),
                LoadBalance::single(UNREACH_ADJ),
            ],
            punt4: vec![],
            punt6: vec![],
            mroutes: vec![],
            pbl: vec![],
            vxlan_ports: [vec![], vec![]],
        }
    }
}

impl FwdTable {
    /// UDP to `port` over IPv4 (`v6` false) or IPv6 is VXLAN's: 4789 always (one compare for
    /// the common case), another port while a tunnel of that family receives on it.
    #[inline(always)]
    pub fn is_vxlan_port(&self, v6: bool, port: u16) -> bool {
        port == crate::wire::tunnel::VXLAN_PORT || self.vxlan_ports[v6 as usize].contains(&port)
    }
    #[inline(always)]
    pub fn lb(&self, i: u32) -> &LoadBalance {
        self.lbs
            .get(i as usize)
            .unwrap_or(&self.lbs[DROP_LB as usize])
    }
    #[inline(always)]
    pub fn adj(&self, i: u32) -> &Adjacency {
        self.adjs
            .get(i as usize)
            .unwrap_or(&self.adjs[DROP_ADJ as usize])
    }
}

/// Every FIB, by fib index.
#[derive(Clone, Default)]
pub struct FibSet {
    pub ip4: Vec<Option<Arc<Ip4Fib>>>,
    pub ip6: Vec<Option<Arc<Ip6Fib>>>,
}

/// Something a worker learned that the control thread must apply (e.g. an ARP reply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    Ip4Neighbor {
        sw_if_index: u32,
        ip: u32,
        mac: Mac,
    },
    Ip6Neighbor {
        sw_if_index: u32,
        ip: u128,
        mac: Mac,
    },
}

/// The tables shared by the control thread and all workers.
pub struct Shared {
    pub ifs: Published<IfTable>,
    pub fwd: Published<FwdTable>,
    pub fibs: Published<FibSet>,
    pub grace: Arc<GracePeriod>,
    /// Worker -> control: neighbours learned in the data path.
    pub learned: ArrayQueue<Learned>,
}

impl Shared {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            ifs: Published::new(IfTable::default()),
            fwd: Published::new(FwdTable::default()),
            fibs: Published::new(FibSet::default()),
            grace: Arc::new(GracePeriod::new()),
            learned: ArrayQueue::new(4096),
        })
    }
}

/// A worker's view of the tables, refreshed once per dispatch round.
pub struct WorkerTables {
    pub ifs: Snapshot<IfTable>,
    pub fwd: Snapshot<FwdTable>,
    pub fibs: Snapshot<FibSet>,
}

impl WorkerTables {
    pub fn new(s: &Shared) -> Self {
        Self {
            ifs: s.ifs.snapshot(),
            fwd: s.fwd.snapshot(),
            fibs: s.fibs.snapshot(),
        }
    }
    /// Pick up whatever the control thread published since the last round.
    #[inline]
    pub fn refresh(&mut self, s: &Shared) {
        self.ifs.refresh(&s.ifs);
        self.fwd.refresh(&s.fwd);
        self.fibs.refresh(&s.fibs);
    }
}
