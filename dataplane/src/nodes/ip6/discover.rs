//! ip6-discover: neighbor solicitation for glean and incomplete adjacencies.

use crate::buffer::{Buf, Buffers};
use crate::graph::{Node, NodeInfo};
use crate::runtime::Ctx;
use crate::tables::{if_flags, AdjKind, FwdTable, IfTable};
use crate::wire::{self, Ip6Hdr, IP6_HDR};

use super::addr::{is_multicast, multicast_mac, solicited_node, source_for};
use super::icmp6;
use super::nd::write_nd;

/// Resolves glean and incomplete adjacencies: the packet waiting for resolution is turned into
/// the neighbor solicitation (no allocation), rate-limited per target.
#[derive(Default)]
pub struct Ip6Discover {
    throttle: crate::nodes::ResolveThrottle,
}

crate::next_edges! {
    mod discover_next {
        DROP => "error-drop",
        OUTPUT => "interface-output",
    }
}

crate::node_errors! {
    pub mod discover_error {
        REQUEST_SENT => "ip6 neighbor solicitations sent (packet consumed)",
        THROTTLED => "ip6 neighbor solicitations throttled (dropped)",
        NO_SOURCE => "ip6 nd no source address on interface (dropped)",
        NOT_ETHERNET => "ip6 nd on a non-ethernet interface (dropped)",
        BAD_TARGET => "ip6 nd target not a unicast address (dropped)",
    }
}

impl Node for Ip6Discover {
    fn info(&self) -> NodeInfo {
        NodeInfo::internal("ip6-discover", discover_next::NAMES, discover_error::NAMES)
    }

    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        let ifs = cx.tables.ifs.get();
        let fwd = cx.tables.fwd.get();
        // Solicit a target at most every ~1 ms per thread.
        let gap = crate::runtime::tsc_hz() / 1000;
        let now = cx.now;
        for (i, &bi) in bufs.iter().enumerate() {
            let r = self.one(cx.bufs, ifs, fwd, bi, now, gap);
            nexts[i] = match r {
                Ok(()) => {
                    errs.count(discover_error::REQUEST_SENT, 1);
                    discover_next::OUTPUT
                }
                Err(e) => {
                    cx.bufs.meta(bi).error = errs.error(e);
                    discover_next::DROP
                }
            };
        }
    }

    fn trace(&self, b: &Buf<'_>) -> String {
        crate::runtime::hex_line(b.data())
    }
}

impl Ip6Discover {
    fn one(
        &mut self,
        bufs: &mut Buffers,
        ifs: &IfTable,
        fwd: &FwdTable,
        bi: u32,
        now: u64,
        gap: u64,
    ) -> Result<(), u16> {
        let (adj, target) = {
            let b = bufs.get(bi);
            let adj = fwd.adj(b.meta.adj_index);
            let target = match adj.kind {
                AdjKind::Incomplete => adj.next_hop,
                _ => Ip6Hdr::new(b.data()).map_or(0, |h| h.dst()),
            };
            (adj, target)
        };
        let sw = adj.sw_if_index;
        let fast = ifs.fast(sw);
        if fast.flags & if_flags::L2 == 0 {
            return Err(discover_error::NOT_ETHERNET);
        }
        if target == 0 || is_multicast(target) {
            return Err(discover_error::BAD_TARGET);
        }
        if self.throttle.throttled(target, now, gap) {
            return Err(discover_error::THROTTLED);
        }
        let src = source_for(ifs, sw, target).ok_or(discover_error::NO_SOURCE)?;
        self.throttle.asked(target, now);
        bufs.free_tail(bi);
        let mut b = bufs.get(bi);
        b.meta.current_data = 0;
        let len = wire::ETH_HDR + IP6_HDR + icmp6::ND_LEN + icmp6::LL_OPT_LEN;
        if !b.set_len(len) {
            return Err(discover_error::NOT_ETHERNET);
        }
        let group = solicited_node(target);
        let d = b.data_mut();
        if let Some(mut eth) = wire::EthHdr::new(d) {
            eth.set_dst(&multicast_mac(group));
            eth.set_src(&fast.mac);
            eth.set_ethertype(wire::ETHERTYPE_IP6);
        }
        write_nd(
            &mut d[wire::ETH_HDR..],
            src,
            group,
            icmp6::NEIGHBOR_SOLICIT,
            0,
            target,
            icmp6::OPT_SOURCE_LL,
            &fast.mac,
        );
        b.meta.tx_sw_if_index = sw;
        Ok(())
    }
}
