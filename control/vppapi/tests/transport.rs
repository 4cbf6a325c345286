//! Socket transport: a govpp-like raw client and a real vpp_papi client against a test server.

use rvpp_vppapi::apijson::write_api_json_dir;
use rvpp_vppapi::defs::*;
use rvpp_vppapi::transport::{frame, Events, Handler, Request, Response, Server};
use rvpp_vppapi::{Message, Registry, Wire};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Default)]
struct TestHandler {
    disconnected: Vec<u32>,
}

impl Handler for TestHandler {
    fn handle(&mut self, req: Request<'_>, events: &Events) -> Response {
        let m = req.msg;
        if m.downcast_ref::<ShowVersion>().is_some() {
            return Response::Reply(Box::new(ShowVersionReply {
                program: "rvpp".into(),
                version: "0.1-test".into(),
                ..Default::default()
            }));
        }
        if m.downcast_ref::<SwInterfaceDump>().is_some() {
            return Response::Stream(
                (0..2)
                    .map(|i| {
                        Box::new(SwInterfaceDetails {
                            sw_if_index: InterfaceIndex(i),
                            interface_name: format!("if{i}"),
                            ..Default::default()
                        }) as Box<dyn rvpp_vppapi::DynMessage>
                    })
                    .collect(),
            );
        }
        if let Some(c) = m.downcast_ref::<CliInband>() {
            return Response::Reply(Box::new(CliInbandReply {
                reply: format!("ran: {}", c.cmd),
                ..Default::default()
            }));
        }
        if let Some(w) = m.downcast_ref::<WantInterfaceEvents>() {
            let (ev, ci, pid) = (events.clone(), req.client_index, w.pid);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                ev.send(
                    ci,
                    &SwInterfaceEvent {
                        client_index: ci,
                        pid,
                        sw_if_index: InterfaceIndex(3),
                        flags: IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP
                            | IfStatusFlags::IF_STATUS_API_FLAG_LINK_UP,
                        deleted: false,
                    },
                );
            });
            return Response::Reply(Box::new(WantInterfaceEventsReply::default()));
        }
        Response::Unimplemented
    }
    fn client_disconnected(&mut self, ci: u32) {
        self.disconnected.push(ci);
    }
}

fn sock_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("rvpp-api-{tag}-{}.sock", std::process::id()))
}

fn read_payload(s: &mut UnixStream) -> Option<Vec<u8>> {
    let mut h = [0u8; 16];
    s.read_exact(&mut h).ok()?;
    let len = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).ok()?;
    Some(p)
}

fn id_of(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[0], p[1]])
}

#[test]
fn raw_client_handshake_dump_ping_delete() {
    let path = sock_path("raw");
    let server = Server::bind(&path, TestHandler::default()).unwrap();
    let handler = server.handler();
    server.spawn();
    let reg = Registry::global();
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();

    // handshake, written one byte at a time to exercise reassembly
    let hs = frame(
        &SockclntCreate {
            context: 123,
            name: "govppsock".into(),
        }
        .encode_msg(15),
    );
    for b in &hs {
        s.write_all(std::slice::from_ref(b)).unwrap();
    }
    let p = read_payload(&mut s).unwrap();
    assert_eq!(id_of(&p), 16);
    let rep = SockclntCreateReply::decode_msg(&p).unwrap();
    assert_eq!(rep.context, 123);
    assert_eq!(rep.response, 0);
    assert_ne!(rep.index & 0x8000_0000, 0);
    assert_eq!(rep.message_table.len(), reg.len());
    let table: std::collections::HashMap<String, u16> = rep
        .message_table
        .iter()
        .map(|e| (e.name.clone(), e.index))
        .collect();
    assert_eq!(table["control_ping_51077d14"], 23);
    let ci = rep.index;
    let id = |n: &str| table[n];

    // dump + control_ping as govpp sends them (two contexts), in one write
    let mut w = frame(
        &SwInterfaceDump {
            client_index: ci,
            context: 40,
            ..Default::default()
        }
        .encode_msg(id("sw_interface_dump_aa610c27")),
    );
    w.extend(frame(
        &ControlPing {
            client_index: ci,
            context: 41,
        }
        .encode_msg(23),
    ));
    s.write_all(&w).unwrap();
    for i in 0..2 {
        let p = read_payload(&mut s).unwrap();
        assert_eq!(id_of(&p), id("sw_interface_details_6c221fc7"));
        let d = SwInterfaceDetails::decode_msg(&p).unwrap();
        assert_eq!(
            (d.context, d.sw_if_index.0, d.interface_name.as_str()),
            (40, i, format!("if{i}").as_str())
        );
    }
    let p = read_payload(&mut s).unwrap();
    assert_eq!(id_of(&p), 24);
    let pr = ControlPingReply::decode_msg(&p).unwrap();
    assert_eq!(
        (pr.context, pr.retval, pr.client_index, pr.vpe_pid),
        (41, 0, ci, std::process::id())
    );

    // wrong client_index, unknown id, garbage: no reply; the next ping answers first
    s.write_all(&frame(
        &ShowVersion {
            client_index: ci ^ 1,
            context: 50,
        }
        .encode_msg(id("show_version_51077d14")),
    ))
    .unwrap();
    s.write_all(&frame(&[0xff, 0xf0, 1, 2, 3])).unwrap();
    s.write_all(&frame(&[0x00])).unwrap();
    s.write_all(&frame(
        &ShowVersion {
            client_index: ci,
            context: 51,
        }
        .encode_msg(id("show_version_51077d14"))[..5],
    ))
    .unwrap();
    s.write_all(&frame(
        &ControlPing {
            client_index: ci,
            context: 52,
        }
        .encode_msg(23),
    ))
    .unwrap();
    let p = read_payload(&mut s).unwrap();
    assert_eq!(
        (id_of(&p), ControlPingReply::decode_msg(&p).unwrap().context),
        (24, 52)
    );

    // known but unhandled: reply with retval -9 and the rest zero
    s.write_all(&frame(
        &SwInterfaceSetFlags {
            client_index: ci,
            context: 60,
            ..Default::default()
        }
        .encode_msg(id("sw_interface_set_flags_f5aec1b8")),
    ))
    .unwrap();
    let p = read_payload(&mut s).unwrap();
    assert_eq!(id_of(&p), id("sw_interface_set_flags_reply_e8d4e804"));
    let r = SwInterfaceSetFlagsReply::decode_msg(&p).unwrap();
    assert_eq!((r.context, r.retval), (60, -9));
    // a create-style reply keeps its extra fields (zero)
    s.write_all(&frame(
        &TapCreateV3 {
            client_index: ci,
            context: 61,
            ..Default::default()
        }
        .encode_msg(id("tap_create_v3_3f3fd1df")),
    ))
    .unwrap();
    let p = read_payload(&mut s).unwrap();
    let r = TapCreateV3Reply::decode_msg(&p).unwrap();
    assert_eq!((r.context, r.retval, r.sw_if_index.0), (61, -9, 0));

    // get_first_msg_id
    let ip = reg
        .modules()
        .iter()
        .find(|b| b.module.name == "ip")
        .unwrap();
    let name = format!("ip_{:08x}", ip.module.vl_api_version);
    s.write_all(&frame(
        &GetFirstMsgId {
            client_index: ci,
            context: 70,
            name,
        }
        .encode_msg(10),
    ))
    .unwrap();
    let r = GetFirstMsgIdReply::decode_msg(&read_payload(&mut s).unwrap()).unwrap();
    assert_eq!((r.context, r.retval, r.first_msg_id), (70, 0, ip.base));

    // sockclnt_delete: response 1, then the server closes
    s.write_all(&frame(
        &SockclntDelete {
            client_index: ci,
            context: 124,
            index: ci,
        }
        .encode_msg(17),
    ))
    .unwrap();
    let p = read_payload(&mut s).unwrap();
    assert_eq!(id_of(&p), 18);
    let r = SockclntDeleteReply::decode_msg(&p).unwrap();
    assert_eq!((r.context, r.response), (124, 1));
    assert!(read_payload(&mut s).is_none());
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(handler.lock().unwrap().disconnected, vec![ci]);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn oversized_frame_closes_connection() {
    let path = sock_path("big");
    Server::bind(&path, TestHandler::default()).unwrap().spawn();
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut h = [0u8; 16];
    h[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    s.write_all(&h).unwrap();
    let mut b = [0u8; 1];
    assert_eq!(s.read(&mut b).unwrap_or(0), 0);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn vpp_papi_client_against_server() {
    let path = sock_path("papi");
    Server::bind(&path, TestHandler::default()).unwrap().spawn();
    let apidir = std::env::temp_dir().join(format!("rvpp-api-papi-json-{}", std::process::id()));
    write_api_json_dir(&apidir).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/papi_check.py");
    let out = match std::process::Command::new("python3")
        .arg(script)
        .arg("client")
        .arg(&apidir)
        .arg(&path)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("skipping: python3 not runnable: {e}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.code() == Some(77) {
        eprintln!("skipping: {stdout}");
        return;
    }
    assert!(
        out.status.success(),
        "papi client failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        v["show_version"],
        serde_json::json!([0, "rvpp", "0.1-test"])
    );
    assert_eq!(v["control_ping"][1], std::process::id());
    assert_eq!(
        v["sw_interface_dump"],
        serde_json::json!([[0, "if0"], [1, "if1"]])
    );
    assert_eq!(v["cli_inband"], serde_json::json!([0, "ran: show version"]));
    assert_eq!(v["want_interface_events"], 0);
    assert_eq!(v["event"], serde_json::json!([3, 3, false]));
    assert_eq!(v["unimplemented"], -9);
    let _ = std::fs::remove_dir_all(&apidir);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn unimplemented_reply_for_every_request_decodes() {
    let reg = Registry::global();
    for e in reg
        .entries()
        .iter()
        .filter(|e| e.kind() == rvpp_vppapi::Kind::Request)
    {
        if let Some(b) = rvpp_vppapi::transport::unimplemented_reply(reg, e, 7) {
            let (_, m) = reg.decode(&b).unwrap();
            let mut body = Vec::new();
            m.encode_body(&mut body);
            assert_eq!(
                &body[..8],
                &[0, 0, 0, 7, 0xff, 0xff, 0xff, 0xf7],
                "{}",
                e.name()
            );
            let _ = <u32 as Wire>::from_bytes(&body);
        }
    }
}

#[test]
fn router_dispatches_typed_requests() {
    use rvpp_vppapi::transport::Router;
    let mut r = Router::new(Vec::<u32>::new());
    r.on(|seen: &mut Vec<u32>, req: SwInterfaceDump, call| {
        seen.push(req.context);
        assert_eq!(call.context, req.context);
        Response::stream((0..3).map(|i| SwInterfaceDetails {
            sw_if_index: InterfaceIndex(i),
            ..Default::default()
        }))
    });
    let path = sock_path("router");
    let server = Server::bind(&path, r).unwrap();
    let h = server.handler();
    server.spawn();
    let mut s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&frame(
        &SockclntCreate {
            context: 1,
            name: "t".into(),
        }
        .encode_msg(15),
    ))
    .unwrap();
    let ci = SockclntCreateReply::decode_msg(&read_payload(&mut s).unwrap())
        .unwrap()
        .index;
    let reg = Registry::global();
    s.write_all(&frame(&reg.encode(&SwInterfaceDump {
        client_index: ci,
        context: 9,
        ..Default::default()
    })))
    .unwrap();
    s.write_all(&frame(&reg.encode(&ShowVersion {
        client_index: ci,
        context: 10,
    })))
    .unwrap();
    for _ in 0..3 {
        let d = SwInterfaceDetails::decode_msg(&read_payload(&mut s).unwrap()).unwrap();
        assert_eq!(d.context, 9);
    }
    let r = ShowVersionReply::decode_msg(&read_payload(&mut s).unwrap()).unwrap();
    assert_eq!((r.context, r.retval), (10, -9));
    assert_eq!(h.lock().unwrap().state, vec![9]);
    let _ = std::fs::remove_file(&path);
}
