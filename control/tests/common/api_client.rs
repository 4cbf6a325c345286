//! A binary-API client for tests, on rvpp's own framing and message definitions
//! (`rvpp_vppapi`): the handshake, typed requests and dumps, and raw frames for hostile input.
//! Message ids come from the server's `sockclnt_create_reply` table, as a govpp client's do.
#![allow(dead_code)]

use rvpp_vppapi::defs::{
    Address, AddressFamily, AddressUnion, ControlPing, ControlPingReply, FibPath, FibPathNh,
    FibPathNhProto, IpRoute, IpRouteAddDel, Prefix, SockclntCreate, SockclntCreateReply,
};
use rvpp_vppapi::transport::{frame, frame_into, SOCKCLNT_CREATE_ID, SOCKCLNT_CREATE_REPLY_ID};
use rvpp_vppapi::Message;
use std::collections::HashMap;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// The next framed payload from `r`.
pub fn read_payload(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut h = [0u8; 16];
    r.read_exact(&mut h)?;
    let n = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
    let mut p = vec![0u8; n];
    r.read_exact(&mut p)?;
    Ok(p)
}

/// The message id a payload starts with.
pub fn id_of(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[0], p[1]])
}

fn be32(p: &[u8], off: usize) -> Option<u32> {
    p.get(off..off + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// One registered API connection.
pub struct Client {
    /// The socket, for writes (and raw reads when [`Client::rd`] holds nothing buffered).
    pub s: UnixStream,
    /// Buffered reads of the same socket.
    pub rd: BufReader<UnixStream>,
    /// The registration handle (`client_index`).
    pub index: u32,
    /// `name_crc` -> id, from the server.
    ids: HashMap<String, u16>,
}

impl Client {
    /// Connect and register as `name`; reads time out after 10 s.
    pub fn connect(path: &Path, name: &str) -> io::Result<Client> {
        let mut s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let hello = SockclntCreate {
            context: 1,
            name: name.into(),
        };
        s.write_all(&frame(&hello.encode_msg(SOCKCLNT_CREATE_ID)))?;
        let p = read_payload(&mut s)?;
        if id_of(&p) != SOCKCLNT_CREATE_REPLY_ID {
            return Err(bad(format!("handshake answered by id {}", id_of(&p))));
        }
        let rep = SockclntCreateReply::decode_msg(&p).map_err(|e| bad(format!("{e:?}")))?;
        let ids = rep
            .message_table
            .into_iter()
            .map(|e| (e.name, e.index))
            .collect();
        let rd = BufReader::with_capacity(1 << 20, s.try_clone()?);
        Ok(Client {
            s,
            rd,
            index: rep.index,
            ids,
        })
    }

    /// The server's id for `M`; panics if it does not advertise it.
    pub fn id<M: Message>(&self) -> u16 {
        let name = format!("{}_{:08x}", M::NAME, M::CRC);
        *self
            .ids
            .get(&name)
            .unwrap_or_else(|| panic!("server does not advertise {name}"))
    }

    /// `m`'s payload with this client's id for it and its `client_index` and `context` written in.
    pub fn payload<M: Message>(&self, m: &M, context: u32) -> Vec<u8> {
        let mut p = m.encode_msg(self.id::<M>());
        if let Some(o) = M::DEF.client_index_offset() {
            p[o..o + 4].copy_from_slice(&self.index.to_be_bytes());
        }
        if let Some(o) = M::DEF.context_offset() {
            p[o..o + 4].copy_from_slice(&context.to_be_bytes());
        }
        p
    }

    /// [`Client::payload`], framed, appended to `out` (for pipelined bursts).
    pub fn frame_into<M: Message>(&self, out: &mut Vec<u8>, m: &M, context: u32) {
        frame_into(out, &self.payload(m, context));
    }

    pub fn send<M: Message>(&mut self, m: &M, context: u32) -> io::Result<()> {
        let f = frame(&self.payload(m, context));
        self.s.write_all(&f)
    }

    /// The next message of type `M` with `context` (any, for a message without one: an
    /// event); other messages are skipped.
    pub fn recv<M: Message>(&mut self, context: u32) -> io::Result<M> {
        let id = self.id::<M>();
        let off = M::DEF.context_offset();
        loop {
            let p = read_payload(&mut self.rd)?;
            if id_of(&p) == id && off.is_none_or(|o| be32(&p, o) == Some(context)) {
                return M::decode_msg(&p).map_err(|e| bad(format!("{}: {e:?}", M::NAME)));
            }
        }
    }

    /// A request and its reply.
    pub fn call<Req: Message, Rep: Message>(&mut self, req: &Req, context: u32) -> io::Result<Rep> {
        self.send(req, context)?;
        self.recv(context)
    }

    /// A dump: the request and a control_ping with one context, the details until the ping's
    /// reply (an error if that reply's retval is not 0).
    pub fn dump<Req: Message, Det: Message>(
        &mut self,
        req: &Req,
        context: u32,
    ) -> io::Result<Vec<Det>> {
        let mut w = frame(&self.payload(req, context));
        frame_into(&mut w, &self.payload(&ControlPing::default(), context));
        self.s.write_all(&w)?;
        let (det, ping) = (self.id::<Det>(), self.id::<ControlPingReply>());
        let mut out = Vec::new();
        loop {
            let p = read_payload(&mut self.rd)?;
            if be32(&p, 2) != Some(context) {
                continue;
            }
            if id_of(&p) == det {
                out.push(Det::decode_msg(&p).map_err(|e| bad(format!("{}: {e:?}", Det::NAME)))?);
            } else if id_of(&p) == ping {
                let r = ControlPingReply::decode_msg(&p).map_err(|e| bad(format!("{e:?}")))?;
                if r.retval != 0 {
                    return Err(bad(format!("{} failed: retval {}", Req::NAME, r.retval)));
                }
                return Ok(out);
            }
        }
    }

    /// A control_ping answered with the right context.
    pub fn ping(&mut self, context: u32) -> bool {
        self.send(&ControlPing::default(), context).is_ok()
            && self.recv::<ControlPingReply>(context).is_ok()
    }

    /// The server closed this connection (EOF or reset, not a timeout).
    pub fn closed(&mut self) -> bool {
        let mut b = [0u8; 4096];
        loop {
            match self.rd.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

pub fn ip4(a: u32) -> AddressUnion {
    let mut un = [0u8; 16];
    un[..4].copy_from_slice(&a.to_be_bytes());
    AddressUnion(un)
}

/// Add `dst`/24 in `table` via `nh` on `sw`.
pub fn route_add(table: u32, dst: u32, sw: u32, nh: u32) -> IpRouteAddDel {
    IpRouteAddDel {
        is_add: true,
        route: IpRoute {
            table_id: table,
            prefix: Prefix {
                address: Address {
                    af: AddressFamily::ADDRESS_IP4,
                    un: ip4(dst),
                },
                len: 24,
            },
            n_paths: 1,
            paths: vec![FibPath {
                sw_if_index: sw,
                weight: 1,
                proto: FibPathNhProto::FIB_API_PATH_NH_PROTO_IP4,
                nh: FibPathNh {
                    address: ip4(nh),
                    ..Default::default()
                },
                ..Default::default()
            }],
            ..Default::default()
        },
        ..Default::default()
    }
}
