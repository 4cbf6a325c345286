//! A stand-alone IKEv2 peer on the engine, for interop tests: brings up one profile and prints
//! each event as a line (child keys in hex, for comparison with the other side's).
//!
//! ikev2-peer --local IP --remote IP --psk S [--suites calico|default] [--initiate]
//!            [--actions wait-up,sleep:2,rekey-child,rekey-ike,delete-ike] [--run-for SECS]
//!            [--cookie-threshold N] [--pfs GROUP] [--dpd SECS]
//! ikev2-peer --flood N --local IP --remote IP   (N IKE_SA_INIT requests from fresh SPIs, then exit)

use ikev2::crypto::{DhGroup, Encr, IkeSuite, Integ, Prf};
use ikev2::driver::{run, Command};
use ikev2::{ChildSa, ChildSaSink, Config, DownReason, Engine, EspSuite, Profile};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

fn hex(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}

/// IPv4 selectors as first-last address ranges, comma-separated.
fn ranges(ts: &[ikev2::wire::TrafficSelector]) -> String {
    let ip = |a: &[u8]| match <[u8; 4]>::try_from(a) {
        Ok(b) => Ipv4Addr::from(b).to_string(),
        Err(_) => hex(a),
    };
    ts.iter()
        .map(|t| format!("{}-{}", ip(&t.start_addr), ip(&t.end_addr)))
        .collect::<Vec<_>>()
        .join(",")
}

struct Printer;

impl ChildSaSink for Printer {
    fn child_up(&mut self, c: &ChildSa) {
        println!(
            "CHILD_UP spi_in={:08x} spi_out={:08x} encr={:?} key_in={} salt_in={} key_out={} salt_out={} integ={:?} integ_in={} integ_out={} esn={} ts_local={} ts_remote={}",
            c.spi_in, c.spi_out, c.encr, hex(&c.encr_key_in), hex(&c.salt_in), hex(&c.encr_key_out), hex(&c.salt_out),
            c.integ, hex(&c.integ_key_in), hex(&c.integ_key_out), c.esn, ranges(&c.ts_local), ranges(&c.ts_remote)
        );
    }
    fn child_down(&mut self, c: &ChildSa) {
        println!(
            "CHILD_DOWN spi_in={:08x} spi_out={:08x}",
            c.spi_in, c.spi_out
        );
    }
    fn ike_up(&mut self, _p: &str, spi_i: u64, spi_r: u64) {
        println!("IKE_UP spi_i={spi_i:016x} spi_r={spi_r:016x}");
    }
    fn ike_down(&mut self, _p: &str, r: &DownReason) {
        println!("IKE_DOWN {r:?}");
    }
}

/// Several common suites, strongSwan's defaults among them.
fn default_suites() -> (Vec<IkeSuite>, Vec<EspSuite>) {
    let mut ike = Vec::new();
    for dh in [DhGroup::Curve25519, DhGroup::Ecp256, DhGroup::Modp2048] {
        for (encr, integ) in [
            (Encr::AesCbc { bits: 128 }, Some(Integ::HmacSha256_128)),
            (Encr::AesGcm16 { bits: 128 }, None),
            (Encr::AesCbc { bits: 256 }, Some(Integ::HmacSha1_96)),
        ] {
            ike.push(IkeSuite {
                encr,
                prf: Prf::HmacSha256,
                integ,
                dh,
            });
        }
    }
    let esp = vec![
        EspSuite {
            encr: Encr::AesGcm16 { bits: 128 },
            integ: None,
            esn: false,
            pfs: None,
        },
        EspSuite {
            encr: Encr::AesCbc { bits: 128 },
            integ: Some(Integ::HmacSha256_128),
            esn: false,
            pfs: None,
        },
        EspSuite::CALICO,
    ];
    // The same with extended sequence numbers, after those without.
    let with_esn: Vec<EspSuite> = esp.iter().map(|s| EspSuite { esn: true, ..*s }).collect();
    (ike, [esp, with_esn].concat())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut local, mut remote, mut psk) = (None, None, String::new());
    let (mut suites, mut initiate, mut actions, mut run_for) =
        ("calico".to_string(), false, String::new(), 30u64);
    let (mut cookie_threshold, mut flood) = (None, 0usize);
    let (mut pfs, mut dpd) = (None, None);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--local" => local = Some(val().parse::<Ipv4Addr>().expect("--local IPv4")),
            "--remote" => remote = Some(val().parse::<Ipv4Addr>().expect("--remote IPv4")),
            "--psk" => psk = val(),
            "--suites" => suites = val(),
            "--initiate" => initiate = true,
            "--actions" => actions = val(),
            "--run-for" => run_for = val().parse().expect("--run-for seconds"),
            "--pfs" => {
                pfs = Some(
                    DhGroup::from_id(val().parse().expect("--pfs group number"))
                        .expect("group 14, 19 or 31"),
                )
            }
            "--dpd" => dpd = Some(Duration::from_secs(val().parse().expect("--dpd seconds"))),
            "--cookie-threshold" => {
                cookie_threshold = Some(val().parse().expect("--cookie-threshold N"))
            }
            "--flood" => flood = val().parse().expect("--flood N"),
            "-h" | "--help" => {
                println!("see the comment at the top of ikev2/src/bin/ikev2-peer.rs");
                return;
            }
            _ => panic!("unknown argument {a}"),
        }
    }
    let (local, remote) = (local.expect("--local"), remote.expect("--remote"));
    let mut profile = Profile::calico(
        "peer",
        SocketAddr::new(remote.into(), 500),
        psk.as_bytes(),
        local,
        remote,
    );
    if suites == "default" {
        (profile.ike, profile.esp) = default_suites();
    }
    for s in &mut profile.esp {
        s.pfs = pfs;
    }
    if flood > 0 {
        return send_flood(flood, local, remote);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let bind = SocketAddr::new(local.into(), 500);
        let socket = tokio::net::UdpSocket::bind(bind)
            .await
            .expect("bind UDP 500");
        let natt = tokio::net::UdpSocket::bind(SocketAddr::new(local.into(), 4500))
            .await
            .expect("bind UDP 4500");
        println!("READY");
        let mut cfg = Config::default();
        if let Some(t) = cookie_threshold {
            cfg.cookie_threshold = t;
        }
        if dpd.is_some() {
            cfg.dpd_interval = dpd;
        }
        let mut engine = Engine::new(cfg, bind);
        engine.add_profile(profile);
        let (tx, rx) = mpsc::channel(16);
        let script = tokio::spawn(async move {
            if initiate {
                tx.send(Command::Initiate("peer".into())).await.ok();
            }
            for act in actions.split(',').filter(|s| !s.is_empty()) {
                let children = || async {
                    let (otx, orx) = oneshot::channel();
                    tx.send(Command::Children("peer".into(), otx)).await.ok();
                    orx.await.unwrap_or_default()
                };
                match act.split_once(':') {
                    Some(("sleep", s)) => {
                        tokio::time::sleep(Duration::from_secs_f64(s.parse().expect("sleep secs")))
                            .await
                    }
                    _ => match act {
                        "wait-up" => {
                            while children().await.is_empty() {
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                        "rekey-child" => {
                            for c in children().await {
                                tx.send(Command::RekeyChild(c.spi_in)).await.ok();
                            }
                        }
                        "rekey-ike" => {
                            tx.send(Command::RekeyIke("peer".into())).await.ok();
                        }
                        "delete-ike" => {
                            tx.send(Command::DeleteIke("peer".into())).await.ok();
                        }
                        _ => panic!("unknown action {act}"),
                    },
                }
            }
            tokio::time::sleep(Duration::from_secs(run_for)).await;
            let (otx, orx) = oneshot::channel();
            tx.send(Command::Counters(otx)).await.ok();
            if let Ok(c) = orx.await {
                println!("COUNTERS {c:?}");
            }
            tx.send(Command::Stop).await.ok();
        });
        let mut sink = Printer;
        run(socket, natt, engine, &mut sink, rx).await;
        script.await.ok();
    });
}

/// IKE_SA_INIT requests as a flood would send them: each from a fresh engine (new SPI, nonce
/// and KE), none followed up.
fn send_flood(n: usize, local: Ipv4Addr, remote: Ipv4Addr) {
    let sock = std::net::UdpSocket::bind(SocketAddr::new(local.into(), 0)).expect("bind");
    let to = SocketAddr::new(remote.into(), 500);
    let now = std::time::Instant::now();
    for _ in 0..n {
        let mut e = Engine::new(Config::default(), sock.local_addr().expect("local addr"));
        e.add_profile(Profile::calico("f", to, b"x", local, remote));
        e.initiate(now, "f").expect("initiate");
        if let Some(ikev2::Event::Send { data, .. }) = e.poll_event() {
            sock.send_to(&data, to).expect("send");
        }
    }
    println!("FLOOD sent {n}");
}
