//! IKEv2 profiles configured through the CLI in VPP's syntax (`ikev2 profile add|set|del`,
//! `ikev2 initiate sa-init`): `show ikev2 profile` lists what was set, the API's
//! `ikev2_profile_dump` gives the same profile (one service behind both), and bad input (an
//! unknown profile, a bad address, an algorithm rvpp lacks or nobody knows) is an error that
//! leaves the profile as it was. And two rvpp nodes whose profiles were set up by CLI alone
//! negotiate IKE and child SAs, and their pods' pings cross the tunnel as ESP.

#[path = "api/common.rs"]
mod common;

use common::client::Client;
use common::harness::word_after;
use rvpp_vppapi::defs as d;

const P: &str = "pr_198.18.0.1_to_198.18.0.2";

/// The calico profile (as tests/api/papi_ikev2.py sends it over the API), by CLI only, as
/// node 1 (the initiator) sets it.
fn configure(r: &common::Rvpp, tunnel: &str, uplink: &str) {
    for cmd in profile_cmds(1, tunnel, uplink, "198.19.1") {
        let out = r.ctl(&cmd);
        assert!(out.trim().is_empty(), "{cmd}: {out}");
    }
}

/// Node `n`'s profile commands toward the other node, whose pod block is `peer_pods`.0/24;
/// node 1 also names the responder and the transforms.
fn profile_cmds(n: u8, tunnel: &str, uplink: &str, peer_pods: &str) -> Vec<String> {
    let (me, you) = (format!("198.18.0.{n}"), format!("198.18.0.{}", 3 - n));
    let mut cmds = vec![
        format!("ikev2 profile add {P}"),
        format!("ikev2 profile set {P} tunnel {tunnel}"),
        format!("ikev2 profile set {P} auth shared-key-mic string calico-psk"),
        format!("ikev2 profile set {P} id local ip4-addr {me}"),
        format!("ikev2 profile set {P} id remote ip4-addr {you}"),
        format!(
            "ikev2 profile set {P} traffic-selector local ip-range 0.0.0.0 - 255.255.255.255 \
             port-range 0 - 65535 protocol 0"
        ),
        format!(
            "ikev2 profile set {P} traffic-selector remote ip-range {peer_pods}.0 - {peer_pods}.255 \
             port-range 0 - 65535 protocol 0"
        ),
    ];
    if n == 1 {
        cmds.extend([
            format!("ikev2 profile set {P} responder {uplink} {you}"),
            format!(
                "ikev2 profile set {P} ike-crypto-alg aes-cbc 256 ike-integ-alg sha1-96 ike-dh modp-2048"
            ),
            format!("ikev2 profile set {P} esp-crypto-alg aes-gcm-16 256"),
        ]);
    }
    cmds
}

fn dump(c: &mut Client) -> Vec<d::Ikev2ProfileDetails> {
    c.dump::<_, d::Ikev2ProfileDetails>(&d::Ikev2ProfileDump::default(), 7)
        .unwrap()
}

#[test]
fn cli_configures_an_ikev2_profile_the_api_dumps() {
    let r = common::Rvpp::start("ikev2-cli", "");
    let tunnel = r.ctl("create ipip tunnel src 198.18.0.1 dst 198.18.0.2");
    let tunnel = tunnel.trim();
    assert_eq!(tunnel, "ipip0");
    let tun_sw: u32 = word_after(&r.ctl("show ipip tunnel"), "sw-if-idx")
        .parse()
        .unwrap();
    let uplink = r.ctl("create loopback interface");
    let uplink = uplink.trim();
    configure(&r, tunnel, uplink);

    let show = r.ctl("show ikev2 profile");
    println!("{show}");
    for want in [
        format!("profile {P}"),
        "auth-method shared-key-mic (10 bytes)".into(),
        "local id-type ip4-addr 198.18.0.1".into(),
        "remote id-type ip4-addr 198.18.0.2".into(),
        "local ts protocol 0 ports 0 - 65535 addr 0.0.0.0 - 255.255.255.255".into(),
        "remote ts protocol 0 ports 0 - 65535 addr 198.19.1.0 - 198.19.1.255".into(),
        format!("responder {uplink} 198.18.0.2"),
        "ike-crypto-alg aes-cbc 256 ike-integ-alg sha1-96 ike-dh modp-2048 prf HmacSha1".into(),
        "esp-crypto-alg aes-gcm-16 256 esp-integ-alg none".into(),
        "protected tunnel ipip0".into(),
    ] {
        assert!(show.contains(&want), "`{want}' not in:\n{show}");
    }
    assert!(!show.contains("calico-psk"), "the key is never shown");

    // The API sees the profile the CLI made.
    let mut c = Client::connect(&r.api, "ikev2-cli").unwrap();
    let rows = dump(&mut c);
    assert_eq!(rows.len(), 1);
    let p = &rows[0].profile;
    assert_eq!(p.name, P);
    assert_eq!(p.tun_itf, tun_sw);
    assert_eq!((p.auth.method, p.auth.hex), (2, 0));
    assert_eq!(p.auth.data, b"calico-psk");
    assert_eq!((p.loc_id.type_, p.loc_id.data.as_str()), (1, "198.18.0.1"));
    assert_eq!((p.rem_id.type_, p.rem_id.data.as_str()), (1, "198.18.0.2"));
    assert_eq!((p.loc_ts.start_port, p.loc_ts.end_port), (0, 65535));
    assert!(p.loc_ts.is_local && !p.rem_ts.is_local);
    assert_ne!(p.responder.sw_if_index.0, u32::MAX);
    assert_eq!(
        (
            p.ike_ts.crypto_alg,
            p.ike_ts.crypto_key_size,
            p.ike_ts.integ_alg,
            p.ike_ts.dh_group
        ),
        (12, 256, 2, 14)
    );
    assert_eq!(
        (
            p.esp_ts.crypto_alg,
            p.esp_ts.crypto_key_size,
            p.esp_ts.integ_alg
        ),
        (20, 256, 0)
    );
    let before = format!("{:?}", rows[0].profile);

    // Bad input: an error each, and the profile unchanged.
    for (cmd, why) in [
        (
            "ikev2 profile set nope auth shared-key-mic string k".to_string(),
            "no ikev2 profile nope",
        ),
        ("ikev2 initiate sa-init nope".into(), "no ikev2 profile nope"),
        (format!("ikev2 profile add {P}"), "exists"),
        (
            format!("ikev2 profile set {P} id local ip4-addr 198.18.0.300"),
            "bad IPv4 address",
        ),
        (
            format!("ikev2 profile set {P} id local ip6-addr 198.18.0.1"),
            "bad IPv6 address",
        ),
        (
            format!("ikev2 profile set {P} id local der-asn1-dn 0x"),
            "id type 9 with 0 bytes",
        ),
        (
            format!("ikev2 profile set {P} id sideways ip4-addr 198.18.0.1"),
            "expected local or remote",
        ),
        (
            format!("ikev2 profile set {P} responder {uplink} 198.18.0.x"),
            "bad address",
        ),
        (
            format!("ikev2 profile set {P} responder {uplink} fd00::2"),
            "unicast IPv4",
        ),
        (
            format!("ikev2 profile set {P} responder nosuchif0 198.18.0.2"),
            "unknown interface",
        ),
        (
            format!("ikev2 profile set {P} tunnel {uplink}"),
            "not an ipip tunnel",
        ),
        (
            format!(
                "ikev2 profile set {P} traffic-selector local ip-range fd00::1 - fd00::2 \
                 port-range 0 - 65535 protocol 0"
            ),
            "IPv6 traffic selectors are not implemented",
        ),
        (
            format!(
                "ikev2 profile set {P} traffic-selector local ip-range 198.18.0.9 - 198.18.0.1 \
                 port-range 0 - 65535 protocol 0"
            ),
            "ends before it starts",
        ),
        (
            format!("ikev2 profile set {P} auth shared-key-mic hex 0xabc"),
            "even number of hex digits",
        ),
        (
            format!("ikev2 profile set {P} auth rsa-sig cert-file /etc/x.pem"),
            "only shared-key-mic",
        ),
        (
            format!("ikev2 profile set {P} ike-crypto-alg twofish 256 ike-dh modp-2048"),
            "unknown encryption algorithm `twofish'",
        ),
        (
            format!("ikev2 profile set {P} ike-crypto-alg 3des 192 ike-integ-alg sha1-96 ike-dh modp-2048"),
            "IKE key size 192",
        ),
        (
            format!("ikev2 profile set {P} ike-crypto-alg aes-cbc 256 ike-integ-alg md5-96 ike-dh modp-2048"),
            "IKE integrity 1",
        ),
        (
            format!("ikev2 profile set {P} ike-crypto-alg aes-cbc 256 ike-integ-alg sha1-96 ike-dh modp-1024"),
            "DH group 2",
        ),
        (
            format!("ikev2 profile set {P} ike-crypto-alg aes-gcm-16 256 ike-dh modp-4095"),
            "unknown DH group",
        ),
        (
            format!("ikev2 profile set {P} esp-crypto-alg aes-cbc 256 esp-integ-alg sha1-96"),
            "the data path runs AES-GCM-16 (20) without integrity only",
        ),
        (
            format!("ikev2 profile set {P} esp-crypto-alg aes-gcm-16 many"),
            "bad key size",
        ),
        (
            format!("ikev2 profile set {P} udp-encap"),
            "not implemented in rvpp",
        ),
        (format!("ikev2 profile set {P} frobnicate"), "usage:"),
    ] {
        let out = r.ctl(&cmd);
        assert!(out.contains(why), "{cmd}: `{why}' not in: {out}");
    }
    assert_eq!(format!("{:?}", dump(&mut c)[0].profile), before);

    // A profile without a responder cannot initiate; this one can (its peer is absent: it only
    // starts IKE_SA_INIT).
    assert!(r.ctl("ikev2 profile add lonely").trim().is_empty());
    assert!(r
        .ctl("ikev2 initiate sa-init lonely")
        .contains("has no responder"));
    let out = r.ctl(&format!("ikev2 initiate sa-init {P}"));
    assert!(out.trim().is_empty(), "{out}");

    // Hex keys and other id types are taken as VPP's CLI reads them.
    assert!(r
        .ctl("ikev2 profile set lonely auth shared-key-mic hex 0x00ff10")
        .trim()
        .is_empty());
    assert!(r
        .ctl("ikev2 profile set lonely id local fqdn node-a.example")
        .trim()
        .is_empty());
    assert!(r
        .ctl("ikev2 profile set lonely id remote key-id 0x0102")
        .trim()
        .is_empty());
    let show = r.ctl("show ikev2 profile");
    assert!(
        show.contains("local id-type fqdn node-a.example")
            && show.contains("remote id-type key-id 0x0102"),
        "{show}"
    );
    // A DER name is taken as bytes, as a key id is.
    assert!(r.ctl("ikev2 profile add der").trim().is_empty());
    let set = "ikev2 profile set der id local der-asn1-dn 0x300d310b3009060355040613025553";
    let out = r.ctl(set);
    assert!(out.trim().is_empty(), "{set}: {out}");
    let show = r.ctl("show ikev2 profile");
    assert!(
        show.contains("local id-type der-asn1-dn 0x300d310b3009060355040613025553"),
        "{show}"
    );
    assert!(r.ctl("ikev2 profile del der").trim().is_empty());
    let rows = dump(&mut c);
    let lonely = rows.iter().find(|p| p.profile.name == "lonely").unwrap();
    assert_eq!(lonely.profile.auth.data, [0x00, 0xff, 0x10]);
    assert_eq!(lonely.profile.auth.hex, 1);
    assert_eq!(
        (
            lonely.profile.loc_id.type_,
            lonely.profile.loc_id.data.as_str()
        ),
        (2, "node-a.example")
    );
    assert_eq!(
        (lonely.profile.rem_id.type_, lonely.profile.rem_id.data_len),
        (11, 2)
    );

    // Deleting by CLI: gone from both, and a second delete is an error.
    for name in [P, "lonely"] {
        assert!(r
            .ctl(&format!("ikev2 profile del {name}"))
            .trim()
            .is_empty());
    }
    assert!(r
        .ctl(&format!("ikev2 profile del {P}"))
        .contains("no ikev2 profile"));
    assert!(r.ctl("show ikev2 profile").trim().is_empty());
    assert!(dump(&mut c).is_empty());
}

/// Two nodes as tests/ikev2_papi.rs makes them (uplinks bridged in a netns, a pod behind each),
/// but with the ipip tunnels, routes and IKEv2 profiles set by CLI only. Node 1 initiates
/// (`ikev2 initiate sa-init`, once a second as calico does) until both tunnels are up.
#[test]
fn two_rvpp_nodes_negotiate_ikev2_from_profiles_set_by_cli() {
    if !common::skip::need_root("for taps and namespaces of the test's own") {
        return;
    }
    let nodes = common::two_pod_nodes("ikecli", "ikc");
    let (a, b) = (&nodes.a, &nodes.b);
    for (n, r) in [(1u8, a), (2u8, b)] {
        let other = 3 - n;
        let tun = r.ctl(&format!(
            "create ipip tunnel src 198.18.0.{n} dst 198.18.0.{other}"
        ));
        assert_eq!(tun.trim(), "ipip0", "{tun}");
        let peer_pods = format!("198.19.{}", other - 1);
        for cmd in [
            "set interface unnumbered ipip0 use tap0".to_string(),
            "set interface state ipip0 up".into(),
            format!("ip route add {peer_pods}.0/24 via ipip0"),
        ]
        .into_iter()
        .chain(profile_cmds(n, "ipip0", "tap0", &peer_pods))
        {
            let out = r.ctl(&cmd);
            assert!(out.trim().is_empty(), "node {n}: {cmd}: {out}");
        }
    }
    let up = |r: &common::Rvpp| r.ctl("show ikev2 sa").contains("child sa spi-in");
    let mut tries = 0;
    while !(up(a) && up(b)) {
        tries += 1;
        assert!(
            tries <= 15,
            "no child SAs after 15 s:\nA:\n{}\n{}\nB:\n{}\n{}",
            a.ctl("show ikev2 sa"),
            a.ctl("show ikev2 counters"),
            b.ctl("show ikev2 sa"),
            b.ctl("show ikev2 counters")
        );
        let out = a.ctl(&format!("ikev2 initiate sa-init {P}"));
        assert!(out.trim().is_empty(), "{out}");
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    for (name, r, role) in [("A", a, "initiator"), ("B", b, "responder")] {
        let sa = r.ctl("show ikev2 sa");
        println!("{name}: show ikev2 sa\n{sa}");
        assert!(
            sa.contains("established") && sa.contains(role),
            "{name}: {sa}"
        );
        assert!(r.ctl("show ipsec protect").contains("ipip0"), "{name}");
    }
    common::ping_over_esp(&nodes.pod_a, a, b);
}
