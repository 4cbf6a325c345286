//! CLI commands in VPP's syntax (`show runtime`, `set interface state`, `ip route add`, ...).
//! Each returns its output as text; errors are text too, never a crash.

use crate::daemon::Dataplane;
use crate::service::{addresses, neighbours, punt, routes, tables};
use rvpp_dataplane::device::RxMode;
use rvpp_dataplane::forwarding::{mask4, mask6, Af, Forwarding, Path, PathKind, Prefix};
use rvpp_dataplane::runtime::tsc_hz;
use rvpp_dataplane::tables::AdjKind;
use rvpp_dataplane::wire::{fmt_mac, parse_mac};
use rvpp_drivers::pcap::{PcapRx, PcapTx, LINKTYPE_ETHERNET};
use rvpp_drivers::pg::{NullTx, PgStream};
use std::fmt::Write;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A CLI command module: answers the lines it knows, `None` for any other.
type CliModule = fn(&Arc<Dataplane>, &[&str]) -> Option<Result<String, String>>;

/// Every command module, asked in order before the core commands below. A feature with its own
/// commands adds its `cli_<name>::execute` here.
const MODULES: &[CliModule] = &[
    crate::cli_cnat::execute,
    crate::cli_npol::execute,
    crate::cli_urpf::execute,
    crate::cli_ttl_fixup::execute,
    crate::cli_classify::execute,
    crate::cli_ipsec::execute,
    crate::cli_ikev2::execute,
    crate::cli_neighbor::execute,
    crate::cli_memif::execute,
    crate::cli_feature::execute,
    crate::cli_linux::execute,
    crate::cli_tunnel::execute,
    crate::cli_wireguard::execute,
    crate::cli_srv6::execute,
];

/// Run one CLI line.
pub fn execute(dp: &Arc<Dataplane>, line: &str) -> String {
    let w: Vec<&str> = line.split_whitespace().collect();
    let r = MODULES
        .iter()
        .find_map(|m| m(dp, &w))
        .unwrap_or_else(|| execute_core(dp, line, &w));
    match r {
        Ok(s) => s,
        Err(e) => format!("{e}\n"),
    }
}

fn execute_core(dp: &Arc<Dataplane>, line: &str, w: &[&str]) -> Result<String, String> {
    match w {
        [] => Ok(String::new()),
        ["show", "version", ..] => Ok(format!("vpp v{VERSION}-rvpp built by rvpp\n")),
        ["show", "threads", ..] => Ok(show_threads(dp)),
        ["show", "run", ..] | ["show", "runtime", ..] => Ok(show_runtime(dp)),
        ["show", "err", ..] | ["show", "errors", ..] | ["show", "node", "counters", ..] => {
            Ok(show_errors(dp))
        }
        ["show", "trace", ..] => Ok(show_trace(dp)),
        ["show", "interface", "rx-placement"] => Ok(show_hardware(dp)),
        ["show", "int", "addr", ..] | ["show", "interface", "address", ..] => Ok(show_int_addr(dp)),
        ["show", "int", ..] | ["show", "interface", ..] => Ok(show_interfaces(dp)),
        ["show", "hardware", ..] | ["show", "hardware-interfaces", ..] | ["show", "hard", ..] => {
            Ok(show_hardware(dp))
        }
        ["show", "ip", "fib", "memory"] => Ok(show_fib_memory(dp)),
        ["show", "ip", "fib", rest @ ..] => Ok(show_fib(dp, Af::Ip4, rest)),
        ["show", "ip6", "fib", rest @ ..] => Ok(show_fib(dp, Af::Ip6, rest)),
        ["show", "ip", "neighbors", ..]
        | ["show", "ip", "neighbor", ..]
        | ["show", "ip6", "neighbors", ..] => Ok(show_neighbors(dp)),
        ["show", "buffers", ..] => Ok(show_buffers(dp)),
        ["clear", "run", ..] | ["clear", "runtime", ..] => clear(dp, true, false, false),
        ["clear", "err", ..] | ["clear", "errors", ..] | ["clear", "node", "counters"] => {
            clear(dp, false, true, false)
        }
        ["clear", "int", ..] | ["clear", "interfaces", ..] | ["clear", "hardware", ..] => {
            clear(dp, false, false, true)
        }
        ["clear", "trace", ..] => {
            for w in &dp.workers {
                w.stats
                    .traces
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
            }
            Ok(String::new())
        }
        ["trace", "add", node, n] => trace_add(dp, node, n),
        ["pcap", "trace", "off"] => pcap_off(dp),
        ["pcap", "trace", "status"] => Ok(pcap_status(dp)),
        ["pcap", "trace", rest @ ..] => pcap_on(dp, rest),
        ["set", "interface", "state", ifn, st] => set_state(dp, ifn, st),
        ["set", "interface", "ip", "address", "del", ifn, p] => addr(dp, ifn, p, false),
        ["set", "interface", "ip", "address", ifn, p] => addr(dp, ifn, p, true),
        ["set", "interface", "ip6", "address", ifn, p] => addr(dp, ifn, p, true),
        ["set", "interface", "mtu", "packet", mtu, ifn] | ["set", "interface", "mtu", mtu, ifn] => {
            set_mtu(dp, ifn, mtu)
        }
        ["set", "interface", "mac", "address", ifn, mac] => set_mac(dp, ifn, mac),
        ["set", "interface", "unnumbered", "del", ifn] => set_unnumbered(dp, ifn, None),
        ["set", "interface", "unnumbered", ifn, "use", donor] => {
            set_unnumbered(dp, ifn, Some(donor))
        }
        ["set", "interface", "rx-mode", _ifn, mode] => set_rx_mode(dp, mode),
        ["set", "interface", "rx-placement", ifn, "queue", q, "worker", w] => {
            let s = sw(dp, ifn)?;
            let q: u16 = q.parse().map_err(|_| "bad queue")?;
            let w: usize = w.parse().map_err(|_| "bad worker")?;
            crate::service::queues::place_rx(dp, s, q, w).map_err(|e| e.to_string())?;
            Ok(String::new())
        }
        ["set", "interface", "l2", "xconnect", rx, tx] => {
            let (r, t) = (sw(dp, rx)?, sw(dp, tx)?);
            dp.fwd()
                .set_xconnect(r, Some(t))
                .map_err(|e| e.to_string())?;
            Ok(String::new())
        }
        ["set", "interface", "l3", ifn] => {
            let r = sw(dp, ifn)?;
            dp.fwd().set_xconnect(r, None).map_err(|e| e.to_string())?;
            Ok(String::new())
        }
        ["set", "interface", "promiscuous", "on", ifn]
        | ["set", "interface", "promiscuous", ifn, "on"] => {
            let r = sw(dp, ifn)?;
            dp.fwd().set_promisc(r, true).map_err(|e| e.to_string())?;
            Ok(String::new())
        }
        ["set", "interface", "ip", "table", ifn, t] => set_table(dp, ifn, t, Af::Ip4),
        ["set", "interface", "ip6", "table", ifn, t] => set_table(dp, ifn, t, Af::Ip6),
        ["enable", "ip6", "interface", ifn] => sw(dp, ifn)
            .and_then(|s| dp.fwd().enable_ip6(s, true).map_err(|e| e.to_string()))
            .map(|_| String::new()),
        ["ip", "table", "add", t] | ["ip", "table", t] => table(dp, t, Af::Ip4, true),
        ["ip6", "table", "add", t] | ["ip6", "table", t] => table(dp, t, Af::Ip6, true),
        ["ip", "table", "del", t] => table(dp, t, Af::Ip4, false),
        ["ip6", "table", "del", t] => table(dp, t, Af::Ip6, false),
        ["show", "ip", "table", ..] => Ok(show_tables(dp, Af::Ip4)),
        ["show", "ip6", "table", ..] => Ok(show_tables(dp, Af::Ip6)),
        ["ip", "punt", "redirect", rest @ ..] => punt_redirect(dp, Af::Ip4, rest),
        ["ip6", "punt", "redirect", rest @ ..] => punt_redirect(dp, Af::Ip6, rest),
        ["show", "ip", "punt", "redirect", ..] => Ok(show_punt_redirects(dp, Af::Ip4)),
        ["show", "ip6", "punt", "redirect", ..] => Ok(show_punt_redirects(dp, Af::Ip6)),
        ["ip", "route", "add", rest @ ..] => route(dp, rest, true),
        ["ip", "route", "del", rest @ ..] => route(dp, rest, false),
        ["ip", "route", rest @ ..] => route(dp, rest, true),
        ["set", "ip", "neighbor", rest @ ..] | ["ip", "neighbor", rest @ ..] => neighbor(dp, rest),
        ["create", "packet-generator", "interface", rest @ ..]
        | ["create", "pg", "interface", rest @ ..] => create_pg(dp, rest),
        ["packet-generator", "enable", ..] | ["packet-generator", "enable-stream", ..] => {
            pg_enable(dp)
        }
        ["packet-generator", "disable", ..] | ["packet-generator", "disable-stream", ..] => {
            pg_disable(dp)
        }
        ["create", "null", "interface", name] => create_null(dp, name),
        ["create", "pcap", "interface", rest @ ..] => create_pcap(dp, rest),
        ["create", "loopback", "interface", rest @ ..]
        | ["loopback", "create-interface", rest @ ..] => create_loopback(dp, rest),
        ["delete", "loopback", "interface", "intfc", name]
        | ["loopback", "delete-interface", "intfc", name] => {
            let sw = crate::service::interfaces::by_name(dp, name, "loopback")
                .ok_or_else(|| format!("unknown loopback interface `{name}'"))?;
            crate::service::interfaces::delete(dp, sw, "loopback")
                .map(|()| String::new())
                .map_err(|e| e.to_string())
        }
        ["help"] | ["?"] => Ok(HELP.to_string()),
        _ => Err(format!("unknown input `{line}'")),
    }
}

const HELP: &str = "show version|threads|runtime|errors|trace|interface|hardware|ip fib [memory]|ip6 fib|ip neighbors|buffers
clear runtime|errors|interfaces|trace
trace add <input-node> <count>
pcap trace [rx] [tx] [drop] [max <n>] [intfc <if>|any] [file <name>] | pcap trace off | pcap trace status
set interface state <if> up|down
set interface ip address [del] <if> <addr/len>
set interface mtu [packet] <n> <if>
set interface mac address <if> <mac>
set interface unnumbered <if> use <donor-if> | set interface unnumbered del <if>
set interface rx-mode <if> polling|interrupt|adaptive
set interface rx-placement <if> queue <n> worker <n>
set interface ip table <if> <table>
set interface l2 xconnect <rx-if> <tx-if> | set interface l3 <if> | set interface promiscuous on <if>
ip table add|del <id> | ip6 table add|del <id> | show ip table | show ip6 table
ip punt redirect [add|del] [rx <if>|rx all] via <ip> <if> | via <if> | table <id> | show ip punt redirect
ip route add|del <prefix> [table <id>] via <next-hop> [<if>] | via <if> | drop | local
set ip neighbor [del] <if> <ip> <mac>
create packet-generator interface <name> [count <n>] [size <bytes>] [src <ip>] [dst <prefix>] [dst-mac <mac>]
packet-generator enable | disable
create null interface <name>
create pcap interface <name> [rx <file>] [tx <file>]
create loopback interface [mac <mac>] | delete loopback interface intfc <name>
create vxlan tunnel src <ip> dst <ip> vni <n> [instance <n>] [encap-vrf-id <n>] [src_port <n>] [dst_port <n>] [l3] [del]
show vxlan tunnel
create ipip tunnel src <ip> dst <ip> [instance <n>] [outer-table-id <n>] | delete ipip tunnel sw_if_index <n>
show ipip tunnel
ipsec sa add <id> spi <spi> esp crypto-alg aes-gcm-128|aes-gcm-256 crypto-key <hex> [salt <n>] [use-esn] [use-anti-replay] [inbound] [udp-encap] [tunnel src <ip> dst <ip> [table <id>]] | ipsec sa del <id>
ipsec tunnel protect <if> sa-in <id>... sa-out <id> [del] | ipsec itf create [instance <n>] | ipsec itf delete <if>
show ipsec sa [<id>]|protect|tunnel
show ikev2 profile|sa|counters | ikev2 initiate rekey-child-sa|del-child-sa <spi> | set ikev2 rekey-seq <n>|default
ikev2 profile add|del <name> | ikev2 initiate sa-init <name>
ikev2 profile set <name> auth shared-key-mic string|hex <psk> | id local|remote ip4-addr|ip6-addr|fqdn|rfc822|der-asn1-dn|der-asn1-gn|key-id <data>
ikev2 profile set <name> traffic-selector local|remote ip-range <addr> - <addr> port-range <port> - <port> protocol <n>
ikev2 profile set <name> responder <if> <addr> | tunnel <if>
ikev2 profile set <name> ike-crypto-alg aes-cbc|aes-gcm-16 128|256 [ike-integ-alg sha1-96|hmac-sha2-256-128] ike-dh modp-2048|ecp-256|curve25519
ikev2 profile set <name> esp-crypto-alg aes-gcm-16 128|256
show cnat translation|session|snat | clear cnat session | set cnat interface <if> [disable]
show npol ipsets|rules|policies|interfaces | clear npol flows
set urpf [ip4|ip6] [rx|tx] [off|strict|loose] <if> [table <id>] | show urpf | set ip ttl-fixup <src> <dst> [disable] | show ip ttl-fixup
show classify tables [index <n>] [verbose] | show inacl type ip4|ip6 | show ip session redirect | show pbl client
set arp proxy [del] table-id <id> start <ip> end <ip> | set interface proxy-arp <if> [enable|disable] | show arp proxy
set interface ip6-nd proxy <if> [enable|disable] | set ip neighbor-config ip4|ip6 [limit <n>] [age <s>] [recycle|norecycle] | show ip neighbor-config
npol match <if> rx|tx <src>[;<port>]-><dst>[;<port>] tcp|udp|icmp|icmp6|<proto> [type <t> code <c>]
cnat translation add proto tcp|udp vip <ip> <port> [maglev] to <ip> <port> [to ...] | cnat translation del <id>
set cnat timeouts [generic <s>] [tcp <s>] [tcp-closing <s>] [affinity <s>]
";

pub(crate) fn sw(dp: &Dataplane, name: &str) -> Result<u32, String> {
    let f = dp.fwd();
    if let Some(i) = f.ifs().by_name(name) {
        return Ok(i.sw_if_index);
    }
    name.parse::<u32>()
        .ok()
        .filter(|&i| f.ifs().get(i).is_some())
        .ok_or_else(|| format!("unknown interface `{name}'"))
}

fn set_state(dp: &Dataplane, ifn: &str, st: &str) -> Result<String, String> {
    let s = sw(dp, ifn)?;
    let up = match st {
        "up" => true,
        "down" => false,
        _ => return Err(format!("expected up or down, got `{st}'")),
    };
    dp.fwd().set_admin_up(s, up).map_err(|e| e.to_string())?;
    Ok(String::new())
}

fn addr(dp: &Dataplane, ifn: &str, p: &str, add: bool) -> Result<String, String> {
    let s = sw(dp, ifn)?;
    let p = Prefix::parse(p).ok_or_else(|| format!("bad address `{p}'"))?;
    if add {
        addresses::add(dp, s, p)
    } else {
        addresses::del(dp, s, p)
    }
    .map_err(|e| e.to_string())?;
    Ok(String::new())
}

fn set_mtu(dp: &Dataplane, ifn: &str, mtu: &str) -> Result<String, String> {
    let s = sw(dp, ifn)?;
    let m: u16 = mtu.parse().map_err(|_| format!("bad mtu `{mtu}'"))?;
    dp.fwd().set_mtu(s, m).map_err(|e| e.to_string())?;
    Ok(String::new())
}

fn set_mac(dp: &Dataplane, ifn: &str, mac: &str) -> Result<String, String> {
    let s = sw(dp, ifn)?;
    let m = parse_mac(mac).ok_or_else(|| format!("bad mac `{mac}'"))?;
    dp.fwd().set_mac(s, m).map_err(|e| e.to_string())?;
    Ok(String::new())
}

/// VPP's `set interface unnumbered <if> use <donor>`: `ifn` takes `donor`'s addresses as
/// its own (calico's tunnels borrow the uplink's); `None` gives them back.
fn set_unnumbered(dp: &Dataplane, ifn: &str, donor: Option<&str>) -> Result<String, String> {
    let s = sw(dp, ifn)?;
    let d = donor.map(|d| sw(dp, d)).transpose()?;
    if d == Some(s) {
        return Err(format!("`{ifn}' cannot be unnumbered to itself"));
    }
    dp.fwd().set_unnumbered(s, d).map_err(|e| e.to_string())?;
    Ok(String::new())
}

fn set_rx_mode(dp: &Dataplane, mode: &str) -> Result<String, String> {
    let m = RxMode::parse(mode).ok_or_else(|| format!("bad rx-mode `{mode}'"))?;
    dp.set_rx_mode(m);
    for d in dp
        .devices
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values_mut()
    {
        d.rx_mode = m;
    }
    Ok(String::new())
}

fn set_table(dp: &Dataplane, ifn: &str, t: &str, af: Af) -> Result<String, String> {
    let s = sw(dp, ifn)?;
    let t: u32 = t.parse().map_err(|_| format!("bad table `{t}'"))?;
    tables::bind(dp, s, af, t).map_err(|e| e.to_string())?;
    Ok(String::new())
}

/// `ip table add|del <id>`: a delete drops the CLI's hold, as the API's does (the table goes
/// when nothing uses it any more).
fn table(dp: &Dataplane, t: &str, af: Af, add: bool) -> Result<String, String> {
    let t: u32 = t.parse().map_err(|_| format!("bad table `{t}'"))?;
    if add {
        tables::add(dp, af, t, "").map_err(|e| e.to_string())?;
    } else {
        tables::del(dp, af, t);
    }
    Ok(String::new())
}

/// VPP's `show ip table`: `[fib_index] table_id:<id> <name>` per table.
fn show_tables(dp: &Dataplane, af: Af) -> String {
    let f = dp.fwd();
    let mut s = String::new();
    for (t, name) in f.tables(af) {
        let fi = f.fib_index(af, t).unwrap_or(0);
        let _ = writeln!(s, "[{fi}] table_id:{t} {name}");
    }
    s
}

/// `ip[6] punt redirect [add|del] [rx <if>|rx all] [via <ip> <if> | via <if> | table <id>]`.
fn punt_redirect(dp: &Dataplane, af: Af, w: &[&str]) -> Result<String, String> {
    let (add, w) = match w {
        ["del", rest @ ..] => (false, rest),
        ["add", rest @ ..] => (true, rest),
        _ => (true, w),
    };
    let mut it = w.iter().copied();
    let (mut rx, mut paths) = (None, Vec::new());
    while let Some(tok) = it.next() {
        match tok {
            "rx" => match it.next().ok_or("rx what?")? {
                "all" => rx = None,
                ifn => rx = Some(sw(dp, ifn)?),
            },
            "table" => {
                let t = it.next().and_then(|t| t.parse().ok()).ok_or("bad table")?;
                paths.push(Path::lookup(t));
            }
            "via" => {
                let v = it.next().ok_or("via what?")?;
                if let Ok(nh) = v.parse::<IpAddr>() {
                    let tx = sw(dp, it.next().ok_or("via <ip> needs an interface")?)?;
                    paths.push(Path::via(nh, Some(tx)));
                } else {
                    paths.push(Path::attached(sw(dp, v)?));
                }
            }
            other => return Err(format!("unexpected `{other}'")),
        }
    }
    let r = if add {
        if paths.is_empty() {
            return Err("a punt redirect needs a path (via, table)".into());
        }
        punt::add(dp, punt::Redirect { af, rx, paths })
    } else {
        punt::del(dp, af, rx)
    };
    r.map_err(|e| e.to_string())?;
    Ok(String::new())
}

/// One line per redirect: `rx <if|all> -> <path>[, <path>]`.
fn show_punt_redirects(dp: &Dataplane, af: Af) -> String {
    let name = |sw: u32| {
        dp.fwd()
            .ifs()
            .get(sw)
            .map_or_else(|| sw.to_string(), |i| i.name.clone())
    };
    let mut s = String::new();
    for r in punt::list(dp, af, None) {
        let paths: Vec<String> = r
            .paths
            .iter()
            .map(|p| match (p.kind, p.next_hop, p.sw_if_index) {
                (PathKind::Lookup(t), _, _) => format!("lookup in table {t}"),
                (_, Some(nh), Some(tx)) => format!("via {nh} {}", name(tx)),
                (_, None, Some(tx)) => format!("via {}", name(tx)),
                _ => "drop".into(),
            })
            .collect();
        let rx = r.rx.map_or_else(|| "all".into(), name);
        let _ = writeln!(s, "rx {rx} -> {}", paths.join(", "));
    }
    s
}

fn route(dp: &Dataplane, w: &[&str], add: bool) -> Result<String, String> {
    let mut it = w.iter().copied().peekable();
    let p = it
        .next()
        .and_then(Prefix::parse)
        .ok_or("expected a prefix")?;
    let mut table = 0u32;
    let mut paths = Vec::new();
    while let Some(tok) = it.next() {
        match tok {
            "table" => table = it.next().and_then(|t| t.parse().ok()).ok_or("bad table")?,
            "drop" => paths.push(Path::special(PathKind::Drop)),
            "local" => paths.push(Path::special(PathKind::Local)),
            "unreachable" => paths.push(Path::special(PathKind::Unreachable)),
            "prohibit" => paths.push(Path::special(PathKind::Prohibit)),
            "via" => {
                let v = it.next().ok_or("via what?")?;
                if let Ok(nh) = v.parse::<IpAddr>() {
                    let ifs = match it.peek() {
                        Some(n) if *n != "via" && *n != "table" => {
                            Some(sw(dp, it.next().unwrap_or_default())?)
                        }
                        _ => None,
                    };
                    paths.push(Path::via(nh, ifs));
                } else {
                    paths.push(Path::attached(sw(dp, v)?));
                }
            }
            other => return Err(format!("unexpected `{other}'")),
        }
    }
    let change = if add {
        routes::Change::Set
    } else {
        routes::Change::Delete
    };
    routes::change(dp, table, p, paths, change).map_err(|e| e.to_string())?;
    Ok(String::new())
}

fn neighbor(dp: &Dataplane, w: &[&str]) -> Result<String, String> {
    let (del, w) = match w {
        ["del", rest @ ..] => (true, rest),
        _ => (false, w),
    };
    let [ifn, ip, rest @ ..] = w else {
        return Err("usage: set ip neighbor [del] <if> <ip> <mac>".into());
    };
    let s = sw(dp, ifn)?;
    let ip: IpAddr = ip.parse().map_err(|_| format!("bad ip `{ip}'"))?;
    if del {
        neighbours::del(dp, s, ip).map_err(|e| e.to_string())?;
    } else {
        let mac = rest
            .first()
            .and_then(|m| parse_mac(m))
            .ok_or("bad or missing mac")?;
        neighbours::add(dp, s, ip, mac, true).map_err(|e| e.to_string())?;
    }
    Ok(String::new())
}

fn next_mac(dp: &Dataplane) -> [u8; 6] {
    let n = dp.fwd().ifs().ifs.len() as u8;
    [0x02, 0xfe, 0x00, 0x00, 0x00, n]
}

fn create_pg(dp: &Dataplane, w: &[&str]) -> Result<String, String> {
    let [name, rest @ ..] = w else {
        return Err("create packet-generator interface <name> ...".into());
    };
    let mut count = None;
    let mut size = 64usize;
    let mut src: u32 = 0xc612_0002; // 198.18.0.2
    let mut dst = Prefix::V4(0xc613_0000, 24);
    let mut dst_mac = None;
    let mut it = rest.iter();
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("`{k}' needs a value"))?;
        match *k {
            "count" => count = Some(v.parse::<u64>().map_err(|_| "bad count")?),
            "size" => size = v.parse().map_err(|_| "bad size")?,
            "src" => {
                src = v
                    .parse::<std::net::Ipv4Addr>()
                    .map_err(|_| "bad src")?
                    .into()
            }
            "dst" => dst = Prefix::parse(v).filter(|p| !p.is_ip6()).ok_or("bad dst")?,
            "dst-mac" => dst_mac = Some(parse_mac(v).ok_or("bad dst-mac")?),
            _ => return Err(format!("unknown option `{k}'")),
        }
    }
    let mac = next_mac(dp);
    let s = dp
        .fwd()
        .interface_add(name, "pg", mac, true, 9000)
        .map_err(|e| e.to_string())?;
    let Prefix::V4(base, len) = dst.masked() else {
        unreachable!()
    };
    let span = 1u64 << (32 - len.max(16) as u32);
    let dsts: Vec<u32> = (0..span.min(65536))
        .map(|i| base.wrapping_add(i as u32))
        .collect();
    let mut stream = PgStream::ip4_udp(
        s,
        dst_mac.unwrap_or(mac),
        [2, 0, 0, 0, 0, 1],
        src,
        &dsts,
        size,
    );
    if let Some(c) = count {
        stream = stream.limit(c);
    }
    dp.attach(
        s,
        "pg",
        format!(
            "{} packets of {size} bytes to {dst}",
            count.map_or("unlimited".into(), |c| c.to_string())
        ),
        vec![],
        |_| Some(Box::new(NullTx::default())),
    );
    // Streams start on `packet-generator enable`, once the interfaces are configured.
    dp.pending_pg
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((s, Box::new(stream)));
    Ok(format!("{name}\n"))
}

fn pg_enable(dp: &Dataplane) -> Result<String, String> {
    let streams: Vec<_> =
        std::mem::take(&mut *dp.pending_pg.lock().unwrap_or_else(|e| e.into_inner()));
    let n = dp.workers.len();
    for (s, q) in streams {
        let w = s as usize % n;
        dp.workers[w].send(crate::daemon::WorkerCmd::AddRx(q));
        if let Some(d) = dp
            .devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&s)
        {
            d.rx_placement = vec![(0, w)];
        }
    }
    Ok(String::new())
}

/// Stop every running stream. Unlike VPP's, a stopped stream is gone (its queue leaves the
/// worker); `create packet-generator interface` makes a new one.
fn pg_disable(dp: &Dataplane) -> Result<String, String> {
    let mut devices = dp.devices.lock().unwrap_or_else(|e| e.into_inner());
    for d in devices.values_mut().filter(|d| d.kind == "pg") {
        for (_, w) in d.rx_placement.drain(..) {
            dp.workers[w].send(crate::daemon::WorkerCmd::RemoveRx(d.sw_if_index));
        }
    }
    Ok(String::new())
}

fn create_null(dp: &Dataplane, name: &str) -> Result<String, String> {
    let mac = next_mac(dp);
    let s = dp
        .fwd()
        .interface_add(name, "null", mac, true, 9000)
        .map_err(|e| e.to_string())?;
    dp.attach(s, "null", "discards what it is sent".into(), vec![], |_| {
        Some(Box::new(NullTx::default()))
    });
    Ok(format!("{name}\n"))
}

fn create_loopback(dp: &Arc<Dataplane>, w: &[&str]) -> Result<String, String> {
    let mac = match w {
        [] => next_mac(dp),
        ["mac", m] => parse_mac(m).ok_or_else(|| format!("bad mac `{m}'"))?,
        _ => return Err("create loopback interface [mac <mac>]".into()),
    };
    let (_, name) =
        crate::service::interfaces::create_loopback(dp, mac).map_err(|e| e.to_string())?;
    Ok(format!("{name}\n"))
}

fn create_pcap(dp: &Dataplane, w: &[&str]) -> Result<String, String> {
    let [name, rest @ ..] = w else {
        return Err("create pcap interface <name> [rx <file>] [tx <file>]".into());
    };
    let (mut rx, mut tx) = (None, None);
    let mut it = rest.iter();
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("`{k}' needs a value"))?;
        match *k {
            "rx" => rx = Some(std::path::PathBuf::from(v)),
            "tx" => tx = Some(std::path::PathBuf::from(v)),
            _ => return Err(format!("unknown option `{k}'")),
        }
    }
    let mac = next_mac(dp);
    let s = dp
        .fwd()
        .interface_add(name, "pcap", mac, true, 9000)
        .map_err(|e| e.to_string())?;
    let rxq = match &rx {
        Some(p) => match PcapRx::open(s, p) {
            Ok(q) => vec![Box::new(q) as Box<dyn rvpp_dataplane::device::RxQueue>],
            Err(e) => {
                let _ = dp.fwd().interface_del(s);
                return Err(format!("{}: {e}", p.display()));
            }
        },
        None => vec![],
    };
    let n = dp.workers.len();
    dp.attach(s, "pcap", format!("rx {:?} tx {:?}", rx, tx), rxq, |w| {
        tx.as_ref().map(|p| {
            let p = if n > 1 {
                p.with_extension(format!("w{w}.pcap"))
            } else {
                p.clone()
            };
            Box::new(PcapTx::new(p, LINKTYPE_ETHERNET)) as Box<dyn rvpp_dataplane::device::TxQueue>
        })
    });
    Ok(format!("{name}\n"))
}

fn trace_add(dp: &Dataplane, node: &str, n: &str) -> Result<String, String> {
    let n: u32 = n.parse().map_err(|_| format!("bad count `{n}'"))?;
    let idx = dp
        .graph_names
        .iter()
        .position(|x| *x == node)
        .ok_or_else(|| format!("unknown node `{node}'"))?;
    for w in &dp.workers {
        w.stats.trace_budget[idx].store(n, Ordering::Relaxed);
    }
    Ok(String::new())
}

fn pcap_on(dp: &Dataplane, w: &[&str]) -> Result<String, String> {
    let (mut rx, mut tx, mut drop) = (false, false, false);
    let mut max = 100u32;
    let mut sw = u32::MAX;
    let mut file = "rvpp_capture.pcap".to_string();
    let mut it = w.iter();
    while let Some(k) = it.next() {
        match *k {
            "rx" => rx = true,
            "tx" => tx = true,
            "drop" => drop = true,
            "max" => {
                max = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("max needs a number")?
            }
            "intfc" => {
                let v = it.next().ok_or("intfc needs an interface")?;
                sw = if *v == "any" {
                    u32::MAX
                } else {
                    self::sw(dp, v)?
                };
            }
            "file" => file = it.next().ok_or("file needs a name")?.to_string(),
            other => return Err(format!("unknown option `{other}'")),
        }
    }
    if !(rx || tx || drop) {
        return Err("pcap trace: say rx, tx and/or drop".into());
    }
    if file.contains('/') && !file.starts_with("/tmp/") {
        return Err("pcap trace: the file goes to /tmp; give a plain name".into());
    }
    let path = std::path::Path::new("/tmp").join(file.trim_start_matches("/tmp/"));
    for wk in &dp.workers {
        let c = &wk.stats.capture;
        c.packets.lock().unwrap_or_else(|e| e.into_inner()).clear();
        c.sw_if_index.store(sw, Ordering::Relaxed);
        c.remaining.store(max, Ordering::Relaxed);
        c.rx.store(rx, Ordering::Relaxed);
        c.tx.store(tx, Ordering::Relaxed);
        c.drop.store(drop, Ordering::Relaxed);
    }
    *dp.pcap.lock().unwrap_or_else(|e| e.into_inner()) = Some((path, max));
    Ok(String::new())
}

fn pcap_status(dp: &Dataplane) -> String {
    match &*dp.pcap.lock().unwrap_or_else(|e| e.into_inner()) {
        None => "pcap trace is off\n".into(),
        Some((p, max)) => {
            let n: usize = dp
                .workers
                .iter()
                .map(|w| {
                    w.stats
                        .capture
                        .packets
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .len()
                })
                .sum();
            format!("capturing to {}: {n} of {max} packets\n", p.display())
        }
    }
}

fn pcap_off(dp: &Dataplane) -> Result<String, String> {
    let Some((path, max)) = dp.pcap.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return Err("pcap trace is not on".into());
    };
    let mut all = Vec::new();
    for wk in &dp.workers {
        let c = &wk.stats.capture;
        c.rx.store(false, Ordering::Relaxed);
        c.tx.store(false, Ordering::Relaxed);
        c.drop.store(false, Ordering::Relaxed);
        all.append(&mut c.packets.lock().unwrap_or_else(|e| e.into_inner()));
    }
    all.sort_by_key(|p| p.0);
    all.truncate(max as usize);
    let mut w = rvpp_drivers::pcap::PcapWriter::new(LINKTYPE_ETHERNET);
    for (t, d) in &all {
        w.push(
            (t / 1_000_000_000) as u32,
            ((t % 1_000_000_000) / 1000) as u32,
            d,
        );
    }
    w.save(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(format!(
        "Write {} packets to {}, and stop capture...\n",
        all.len(),
        path.display()
    ))
}

fn clear(dp: &Dataplane, runtime: bool, errors: bool, ifs: bool) -> Result<String, String> {
    let mut b = dp.baseline.lock().unwrap_or_else(|e| e.into_inner());
    for (wi, w) in dp.workers.iter().enumerate() {
        if runtime {
            for (ni, c) in w.stats.nodes.iter().enumerate() {
                b.nodes
                    .insert((wi, ni), [c.calls.get(), c.vectors.get(), c.clocks.get()]);
            }
        }
        if errors {
            for (ei, c) in w.stats.errors.iter().enumerate() {
                b.errors.insert((wi, ei), c.get());
            }
        }
        if ifs {
            for (ii, c) in w.stats.ifs.iter().enumerate() {
                b.ifs.insert(
                    (wi, ii),
                    [
                        c.rx_packets.get(),
                        c.rx_bytes.get(),
                        c.tx_packets.get(),
                        c.tx_bytes.get(),
                        c.drops.get(),
                        c.tx_errors.get(),
                    ],
                );
            }
        }
    }
    Ok(String::new())
}

fn show_threads(dp: &Dataplane) -> String {
    let mut s = String::from("ID     Name                Type        LWP     Sched Policy (Priority)  lcore  Core   Socket State\n");
    let _ = writeln!(
        s,
        "{:<6} {:<19} {:<11} {:<7} {:<24} {:<6} {:<6} {:<6}",
        0,
        "vpp_main",
        "",
        std::process::id(),
        "other (0)",
        "",
        "",
        0
    );
    for w in &dp.workers {
        if w.thread == 0 {
            continue;
        }
        let lc = w.stats.lcore.load(Ordering::Relaxed);
        let lc = if lc == u32::MAX {
            String::new()
        } else {
            lc.to_string()
        };
        let _ = writeln!(
            s,
            "{:<6} {:<19} {:<11} {:<7} {:<24} {:<6} {:<6} {:<6}",
            w.thread, w.name, "workers", "", "other (0)", lc, lc, 0
        );
    }
    s
}

/// Per-node runtime counters, as VPP's `show runtime` prints them (Clocks = clocks per packet).
pub fn show_runtime(dp: &Dataplane) -> String {
    let b = dp
        .baseline
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut s = String::new();
    let secs = dp.started.elapsed().as_secs_f64();
    for (wi, w) in dp.workers.iter().enumerate() {
        let lc = w.stats.lcore.load(Ordering::Relaxed);
        let lc = if lc == u32::MAX {
            "any".to_string()
        } else {
            lc.to_string()
        };
        let _ = writeln!(s, "Thread {} {} (lcore {lc})", w.thread, w.name);
        let _ = writeln!(
            s,
            "Time {secs:.1}, {} main loops, {} idle; tsc {:.2} GHz",
            w.stats.loops.get(),
            w.stats.idle_loops.get(),
            tsc_hz() as f64 / 1e9
        );
        let _ = writeln!(
            s,
            "{:<32}{:>10}{:>16}{:>16}{:>10}{:>14}{:>14}",
            "Name", "State", "Calls", "Vectors", "Suspends", "Clocks", "Vectors/Call"
        );
        for (ni, c) in w.stats.nodes.iter().enumerate() {
            let base = b.nodes.get(&(wi, ni)).copied().unwrap_or([0; 3]);
            // Counters only grow and the baseline was read from them, so these cannot go below
            // zero; saturating anyway, so a reader can never panic the control thread.
            let calls = c.calls.get().saturating_sub(base[0]);
            let vectors = c.vectors.get().saturating_sub(base[1]);
            let clocks = c.clocks.get().saturating_sub(base[2]);
            if calls == 0 {
                continue;
            }
            let cpp = if vectors > 0 {
                clocks as f64 / vectors as f64
            } else {
                clocks as f64 / calls as f64
            };
            let _ = writeln!(
                s,
                "{:<32}{:>10}{:>16}{:>16}{:>10}{:>14.2e}{:>14.2}",
                dp.graph_names[ni],
                "active",
                calls,
                vectors,
                0,
                cpp,
                vectors as f64 / calls as f64
            );
        }
        s.push('\n');
    }
    s
}

/// Every non-zero error counter, summed over threads.
pub fn show_errors(dp: &Dataplane) -> String {
    let b = dp
        .baseline
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut s = format!(
        "{:>10}  {:<28}  {:<60}  {}\n",
        "Count", "Node", "Reason", "Severity"
    );
    for (ei, (node, reason)) in dp.error_names.iter().enumerate() {
        let mut total = 0;
        for (wi, w) in dp.workers.iter().enumerate() {
            let base = b.errors.get(&(wi, ei)).copied().unwrap_or(0);
            total += w.stats.errors[ei].get().saturating_sub(base);
        }
        if total > 0 {
            let sev = error_severity(reason);
            let _ = writeln!(s, "{total:>10}  {node:<28}  {reason:<60}  {sev}");
        }
    }
    s
}

/// The severity `show errors` prints for an error counter: "info" for counters of things done
/// rather than dropped (sent, answered, learned, punted, counted, created, translated, the
/// tunnels' and SRv6's encapsulated / decapsulated / processed), else "error".
pub fn error_severity(reason: &str) -> &'static str {
    if [
        "sent",
        "answered",
        "learned",
        "punted",
        "counted",
        "created",
        "translated",
        "encapsulated",
        "decapsulated",
        "packets processed",
    ]
    .iter()
    .any(|w| reason.contains(w))
    {
        "info"
    } else {
        "error"
    }
}

fn show_trace(dp: &Dataplane) -> String {
    let mut s = String::new();
    for w in &dp.workers {
        let t = w.stats.traces.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            s,
            "------------------- Start of thread {} {} -------------------",
            w.thread, w.name
        );
        if t.is_empty() {
            s.push_str("No packets in trace buffer\n");
        }
        for (i, r) in t.iter().enumerate() {
            let _ = writeln!(s, "Packet {}\n", i + 1);
            for l in &r.lines {
                let _ = writeln!(s, "{l}");
            }
            s.push('\n');
        }
    }
    s
}

fn if_counters(dp: &Dataplane, sw: u32) -> [u64; 6] {
    let b = dp
        .baseline
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut t = [0u64; 6];
    for (wi, w) in dp.workers.iter().enumerate() {
        if let Some(c) = w.stats.ifs.get(sw as usize) {
            let base = b.ifs.get(&(wi, sw as usize)).copied().unwrap_or([0; 6]);
            let v = [
                c.rx_packets.get(),
                c.rx_bytes.get(),
                c.tx_packets.get(),
                c.tx_bytes.get(),
                c.drops.get(),
                c.tx_errors.get(),
            ];
            for k in 0..6 {
                t[k] += v[k] - base[k];
            }
        }
    }
    t
}

fn show_interfaces(dp: &Dataplane) -> String {
    let f = dp.fwd();
    let mut s = format!(
        "{:<28}{:>6}{:>8}  {:<22}{:<16}{:>14}\n",
        "Name", "Idx", "State", "MTU (L3/IP4/IP6/MPLS)", "Counter", "Count"
    );
    for i in f.ifs().ifs.iter().flatten() {
        let c = if_counters(dp, i.sw_if_index);
        let st = if i.admin_up { "up" } else { "down" };
        let mtu = format!("{}/0/0/0", i.mtu);
        let mut rows = vec![];
        if c[0] > 0 {
            rows.push(("rx packets", c[0]));
            rows.push(("rx bytes", c[1]));
        }
        if c[2] > 0 {
            rows.push(("tx packets", c[2]));
            rows.push(("tx bytes", c[3]));
        }
        if c[4] > 0 {
            rows.push(("drops", c[4]));
        }
        if c[5] > 0 {
            rows.push(("tx-error", c[5]));
        }
        let first = rows.first().copied();
        let _ = writeln!(
            s,
            "{:<28}{:>6}{:>8}  {:<22}{:<16}{:>14}",
            i.name,
            i.sw_if_index,
            st,
            mtu,
            first.map_or("", |r| r.0),
            first.map_or(String::new(), |r| r.1.to_string())
        );
        for r in rows.iter().skip(1) {
            let _ = writeln!(s, "{:<66}{:<16}{:>14}", "", r.0, r.1);
        }
    }
    s
}

fn show_int_addr(dp: &Dataplane) -> String {
    let f = dp.fwd();
    let mut s = String::new();
    for i in f.ifs().ifs.iter().flatten() {
        let _ = writeln!(s, "{} ({})", i.name, if i.admin_up { "up" } else { "dn" });
        for (a, l) in &i.ip4_addrs {
            let _ = writeln!(s, "  L3 {}/{l}", rvpp_dataplane::wire::fmt_ip4(*a));
        }
        for (a, l) in &i.ip6_addrs {
            let _ = writeln!(s, "  L3 {}/{l}", rvpp_dataplane::wire::fmt_ip6(*a));
        }
        if let Some(u) = i.unnumbered_of {
            let _ = writeln!(s, "  unnumbered, use sw_if_index {u}");
        }
    }
    s
}

fn show_hardware(dp: &Dataplane) -> String {
    let f = dp.fwd();
    let devs = dp.devices.lock().unwrap_or_else(|e| e.into_inner());
    let mut s = format!("{:<28}{:>6}{:>8}  {}\n", "Name", "Idx", "Link", "Hardware");
    for i in f.ifs().ifs.iter().flatten() {
        let link = if i.link_up { "up" } else { "down" };
        let _ = writeln!(
            s,
            "{:<28}{:>6}{:>8}  {}",
            i.name, i.sw_if_index, link, i.dev_type
        );
        let _ = writeln!(s, "  Ethernet address {}", fmt_mac(&i.mac));
        if !i.tag.is_empty() {
            let _ = writeln!(s, "  tag {}", i.tag);
        }
        if let Some(d) = devs.get(&i.sw_if_index) {
            if !d.detail.is_empty() {
                let _ = writeln!(s, "  {}", d.detail);
            }
            for (q, w) in &d.rx_placement {
                let _ = writeln!(
                    s,
                    "  rx queue {q} on thread {} ({}), mode {}",
                    dp.workers[*w].thread,
                    dp.workers[*w].name,
                    d.rx_mode.name()
                );
            }
            if let crate::service::Driver::Linux(l) = &d.driver {
                for (q, st) in l.queue_stats.iter().enumerate() {
                    queue_counters(&mut s, q, st);
                }
            }
        }
    }
    s
}

/// A driver queue's counters: what it dropped before the graph, and af_packet's merged frames.
fn queue_counters(s: &mut String, q: usize, st: &rvpp_drivers::netdev::QueueStats) {
    use rvpp_drivers::netdev::QueueStats as Q;
    let _ = writeln!(
        s,
        "  queue {q}: rx packets {} bytes {}, rx dropped by the kernel (ring) {}, no buffers {}, \
         truncated {}, errors {}; tx packets {} bytes {}, udp gso frames {}, errors {}, full {}",
        Q::get(&st.rx_packets),
        Q::get(&st.rx_bytes),
        Q::get(&st.rx_kernel_drops),
        Q::get(&st.rx_no_buffers),
        Q::get(&st.rx_truncated),
        Q::get(&st.rx_errors),
        Q::get(&st.tx_packets),
        Q::get(&st.tx_bytes),
        Q::get(&st.tx_udp_gso_frames),
        Q::get(&st.tx_errors),
        Q::get(&st.tx_full),
    );
}

/// rvpp's own: what the FIBs hold (the soak samples it).
fn show_fib_memory(dp: &Dataplane) -> String {
    let m = dp.fwd().fib_memory();
    format!(
        "ip4: {} routes, {} table bytes (read by workers), {} writer bytes\nip6: {} routes\n",
        m.ip4_routes, m.ip4_table_bytes, m.ip4_writer_bytes, m.ip6_routes
    )
}

fn show_fib(dp: &Dataplane, af: Af, rest: &[&str]) -> String {
    let f = dp.fwd();
    // `show ip fib [table N] [<prefix>]`: a prefix shows the entry that covers it best.
    let want: Option<u32> = match rest {
        ["table", t, ..] => t.parse().ok(),
        _ => None,
    };
    let at = rest.iter().rev().find_map(|w| Prefix::parse(w));
    let mut s = String::new();
    for (tid, name) in f.tables(af) {
        if want.is_some_and(|w| w != tid) {
            continue;
        }
        let mut routes = f.routes(af, tid);
        let in_table = routes.len();
        if let Some(at) = at.filter(|a| a.af() == af) {
            routes = routes
                .into_iter()
                .filter(|(p, _)| covers(*p, at))
                .max_by_key(|(p, _)| p.prefix_len())
                .into_iter()
                .collect();
        }
        let _ = writeln!(
            s,
            "{name}, fib_index:{}, flow hash:[src dst sport dport proto] routes:{}",
            f.fib_index(af, tid).unwrap_or(0),
            in_table
        );
        for (p, r) in routes.iter().take(10_000) {
            let lb = f.fwd().lb(r.lb);
            let _ = writeln!(
                s,
                "{p}\n  [lb:{} buckets:{}] src:{}",
                r.lb,
                lb.n_buckets,
                r.source.name()
            );
            for &ai in &lb.buckets[..lb.n_buckets as usize] {
                let a = f.fwd().adj(ai);
                let ifname = f.ifs().get(a.sw_if_index).map_or("", |i| i.name.as_str());
                let what = match a.kind {
                    AdjKind::Rewrite => format!(
                        "ipv{}-rewrite {} via {}",
                        if a.is_ip6 { 6 } else { 4 },
                        ifname,
                        fmt_nh(a.next_hop, a.is_ip6)
                    ),
                    AdjKind::Glean => format!("glean {ifname}"),
                    AdjKind::Incomplete => format!(
                        "arp/nd incomplete {} via {}",
                        ifname,
                        fmt_nh(a.next_hop, a.is_ip6)
                    ),
                    AdjKind::Local => "local (receive)".into(),
                    AdjKind::Drop => "drop".into(),
                    AdjKind::Unreachable => "unreachable".into(),
                    AdjKind::Prohibit => "prohibit".into(),
                    AdjKind::Punt => "punt".into(),
                    AdjKind::Lookup => format!("lookup in fib {}", a.lookup_fib),
                    AdjKind::Pbl => format!("pbl client {}", a.lookup_fib),
                    AdjKind::SrPolicy => format!("sr policy index {}", a.lookup_fib),
                    AdjKind::SrLocalsid => format!("sr localsid index {}", a.lookup_fib),
                };
                let _ = writeln!(s, "    [@{ai}]: {what}");
            }
            // The sources that wait under it, best first (no " via ": scripts read those
            // lines as the load-balance's next hops).
            for (src, paths) in r.shadowed.as_slice() {
                let paths: Vec<String> = paths.iter().map(|x| fmt_path(&f, x)).collect();
                let _ = writeln!(s, "  src:{} waiting: {}", src.name(), paths.join(", "));
            }
        }
        if routes.len() > 10_000 {
            let _ = writeln!(s, "... {} more", routes.len() - 10_000);
        }
    }
    s
}

/// Prefix `p` holds every address of `q`.
fn covers(p: Prefix, q: Prefix) -> bool {
    p.prefix_len() <= q.prefix_len()
        && match (p, q) {
            (Prefix::V4(a, l), Prefix::V4(b, _)) => b & mask4(l) == a,
            (Prefix::V6(a, l), Prefix::V6(b, _)) => b & mask6(l) == a,
            _ => false,
        }
}

/// A route's path as `show ip fib` lists a waiting source's.
fn fmt_path(f: &Forwarding, x: &Path) -> String {
    let ifname = x.sw_if_index.map(|sw| {
        f.ifs()
            .get(sw)
            .map_or(format!("if {sw}"), |i| i.name.clone())
    });
    match (x.kind, x.next_hop, ifname) {
        (PathKind::Normal, Some(nh), Some(i)) => format!("{nh} {i}"),
        (PathKind::Normal, Some(nh), None) => nh.to_string(),
        (PathKind::Normal, None, Some(i)) => format!("attached {i}"),
        (PathKind::Normal, None, None) => "none".into(),
        (PathKind::Local, ..) => "local".into(),
        (PathKind::Drop, ..) => "drop".into(),
        (PathKind::Unreachable, ..) => "unreachable".into(),
        (PathKind::Prohibit, ..) => "prohibit".into(),
        (PathKind::Lookup(t), ..) => format!("lookup in table {t}"),
        (PathKind::SrPolicy(i), ..) => format!("sr policy index {i}"),
        (PathKind::SrLocalsid(i), ..) => format!("sr localsid index {i}"),
    }
}

fn fmt_nh(nh: u128, v6: bool) -> String {
    if v6 {
        rvpp_dataplane::wire::fmt_ip6(nh).to_string()
    } else {
        rvpp_dataplane::wire::fmt_ip4(nh as u32).to_string()
    }
}

fn show_neighbors(dp: &Dataplane) -> String {
    let f = dp.fwd();
    let mut s = format!(
        "{:<24}{:<8}{:<20}{:<20}\n",
        "IP", "Flags", "Ethernet", "Interface"
    );
    for n in f.neighbors() {
        let ifname = f
            .ifs()
            .get(n.sw_if_index)
            .map_or("?".into(), |i| i.name.clone());
        let _ = writeln!(
            s,
            "{:<24}{:<8}{:<20}{:<20}",
            n.ip,
            if n.is_static { "S" } else { "D" },
            fmt_mac(&n.mac),
            ifname
        );
    }
    s
}

fn show_buffers(dp: &Dataplane) -> String {
    let p = &dp.pool;
    format!(
        "Pool Name            Index NUMA  Size  Data Size  Total  Avail  Cached   Used  \ndefault-numa-0         0     0   {}  {}       {}  {}  {}  {}\nbacking: {}, page size {} KiB ({}), double frees caught: {}\n",
        p.stride(),
        p.data_size(),
        p.capacity(),
        p.free_count(),
        p.cached_count(),
        p.in_use(),
        p.backing().name(),
        p.backing().page_size() >> 10,
        p.backing_reason(),
        p.double_frees()
    )
}

#[cfg(test)]
mod tests {
    use super::error_severity;

    #[test]
    fn severity_tells_drops_from_work_done() {
        for done in [
            "cnat sessions created",
            "cnat snat sessions created",
            "cnat icmp errors translated",
            "cnat non-first fragments translated as their first fragment",
            "cnat flows a new SYN re-opened (closing or half expired; counted as created too)",
            "cnat vip without backends (answered port unreachable, as kube-proxy)",
            "sr policy packets encapsulated",
            "sr localsid packets decapsulated",
            "vxlan packets decapsulated",
        ] {
            assert_eq!(error_severity(done), "info", "{done}");
        }
        for drop in [
            "cnat session table full",
            "cnat source ports exhausted",
            "cnat truncated transport header",
            "sr localsid: bad last entry or segments left (dropped, ICMPv6 parameter problem)",
        ] {
            assert_eq!(error_severity(drop), "error", "{drop}");
        }
    }
}
