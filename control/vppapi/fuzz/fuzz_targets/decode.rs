//! Any bytes as a binary-API payload (`_vl_msg_id` first, as a client sends it).
//!
//! * `Registry::global().decode` never panics, and allocates at most a constant factor of the
//!   input's size (variable-length counts are checked against the remaining bytes first).
//! * A decoded message re-encodes to bytes that decode to the same message: after the one
//!   normalisation encoding may do (a fixed string that fills its field loses its last byte,
//!   invalid UTF-8 becomes U+FFFD, a non-0/1 bool becomes 1), encode/decode is a fixed point; and
//!   when the input already was the canonical encoding, the re-decoded message equals the
//!   first one exactly.
//! * Every strict prefix of an encoding fails to decode (a message consumes exactly its bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvpp_vppapi::Registry;

#[path = "alloc_guard.rs"]
mod alloc_guard;

#[global_allocator]
static ALLOC: alloc_guard::Counting = alloc_guard::Counting;

fuzz_target!(|data: &[u8]| {
    let reg = Registry::global();
    alloc_guard::reset();
    let decoded = reg.decode(data);
    // In-memory messages may be larger than their wire form (a 1-byte count per Vec, Strings
    // from lossy UTF-8), but never by more than a constant factor.
    alloc_guard::check("decode", data.len(), 64, 64 << 10);
    let Ok((id, m)) = decoded else {
        return;
    };
    assert_eq!(Some(id), Registry::peek_id(data).ok());
    let entry = reg.by_id(id).expect("decoded id is registered");
    assert_eq!(entry.def.name, m.def().name, "decoder of id {id}");

    let b1 = m.encode_msg(id);
    assert_eq!(
        reg.encode_dyn(m.as_ref()),
        b1,
        "encode_dyn uses the registered id"
    );
    let (id1, m1) = match reg.decode(&b1) {
        Ok(x) => x,
        Err(e) => panic!("{}: re-encoding does not decode: {e}\n{m:?}", entry.name()),
    };
    assert_eq!(id1, id);
    let b2 = m1.encode_msg(id);
    assert_eq!(b1, b2, "{}: encoding is not a fixed point", entry.name());
    let (d1, d2) = (format!("{m:?}"), format!("{m1:?}"));
    if data.starts_with(&b1) {
        assert_eq!(
            d1,
            d2,
            "{}: canonical input decodes differently",
            entry.name()
        );
    }
    // The message is exactly as long as its encoding: one byte less is an error.
    if let Some(short) = b1.len().checked_sub(1) {
        assert!(
            reg.decode(&b1[..short]).is_err(),
            "{} decodes from {short} of {} bytes",
            entry.name(),
            b1.len()
        );
    }
});
