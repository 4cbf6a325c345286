//! Unit tests of the writer: families, per-family tables, path preference, per-protocol MTUs.

use super::*;

/// The interfaces a route's load-balance sends to.
fn lb_ifs(f: &Forwarding, p: Prefix) -> Vec<u32> {
    let r = f.route_get(0, p).unwrap();
    let lb = f.fwd().lb(r.lb);
    let mut v: Vec<u32> = lb.buckets[..lb.n_buckets as usize]
        .iter()
        .map(|&a| f.fwd().adj(a).sw_if_index)
        .collect();
    v.dedup();
    v
}

/// A writer with ethernet interfaces of these MTUs.
fn with_ifs(mtus: &[u16]) -> (Forwarding, Vec<u32>) {
    let mut f = Forwarding::new(Shared::new());
    let ifs = (0..mtus.len())
        .map(|i| {
            let name = format!("pg{i}");
            f.interface_add(&name, "pg", [2, 0, 0, 0, 0, i as u8], true, mtus[i])
                .unwrap()
        })
        .collect();
    (f, ifs)
}

#[test]
fn path_preference_picks_the_best_usable_paths() {
    let (mut f, ifs) = with_ifs(&[1500, 1500]);
    let (a, b) = (ifs[0], ifs[1]);
    f.address_add(a, Prefix::parse("198.18.0.1/24").unwrap())
        .unwrap();
    f.address_add(b, Prefix::parse("198.19.0.1/24").unwrap())
        .unwrap();
    let (nha, nhb): (IpAddr, IpAddr) =
        ("198.18.0.2".parse().unwrap(), "198.19.0.2".parse().unwrap());
    let p = Prefix::parse("10.0.0.0/8").unwrap();
    let primary = Path::via(nha, Some(a));
    let backup = Path {
        preference: 1,
        ..Path::via(nhb, Some(b))
    };
    f.route_add(0, p, vec![backup, primary]).unwrap();
    assert_eq!(
        lb_ifs(&f, p),
        vec![a],
        "only the preference-0 path forwards"
    );
    assert_eq!(f.route_get(0, p).unwrap().paths.len(), 2, "both paths kept");
    // Same preference: ECMP.
    let peer = Path::via(nhb, Some(b));
    f.route_add(0, p, vec![primary, peer]).unwrap();
    assert_eq!(lb_ifs(&f, p), vec![a, b]);
    // The primary goes: the backup takes over.
    f.route_add(0, p, vec![backup]).unwrap();
    assert_eq!(lb_ifs(&f, p), vec![b]);
    // A primary that cannot resolve (a recursive next hop with no route) leaves the
    // backup forwarding.
    let unresolved = Path::via("203.0.113.9".parse().unwrap(), None);
    f.route_add(0, p, vec![unresolved, backup]).unwrap();
    assert_eq!(lb_ifs(&f, p), vec![b]);
}

#[test]
fn protocol_mtus_apply_per_family() {
    let (mut f, ifs) = with_ifs(&[9000]);
    let a = ifs[0];
    let nh4: IpAddr = "198.18.0.2".parse().unwrap();
    let nh6: IpAddr = "fd00::2".parse().unwrap();
    let (p4, p6) = (
        Prefix::parse("10.0.0.0/8").unwrap(),
        Prefix::parse("fd01::/64").unwrap(),
    );
    f.route_add(0, p4, vec![Path::via(nh4, Some(a))]).unwrap();
    f.route_add(0, p6, vec![Path::via(nh6, Some(a))]).unwrap();
    let mtu = |f: &Forwarding, p: Prefix| {
        let r = f.route_get(0, p).unwrap();
        f.fwd().adj(f.fwd().lb(r.lb).buckets[0]).mtu
    };
    assert_eq!((mtu(&f, p4), mtu(&f, p6)), (9000, 9000));
    f.set_protocol_mtu(a, 1400, 0).unwrap();
    assert_eq!((mtu(&f, p4), mtu(&f, p6)), (1400, 9000), "ip6 follows L3");
    f.set_protocol_mtu(a, 0, 1280).unwrap();
    f.set_mtu(a, 1500).unwrap();
    assert_eq!((mtu(&f, p4), mtu(&f, p6)), (1500, 1280));
    // An adjacency made afterwards takes its family's MTU too.
    let p6b = Prefix::parse("fd02::/64").unwrap();
    f.route_add(0, p6b, vec![Path::via("fd00::3".parse().unwrap(), Some(a))])
        .unwrap();
    assert_eq!(mtu(&f, p6b), 1280);
    assert!(f.set_protocol_mtu(a, 60, 0).is_err());
}

#[test]
fn families_agree_with_prefixes() {
    for s in ["198.18.0.1/24", "fd00::1/64"] {
        let p = Prefix::parse(s).unwrap();
        let ip: IpAddr = s.split('/').next().unwrap().parse().unwrap();
        assert_eq!(Af::of(&ip), p.af());
        assert_eq!(Af::from_is_ip6(p.is_ip6()), p.af());
        assert_eq!(p.af().max_len(), p.max_len());
        assert_eq!(Prefix::host_of(ip), p.host());
    }
}

#[test]
fn tables_are_per_family() {
    let (mut f, ifs) = with_ifs(&[1500]);
    assert_eq!(f.table_add(Af::Ip6, 7, "").unwrap(), 1);
    assert_eq!(
        f.tables(Af::Ip6),
        vec![(0, "ipv6-VRF:0".to_string()), (7, "ipv6-VRF:7".to_string())]
    );
    assert_eq!(f.tables(Af::Ip4).len(), 1);
    assert_eq!(f.fib_index(Af::Ip4, 7), None);
    // An IPv6 address in table 7 puts its connected and local routes there, not in IPv4.
    let v4_routes = f.route_count(Af::Ip4);
    f.set_table(ifs[0], Af::Ip6, 7).unwrap();
    f.address_add(ifs[0], Prefix::parse("fd00::1/64").unwrap())
        .unwrap();
    assert_eq!(f.routes(Af::Ip6, 7).len(), 2);
    assert_eq!(f.route_count(Af::Ip4), v4_routes);
    assert_eq!(f.table_del(Af::Ip6, 7), Err(FwdError::TableInUse));
    assert_eq!(
        f.set_table(ifs[0], Af::Ip6, 0),
        Err(FwdError::AddressesPresent)
    );
}

fn learn4(f: &Forwarding, sw: u32, last: u8, mac_last: u8) {
    let ev = Learned::Ip4Neighbor {
        sw_if_index: sw,
        ip: u32::from_be_bytes([198, 18, 0, last]),
        mac: [2, 0, 0, 0, 0, mac_last],
    };
    f.shared.learned.push(ev).unwrap();
}

fn learned_ips(f: &Forwarding) -> Vec<IpAddr> {
    f.neighbors()
        .iter()
        .filter(|n| !n.is_static)
        .map(|n| n.ip)
        .collect()
}

#[test]
fn learned_neighbours_keep_to_the_limit_and_recycle_the_oldest() {
    use std::time::{Duration, Instant};
    let (mut f, ifs) = with_ifs(&[1500]);
    f.address_add(ifs[0], Prefix::parse("198.18.0.1/24").unwrap())
        .unwrap();
    let c = NeighborConfig {
        max_number: 2,
        max_age: 0,
        recycle: false,
    };
    f.set_neighbor_config(Af::Ip4, c);
    let t0 = Instant::now();
    for (i, last) in [5u8, 6, 7].into_iter().enumerate() {
        learn4(&f, ifs[0], last, last);
        f.apply_learned_at(t0 + Duration::from_secs(i as u64));
    }
    assert_eq!(learned_ips(&f).len(), 2, "the third is refused");
    assert_eq!(f.neighbor_counts().refused, 1);
    // A static entry does not count against the limit.
    f.neighbor_add(ifs[0], "198.18.0.50".parse().unwrap(), [2; 6], true)
        .unwrap();
    // .5 confirmed again: .6 is now the oldest, and recycling replaces it.
    learn4(&f, ifs[0], 5, 5);
    f.apply_learned_at(t0 + Duration::from_secs(10));
    f.set_neighbor_config(Af::Ip4, NeighborConfig { recycle: true, ..c });
    learn4(&f, ifs[0], 7, 7);
    f.apply_learned_at(t0 + Duration::from_secs(11));
    let mut got = learned_ips(&f);
    got.sort();
    let want: Vec<IpAddr> = ["198.18.0.5", "198.18.0.7"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    assert_eq!(got, want);
    assert_eq!(f.neighbor_counts().recycled, 1);
}

#[test]
fn learned_neighbours_are_probed_at_their_age_and_go_if_silent() {
    use std::time::{Duration, Instant};
    let (mut f, ifs) = with_ifs(&[1500]);
    f.address_add(ifs[0], Prefix::parse("198.18.0.1/24").unwrap())
        .unwrap();
    let c = NeighborConfig {
        max_age: 30,
        ..Default::default()
    };
    f.set_neighbor_config(Af::Ip4, c);
    let t0 = Instant::now();
    learn4(&f, ifs[0], 5, 5);
    learn4(&f, ifs[0], 6, 6);
    f.apply_learned_at(t0);
    assert!(f.neighbor_age(t0 + Duration::from_secs(29)).is_empty());
    let probes = f.neighbor_age(t0 + Duration::from_secs(30));
    assert_eq!(probes.len(), 2);
    assert!(
        f.neighbor_age(t0 + Duration::from_secs(31)).is_empty(),
        "one probe each"
    );
    // The probe is a unicast ARP request from our address to the neighbour's MAC.
    let (tx, frame) = f.probe_frame(&probes[0]).unwrap();
    assert_eq!(tx, ifs[0]);
    assert_eq!(frame[..6], probes[0].mac);
    assert_eq!(frame[12..14], [0x08, 0x06]);
    assert_eq!(frame[20..22], [0, 1], "a request");
    assert_eq!(frame[28..32], [198, 18, 0, 1], "from our address");
    // .5 answers; .6 stays silent and goes after the wait.
    learn4(&f, ifs[0], 5, 5);
    f.apply_learned_at(t0 + Duration::from_secs(31));
    f.neighbor_age(t0 + Duration::from_secs(30) + PROBE_WAIT);
    assert_eq!(
        learned_ips(&f),
        vec!["198.18.0.5".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(f.neighbor_counts().aged, 1);
    // Its host route went with it: the next packet resolves again.
    let host = Prefix::parse("198.18.0.6/32").unwrap();
    assert!(f.route_get(0, host).is_none());
}

#[test]
fn a_route_via_the_limited_broadcast_needs_no_resolution() {
    let (mut f, ifs) = with_ifs(&[1500]);
    let p = Prefix::parse("255.255.255.255/32").unwrap();
    let nh: IpAddr = "255.255.255.255".parse().unwrap();
    f.route_add(0, p, vec![Path::via(nh, Some(ifs[0]))])
        .unwrap();
    let r = f.route_get(0, p).unwrap();
    let adj = f.fwd().adj(f.fwd().lb(r.lb).buckets[0]);
    assert_eq!(adj.kind, AdjKind::Rewrite);
    assert_eq!(adj.rewrite[..6], [0xff; 6]);
}

#[test]
fn multicast_routes_relay_from_accepting_interfaces_through_table_lookups() {
    let (mut f, ifs) = with_ifs(&[1500, 1500, 1500]);
    let g = |s: &str| u128::from(s.parse::<std::net::Ipv6Addr>().unwrap());
    let (tap, up, other) = (ifs[0], ifs[1], ifs[2]);
    f.set_mroutes(vec![
        Mroute {
            is_ip6: true,
            fib: 0,
            group: g("ff02::1:2"),
            len: 128,
            accept: vec![tap, up],
            forward: vec![up],
            lookup: None,
        },
        // A default route of fib 3 that sends the search to fib 0.
        Mroute {
            is_ip6: true,
            fib: 3,
            len: 0,
            lookup: Some(0),
            ..Default::default()
        },
    ]);
    let fwd = f.fwd();
    assert_eq!(fwd.mcast_forward(true, 0, g("ff02::1:2"), tap), Some(up));
    assert_eq!(
        fwd.mcast_forward(true, 0, g("ff02::1:2"), up),
        None,
        "never back out"
    );
    assert_eq!(
        fwd.mcast_forward(true, 0, g("ff02::1:2"), other),
        None,
        "not accepted"
    );
    assert_eq!(
        fwd.mcast_forward(true, 0, g("ff02::1:3"), tap),
        None,
        "another group"
    );
    assert_eq!(
        fwd.mcast_forward(true, 3, g("ff02::1:2"), tap),
        Some(up),
        "via the lookup"
    );
    assert_eq!(
        fwd.mcast_forward(false, 0, g("ff02::1:2"), tap),
        None,
        "another family"
    );
}

#[test]
fn interfaces_keep_the_index_they_are_given() {
    let mut f = Forwarding::new(Shared::new());
    // A live restart rebuilds 1 and 4 with 2 and 3 left free, as they were.
    assert_eq!(
        f.interface_add_at(4, "tun4", "tap", [0; 6], false, 1500),
        Ok(4)
    );
    assert_eq!(
        f.interface_add_at(1, "tun1", "tap", [0; 6], false, 1500),
        Ok(1)
    );
    assert!(f
        .interface_add_at(4, "again", "tap", [0; 6], false, 1500)
        .is_err());
    assert!(f
        .interface_add_at(2, "tun1", "tap", [0; 6], false, 1500)
        .is_err());
    assert!(f.ifs().get(2).is_none() && f.ifs().get(3).is_none());
    // New interfaces take the lowest free index, as they would have in the old process.
    assert_eq!(
        f.interface_add("loop0", "loopback", [0; 6], true, 9000),
        Ok(2)
    );
    assert_eq!(f.iface(4).unwrap().name, "tun4");
    f.set_protocol_mtu(4, 1400, 0).unwrap();
    assert_eq!(f.protocol_mtu(4), Some([1400, 0]));
    assert_eq!(f.protocol_mtu(1), None);
}

/// The adjacency kinds a prefix's route forwards to in table 0, and the route's source.
fn forwards(f: &Forwarding, p: Prefix) -> Option<(Source, Vec<AdjKind>)> {
    let r = f.route_get(0, p)?;
    let lb = f.fwd().lb(r.lb);
    let mut kinds: Vec<AdjKind> = lb.buckets[..lb.n_buckets as usize]
        .iter()
        .map(|&a| f.fwd().adj(a).kind)
        .collect();
    kinds.dedup();
    Some((r.source, kinds))
}

#[test]
fn an_api_route_for_an_interface_address_leaves_it_local() {
    let (mut f, ifs) = with_ifs(&[1500]);
    for (addr, host, nh) in [
        ("198.18.0.1/24", "198.18.0.1/32", "198.18.0.9"),
        ("fd00::1/64", "fd00::1/128", "fd00::9"),
    ] {
        f.address_add(ifs[0], Prefix::parse(addr).unwrap()).unwrap();
        let host = Prefix::parse(host).unwrap();
        let local = Some((Source::Interface, vec![AdjKind::Local]));
        let via = Path::via(nh.parse().unwrap(), Some(ifs[0]));
        f.route_add(0, host, vec![via]).unwrap();
        assert_eq!(forwards(&f, host), local, "{host}: still delivered locally");
        f.route_del(0, host).unwrap();
        assert_eq!(
            forwards(&f, host),
            local,
            "{host}: after the API route went"
        );
    }
}

#[test]
fn an_api_route_for_an_attached_subnet_leaves_it_attached() {
    let (mut f, ifs) = with_ifs(&[1500, 1500]);
    f.address_add(ifs[0], Prefix::parse("198.18.0.1/24").unwrap())
        .unwrap();
    f.address_add(ifs[1], Prefix::parse("198.19.0.1/24").unwrap())
        .unwrap();
    let subnet = Prefix::parse("198.18.0.0/24").unwrap();
    let attached = Some((Source::Interface, vec![AdjKind::Glean]));
    assert_eq!(forwards(&f, subnet), attached);
    let via = Path::via("198.19.0.2".parse().unwrap(), Some(ifs[1]));
    f.route_add(0, subnet, vec![via]).unwrap();
    assert_eq!(forwards(&f, subnet), attached, "the subnet stays gleaned");
    assert_eq!(lb_ifs(&f, subnet), vec![ifs[0]]);
    f.route_del(0, subnet).unwrap();
    assert_eq!(forwards(&f, subnet), attached, "after the API route went");
}

#[test]
fn deleting_an_address_leaves_the_api_routes_for_its_prefixes() {
    let (mut f, ifs) = with_ifs(&[1500, 1500]);
    let addr = Prefix::parse("198.18.0.1/24").unwrap();
    f.address_add(ifs[0], addr).unwrap();
    f.address_add(ifs[1], Prefix::parse("198.19.0.1/24").unwrap())
        .unwrap();
    let via = Path::via("198.19.0.2".parse().unwrap(), Some(ifs[1]));
    let (subnet, host) = (addr.masked(), addr.host());
    f.route_add(0, subnet, vec![via]).unwrap();
    f.route_add(0, host, vec![via]).unwrap();
    f.address_del(ifs[0], addr).unwrap();
    for p in [subnet, host] {
        let r = f.route_get(0, p).expect("the API route stays");
        assert_eq!((r.source, r.paths), (Source::Api, vec![via]), "{p}");
        assert_eq!(lb_ifs(&f, p), vec![ifs[1]], "{p} forwards by it");
    }
}

#[test]
fn the_best_source_forwards_whichever_came_first() {
    let subnet = Prefix::parse("198.18.0.0/24").unwrap();
    let addr = Prefix::parse("198.18.0.1/24").unwrap();
    let nbr: IpAddr = "198.18.0.5".parse().unwrap();
    let nbr_host = Prefix::host_of(nbr);
    for api_first in [true, false] {
        let (mut f, ifs) = with_ifs(&[1500, 1500]);
        f.address_add(ifs[1], Prefix::parse("198.19.0.1/24").unwrap())
            .unwrap();
        let via = Path::via("198.19.0.2".parse().unwrap(), Some(ifs[1]));
        let mac = [2, 0, 0, 0, 0, 5];
        if api_first {
            f.route_add(0, subnet, vec![via]).unwrap();
            f.route_add(0, nbr_host, vec![via]).unwrap();
            f.address_add(ifs[0], addr).unwrap();
            f.neighbor_add(ifs[0], nbr, mac, true).unwrap();
        } else {
            f.address_add(ifs[0], addr).unwrap();
            f.neighbor_add(ifs[0], nbr, mac, true).unwrap();
            f.route_add(0, subnet, vec![via]).unwrap();
            f.route_add(0, nbr_host, vec![via]).unwrap();
        }
        let source = |f: &Forwarding, p| f.route_get(0, p).map(|r| r.source);
        // Interface over API over the neighbour's host route.
        assert_eq!(source(&f, subnet), Some(Source::Interface), "{api_first}");
        assert_eq!(source(&f, nbr_host), Some(Source::Api), "{api_first}");
        assert_eq!(lb_ifs(&f, nbr_host), vec![ifs[1]]);
        // The best goes, the next takes over.
        f.address_del(ifs[0], addr).unwrap();
        assert_eq!(source(&f, subnet), Some(Source::Api), "{api_first}");
        f.route_del(0, nbr_host).unwrap();
        assert_eq!(source(&f, nbr_host), Some(Source::AdjFib), "{api_first}");
        assert_eq!(
            forwards(&f, nbr_host).map(|x| x.1),
            Some(vec![AdjKind::Rewrite])
        );
        f.neighbor_del(ifs[0], nbr).unwrap();
        f.route_del(0, subnet).unwrap();
        assert_eq!(source(&f, nbr_host), None);
        assert_eq!(source(&f, subnet), None);
    }
}

#[test]
fn a_neighbour_under_an_api_route_makes_no_load_balance() {
    let (mut f, ifs) = with_ifs(&[1500]);
    f.address_add(ifs[0], Prefix::parse("198.18.0.1/24").unwrap())
        .unwrap();
    let nbr: IpAddr = "198.18.0.5".parse().unwrap();
    let host = Prefix::host_of(nbr);
    let via = Path::via("198.18.0.9".parse().unwrap(), Some(ifs[0]));
    f.route_add(0, host, vec![via]).unwrap();
    let lbs = f.fwd().lbs.len();
    // Learned neighbours of calico's pods all sit under API /32s: their host routes only wait,
    // and a load-balance made for them would cost a grace period each.
    f.neighbor_add(ifs[0], nbr, [2, 0, 0, 0, 0, 5], false)
        .unwrap();
    assert_eq!(f.fwd().lbs.len(), lbs);
    assert_eq!(f.route_get(0, host).unwrap().source, Source::Api);
}

#[test]
fn sr_steering_ranks_between_the_interface_and_the_api() {
    let (mut f, ifs) = with_ifs(&[1500]);
    f.address_add(ifs[0], Prefix::parse("198.18.0.1/24").unwrap())
        .unwrap();
    let steer = vec![Path::special(PathKind::SrPolicy(0))];
    let via = Path::via("198.18.0.2".parse().unwrap(), Some(ifs[0]));
    // Over an API route: the steering forwards; removed, the API route does.
    let pods = Prefix::parse("198.19.64.0/24").unwrap();
    f.route_add(0, pods, vec![via]).unwrap();
    f.route_add_sr(0, pods, steer.clone()).unwrap();
    assert_eq!(forwards(&f, pods).map(|x| x.0), Some(Source::Sr));
    let r = f.route_get(0, pods).unwrap();
    assert_eq!(r.paths_of(Source::Api), Some(&[via][..]));
    f.route_del_sr(0, pods).unwrap();
    assert_eq!(forwards(&f, pods).map(|x| x.0), Some(Source::Api));
    assert!(f.route_get(0, pods).unwrap().shadowed.is_empty());
    // Under an attached subnet: the steering waits.
    let subnet = Prefix::parse("198.18.0.0/24").unwrap();
    f.route_add_sr(0, subnet, steer).unwrap();
    let attached = Some((Source::Interface, vec![AdjKind::Glean]));
    assert_eq!(forwards(&f, subnet), attached);
    f.route_del_sr(0, subnet).unwrap();
    assert_eq!(forwards(&f, subnet), attached);
    assert!(f.route_get(0, subnet).unwrap().shadowed.is_empty());
    assert_eq!(f.route_del_sr(0, subnet), Err(FwdError::NoSuchEntry));
}
