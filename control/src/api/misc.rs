//! vpe / vlib messages: version, threads, the CLI in band, and the graph's node and edge
//! indices.

use super::convert::{self, rv, NONE};
use super::handlers::State;
use crate::daemon::Dataplane;
use rvpp_vppapi::defs as d;
use rvpp_vppapi::transport::{Response, Router};

fn show_threads(dp: &Dataplane) -> d::ShowThreadsReply {
    let pid = std::process::id();
    let mut t = vec![d::ThreadData {
        id: 0,
        name: "vpp_main".into(),
        type_: String::new(),
        pid,
        cpu_id: dp
            .workers
            .first()
            .filter(|w| w.thread == 0)
            .and_then(|w| w.core)
            .unwrap_or(0),
        core: 0,
        cpu_socket: 0,
    }];
    for w in dp.workers.iter().filter(|w| w.thread != 0) {
        t.push(d::ThreadData {
            id: w.thread as u32,
            name: w.name.clone(),
            type_: "workers".into(),
            pid,
            cpu_id: w.core.unwrap_or(0),
            core: w.core.unwrap_or(0),
            cpu_socket: 0,
        });
    }
    d::ShowThreadsReply {
        context: 0,
        retval: 0,
        count: 0,
        thread_data: t,
    }
}

fn node_index(dp: &Dataplane, name: &str) -> Option<usize> {
    dp.graph_names.iter().position(|n| *n == name)
}

/// (retval, edge index) of `next` from `node`. VPP's codes: -63 no such node, -64 no such next
/// node (or, for get_next_index, no such edge); a missing edge add_node_next would create: -9.
fn next_index(dp: &Dataplane, node: &str, next: &str, add: bool) -> (i32, u32) {
    let (node, next) = (convert::text(node), convert::text(next));
    let Some(n) = node_index(dp, node) else {
        return (rv::NO_SUCH_NODE, NONE);
    };
    let edges = dp.graph_edges.get(n).map_or(&[][..], |e| &e[..]);
    match edges.iter().position(|e| *e == next) {
        Some(i) => (0, i as u32),
        None if add && node_index(dp, next).is_some() => {
            log::warn!("api: add_node_next: the graph is fixed; {node} has no edge to {next}");
            (rv::UNIMPLEMENTED, NONE)
        }
        None => (rv::NO_SUCH_NODE2, NONE),
    }
}

pub(super) fn register(r: &mut Router<State>) {
    r.on(|_s: &mut State, _m: d::ShowVersion, _c| {
        Response::reply(d::ShowVersionReply {
            context: 0,
            retval: 0,
            program: "vpe".into(),
            version: format!("v{}-rvpp", crate::cli::VERSION),
            build_date: String::new(),
            build_directory: "rvpp".into(),
        })
    });
    r.on(|s: &mut State, _m: d::ShowThreads, _c| Response::reply(show_threads(&s.dp)));
    r.on(|s: &mut State, m: d::CliInband, _c| {
        let out = crate::cli::execute(&s.dp, &m.cmd);
        s.kick();
        Response::reply(d::CliInbandReply {
            context: 0,
            retval: 0,
            reply: out,
        })
    });

    // The graph is fixed when it is built: node and edge indices are what the workers use,
    // and add_node_next succeeds only for an edge the node already has (calico asks for
    // vxlan4-input -> ip4-input); a new edge at run time answers -9.
    r.on(|s: &mut State, m: d::GetNodeIndex, _c| {
        let (rv, i) = match node_index(&s.dp, convert::text(&m.node_name)) {
            Some(i) => (0, i as u32),
            None => (rv::NO_SUCH_NODE, NONE),
        };
        Response::reply(d::GetNodeIndexReply {
            context: 0,
            retval: rv,
            node_index: i,
        })
    });
    r.on(|s: &mut State, m: d::GetNextIndex, _c| {
        let (rv, i) = next_index(&s.dp, &m.node_name, &m.next_name, false);
        Response::reply(d::GetNextIndexReply {
            context: 0,
            retval: rv,
            next_index: i,
        })
    });
    r.on(|s: &mut State, m: d::AddNodeNext, _c| {
        let (rv, i) = next_index(&s.dp, &m.node_name, &m.next_name, true);
        Response::reply(d::AddNodeNextReply {
            context: 0,
            retval: rv,
            next_index: i,
        })
    });
}
