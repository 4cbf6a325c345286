//! Instruction cost of cnat's input side on established flows, for callgrind:
//!   cargo build --release -p rvpp-dataplane --example cnat_cost
//!   valgrind --tool=callgrind --toggle-collect='cnat_cost::one' target/release/examples/cnat_cost <flows>
//! (flows: 10000 and 1000000 in bench/README.md).
//! `one` handles one packet of an established flow (session lookup, rewrite, checksum
//! updates, refresh); the instruction count over the run divided by the packets is the cost.
use rvpp_dataplane::buffer::{BufferPool, Buffers};
use rvpp_dataplane::cnat::node::{input_packet, Verdict};
use rvpp_dataplane::cnat::translation::{Endpoint, PathEp, Translation, TranslationTable};
use rvpp_dataplane::cnat::{Cnat, CnatConfig};

const PACKETS: usize = 100_000;

#[inline(never)]
fn one(c: &Cnat, tr: &TranslationTable, bufs: &mut Buffers, bi: u32) -> Verdict {
    let mut b = bufs.get(bi);
    input_packet(c, tr, &c.snat.load(), &mut b, false, 1)
}

/// Flow `i`'s packet: client 198.18.x.y (the flow's upper bits) port 1024 + its low 14 bits,
/// so up to 4M distinct flows.
fn frame(i: usize) -> Vec<u8> {
    let sport = 1024 + (i & 0x3fff) as u16;
    let host = (i >> 14) as u16;
    let mut v = vec![0u8; 20 + 8 + 18];
    v[0] = 0x45;
    let n = v.len() as u16;
    v[2..4].copy_from_slice(&n.to_be_bytes());
    v[8] = 64;
    v[9] = 17;
    v[12..16].copy_from_slice(&[198, 18, (host >> 8) as u8, host as u8]);
    v[16..20].copy_from_slice(&[198, 19, 255, 1]);
    v[20..22].copy_from_slice(&sport.to_be_bytes());
    v[22..24].copy_from_slice(&80u16.to_be_bytes());
    v[24..26].copy_from_slice(&26u16.to_be_bytes());
    // A non-zero UDP checksum, so its incremental update is part of the cost.
    v[26..28].copy_from_slice(&0x1234u16.to_be_bytes());
    v
}

fn main() {
    let flows: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let c = Cnat::new(CnatConfig {
        max_sessions: flows * 2 + 16,
    });
    let ep = |a: u32, port| Endpoint {
        addr: 0xffff_0000_0000 | a as u128,
        port,
        ip6: false,
    };
    c.translation_update(Translation {
        vip: ep(0xc613_ff01, 80),
        proto: 17,
        paths: (0..4)
            .map(|i| PathEp {
                dst: ep(0xc613_0002 + i, 8080),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    });
    let tr = c.translations.load();
    let pool = BufferPool::with_backing(1024, 2048, false).unwrap();
    let mut bufs = pool.local();
    let frames: Vec<Vec<u8>> = (0..flows).map(frame).collect();
    // Create the sessions outside `one`, so the count is established flows only.
    for f in &frames {
        let bi = bufs.alloc_from_bytes(f).unwrap();
        let r = input_packet(&c, &tr, &c.snat.load(), &mut bufs.get(bi), false, 1);
        assert!(r.is_ok(), "{r:?} after {} sessions", c.sessions.len());
        bufs.free(&[bi]);
    }
    assert_eq!(c.sessions.len(), flows * 2);
    let bi = bufs.alloc_from_bytes(&frames[0]).unwrap();
    let mut ok = 0;
    for i in 0..PACKETS {
        // Put a fresh (untranslated) packet of flow i in the buffer, outside the measured fn.
        let f = &frames[(i * 7919) % flows];
        bufs.get(bi).data_mut().copy_from_slice(f);
        ok += one(&c, &tr, &mut bufs, bi).is_ok() as usize;
    }
    bufs.free(&[bi]);
    println!("flows {flows} packets {PACKETS} ok {ok}");
}
