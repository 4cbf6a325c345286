//! The binary-API socket's stream reassembly (`transport::Deframer`, what `serve_connection`
//! runs on every read) against a one-shot reference parser, with the stream cut into reads at
//! fuzzer-chosen points.
//!
//! Input: `[n] [n x u16 cut offsets] stream...` (n = first byte % 32). If bit 7 of the first
//! byte is set, `stream` is instead a list of `[len u8] [len bytes]` payloads that are framed
//! with `transport::frame` first (so well-formed frames are common), followed by the rest.
//!
//! * Never panics; memory stays within a constant factor of the stream length, whatever
//!   length a header announces (up to `MAX_PAYLOAD`, 64 MiB, is accepted).
//! * However the stream is cut, the payloads come out as the reference parser finds them, in
//!   order, and an announced length above `MAX_PAYLOAD` is an error exactly where the
//!   reference meets it.
//! * Re-framing the payloads gives back the consumed bytes, with the ignored header bytes
//!   (all but 8..12) zeroed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvpp_vppapi::transport::{frame, Deframer, HEADER_LEN, MAX_PAYLOAD};

#[path = "alloc_guard.rs"]
mod alloc_guard;

#[global_allocator]
static ALLOC: alloc_guard::Counting = alloc_guard::Counting;

/// Payloads of every complete frame, and whether a too-large header stopped the parse.
fn reference(stream: &[u8]) -> (Vec<&[u8]>, bool) {
    let mut out = Vec::new();
    let mut rest = stream;
    while rest.len() >= HEADER_LEN {
        let len = u32::from_be_bytes(rest[8..12].try_into().unwrap()) as usize;
        if len > MAX_PAYLOAD {
            return (out, true);
        }
        if rest.len() - HEADER_LEN < len {
            break;
        }
        out.push(&rest[HEADER_LEN..HEADER_LEN + len]);
        rest = &rest[HEADER_LEN + len..];
    }
    (out, false)
}

fn split_input(data: &[u8]) -> Option<(Vec<usize>, Vec<u8>)> {
    let (&first, rest) = data.split_first()?;
    let n = (first % 32) as usize;
    let cuts_len = (2 * n).min(rest.len());
    let (cuts, body) = rest.split_at(cuts_len);
    let stream = if first & 0x80 != 0 {
        let mut s = Vec::new();
        let mut b = body;
        while let Some((&len, tail)) = b.split_first() {
            let len = (len as usize).min(tail.len());
            s.extend_from_slice(&frame(&tail[..len]));
            b = &tail[len..];
            if len == 0 && tail.first() == Some(&0) {
                // `0 0`: stop framing, the rest goes raw.
                s.extend_from_slice(&tail[1..]);
                break;
            }
        }
        s
    } else {
        body.to_vec()
    };
    let mut cuts: Vec<usize> = cuts
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]) as usize % (stream.len() + 1))
        .collect();
    cuts.push(stream.len());
    cuts.sort_unstable();
    Some((cuts, stream))
}

fuzz_target!(|data: &[u8]| {
    let Some((cuts, stream)) = split_input(data) else {
        return;
    };
    let (want, want_err) = reference(&stream);

    alloc_guard::reset();
    let mut de = Deframer::new();
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut got_err = false;
    let mut at = 0;
    'feed: for &cut in &cuts {
        de.push(&stream[at..cut]);
        at = cut;
        loop {
            match de.next_payload() {
                Ok(Some(p)) => {
                    assert!(p.len() <= MAX_PAYLOAD);
                    got.push(p);
                }
                Ok(None) => break,
                Err(_) => {
                    got_err = true;
                    break 'feed;
                }
            }
        }
    }
    // The buffer grows with what was pushed (at most doubling), payloads are copies.
    alloc_guard::check("deframe", stream.len(), 4, 64 << 10);

    assert_eq!(got.len(), want.len(), "payload count (cuts {cuts:?})");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.as_slice(), *w, "payload {i} (cuts {cuts:?})");
    }
    assert_eq!(got_err, want_err, "oversized-frame error (cuts {cuts:?})");
    // A too-large header must not be reported before the stream even holds it.
    if got_err {
        let consumed: usize = got.iter().map(|p| HEADER_LEN + p.len()).sum();
        assert!(stream.len() >= consumed + HEADER_LEN);
    }

    let mut canon = Vec::new();
    for p in &got {
        canon.extend_from_slice(&frame(p));
    }
    assert!(canon.len() <= stream.len());
    let mut pos = 0;
    for p in &got {
        let hdr = &canon[pos..pos + HEADER_LEN];
        assert_eq!(&hdr[..8], &[0u8; 8]);
        assert_eq!(&hdr[12..], &[0u8; 4]);
        assert_eq!(&hdr[8..12], &stream[pos + 8..pos + 12]);
        assert_eq!(
            &canon[pos + HEADER_LEN..pos + HEADER_LEN + p.len()],
            p.as_slice()
        );
        assert_eq!(
            p.as_slice(),
            &stream[pos + HEADER_LEN..pos + HEADER_LEN + p.len()]
        );
        pos += HEADER_LEN + p.len();
    }
});
