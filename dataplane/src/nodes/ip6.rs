//! IPv6 nodes (being written): until then ip6-input drops and counts.

use crate::graph::{Node, NodeInfo, NodeKind};
use crate::runtime::Ctx;

pub fn nodes(_features: &[&'static str]) -> Vec<Box<dyn Node>> {
    vec![Box::new(Ip6Input)]
}

pub struct Ip6Input;

impl Node for Ip6Input {
    fn info(&self) -> NodeInfo {
        NodeInfo {
            name: "ip6-input",
            kind: NodeKind::Internal,
            next_nodes: vec!["error-drop"],
            errors: &["ip6 not supported yet"],
        }
    }
    fn process(&mut self, cx: &mut Ctx<'_>, bufs: &mut [u32], nexts: &mut [u16]) {
        for &bi in bufs.iter() {
            cx.bufs.meta(bi).error = cx.error(0);
        }
        nexts.fill(0);
    }
}
