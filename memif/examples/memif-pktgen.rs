//! `memif-pktgen`: send Ethernet frames over memif and check they come
//! back MAC-swapped — a smoke test against DPDK testpmd's `macswap`
//! forwarding mode (or against another `memif-pktgen --echo`).
//!
//! ```text
//! memif-pktgen [--role server|client] [--socket SPEC] [--id N] [--queues N]
//!              [--count N] [--size BYTES] [--secret S] [--echo]
//! ```
//!
//! Against testpmd as the client (we are the server):
//!
//! ```text
//! cargo run -p rvpp-memif --example memif-pktgen -- --role server --socket /tmp/m.sock --count 100000 --size 1500 &
//! dpdk-testpmd --no-huge -m 512 --no-pci --file-prefix m1 -l 0,1 \
//!     --vdev=net_memif0,role=client,socket=/tmp/m.sock,socket-abstract=no \
//!     -- --forward-mode=macswap --auto-start --no-mlockall
//! ```
//!
//! With `--echo` it swaps MACs itself and sends every frame back forever.

use std::time::{Duration, Instant};

use memif::{Config, Event, Interface, PacketBuf, Role};

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("bad value for {name}")))
        .unwrap_or(default)
}

/// Frame of `len` bytes: dst 02::02, src 02::01, IPv4 ethertype, then the
/// sequence number and a pattern.
fn frame(len: usize, seq: u32) -> Vec<u8> {
    let mut f = vec![0u8; len.max(18)];
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f[18..].iter_mut().enumerate() {
        *b = (i as u32 ^ seq) as u8;
    }
    f
}

fn swap_macs(f: &mut [u8]) {
    if f.len() >= 12 {
        let (a, b) = f.split_at_mut(6);
        a.swap_with_slice(&mut b[..6]);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let role = match arg(&args, "--role", "server".to_string()).as_str() {
        "client" | "slave" => Role::Client,
        _ => Role::Server,
    };
    let mut cfg = Config::new(role, &arg(&args, "--socket", "/tmp/memif.sock".to_string()));
    cfg.id = arg(&args, "--id", 0);
    let queues: u16 = arg(&args, "--queues", 1);
    cfg.num_s2m_rings = queues;
    cfg.num_m2s_rings = queues;
    let secret: String = arg(&args, "--secret", String::new());
    if !secret.is_empty() {
        cfg.secret = Some(secret);
    }
    let count: u32 = arg(&args, "--count", 10_000);
    let size: usize = arg(&args, "--size", 64);
    let echo = args.iter().any(|a| a == "--echo");

    let mut ifc = Interface::new(cfg).expect("create interface");
    let mut bufs: Vec<PacketBuf> = (0..64).map(|_| PacketBuf::new(10_000)).collect();
    eprintln!("waiting for peer...");
    loop {
        match ifc.poll_control() {
            Some(Event::Connected { remote_name, .. }) => {
                eprintln!("connected to {remote_name}");
                break;
            }
            Some(e) => eprintln!("{e:?}"),
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    if echo {
        loop {
            while let Some(e) = ifc.poll_control() {
                eprintln!("{e:?}");
            }
            for q in 0..ifc.rx_queues() {
                let n = ifc.rx_burst(q, &mut bufs);
                for b in &mut bufs[..n] {
                    swap_macs(b.as_mut_slice());
                }
                ifc.tx_burst(q, &bufs[..n]);
            }
        }
    }
    // A peer may drop what arrives while it is still starting (testpmd does for about a
    // second after it connects): probe until one frame comes back before counting.
    let probe_deadline = Instant::now() + Duration::from_secs(10);
    let mut echoed = false;
    while !echoed && Instant::now() < probe_deadline {
        while let Some(e) = ifc.poll_control() {
            eprintln!("{e:?}");
        }
        ifc.tx_burst(0, &[frame(size, u32::MAX)]);
        let until = Instant::now() + Duration::from_millis(20);
        while !echoed && Instant::now() < until {
            for q in 0..ifc.rx_queues() {
                echoed |= ifc.rx_burst(q, &mut bufs) > 0;
            }
        }
    }
    if !echoed {
        eprintln!("no frame came back from the peer within 10 s");
        std::process::exit(1);
    }
    let start = Instant::now();
    let mut last_rx = Instant::now();
    let nq = ifc.tx_queues().max(1);
    let (mut sent, mut ok, mut bad) = (0u32, 0u32, 0u32);
    let mut last_dbg = Instant::now();
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(32);
    // Done when everything came back, or everything was sent and nothing came back for 1 s.
    while ok + bad < count
        && start.elapsed() < Duration::from_secs(30)
        && !(sent == count && last_rx.elapsed() > Duration::from_secs(1))
    {
        while let Some(e) = ifc.poll_control() {
            eprintln!("{e:?}");
        }
        if std::env::var("PKTGEN_DEBUG").is_ok() && last_dbg.elapsed() > Duration::from_millis(500)
        {
            last_dbg = Instant::now();
            if let (Some(r), Some(t)) = (ifc.rx_ring(0), ifc.tx_ring(0)) {
                eprintln!(
                    "rx h={} t={} f={} | tx h={} t={} f={} | sent {sent} ok {ok}",
                    r.head(),
                    r.tail(),
                    r.flags(),
                    t.head(),
                    t.tail(),
                    t.flags()
                );
            }
        }
        for q in 0..nq {
            if sent < count {
                out.clear();
                out.extend((sent..count.min(sent + 32)).map(|s| frame(size, s)));
                sent += ifc.tx_burst(q, &out) as u32;
            }
            let n = ifc.rx_burst(q, &mut bufs);
            if n > 0 {
                last_rx = Instant::now();
            }
            for b in &bufs[..n] {
                let got = b.as_slice();
                let seq = got
                    .get(14..18)
                    .map_or(u32::MAX - 1, |s| u32::from_be_bytes(s.try_into().unwrap()));
                if seq == u32::MAX {
                    continue; // a late probe
                }
                let mut want = frame(size, seq);
                swap_macs(&mut want);
                if got == &want[..] {
                    ok += 1
                } else {
                    bad += 1
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let lost = sent - ok - bad;
    println!(
        "sent {sent} received-ok {ok} bad {bad} lost {lost} in {secs:.2}s ({:.0} pps)",
        ok as f64 / secs
    );
    // Corruption is a failure; a few drops under full load are the peer's choice.
    std::process::exit(if bad == 0 && ok > 0 && lost <= count / 100 {
        0
    } else {
        1
    });
}
