//! Tunnel CLI in VPP's syntax: `create vxlan tunnel src <ip> dst <ip> vni <n> [instance <n>]
//! [encap-vrf-id <n>] [src_port <n>] [dst_port <n>] [l3] [del]`, `show vxlan tunnel`. Thin translators over
//! `service::vxlan`, the same calls the API makes. `create ipip tunnel src <ip> dst <ip>
//! [instance <n>] [outer-table-id <n>]`, `delete ipip tunnel sw_if_index <n>`, `show ipip tunnel`
//! over `service::ipip`.

use crate::daemon::Dataplane;
use crate::service::ipip::{self, IpipRequest};
use crate::service::vxlan::{self, VxlanRequest};
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::Arc;

const VXLAN_USAGE: &str = "create vxlan tunnel src <ip> dst <ip> vni <n> [instance <n>] \
                           [encap-vrf-id <n>] [src_port <n>] [dst_port <n>] [l3] [del]";

pub fn execute(dp: &Arc<Dataplane>, words: &[&str]) -> Option<Result<String, String>> {
    Some(match words {
        ["create", "vxlan", "tunnel", rest @ ..] => create_vxlan(dp, rest),
        ["show", "vxlan", "tunnel"] | ["show", "vxlan", "tunnels"] => Ok(show_vxlan(dp)),
        ["create", "ipip", "tunnel", rest @ ..] => create_ipip(dp, rest),
        ["delete", "ipip", "tunnel", "sw_if_index", n] => num("sw_if_index", n).and_then(|sw| {
            ipip::delete(dp, sw)
                .map(|()| String::new())
                .map_err(|e| e.to_string())
        }),
        ["show", "ipip", "tunnel"] | ["show", "ipip", "tunnels"] => Ok(show_ipip(dp)),
        _ => return None,
    })
}

fn num(what: &str, v: &str) -> Result<u32, String> {
    v.parse().map_err(|_| format!("bad {what} `{v}'"))
}

fn ip(what: &str, v: &str) -> Result<IpAddr, String> {
    v.parse().map_err(|_| format!("bad {what} address `{v}'"))
}

fn create_vxlan(dp: &Arc<Dataplane>, w: &[&str]) -> Result<String, String> {
    let (mut src, mut dst, mut vni) = (None, None, None);
    let mut req_instance = None;
    let (mut vrf, mut port, mut l3, mut del) = (0, 0u16, false, false);
    let mut src_port = 0u16;
    let mut i = 0;
    while i < w.len() {
        let val = w.get(i + 1).copied();
        let need = || val.ok_or_else(|| VXLAN_USAGE.to_string());
        match w[i] {
            "src" => src = Some(ip("src", need()?)?),
            "dst" => dst = Some(ip("dst", need()?)?),
            "vni" => vni = Some(num("vni", need()?)?),
            "instance" => req_instance = Some(num("instance", need()?)?),
            "encap-vrf-id" => vrf = num("encap-vrf-id", need()?)?,
            "dst_port" | "dst-port" => {
                port = u16::try_from(num("dst_port", need()?)?).map_err(|e| e.to_string())?
            }
            "src_port" | "src-port" => {
                src_port = u16::try_from(num("src_port", need()?)?).map_err(|e| e.to_string())?
            }
            "l3" => {
                l3 = true;
                i += 1;
                continue;
            }
            "del" => {
                del = true;
                i += 1;
                continue;
            }
            _ => return Err(VXLAN_USAGE.into()),
        }
        i += 2;
    }
    let (Some(src), Some(dst), Some(vni)) = (src, dst, vni) else {
        return Err(VXLAN_USAGE.into());
    };
    if del {
        return vxlan::delete(dp, src, dst, vni)
            .map(|_| String::new())
            .map_err(|e| e.to_string());
    }
    let req = VxlanRequest {
        instance: req_instance,
        src,
        dst,
        dst_port: port,
        src_port,
        vni,
        encap_vrf_id: vrf,
        l3,
        decap_next_index: u32::MAX,
    };
    let (_, name) = vxlan::create(dp, req).map_err(|e| e.to_string())?;
    Ok(format!("{name}\n"))
}

fn show_vxlan(dp: &Dataplane) -> String {
    let mut o = String::new();
    let ts = vxlan::list(dp, None);
    if ts.is_empty() {
        return "No vxlan tunnels configured...\n".into();
    }
    for (k, t) in ts.iter().enumerate() {
        let _ = writeln!(
            o,
            "[{k}] instance {} src {} dst {} src_port {} dst_port {} vni {} fib-idx {} sw-if-idx {} {}",
            t.instance,
            t.src,
            t.dst,
            t.src_port,
            t.dst_port,
            t.vni,
            t.encap_fib,
            t.sw_if_index,
            if t.l3 { "l3" } else { "l2 (inner ethernet)" }
        );
    }
    o
}

const IPIP_USAGE: &str = "create ipip tunnel src <ip> dst <ip> [instance <n>] [outer-table-id <n>]";

fn create_ipip(dp: &Arc<Dataplane>, w: &[&str]) -> Result<String, String> {
    let (mut src, mut dst, mut instance, mut table_id) = (None, None, None, 0);
    for pair in w.chunks(2) {
        let [k, v] = pair else {
            return Err(IPIP_USAGE.into());
        };
        match *k {
            "src" => src = Some(ip("src", v)?),
            "dst" => dst = Some(ip("dst", v)?),
            "instance" => instance = Some(num("instance", v)?),
            "outer-table-id" => table_id = num("outer-table-id", v)?,
            _ => return Err(IPIP_USAGE.into()),
        }
    }
    let (Some(src), Some(dst)) = (src, dst) else {
        return Err(IPIP_USAGE.into());
    };
    let req = IpipRequest {
        instance,
        src,
        dst,
        table_id,
        flags: 0,
        dscp: 0,
    };
    let (_, name) = ipip::create(dp, req).map_err(|e| e.to_string())?;
    Ok(format!("{name}\n"))
}

fn show_ipip(dp: &Dataplane) -> String {
    let ts = ipip::list(dp, None);
    if ts.is_empty() {
        return "No IPIP tunnels configured...\n".into();
    }
    let mut o = String::new();
    for t in ts {
        let _ = writeln!(
            o,
            "[{}] instance {} src {} dst {} table-ID {} sw-if-idx {} flags {:#x} dscp {} mode p2p",
            t.instance, t.instance, t.src, t.dst, t.table_id, t.sw_if_index, t.flags, t.dscp
        );
    }
    o
}
