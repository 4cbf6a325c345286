//! One client connection: the transport of `rvpp_vppapi::transport` (framing, handshake,
//! memclnt built-ins, dispatch to the [`Handler`]), with replies batched: everything answered
//! from one read goes out in one write. A pipelining client (govpp streams, papi async) would
//! otherwise cost a send and a wake-up per reply.

use rvpp_vppapi::defs::*;
use rvpp_vppapi::registry::Registry;
use rvpp_vppapi::schema::{DynMessage, Kind};
use rvpp_vppapi::transport::{
    api_versions_reply, control_ping_reply, decode_error_answer, error_answer, frame,
    get_api_json_reply, Events, FailedDump, Handler, Request, Response, HEADER_LEN, MAX_PAYLOAD,
    RETVAL_UNIMPLEMENTED, SOCKCLNT_CREATE_ID, SOCKCLNT_CREATE_REPLY_ID, SOCK_API_REG_HANDLE_BIT,
};
use rvpp_vppapi::{Message, Wire};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, MutexGuard};

type Writer = Arc<Mutex<UnixStream>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Socket registrations (`client_index = slot | 0x8000_0000`), for replies and events.
#[derive(Default)]
pub struct Clients {
    slots: Mutex<Vec<Option<Writer>>>,
}

impl Clients {
    fn register(&self, w: Writer) -> u32 {
        let mut c = lock(&self.slots);
        let slot = match c.iter().position(|x| x.is_none()) {
            Some(i) => {
                c[i] = Some(w);
                i
            }
            None => {
                c.push(Some(w));
                c.len() - 1
            }
        };
        slot as u32 | SOCK_API_REG_HANDLE_BIT
    }
    fn slot(ci: u32) -> Option<usize> {
        (ci & SOCK_API_REG_HANDLE_BIT != 0).then_some((ci & !SOCK_API_REG_HANDLE_BIT) as usize)
    }
    fn unregister(&self, ci: u32) -> bool {
        let mut c = lock(&self.slots);
        match Self::slot(ci).and_then(|s| c.get_mut(s)) {
            Some(x @ Some(_)) => {
                *x = None;
                true
            }
            _ => false,
        }
    }
    fn writer(&self, ci: u32) -> Option<Writer> {
        let c = lock(&self.slots);
        Self::slot(ci).and_then(|s| c.get(s).cloned().flatten())
    }
    /// Send a message (an event) to a registration; false if it is gone.
    pub fn send(&self, ci: u32, m: &dyn DynMessage) -> bool {
        match self.writer(ci) {
            Some(w) => lock(&w)
                .write_all(&frame(&Registry::global().encode_dyn(m)))
                .is_ok(),
            None => false,
        }
    }
}

/// Input reassembly that consumes frames by offset (compacting once per read).
struct Input {
    buf: Vec<u8>,
    pos: usize,
}

impl Input {
    fn next(&mut self) -> io::Result<Option<(usize, usize)>> {
        let b = &self.buf[self.pos..];
        if b.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([b[8], b[9], b[10], b[11]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "frame too large",
            ));
        }
        if b.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let start = self.pos + HEADER_LEN;
        self.pos = start + len;
        Ok(Some((start, start + len)))
    }
    fn compact(&mut self) {
        self.buf.drain(..self.pos);
        self.pos = 0;
    }
}

fn push_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(payload);
}

fn be_u32(p: &[u8], off: usize) -> Option<u32> {
    p.get(off..off + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Encode `m` with `context` written at its context offset.
fn encode_with_context(reg: &Registry, m: &dyn DynMessage, context: u32) -> Vec<u8> {
    let mut b = reg.encode_dyn(m);
    if let Some(off) = m.def().context_offset() {
        if b.len() >= off + 4 {
            b[off..off + 4].copy_from_slice(&context.to_be_bytes());
        }
    }
    b
}

struct Conn<'a, H: Handler> {
    clients: &'a Clients,
    handler: &'a Mutex<H>,
    events: &'a Events,
    writer: Writer,
    client_index: Option<u32>,
    /// A dump that failed, (context, retval): its closing control_ping answers the retval.
    failed_dump: Option<FailedDump>,
}

/// Serve one connection until EOF, error or sockclnt_delete.
pub fn serve<H: Handler>(
    stream: UnixStream,
    handler: Arc<Mutex<H>>,
    clients: Arc<Clients>,
    events: Events,
) -> io::Result<()> {
    let writer: Writer = Arc::new(Mutex::new(stream.try_clone()?));
    let mut c = Conn {
        clients: &clients,
        handler: &handler,
        events: &events,
        writer,
        client_index: None,
        failed_dump: None,
    };
    let mut reader = stream;
    let mut input = Input {
        buf: Vec::with_capacity(256 << 10),
        pos: 0,
    };
    let mut chunk = vec![0u8; 256 << 10];
    let mut out = Vec::with_capacity(256 << 10);
    let result = 'outer: loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        };
        input.buf.extend_from_slice(&chunk[..n]);
        loop {
            match input.next() {
                Ok(Some((a, b))) => {
                    let close = c.process(&input.buf[a..b], &mut out);
                    if close || out.len() >= 256 << 10 {
                        if lock(&c.writer).write_all(&out).is_err() {
                            break 'outer Ok(());
                        }
                        out.clear();
                    }
                    if close {
                        break 'outer Ok(());
                    }
                }
                Ok(None) => break,
                Err(e) => break 'outer Err(e),
            }
        }
        input.compact();
        if !out.is_empty() {
            if let Err(e) = lock(&c.writer).write_all(&out) {
                break Err(e);
            }
            out.clear();
        }
    };
    if let Some(ci) = c.client_index.take() {
        if clients.unregister(ci) {
            lock(&handler).client_disconnected(ci);
        }
    }
    let _ = reader.shutdown(std::net::Shutdown::Both);
    result
}

impl<H: Handler> Conn<'_, H> {
    /// Handle one payload, appending framed replies to `out`; true to close the connection.
    fn process(&mut self, p: &[u8], out: &mut Vec<u8>) -> bool {
        let reg = Registry::global();
        let Ok(id) = Registry::peek_id(p) else {
            return false;
        };
        if id == SOCKCLNT_CREATE_ID {
            let Ok(req) = SockclntCreate::from_bytes(&p[2..]) else {
                return false;
            };
            let ci = *self
                .client_index
                .get_or_insert_with(|| self.clients.register(self.writer.clone()));
            let rep = SockclntCreateReply {
                client_index: 0,
                context: req.context,
                response: 0,
                index: ci,
                count: 0,
                message_table: reg
                    .entries()
                    .iter()
                    .map(|e| MessageTableEntry {
                        index: e.id,
                        name: e.name_crc.clone(),
                    })
                    .collect(),
            };
            push_frame(out, &rep.encode_msg(SOCKCLNT_CREATE_REPLY_ID));
            return false;
        }
        let Some(entry) = reg.by_id(id) else {
            return false; // unknown id: dropped, as VPP does
        };
        if entry.kind() != Kind::Request {
            return false;
        }
        let (Some(ci_off), Some(ctx_off)) =
            (entry.def.client_index_offset(), entry.def.context_offset())
        else {
            return false;
        };
        let (Some(ci), Some(context)) = (be_u32(p, ci_off), be_u32(p, ctx_off)) else {
            return false;
        };
        if self.client_index != Some(ci) {
            return false; // not this connection's registration: no reply
        }
        let msg = match (entry.def.decode)(p) {
            Ok(m) => m,
            // Strings that are not UTF-8: INVALID_VALUE. Shorter than the message: dropped,
            // as VPP does.
            Err(e) => {
                if let Some((b, dump)) = decode_error_answer(reg, entry, context, &e) {
                    self.failed_dump = dump;
                    push_frame(out, &b);
                }
                return false;
            }
        };
        if let Some(m) = msg.downcast_ref::<ControlPing>() {
            let r = control_ping_reply(m, context, self.failed_dump.take());
            push_frame(out, &reg.encode(&r));
            return false;
        }
        if let Some(m) = msg.downcast_ref::<SockclntDelete>() {
            let existed = Some(m.index) == self.client_index;
            let r = SockclntDeleteReply {
                context,
                response: if existed { 1 } else { -1 },
            };
            push_frame(out, &reg.encode(&r));
            return existed;
        }
        if msg.downcast_ref::<MemclntKeepalive>().is_some() {
            push_frame(
                out,
                &reg.encode(&MemclntKeepaliveReply { context, retval: 0 }),
            );
            return false;
        }
        if let Some(m) = msg.downcast_ref::<GetFirstMsgId>() {
            let r = match reg.first_msg_id(&m.name) {
                Some(b) => GetFirstMsgIdReply {
                    context,
                    retval: 0,
                    first_msg_id: b,
                },
                None => GetFirstMsgIdReply {
                    context,
                    retval: -1,
                    first_msg_id: u16::MAX,
                },
            };
            push_frame(out, &reg.encode(&r));
            return false;
        }
        if msg.downcast_ref::<ApiVersions>().is_some() {
            push_frame(out, &reg.encode(&api_versions_reply(reg, context)));
            return false;
        }
        if msg.downcast_ref::<GetApiJson>().is_some() {
            push_frame(out, &reg.encode(&get_api_json_reply(context)));
            return false;
        }
        let resp = lock(self.handler).handle(
            Request {
                client_index: ci,
                context,
                entry,
                msg,
            },
            self.events,
        );
        match resp {
            Response::Reply(m) => push_frame(out, &encode_with_context(reg, m.as_ref(), context)),
            Response::Stream(ms) => {
                for m in ms {
                    push_frame(out, &encode_with_context(reg, m.as_ref(), context));
                }
            }
            Response::Unimplemented => {
                if let Some((b, dump)) = error_answer(reg, entry, context, RETVAL_UNIMPLEMENTED) {
                    self.failed_dump = dump;
                    push_frame(out, &b);
                }
            }
            Response::None => {}
        }
        false
    }
}
