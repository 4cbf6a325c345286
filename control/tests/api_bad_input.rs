//! Hostile byte streams on the binary API socket of the real rvpp: truncated, oversized,
//! garbage, unknown ids and split writes. The offending client is closed or ignored; other
//! clients keep being served.

#[path = "api/common.rs"]
mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

fn frame(p: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; 8];
    v.extend_from_slice(&(p.len() as u32).to_be_bytes());
    v.extend_from_slice(&[0; 4]);
    v.extend_from_slice(p);
    v
}

struct Client {
    s: UnixStream,
    index: u32,
    ping: u16,
    route: u16,
}

fn read_msg(s: &mut UnixStream) -> Option<Vec<u8>> {
    let mut h = [0u8; 16];
    s.read_exact(&mut h).ok()?;
    let n = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
    let mut p = vec![0u8; n];
    s.read_exact(&mut p).ok()?;
    Some(p)
}

fn connect(path: &Path) -> Client {
    let mut s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut m = 15u16.to_be_bytes().to_vec();
    m.extend_from_slice(&9u32.to_be_bytes());
    m.extend_from_slice(&[b'x'; 1]);
    m.resize(6 + 64, 0);
    s.write_all(&frame(&m)).unwrap();
    let p = read_msg(&mut s).unwrap();
    assert_eq!(u16::from_be_bytes([p[0], p[1]]), 16);
    let index = u32::from_be_bytes([p[14], p[15], p[16], p[17]]);
    let count = u16::from_be_bytes([p[18], p[19]]) as usize;
    let (mut ping, mut route) = (0, 0);
    for e in p[20..].chunks(66).take(count) {
        let id = u16::from_be_bytes([e[0], e[1]]);
        let name = String::from_utf8_lossy(&e[2..])
            .trim_end_matches('\0')
            .to_string();
        match name.as_str() {
            "control_ping_51077d14" => ping = id,
            "ip_route_add_del_b8ecfe0d" => route = id,
            _ => {}
        }
    }
    assert!(ping != 0 && route != 0);
    Client {
        s,
        index,
        ping,
        route,
    }
}

impl Client {
    fn ping_msg(&self, ctx: u32) -> Vec<u8> {
        let mut m = self.ping.to_be_bytes().to_vec();
        m.extend_from_slice(&self.index.to_be_bytes());
        m.extend_from_slice(&ctx.to_be_bytes());
        frame(&m)
    }
    /// A control_ping answered with the right context.
    fn ping(&mut self, ctx: u32) -> bool {
        let m = self.ping_msg(ctx);
        if self.s.write_all(&m).is_err() {
            return false;
        }
        self.expect_ping(ctx)
    }
    fn expect_ping(&mut self, ctx: u32) -> bool {
        while let Some(p) = read_msg(&mut self.s) {
            let id = u16::from_be_bytes([p[0], p[1]]);
            if id == self.ping + 1 && p[2..6] == ctx.to_be_bytes() {
                return true;
            }
        }
        false
    }
    /// The server closed this connection (EOF, not a timeout).
    fn closed(&mut self) -> bool {
        let mut b = [0u8; 4096];
        loop {
            match self.s.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

#[test]
fn hostile_clients_do_not_disturb_others() {
    let mut r = common::Rvpp::start("bad", "");
    let mut good = connect(&r.api);
    assert!(good.ping(1));

    // Truncated: an ip_route_add_del cut short is dropped (as VPP does); the client goes on.
    let mut c = connect(&r.api);
    let mut m = c.route.to_be_bytes().to_vec();
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
    let mut m = c.ping.to_be_bytes().to_vec();
    m.extend_from_slice(&good.index.to_be_bytes());
    m.extend_from_slice(&77u32.to_be_bytes());
    c.s.write_all(&frame(&m)).unwrap();
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
