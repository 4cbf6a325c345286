//! The VPP binary-API socket transport, server side.
//!
//! * Framing: `16-byte header || payload`; the header's bytes 8..12 hold the payload length,
//!   big-endian; the rest is zero on output and ignored on input. Input is a byte stream:
//!   partial frames are kept until complete and frames are handled in order.
//! * Handshake: `sockclnt_create` (id 15) -> `sockclnt_create_reply` (id 16) carrying the
//!   registration handle (`slot | 0x8000_0000`) and the whole `name_crc -> id` table.
//! * Built in: `control_ping` (also ends dumps), `sockclnt_delete` (response 1, then close),
//!   `get_first_msg_id`, `api_versions`, `get_api_json`, `memclnt_keepalive`.
//! * Everything else known goes to a [`Handler`]; its replies/details get the request's
//!   `context` written in. Unknown ids, undecodable payloads and requests whose
//!   `client_index` is not this connection's registration are dropped without reply, as VPP
//!   does. [`Response::Unimplemented`] produces the request's reply with
//!   `retval = -9` (`VNET_API_ERROR_UNIMPLEMENTED`).
//! * A dump no handler serves is not answered with an empty stream (which reads as "nothing
//!   configured"): its details stream carries one `memclnt_keepalive_reply` with the error
//!   retval, memclnt's generic `{context, retval}` reply, and the control_ping that closes
//!   the dump answers that retval too. govpp fails the dump on the foreign message ("received
//!   invalid message ID"); vpp_papi returns it as the list's only element (retval -9); a
//!   client reading the ping's retval sees -9. See [`error_answer`].
//! * A request whose strings are not UTF-8 is refused with `retval = -7`
//!   (`VNET_API_ERROR_INVALID_VALUE`) the same way, rather than decoded with its bytes changed.
//! * Batching: replies are queued per connection and everything answered from one read of
//!   the socket goes out in one write (see [`serve_connection`]).
//! * A client that takes nothing for [`SEND_TIMEOUT`] while rvpp writes to it is
//!   disconnected, so that it cannot block the event publisher (and through it every client).
//! * Events: [`Events`] holds the registrations; one value shared by every connection of a
//!   server (and its event publishers) sends a message to a registration from any thread.

use crate::apijson::module_json;
use crate::defs::*;
use crate::registry::{Entry, Registry};
use crate::schema::{DynMessage, Kind, Message};
use crate::wire::Wire;
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

/// `VNET_API_ERROR_UNIMPLEMENTED`.
pub const RETVAL_UNIMPLEMENTED: i32 = -9;
/// `VNET_API_ERROR_INVALID_VALUE`.
pub const RETVAL_INVALID_VALUE: i32 = -7;
/// `VNET_API_ERROR_UNSPECIFIED`.
pub const RETVAL_UNSPECIFIED: i32 = -1;
/// `SOCK_API_REG_HANDLE_BIT`: socket registrations' client_index has bit 31 set.
pub const SOCK_API_REG_HANDLE_BIT: u32 = 0x8000_0000;
/// Frame header size (`msgbuf_t`).
pub const HEADER_LEN: usize = 16;
/// Largest payload accepted from a client; a bigger announced length closes the connection.
pub const MAX_PAYLOAD: usize = 64 << 20;
/// Fixed ids of the handshake messages (hard-coded in govpp and vpp_papi).
pub const SOCKCLNT_CREATE_ID: u16 = 15;
pub const SOCKCLNT_CREATE_REPLY_ID: u16 = 16;

/// Prefix a payload with the 16-byte frame header.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + payload.len());
    frame_into(&mut v, payload);
    v
}

/// Append `payload`, framed, to `out` (a batch of replies written at once).
pub fn frame_into(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(payload);
}

/// Stream reassembly: feed bytes, take complete payloads.
///
/// Payloads are consumed by offset and the buffer is compacted once per [`push`](Self::push),
/// not once per frame: a read holding thousands of pipelined requests costs one move of the
/// leftover bytes, not one per request.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
    /// Start of the bytes not yet taken.
    pos: usize,
}

impl Deframer {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&mut self, data: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }
    /// The next complete payload, borrowed from the buffer; `Ok(None)` if more bytes are
    /// needed, or an error if the announced length exceeds [`MAX_PAYLOAD`].
    pub fn next_frame(&mut self) -> io::Result<Option<&[u8]>> {
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
        Ok(Some(&self.buf[start..start + len]))
    }
    /// [`next_frame`](Self::next_frame), copied out.
    pub fn next_payload(&mut self) -> io::Result<Option<Vec<u8>>> {
        Ok(self.next_frame()?.map(<[u8]>::to_vec))
    }
}

/// A request passed to the [`Handler`].
pub struct Request<'a> {
    /// The sender's registration handle.
    pub client_index: u32,
    pub context: u32,
    pub entry: &'a Entry,
    pub msg: Box<dyn DynMessage>,
}

/// What the handler answers.
pub enum Response {
    /// One reply (its `context` is filled in by the transport).
    Reply(Box<dyn DynMessage>),
    /// Details of a dump (contexts filled in); the client's control_ping ends the stream.
    Stream(Vec<Box<dyn DynMessage>>),
    /// Known but not handled: the request's reply with retval -9 (no details for dumps).
    Unimplemented,
    /// Send nothing.
    None,
}

/// The dataplane side of the API.
pub trait Handler: Send + 'static {
    fn handle(&mut self, req: Request<'_>, events: &Events) -> Response;
    /// A registration went away (sockclnt_delete, EOF or error): drop its subscriptions.
    fn client_disconnected(&mut self, _client_index: u32) {}
}

type Writer = Arc<Mutex<UnixStream>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registered clients, for replies and events.
#[derive(Clone, Default)]
pub struct Events {
    clients: Arc<Mutex<Vec<Option<Writer>>>>,
}

impl Events {
    fn register(&self, w: Writer) -> u32 {
        let mut c = lock(&self.clients);
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
    fn unregister(&self, client_index: u32) -> bool {
        let mut c = lock(&self.clients);
        match Self::slot(client_index).and_then(|s| c.get_mut(s)) {
            Some(x @ Some(_)) => {
                *x = None;
                true
            }
            _ => false,
        }
    }
    fn slot(client_index: u32) -> Option<usize> {
        (client_index & SOCK_API_REG_HANDLE_BIT != 0)
            .then_some((client_index & !SOCK_API_REG_HANDLE_BIT) as usize)
    }
    fn writer(&self, client_index: u32) -> Option<Writer> {
        let c = lock(&self.clients);
        Self::slot(client_index).and_then(|s| c.get(s).cloned().flatten())
    }
    /// Whether `client_index` is a live registration.
    pub fn is_registered(&self, client_index: u32) -> bool {
        self.writer(client_index).is_some()
    }
    /// Send an already encoded payload to a registration (see [`write_or_close`]).
    pub fn send_payload(&self, client_index: u32, payload: &[u8]) -> bool {
        match self.writer(client_index) {
            Some(w) => write_or_close(&lock(&w), &frame(payload)).is_ok(),
            None => false,
        }
    }
    /// Send a message (event) to a registration; false if it is gone.
    pub fn send(&self, client_index: u32, msg: &dyn DynMessage) -> bool {
        self.send_payload(client_index, &Registry::global().encode_dyn(msg))
    }
}

/// The API server on a unix socket.
pub struct Server<H: Handler> {
    listener: UnixListener,
    path: PathBuf,
    handler: Arc<Mutex<H>>,
    events: Events,
}

impl<H: Handler> Server<H> {
    /// Listen on `path` (a stale socket file is replaced).
    pub fn bind(path: &Path, handler: H) -> io::Result<Self> {
        if path.exists() {
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        Ok(Server {
            listener,
            path: path.to_path_buf(),
            handler: Arc::new(Mutex::new(handler)),
            events: Events::default(),
        })
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// A handle to send events to clients.
    pub fn events(&self) -> Events {
        self.events.clone()
    }
    /// The shared handler (handling is serialised on it, like VPP's API thread).
    pub fn handler(&self) -> Arc<Mutex<H>> {
        self.handler.clone()
    }
    /// Accept connections forever, one thread per connection.
    pub fn run(self) -> io::Result<()> {
        for s in self.listener.incoming() {
            let s = s?;
            let handler = self.handler.clone();
            let events = self.events.clone();
            thread::spawn(move || {
                let _ = serve_connection(s, handler, events);
            });
        }
        Ok(())
    }
    /// Run the accept loop on a background thread.
    pub fn spawn(self) -> thread::JoinHandle<io::Result<()>> {
        thread::spawn(move || self.run())
    }
}

/// A write to a client that makes no progress for this long fails and the client is
/// disconnected: one that stops reading would otherwise block, for ever, everyone who writes
/// to it (the event publisher serves every registration in turn).
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Write all of `b`. A write that fails (the client took nothing for [`SEND_TIMEOUT`], or
/// went away) may have left part of a frame: the socket is shut down at once, so that whoever
/// waits to write next fails at once too, and the connection's thread ends it.
fn write_or_close(mut s: &UnixStream, b: &[u8]) -> io::Result<()> {
    let r = s.write_all(b);
    if r.is_err() {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    r
}

/// Bytes asked for per read.
const READ_CHUNK: usize = 256 << 10;
/// Replies are written when a read's requests are all handled, or earlier once this many
/// bytes are waiting.
const FLUSH_AT: usize = 256 << 10;

/// Serve one connection until EOF, error or sockclnt_delete.
///
/// Replies are batched: everything answered from one read goes out in one write (or one per
/// [`FLUSH_AT`] bytes). A pipelining client (govpp streams, papi async) would otherwise cost a
/// send and a wake-up per reply. Events from other threads ([`Events::send`]) are written
/// between batches, never inside one.
pub fn serve_connection<H: Handler>(
    stream: UnixStream,
    handler: Arc<Mutex<H>>,
    events: Events,
) -> io::Result<()> {
    stream.set_write_timeout(Some(SEND_TIMEOUT))?;
    let writer: Writer = Arc::new(Mutex::new(stream.try_clone()?));
    let mut conn = Connection {
        events: events.clone(),
        writer,
        client_index: None,
        failed_dump: None,
        out: Vec::with_capacity(FLUSH_AT),
    };
    let mut reader = stream;
    let mut de = Deframer::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let result = 'outer: loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        };
        de.push(&buf[..n]);
        loop {
            match de.next_frame() {
                Ok(Some(p)) => {
                    let close = conn.process(p, &handler) == Flow::Close;
                    if close || conn.out.len() >= FLUSH_AT {
                        let written = conn.flush();
                        if close || written.is_err() {
                            break 'outer Ok(());
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // Answer what came before the bad frame, then close.
                    let _ = conn.flush();
                    break 'outer Err(e);
                }
            }
        }
        if let Err(e) = conn.flush() {
            break Err(e);
        }
    };
    if let Some(ci) = conn.client_index.take() {
        if events.unregister(ci) {
            lock(&handler).client_disconnected(ci);
        }
    }
    let _ = reader.shutdown(std::net::Shutdown::Both);
    result
}

#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

/// Per-connection state.
struct Connection {
    events: Events,
    writer: Writer,
    client_index: Option<u32>,
    /// A dump that failed, (context, retval): its closing control_ping answers the retval.
    failed_dump: Option<FailedDump>,
    /// Framed replies not yet written.
    out: Vec<u8>,
}

fn be_u32(p: &[u8], off: usize) -> Option<u32> {
    p.get(off..off + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Encode `m` and write `context` at its context offset.
fn encode_with_context(reg: &Registry, m: &dyn DynMessage, context: u32) -> Vec<u8> {
    let mut b = reg.encode_dyn(m);
    if let Some(off) = m.def().context_offset() {
        if b.len() >= off + 4 {
            b[off..off + 4].copy_from_slice(&context.to_be_bytes());
        }
    }
    b
}

impl Connection {
    /// Queue a reply for the next [`flush`](Self::flush).
    fn send(&mut self, payload: &[u8]) {
        frame_into(&mut self.out, payload);
    }

    /// Write the queued replies in one write.
    fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let r = write_or_close(&lock(&self.writer), &self.out);
        self.out.clear();
        r
    }

    fn process<H: Handler>(&mut self, p: &[u8], handler: &Mutex<H>) -> Flow {
        let reg = Registry::global();
        let Ok(id) = Registry::peek_id(p) else {
            return Flow::Continue;
        };
        if id == SOCKCLNT_CREATE_ID {
            let Ok(req) = SockclntCreate::from_bytes(&p[2..]) else {
                return Flow::Continue;
            };
            let ci = match self.client_index {
                Some(ci) => ci,
                None => {
                    let ci = self.events.register(self.writer.clone());
                    self.client_index = Some(ci);
                    ci
                }
            };
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
            self.send(&rep.encode_msg(SOCKCLNT_CREATE_REPLY_ID));
            return Flow::Continue;
        }
        let Some(entry) = reg.by_id(id) else {
            return Flow::Continue;
        };
        if entry.kind() != Kind::Request {
            return Flow::Continue;
        }
        let (Some(ci_off), Some(ctx_off)) =
            (entry.def.client_index_offset(), entry.def.context_offset())
        else {
            return Flow::Continue;
        };
        let (Some(ci), Some(context)) = (be_u32(p, ci_off), be_u32(p, ctx_off)) else {
            return Flow::Continue;
        };
        if self.client_index != Some(ci) {
            return Flow::Continue; // unknown registration: no reply
        }
        let msg = match (entry.def.decode)(p) {
            Ok(m) => m,
            Err(e) => {
                if let Some((b, dump)) = decode_error_answer(reg, entry, context, &e) {
                    self.failed_dump = dump;
                    self.send(&b);
                }
                return Flow::Continue;
            }
        };
        if let Some(m) = msg.downcast_ref::<ControlPing>() {
            let r = control_ping_reply(m, context, self.failed_dump.take());
            self.send(&reg.encode(&r));
            return Flow::Continue;
        }
        if let Some(m) = msg.downcast_ref::<SockclntDelete>() {
            let existed = self.events.is_registered(m.index) && Some(m.index) == self.client_index;
            let r = SockclntDeleteReply {
                context,
                response: if existed { 1 } else { -1 },
            };
            self.send(&reg.encode(&r));
            if existed {
                return Flow::Close;
            }
            return Flow::Continue;
        }
        if msg.downcast_ref::<MemclntKeepalive>().is_some() {
            self.send(&reg.encode(&MemclntKeepaliveReply { context, retval: 0 }));
            return Flow::Continue;
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
            self.send(&reg.encode(&r));
            return Flow::Continue;
        }
        if msg.downcast_ref::<ApiVersions>().is_some() {
            self.send(&reg.encode(&api_versions_reply(reg, context)));
            return Flow::Continue;
        }
        if msg.downcast_ref::<GetApiJson>().is_some() {
            self.send(&reg.encode(&get_api_json_reply(context)));
            return Flow::Continue;
        }
        let resp = {
            let mut h = lock(handler);
            h.handle(
                Request {
                    client_index: ci,
                    context,
                    entry,
                    msg,
                },
                &self.events,
            )
        };
        match resp {
            Response::Reply(m) => self.send(&encode_with_context(reg, m.as_ref(), context)),
            Response::Stream(ms) => {
                for m in ms {
                    self.send(&encode_with_context(reg, m.as_ref(), context));
                }
            }
            Response::Unimplemented => {
                if let Some((b, dump)) = error_answer(reg, entry, context, RETVAL_UNIMPLEMENTED) {
                    self.failed_dump = dump;
                    self.send(&b);
                }
            }
            Response::None => {}
        }
        Flow::Continue
    }
}

/// A dump that failed: (context, retval), for the control_ping that closes it.
pub type FailedDump = (u32, i32);

/// An error reply ready to send, and the failed dump to remember if it answered a dump.
pub type ErrorAnswer = (Vec<u8>, Option<FailedDump>);

/// `control_ping_reply`: retval 0, or the retval of the dump it closes when that failed
/// (`failed_dump`, (context, retval), as recorded from [`error_answer`]).
pub fn control_ping_reply(
    m: &ControlPing,
    context: u32,
    failed_dump: Option<FailedDump>,
) -> ControlPingReply {
    ControlPingReply {
        context,
        retval: failed_dump.filter(|f| f.0 == context).map_or(0, |f| f.1),
        client_index: m.client_index,
        vpe_pid: std::process::id(),
    }
}

/// The answer to a request that fails without its handler (see the module docs): the
/// request's reply with `retval`, or for a dump a `memclnt_keepalive_reply` with `retval` in
/// its details stream plus `Some((context, retval))` for the closing control_ping. None for
/// a request without a reply.
pub fn error_answer(reg: &Registry, req: &Entry, context: u32, retval: i32) -> Option<ErrorAnswer> {
    let svc = reg.service(req.name())?;
    if svc.stream {
        let b = reg.encode(&MemclntKeepaliveReply { context, retval });
        return Some((b, Some((context, retval))));
    }
    let mut b = unimplemented_reply(reg, req, context)?;
    b[6..10].copy_from_slice(&retval.to_be_bytes());
    Some((b, None))
}

/// [`error_answer`] for a payload that did not decode: strings that are not UTF-8 are
/// refused with INVALID_VALUE; anything else (short, malformed) is dropped without reply,
/// as VPP does.
pub fn decode_error_answer(
    reg: &Registry,
    req: &Entry,
    context: u32,
    e: &crate::wire::DecodeError,
) -> Option<ErrorAnswer> {
    match e {
        crate::wire::DecodeError::BadUtf8 { .. } => {
            error_answer(reg, req, context, RETVAL_INVALID_VALUE)
        }
        _ => None,
    }
}

/// `major.minor.patch` of a module's options JSON (`{"version":"3.2.5"}`); None unless it
/// is exactly three numbers.
pub fn module_version(options: &str) -> Option<[u32; 3]> {
    let o: serde_json::Value = serde_json::from_str(options).ok()?;
    let v: Vec<u32> = o
        .get("version")?
        .as_str()?
        .split('.')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    v.try_into().ok()
}

/// The versions of `modules` (name, options JSON); retval UNSPECIFIED when one does not
/// parse (it is left out rather than reported as 0.0.0).
pub fn module_versions<'a>(
    modules: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> (i32, Vec<ModuleVersion>) {
    let mut retval = 0;
    let mut out = Vec::new();
    for (name, options) in modules {
        match module_version(options) {
            Some([major, minor, patch]) => out.push(ModuleVersion {
                major,
                minor,
                patch,
                name: name.to_string(),
            }),
            None => retval = RETVAL_UNSPECIFIED,
        }
    }
    (retval, out)
}

/// `api_versions_reply` for every registered module.
pub fn api_versions_reply(reg: &Registry, context: u32) -> ApiVersionsReply {
    let (retval, api_versions) = module_versions(
        reg.modules()
            .iter()
            .map(|b| (b.module.name, b.module.options)),
    );
    ApiVersionsReply {
        context,
        retval,
        count: 0,
        api_versions,
    }
}

/// `get_api_json_reply`: every module's JSON as one array, or retval UNSPECIFIED with no
/// JSON if it cannot be produced.
pub fn get_api_json_reply(context: u32) -> GetApiJsonReply {
    let all: Vec<serde_json::Value> = MODULES.iter().map(|m| module_json(m)).collect();
    match serde_json::to_string(&all) {
        Ok(json) => GetApiJsonReply {
            context,
            retval: 0,
            json,
        },
        Err(_) => GetApiJsonReply {
            context,
            retval: RETVAL_UNSPECIFIED,
            json: String::new(),
        },
    }
}

/// The reply of `req` with `retval = -9` and every other field zero; `None` for dumps and
/// for requests without a reply.
pub fn unimplemented_reply(reg: &Registry, req: &Entry, context: u32) -> Option<Vec<u8>> {
    let svc = reg.service(req.name())?;
    if svc.stream || svc.reply == "null" {
        return None;
    }
    let rep = reg.by_name(svc.reply)?;
    if rep.def.fields.get(1).map(|f| f.name) != Some("retval")
        || rep.def.context_offset() != Some(2)
    {
        return None;
    }
    // Decode an all-zero payload of the reply's minimal size to get its zero value.
    let mut zeros = rep.id.to_be_bytes().to_vec();
    let mut size = 64;
    let m = loop {
        zeros.resize(2 + size, 0);
        match (rep.def.decode)(&zeros) {
            Ok(m) => break m,
            Err(_) if size < (1 << 16) => size *= 4,
            Err(_) => return None,
        }
    };
    let mut b = m.encode_msg(rep.id);
    b[2..6].copy_from_slice(&context.to_be_bytes());
    b[6..10].copy_from_slice(&RETVAL_UNIMPLEMENTED.to_be_bytes());
    Some(b)
}

impl Response {
    /// A single typed reply.
    pub fn reply<M: Message>(m: M) -> Self {
        Response::Reply(Box::new(m))
    }
    /// Typed details of a dump.
    pub fn stream<M: Message>(ms: impl IntoIterator<Item = M>) -> Self {
        Response::Stream(
            ms.into_iter()
                .map(|m| Box::new(m) as Box<dyn DynMessage>)
                .collect(),
        )
    }
}

/// Context given to a [`Router`] route.
pub struct Call<'a> {
    pub client_index: u32,
    pub context: u32,
    pub events: &'a Events,
}

type DisconnectFn<S> = Box<dyn Fn(&mut S, u32) + Send>;
type Route<S> = Box<dyn Fn(&mut S, Box<dyn DynMessage>, &Call<'_>) -> Response + Send>;

/// A [`Handler`] that dispatches by message type to typed closures over a state `S`;
/// messages without a route get [`Response::Unimplemented`].
///
/// ```
/// use rvpp_vppapi::defs::*;
/// use rvpp_vppapi::transport::{Response, Router};
/// let mut r = Router::new(0u32);
/// r.on(|n: &mut u32, _req: ShowVersion, _call| {
///     *n += 1;
///     Response::reply(ShowVersionReply { program: "rvpp".into(), ..Default::default() })
/// });
/// ```
pub struct Router<S: Send + 'static> {
    pub state: S,
    routes: std::collections::HashMap<&'static str, Route<S>>,
    on_disconnect: Option<DisconnectFn<S>>,
}

impl<S: Send + 'static> Router<S> {
    pub fn new(state: S) -> Self {
        Router {
            state,
            routes: Default::default(),
            on_disconnect: None,
        }
    }
    /// Route request type `M` to `f`.
    pub fn on<M: Message>(
        &mut self,
        f: impl Fn(&mut S, M, &Call<'_>) -> Response + Send + 'static,
    ) -> &mut Self {
        self.routes.insert(
            M::NAME,
            Box::new(move |s, m, call| match m.downcast::<M>() {
                Ok(m) => f(s, m, call),
                Err(_) => Response::Unimplemented,
            }),
        );
        self
    }
    /// Called when a registration goes away.
    pub fn on_disconnect(&mut self, f: impl Fn(&mut S, u32) + Send + 'static) -> &mut Self {
        self.on_disconnect = Some(Box::new(f));
        self
    }
    /// Whether a route exists for the message name.
    pub fn handles(&self, name: &str) -> bool {
        self.routes.contains_key(name)
    }
}

impl<S: Send + 'static> Handler for Router<S> {
    fn handle(&mut self, req: Request<'_>, events: &Events) -> Response {
        let call = Call {
            client_index: req.client_index,
            context: req.context,
            events,
        };
        match self.routes.get(req.entry.name()) {
            Some(f) => f(&mut self.state, req.msg, &call),
            None => Response::Unimplemented,
        }
    }
    fn client_disconnected(&mut self, client_index: u32) {
        if let Some(f) = &self.on_disconnect {
            f(&mut self.state, client_index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_versions_parse_or_fail() {
        assert_eq!(module_version(r#"{"version":"3.2.5"}"#), Some([3, 2, 5]));
        for bad in [
            r#"{"version":"3.x.5"}"#,
            r#"{"version":"3.2"}"#,
            "{}",
            "not json",
        ] {
            assert_eq!(module_version(bad), None, "{bad}");
        }
        let (rv, v) =
            module_versions([("a", r#"{"version":"1.0.0"}"#), ("b", r#"{"version":"1"}"#)]);
        assert_eq!(
            rv, RETVAL_UNSPECIFIED,
            "a version that does not parse is an error"
        );
        assert_eq!(v.len(), 1, "and is not reported as 0.0.0");
        // Every module rvpp serves has a well-formed version.
        let r = api_versions_reply(Registry::global(), 1);
        assert_eq!(r.retval, 0);
        assert_eq!(r.api_versions.len(), MODULES.len());
        assert_eq!(get_api_json_reply(1).retval, 0);
    }

    #[test]
    fn replies_wait_for_one_write() {
        let (mut client, server) = UnixStream::pair().unwrap();
        let mut conn = Connection {
            events: Events::default(),
            writer: Arc::new(Mutex::new(server)),
            client_index: None,
            failed_dump: None,
            out: Vec::new(),
        };
        let handler = Mutex::new(Router::new(()));
        let reg = Registry::global();
        let create = SockclntCreate {
            context: 1,
            name: "t".into(),
        };
        let flow = conn.process(&create.encode_msg(SOCKCLNT_CREATE_ID), &handler);
        assert!(flow == Flow::Continue);
        let ci = conn.client_index.unwrap();
        assert!(conn.events.is_registered(ci));
        for context in 2..5 {
            let ping = ControlPing {
                client_index: ci,
                context,
            };
            conn.process(&reg.encode(&ping), &handler);
        }
        client.set_nonblocking(true).unwrap();
        let mut got = vec![0u8; 1 << 20];
        let e = client.read(&mut got).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "nothing before flush");
        conn.flush().unwrap();
        assert!(conn.out.is_empty());
        let n = client.read(&mut got).unwrap();
        let mut de = Deframer::new();
        de.push(&got[..n]);
        assert_eq!(
            de.next_frame().unwrap().map(Registry::peek_id),
            Some(Ok(16))
        );
        for context in 2..5 {
            let p = de.next_payload().unwrap().unwrap();
            let (_, m) = reg.decode(&p).unwrap();
            assert_eq!(
                m.downcast_ref::<ControlPingReply>().unwrap().context,
                context
            );
        }
        assert_eq!(de.next_frame().unwrap(), None);
    }

    #[test]
    fn deframer_takes_frames_in_place() {
        let mut de = Deframer::new();
        let mut stream = frame(b"ab");
        stream.extend_from_slice(&frame(b"cde"));
        stream.extend_from_slice(&frame(b"f")[..10]);
        de.push(&stream);
        assert_eq!(de.next_frame().unwrap(), Some(&b"ab"[..]));
        assert_eq!(de.next_frame().unwrap(), Some(&b"cde"[..]));
        assert_eq!(de.next_frame().unwrap(), None);
        de.push(&frame(b"f")[10..]);
        assert_eq!(
            de.buf.len(),
            HEADER_LEN + 1,
            "taken frames are dropped on push"
        );
        assert_eq!(de.next_payload().unwrap(), Some(b"f".to_vec()));
        let mut huge = frame(b"");
        huge[8..12].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_be_bytes());
        de.push(&huge);
        assert!(de.next_frame().is_err());
    }

    #[test]
    fn unserved_dumps_and_bad_strings_are_errors() {
        let reg = Registry::global();
        let dump = reg.by_name("sr_localsids_dump").unwrap();
        let (b, failed) = error_answer(reg, dump, 5, RETVAL_UNIMPLEMENTED).unwrap();
        assert_eq!(failed, Some((5, RETVAL_UNIMPLEMENTED)));
        let (_, m) = reg.decode(&b).unwrap();
        let r = m.downcast_ref::<MemclntKeepaliveReply>().unwrap();
        assert_eq!((r.context, r.retval), (5, RETVAL_UNIMPLEMENTED));
        let ping = ControlPing::default();
        assert_eq!(
            control_ping_reply(&ping, 5, failed).retval,
            RETVAL_UNIMPLEMENTED
        );
        assert_eq!(
            control_ping_reply(&ping, 6, failed).retval,
            0,
            "another context"
        );
        assert_eq!(control_ping_reply(&ping, 5, None).retval, 0);
        let req = reg.by_name("sw_interface_tag_add_del").unwrap();
        let e = crate::wire::DecodeError::BadUtf8 { what: "string" };
        let (b, failed) = decode_error_answer(reg, req, 9, &e).unwrap();
        assert_eq!(failed, None);
        assert_eq!(
            i32::from_be_bytes([b[6], b[7], b[8], b[9]]),
            RETVAL_INVALID_VALUE
        );
    }
}
