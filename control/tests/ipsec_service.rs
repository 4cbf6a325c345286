//! `service::ipsec` in process, as the IKEv2 engine will call it: child SA pairs installed
//! make-before-break on an ipip tunnel, rekeyed, removed; refusals change nothing; deleting
//! the tunnel drops its protection; a rekey the peer started is accepted before it is sent on.

mod common;

use rvpp_control::daemon::Dataplane;
use rvpp_control::service::ipip::{self, IpipRequest};
use rvpp_control::service::ipsec::{self, ChildSa, CryptoAlg, IntegAlg, SaRequest};
use rvpp_control::service::rv;
use rvpp_dataplane::ipsec::Table;
use std::sync::Arc;

fn dataplane() -> Arc<Dataplane> {
    common::in_process_dataplane()
}

fn req(id: u32, spi: u32) -> SaRequest {
    SaRequest {
        id,
        spi,
        alg: CryptoAlg::AesGcm256,
        key: vec![id as u8; 32],
        integ: IntegAlg::None,
        integ_key: vec![],
        salt: id,
        esn: true,
        anti_replay: true,
        inbound: false,
        udp_encap: None,
        tunnel: None,
    }
}

/// Child pair n: inbound SA 2n (SPI 0x100 + n), outbound 2n + 1 (SPI 0x200 + n).
fn child(n: u32) -> ChildSa {
    ChildSa {
        inbound: req(2 * n, 0x100 + n),
        outbound: req(2 * n + 1, 0x200 + n),
    }
}

/// Whether esp4-encrypt-tun is on for `sw`'s ip4-output.
fn encrypting(dp: &Dataplane, sw: u32) -> bool {
    dp.fwd()
        .interface_features(sw)
        .unwrap()
        .iter()
        .any(|(arc, f)| *arc == "ip4-output" && f.contains(&"esp4-encrypt-tun"))
}

fn tunnel(dp: &Arc<Dataplane>) -> u32 {
    tunnel_to(dp, "198.18.0.2")
}

fn tunnel_to(dp: &Arc<Dataplane>, dst: &str) -> u32 {
    ipip::create(
        dp,
        IpipRequest {
            instance: None,
            src: "198.18.0.1".parse().unwrap(),
            dst: dst.parse().unwrap(),
            table_id: 0,
            flags: 0,
            dscp: 0,
        },
    )
    .unwrap()
    .0
}

/// (outbound SA id, inbound SA ids, SPIs accepted on `sw`).
fn state(dp: &Dataplane, sw: u32) -> Option<(u32, Vec<u32>, Vec<u32>)> {
    let t = dp.feature_tables.get::<Table>().load();
    let p = t.protect(sw)?;
    let mut spis: Vec<u32> = (0x100..0x110)
        .filter(|&s| t.inbound(s).is_some_and(|i| i.sw_if_index == sw))
        .collect();
    spis.sort();
    Some((p.out.cfg.id, p.sa_in.clone(), spis))
}

#[test]
fn child_sas_install_rekey_and_remove_make_before_break() {
    let dp = dataplane();
    let sw = tunnel(&dp);
    ipsec::child_sa_install(&dp, sw, child(1)).unwrap();
    assert_eq!(state(&dp, sw), Some((3, vec![2], vec![0x101])));
    assert!(encrypting(&dp, sw));

    // Rekey: the new inbound SA is accepted beside the old, the outbound switches.
    ipsec::child_sa_install(&dp, sw, child(2)).unwrap();
    assert_eq!(state(&dp, sw), Some((5, vec![2, 4], vec![0x101, 0x102])));
    // The old pair's state lives on until it is removed.
    ipsec::child_sa_remove(&dp, sw, 2, 3).unwrap();
    assert_eq!(state(&dp, sw), Some((5, vec![4], vec![0x102])));
    assert!(
        ipsec::sas(&dp).iter().all(|s| s.cfg.id >= 4),
        "old pair deleted"
    );

    // A refused install changes nothing: an id in use.
    let mut bad = child(3);
    bad.outbound.id = 5;
    assert_eq!(
        ipsec::child_sa_install(&dp, sw, bad).unwrap_err().retval,
        rv::ENTRY_ALREADY_EXISTS
    );
    let mut bad = child(3);
    bad.inbound.key.truncate(7);
    assert_eq!(
        ipsec::child_sa_install(&dp, sw, bad).unwrap_err().retval,
        rv::INVALID_VALUE
    );
    assert_eq!(state(&dp, sw), Some((5, vec![4], vec![0x102])));
    assert_eq!(ipsec::sas(&dp).len(), 2);

    // Past four inbound SAs the oldest goes.
    for n in 3..=6 {
        ipsec::child_sa_install(&dp, sw, child(n)).unwrap();
    }
    assert_eq!(
        state(&dp, sw),
        Some((13, vec![6, 8, 10, 12], vec![0x103, 0x104, 0x105, 0x106]))
    );

    // Removing the current outbound SA's pair removes the protection.
    ipsec::child_sa_remove(&dp, sw, 12, 13).unwrap();
    assert_eq!(state(&dp, sw), None);
    assert!(!encrypting(&dp, sw), "plain IPIP again");

    // Deleting a protected tunnel drops its protection (the SAs stay, as in VPP).
    ipsec::child_sa_install(&dp, sw, child(7)).unwrap();
    ipip::delete(&dp, sw).unwrap();
    assert!(ipsec::protections(&dp, None).is_empty());
    assert!(ipsec::sas(&dp).iter().any(|s| s.cfg.id == 15));
}

/// A rekey the peer started: the new pair is accepted but the old outbound SA keeps sending
/// until `child_sa_send_with`; then the old pair goes as usual.
#[test]
fn a_peer_started_rekey_is_accepted_first_and_sent_on_later() {
    let dp = dataplane();
    let sw = tunnel(&dp);
    ipsec::child_sa_install(&dp, sw, child(1)).unwrap();
    ipsec::child_sa_accept(&dp, sw, child(2)).unwrap();
    assert_eq!(state(&dp, sw), Some((3, vec![2, 4], vec![0x101, 0x102])));
    assert_eq!(
        ipsec::child_sa_send_with(&dp, sw, 99).unwrap_err().retval,
        rv::NO_SUCH_ENTRY
    );
    ipsec::child_sa_send_with(&dp, sw, 5).unwrap();
    assert_eq!(state(&dp, sw), Some((5, vec![2, 4], vec![0x101, 0x102])));
    ipsec::child_sa_remove(&dp, sw, 2, 3).unwrap();
    assert_eq!(state(&dp, sw), Some((5, vec![4], vec![0x102])));
    // On an interface without protection, accepting is installing.
    let other = tunnel_to(&dp, "198.18.0.3");
    assert_eq!(
        ipsec::child_sa_send_with(&dp, other, 5).unwrap_err().retval,
        rv::NO_SUCH_ENTRY
    );
    ipsec::child_sa_accept(&dp, other, child(3)).unwrap();
    assert_eq!(state(&dp, other), Some((7, vec![6], vec![0x103])));
}
