//! A whole binary-API connection: `transport::serve_connection` (the socket reader, deframer,
//! handshake, built-in messages and handler dispatch) on one end of a `UnixStream::pair()`,
//! fed the fuzzer's bytes as the client's stream.
//!
//! If bit 0 of the first byte is set, a valid `sockclnt_create` frame is sent first, so the
//! connection is registered (client_index 0x8000_0000) and requests reach the handler. The
//! handler answers by the request's context: a reply, a stream, unimplemented, or nothing.
//!
//! * The server never panics, ends at EOF (the fuzzer has no way to make it hang), and every
//!   complete frame it sends back decodes as a registered message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvpp_vppapi::defs::*;
use rvpp_vppapi::transport::{
    frame, serve_connection, Deframer, Events, Handler, Request, Response, SOCKCLNT_CREATE_ID,
};
use rvpp_vppapi::{Message, Registry};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

/// Client bytes beyond this are dropped (one iteration should stay fast).
const MAX_STREAM: usize = 48 << 10;

struct Fuzzed;

impl Handler for Fuzzed {
    fn handle(&mut self, req: Request<'_>, _events: &Events) -> Response {
        match req.context % 4 {
            0 => Response::Unimplemented,
            1 => Response::None,
            2 => Response::Reply(Box::new(ControlPingReply::default())),
            _ => Response::Stream(vec![
                Box::new(ControlPingReply::default()),
                Box::new(ControlPingReply::default()),
            ]),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // libFuzzer's main does not set SIGPIPE to ignored as Rust's does; the server closing its
    // end while the writer still writes must be EPIPE, not death.
    static IGNORE_SIGPIPE: std::sync::Once = std::sync::Once::new();
    // SAFETY: signal(SIGPIPE, SIG_IGN) takes no pointers and installs no handler code.
    IGNORE_SIGPIPE.call_once(|| unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    });
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mut input = Vec::new();
    if first & 1 != 0 {
        let create = SockclntCreate {
            context: 1,
            name: "fuzz".into(),
        };
        input.extend_from_slice(&frame(&create.encode_msg(SOCKCLNT_CREATE_ID)));
    }
    input.extend_from_slice(&rest[..rest.len().min(MAX_STREAM)]);

    let (client, server) = UnixStream::pair().expect("socketpair");
    let mut writer = client.try_clone().expect("clone");
    let mut reader = client;
    let w = std::thread::spawn(move || {
        // The server may close early (oversized frame, sockclnt_delete): EPIPE is fine.
        let _ = writer.write_all(&input);
        let _ = writer.shutdown(Shutdown::Write);
    });
    let r = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = reader.read_to_end(&mut out);
        out
    });
    let _ = serve_connection(server, Arc::new(Mutex::new(Fuzzed)), Events::default());
    w.join().expect("writer thread");
    let replies = r.join().expect("reader thread");

    let reg = Registry::global();
    let mut de = Deframer::new();
    de.push(&replies);
    while let Some(p) = de.next_payload().expect("server frames are small") {
        if let Err(e) = reg.decode(&p) {
            panic!("server sent an undecodable payload ({e}): {p:02x?}");
        }
    }
});
