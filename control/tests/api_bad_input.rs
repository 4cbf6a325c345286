//! Hostile byte streams on the binary API socket of the real rvpp: truncated, oversized,
//! garbage, unknown ids and split writes. The offending client is closed or ignored; other
//! clients keep being served.

#[path = "api/common.rs"]
mod common;

use common::client::Client;
use rvpp_vppapi::defs::{ControlPing, IpRouteAddDel};
use rvpp_vppapi::transport::frame;
use rvpp_vppapi::Message;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

fn connect(path: &Path) -> Client {
    let c = Client::connect(path, "x").unwrap();
    c.s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

/// The raw ping frames the split-write checks need.
trait Raw {
    fn ping_msg(&self, ctx: u32) -> Vec<u8>;
    fn expect_ping(&mut self, ctx: u32) -> bool;
}

impl Raw for Client {
    fn ping_msg(&self, ctx: u32) -> Vec<u8> {
        frame(&self.payload(&ControlPing::default(), ctx))
    }
    fn expect_ping(&mut self, ctx: u32) -> bool {
        self.recv::<rvpp_vppapi::defs::ControlPingReply>(ctx)
            .is_ok()
    }
}

#[test]
fn hostile_clients_do_not_disturb_others() {
    let mut r = common::Rvpp::start("bad", "");
    let mut good = connect(&r.api);
    assert!(good.ping(1));

    // Truncated: an ip_route_add_del cut short is dropped (as VPP does); the client goes on.
    let mut c = connect(&r.api);
    let mut m = c.id::<IpRouteAddDel>().to_be_bytes().to_vec();
    m.extend_from_slice(&c.index.to_be_bytes());
    m.extend_from_slice(&5u32.to_be_bytes());
    m.extend_from_slice(&[1, 0, 0, 0]);
    c.s.write_all(&frame(&m)).unwrap();
    assert!(c.ping(2), "client usable after a truncated message");
    assert!(good.ping(3));

    // Unknown message id and an id-only payload: no reply, client goes on.
    c.s.write_all(&frame(&[0xff, 0xf0, 0, 0, 0, 0, 0, 0, 0, 0]))
        .unwrap();
    c.s.write_all(&frame(&[0x00])).unwrap();
    c.s.write_all(&frame(&[])).unwrap();
    assert!(c.ping(4), "client usable after unknown ids");

    // A request naming another client's registration gets no reply.
    let other = ControlPing {
        client_index: good.index,
        context: 77,
    };
    c.s.write_all(&frame(&other.encode_msg(c.id::<ControlPing>())))
        .unwrap();
    assert!(c.ping(5));

    // Split writes: a ping dribbled one byte at a time, then several frames in one write.
    let msg = c.ping_msg(6);
    for b in &msg {
        c.s.write_all(&[*b]).unwrap();
        c.s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(c.expect_ping(6), "split writes reassembled");
    let mut many = Vec::new();
    for k in 0..50 {
        many.extend(c.ping_msg(100 + k));
    }
    c.s.write_all(&many).unwrap();
    for k in 0..50 {
        assert!(c.expect_ping(100 + k));
    }

    // Oversized: a header announcing 1 GiB closes that client only.
    let mut o = connect(&r.api);
    let mut h = vec![0u8; 16];
    h[8..12].copy_from_slice(&(1u32 << 30).to_be_bytes());
    o.s.write_all(&h).unwrap();
    assert!(o.closed(), "oversized frame closes the client");
    assert!(good.ping(7));

    // Garbage streams of pseudo-random bytes: each client is closed or ignored.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..20 {
        let mut g = connect(&r.api);
        let mut junk = vec![0u8; 3000 + round * 101];
        for b in junk.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let _ = g.s.write_all(&junk);
        drop(g);
        assert!(
            good.ping(1000 + round as u32),
            "good client after garbage {round}"
        );
    }
    // Half a frame and a vanished peer.
    let mut hf = connect(&r.api);
    hf.s.write_all(&good.ping_msg(9)[..10]).unwrap();
    drop(hf);
    assert!(good.ping(8));
    assert!(c.ping(9));
    assert!(r.alive(), "rvpp alive: {}", r.log());
}
