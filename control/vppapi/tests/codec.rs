//! Codec safety and correctness: every message decodes garbage, truncations and oversized
//! counts into errors (never panics, never over-allocates), and round-trips.

use rvpp_vppapi::defs::*;
use rvpp_vppapi::{DecodeError, Message, Registry, Wire};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn byte(&mut self, mode: u64) -> u8 {
        let x = self.next();
        match mode {
            0 => x as u8,
            1 => {
                if x % 10 < 8 {
                    0
                } else {
                    (x >> 8) as u8 % 4
                }
            }
            _ => {
                if x & 3 == 0 {
                    (x >> 8) as u8
                } else {
                    0
                }
            }
        }
    }
}

#[test]
fn fuzz_decode_every_message() {
    let reg = Registry::global();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut decoded_ok = 0usize;
    for e in reg.entries() {
        let mut ok_here = 0;
        for round in 0..60u64 {
            let mode = round % 3;
            let min = e.def.fields.len() * 4 + 16;
            let len = (rng.next() % (min as u64 * 3)) as usize;
            let mut p = e.id.to_be_bytes().to_vec();
            p.extend((0..len).map(|_| rng.byte(mode)));
            let Ok((id, m)) = reg.decode(&p) else {
                continue;
            };
            assert_eq!(id, e.id);
            ok_here += 1;
            // Normalise once (strings may be re-cut), then encoding must be a fixed point.
            let b1 = m.encode_msg(id);
            let (_, m2) = reg.decode(&b1).expect("re-decode of an encoding");
            let b2 = m2.encode_msg(id);
            assert_eq!(b1, b2, "{} not stable", e.name());
            // Exactly the bytes produced are consumed: every strict prefix fails.
            for cut in 0..b2.len() {
                assert!(
                    reg.decode(&b2[..cut]).is_err(),
                    "{} decoded from {cut}/{} bytes",
                    e.name(),
                    b2.len()
                );
            }
        }
        if ok_here > 0 {
            decoded_ok += 1;
        }
    }
    assert!(
        decoded_ok * 10 >= reg.len() * 9,
        "only {decoded_ok} of {} messages ever decoded",
        reg.len()
    );
}

#[test]
fn default_messages_round_trip_and_truncations_fail() {
    let reg = Registry::global();
    for e in reg.entries() {
        // The all-zero payload of the minimal size decodes to the default message.
        let mut p = e.id.to_be_bytes().to_vec();
        let (_, m) = reg
            .decode(&{
                let mut q = p.clone();
                q.resize(2 + 4096, 0);
                q
            })
            .expect("zeros decode");
        let b = m.encode_msg(e.id);
        p.resize(b.len(), 0);
        assert_eq!(b, p, "{}: default encoding is not all zeros", e.name());
        for cut in 0..b.len() {
            assert!(reg.decode(&b[..cut]).is_err());
        }
    }
}

#[test]
fn oversized_counts_are_rejected_without_allocating() {
    // acl_add_replace: u32 count then acl_rule r[count]; claim 4 billion rules.
    let mut m = AclAddReplace::default();
    m.r.push(AclRule::default());
    let mut b = m.encode_msg(100);
    let off = 2 + 4 + 4 + 4 + 64;
    b[off..off + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        AclAddReplace::decode_msg(&b),
        Err(DecodeError::BadLength { .. })
    ));
    // variable string with a huge length
    let mut s = CliInband {
        cmd: "show version".into(),
        ..Default::default()
    }
    .encode_msg(7);
    s[10..14].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    assert!(CliInband::decode_msg(&s).is_err());
    // trailing bytes are tolerated by decode_msg but not by from_bytes_exact
    let mut t = ControlPing {
        client_index: 1,
        context: 2,
    }
    .encode_msg(23);
    t.extend_from_slice(&[1, 2, 3]);
    assert!(ControlPing::decode_msg(&t).is_ok());
    assert_eq!(
        ControlPing::from_bytes_exact(&t[2..]),
        Err(DecodeError::Trailing(3))
    );
}

#[test]
fn wire_layout_examples() {
    // control_ping_reply {u16 id, u32 context, i32 retval, u32 client_index, u32 vpe_pid}
    let r = ControlPingReply {
        context: 0x01020304,
        retval: -1,
        client_index: 5,
        vpe_pid: 0x0a0b0c0d,
    };
    assert_eq!(
        r.encode_msg(24),
        vec![0, 24, 1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 5, 0x0a, 0x0b, 0x0c, 0x0d]
    );
    // sockclnt_create: {u16 id, u32 context, char name[64]} (no client_index)
    let c = SockclntCreate {
        context: 124,
        name: "papi".into(),
    };
    let b = c.encode_msg(15);
    assert_eq!(b.len(), 2 + 4 + 64);
    assert_eq!(&b[6..10], b"papi");
    assert!(b[10..].iter().all(|&x| x == 0));
    // fixed strings are cut to N-1 bytes so that they stay NUL terminated
    let c = SockclntCreate {
        context: 0,
        name: "x".repeat(100),
    };
    let d = SockclntCreate::decode_msg(&c.encode_msg(15)).unwrap();
    assert_eq!(d.name.len(), 63);
    // sockclnt_create_reply with a VLA of {u16 index, char name[64]}; count written from len
    let rep = SockclntCreateReply {
        client_index: 0,
        context: 124,
        response: 0,
        index: 0x8000_0000,
        count: 0,
        message_table: vec![
            MessageTableEntry {
                index: 23,
                name: "control_ping_51077d14".into(),
            },
            MessageTableEntry {
                index: 24,
                name: "control_ping_reply_f6b0b8ca".into(),
            },
        ],
    };
    let b = rep.encode_msg(16);
    assert_eq!(b.len(), 2 + 4 + 4 + 4 + 4 + 2 + 2 * 66);
    assert_eq!(&b[18..20], &[0, 2]);
    let d = SockclntCreateReply::decode_msg(&b).unwrap();
    assert_eq!(d.count, 2);
    assert_eq!(d.message_table, rep.message_table);
    // union: address_union is 16 raw bytes
    let a = Address {
        af: AddressFamily::ADDRESS_IP4,
        un: AddressUnion::from_member(&Ip4Address([10, 0, 0, 1])),
    };
    let b = a.to_bytes();
    assert_eq!(b.len(), 1 + 16);
    assert_eq!(&b[..5], &[0, 10, 0, 0, 1]);
    assert_eq!(
        Address::from_bytes(&b)
            .unwrap()
            .un
            .get::<Ip4Address>()
            .unwrap(),
        Ip4Address([10, 0, 0, 1])
    );
    // enum with u8 base type
    assert_eq!(<AddressFamily as Wire>::MIN_SIZE, 1);
    // variable string: u32 length + bytes
    let ci = CliInband {
        client_index: 1,
        context: 2,
        cmd: "sh ver".into(),
    };
    let b = ci.encode_msg(7);
    assert_eq!(&b[10..14], &[0, 0, 0, 6]);
    assert_eq!(&b[14..], b"sh ver");
}

#[test]
fn registry_ids_follow_vpp() {
    let reg = Registry::global();
    let memclnt = [
        "memclnt_create",
        "memclnt_create_reply",
        "memclnt_delete",
        "memclnt_delete_reply",
        "rx_thread_exit",
        "memclnt_rx_thread_suspend",
        "memclnt_read_timeout",
        "rpc_call",
        "rpc_call_reply",
        "get_first_msg_id",
        "get_first_msg_id_reply",
        "api_versions",
        "api_versions_reply",
        "trace_plugin_msg_ids",
        "sockclnt_create",
        "sockclnt_create_reply",
        "sockclnt_delete",
        "sockclnt_delete_reply",
        "sock_init_shm",
        "sock_init_shm_reply",
        "memclnt_keepalive",
        "memclnt_keepalive_reply",
        "control_ping",
        "control_ping_reply",
        "memclnt_create_v2",
        "memclnt_create_v2_reply",
        "get_api_json",
        "get_api_json_reply",
    ];
    for (i, n) in memclnt.iter().enumerate() {
        assert_eq!(reg.by_name(n).unwrap().id as usize, i + 1, "{n}");
    }
    assert_eq!(reg.by_id(29).unwrap().id, 29);
    assert_ne!(reg.by_id(29).unwrap().module(), "memclnt");
    // blocks are contiguous
    let mut next = 29;
    for b in reg.modules().iter().skip(1) {
        assert_eq!(b.base, next);
        next += b.count;
    }
    assert_eq!(next as usize, reg.len() + 1);
    assert!(reg.by_id(0).is_none());
    assert!(reg.by_id(next).is_none());
    let ip = reg
        .modules()
        .iter()
        .find(|b| b.module.name == "ip")
        .unwrap();
    let key = format!("ip_{:08x}", ip.module.vl_api_version);
    assert_eq!(reg.first_msg_id(&key), Some(ip.base));
    assert_eq!(reg.id_of::<ControlPing>(), 23);
    assert_eq!(
        reg.by_name("sw_interface_dump").unwrap().kind(),
        rvpp_vppapi::Kind::Request
    );
    assert_eq!(
        reg.by_name("sw_interface_details").unwrap().kind(),
        rvpp_vppapi::Kind::Details
    );
    assert_eq!(
        reg.by_name("sw_interface_event").unwrap().kind(),
        rvpp_vppapi::Kind::Event
    );
    assert_eq!(
        reg.by_name("control_ping_reply").unwrap().kind(),
        rvpp_vppapi::Kind::Reply
    );
    // dynamic decode + downcast
    let b = reg.encode(&SwInterfaceDump {
        client_index: 3,
        context: 9,
        ..Default::default()
    });
    let (_, m) = reg.decode(&b).unwrap();
    assert_eq!(m.downcast_ref::<SwInterfaceDump>().unwrap().context, 9);
    assert_eq!(<SwInterfaceDump as Message>::DEF.context_offset(), Some(6));
}
