//! gso-segment: software GSO and checksum offload for devices that cannot do them (being built;
//! until then such packets are dropped and counted).

use crate::graph::{Node, NodeInfo, NodeKind};
use crate::runtime::Ctx;

#[derive(Default)]
pub struct GsoSegment;

impl Node for GsoSegment {
    fn info(&self) -> NodeInfo {
        NodeInfo {
            name: "gso-segment",
            kind: NodeKind::Internal,
            next_nodes: vec!["error-drop"],
            errors: &["offload not supported yet (dropped)"],
        }
    }
    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        let errs = cx.errs();
        for &bi in bufs.iter() {
            cx.bufs.meta(bi).error = errs.error(0);
        }
        nexts.fill(0);
    }
}
