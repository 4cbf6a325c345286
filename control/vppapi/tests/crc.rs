//! The CRC of every message, computed from its Rust definition by the vppapigen algorithm,
//! must equal the CRC VPP publishes for it.

use rvpp_vppapi::defs::MODULES;
use rvpp_vppapi::Registry;

#[test]
fn computed_crc_matches_published_for_every_message() {
    let mut bad = Vec::new();
    let mut n = 0;
    for m in MODULES {
        for d in m.messages {
            n += 1;
            let c = d.compute_crc();
            if c != d.published_crc {
                bad.push(format!(
                    "{}.{}: computed {:08x} published {:08x}",
                    m.name, d.name, c, d.published_crc
                ));
            }
        }
    }
    assert!(n >= 300, "only {n} messages");
    assert!(
        bad.is_empty(),
        "{} of {n} CRCs differ:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// Known values straight from VPP's message table (independent of the generated constants).
#[test]
fn well_known_name_crcs() {
    let r = Registry::global();
    for nc in [
        "control_ping_51077d14",
        "control_ping_reply_f6b0b8ca",
        "sockclnt_create_455fb9c4",
        "sockclnt_create_reply_35166268",
        "sockclnt_delete_8ac76db6",
        "sockclnt_delete_reply_8f38b1ee",
        "sw_interface_dump_aa610c27",
        "sw_interface_details_6c221fc7",
        "sw_interface_event_2d3d95a7",
        "ip_route_details_bda8f315",
        "ip6nd_proxy_enable_disable_v2_cb486c30",
        "wireguard_interface_create_a530137e",
        "wireguard_interface_create_reply_5383d31f",
        "wireguard_interface_delete_f9e6675e",
        "wireguard_interface_dump_2c954158",
        "wireguard_interface_details_0dd4865d",
        "wireguard_peer_add_9b8aad61",
        "wireguard_peer_add_reply_084a0cd3",
        "wireguard_peer_remove_3b74607a",
        "wireguard_peers_dump_3b74607a",
        "wireguard_peers_details_6a9f6bc3",
        // SRv6, what calico sends and the details of its dumps.
        "sr_set_encap_source_d3bad5e1",
        "sr_localsid_add_del_5a36c324",
        "sr_policy_add_44ac92e8",
        "sr_policy_mod_b97bb56e",
        "sr_policy_del_cb4d48d5",
        "sr_steering_add_del_e46b0a0f",
        "sr_localsids_details_2e9221b9",
        "sr_policies_details_db6ff2a1",
        "sr_steering_pol_details_d41258c9",
    ] {
        assert!(r.by_name_crc(nc).is_some(), "{nc} not registered");
    }
}

/// When the shared compatibility table is present, every row's request and reply must be
/// advertised with exactly that name_crc.
#[test]
fn messages_tsv_rows_are_registered() {
    let p = std::path::Path::new("/work/shared/vpp-compat/messages.tsv");
    let Ok(text) = std::fs::read_to_string(p) else {
        eprintln!("skipping: {} not present", p.display());
        return;
    };
    let r = Registry::global();
    let mut rows = 0;
    for line in text.lines().skip(1) {
        let c: Vec<&str> = line.split('\t').collect();
        if c.len() < 6 {
            continue;
        }
        rows += 1;
        let nc = format!("{}_{}", c[1], c[2]);
        assert!(r.by_name_crc(&nc).is_some(), "{nc} not registered");
        let reply = c[4].split_whitespace().next().unwrap_or("");
        if c[5] != "-" {
            let nc = format!("{}_{}", reply, c[5]);
            assert!(r.by_name_crc(&nc).is_some(), "{nc} not registered");
        }
    }
    assert_eq!(rows, 141);
}
