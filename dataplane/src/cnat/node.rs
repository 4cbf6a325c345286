//! The cnat nodes' packet logic, as plain functions over one packet ([`input_packet`],
//! [`output_packet`]) that return a [`Verdict`] with the nodes' counter codes. The nodes
//! themselves (registrations, edges, snapshots) are in `crate::nodes::cnat`.
//!
//! Session keys carry the FIB index: forward entries the FIB the packet was looked up in,
//! return entries the SNAT config's `ret_fib_index` (calico: 0), because replies from a pod
//! arrive in the pod's VRF. A lookup tries the packet's FIB and, on a miss, the return FIB.

use super::nat::{self, Flow, ParseError, L4};
use super::session::{
    class, sflags, stage, FlowKey, Found, InsertError, Made, Rewrite, Session, NPOL_MASK,
};
use super::snat::SnatConfig;
use super::translation::{flow_hash, pflags, tflags, TranslationTable};
use super::Cnat;
use crate::buffer::{flags, Buf};
use crate::wire::l4::tcp_flags;
use crate::wire::IP_PROTO_TCP;

use crate::buffer::flags::{CNAT_DNAT, CNAT_NO_SNAT, CNAT_RETURN, CNAT_SESSION};

crate::node_errors! {
    /// Input node counters; the drops are marked.
    pub mod in_err {
        /// drop
        SESSIONS_FULL => "cnat session table full",
        /// drop
        NO_SLOT => "cnat session buckets full",
        /// drop
        PORTS_EXHAUSTED => "cnat source ports exhausted",
        /// drop
        TRUNCATED => "cnat truncated transport header",
        FRAGMENT => "cnat non-first fragment without a translated first fragment (counted, forwarded)",
        NO_BACKENDS => "cnat vip without backends (answered port unreachable, as kube-proxy)",
        NEW_SESSIONS => "cnat sessions created",
        ICMP_ERROR_TRANSLATED => "cnat icmp errors translated",
        ICMP_ERROR_CHAINED => "cnat icmp error in chained buffers not translated (counted, forwarded)",
        PATH_FAMILY => "cnat path of the other address family (counted, follows the fib)",
        FRAGMENT_FOLLOWED => "cnat non-first fragments translated as their first fragment",
        REOPENED => "cnat flows a new SYN re-opened (closing or half expired; counted as created too)",
    }
}

crate::node_errors! {
    /// Output node counters; the drops are marked.
    pub mod out_err {
        /// drop
        SESSIONS_FULL => "cnat session table full",
        /// drop
        NO_SLOT => "cnat session buckets full",
        /// drop
        PORTS_EXHAUSTED => "cnat source ports exhausted",
        /// drop
        TRUNCATED => "cnat truncated transport header",
        NEW_SESSIONS => "cnat snat sessions created",
        NO_SNAT_ADDRESS => "cnat snat wanted but no snat address (counted, forwarded)",
        REOPENED => "cnat snat flows a new SYN re-opened (closing or half expired; counted as created too)",
        /// drop
        PORTS_TAKEN => "cnat snat ports tried all held by other flows",
    }
}

/// What became of one packet: continue on the arc, or drop with a node-local error code.
/// `Ok(Some(code))` continues and counts `code`.
pub type Verdict = Result<Option<u16>, u16>;

#[inline(always)]
fn flow_of(d: &[u8], ip6: bool) -> Result<Flow, ParseError> {
    if ip6 {
        nat::flow6(d)
    } else {
        nat::flow4(d)
    }
}

/// The session-table hash of a packet's key on `st` in `fib` (its flow parsed from `d`, the
/// IP header on), or 0 when it has none. The nodes work these out for a whole vector before
/// translating it, to prefetch each key's bucket (at 100k flows and more, a lookup otherwise
/// waits on two or three cache misses), and hand each to [`input_packet_hashed`] /
/// [`output_packet_hashed`], which then skip hashing it again.
#[inline(always)]
pub fn key_hash(d: &[u8], ip6: bool, st: u8, fib: u16) -> u64 {
    flow_of(d, ip6).map_or(0, |f| f.key(st, fib).hash())
}

#[inline(always)]
fn class_of(f: &Flow, cur: u8) -> u8 {
    if f.proto != IP_PROTO_TCP {
        return class::GENERIC;
    }
    if f.tcp_flags & (tcp_flags::FIN | tcp_flags::RST) != 0 {
        class::TCP_CLOSING
    } else if f.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN | tcp_flags::ACK {
        // A SYN-ACK opens the flow again: a new connection on a closing session's 5-tuple (a
        // client port reused within tcp-closing) must not keep the 5 s timeout, or its
        // session would expire under it when idle. VPP's cnat does the same.
        class::TCP_ESTABLISHED
    } else if cur == class::TCP_CLOSING {
        cur
    } else if f.tcp_flags & tcp_flags::ACK != 0 && f.tcp_flags & tcp_flags::SYN == 0 {
        class::TCP_ESTABLISHED
    } else {
        cur
    }
}

/// A TCP SYN without ACK: a connection's first packet (or its retransmission).
#[inline(always)]
fn is_syn(f: &Flow) -> bool {
    f.proto == IP_PROTO_TCP
        && f.tcp_flags & (tcp_flags::SYN | tcp_flags::ACK | tcp_flags::RST) == tcp_flags::SYN
}

/// Whether a SYN that found the forward entry `s` (key `k`) starts a new connection, and if so
/// remove the flow's entries (and free its port) so the caller translates it as a new flow.
/// It does when the entry is closing (the 5-tuple's last connection ended: a client port reused
/// within tcp-closing; Linux conntrack re-opens a closed entry on a SYN the same way), or when
/// the flow should have a return entry and has none: a SYN translated by such a forward entry
/// would have nothing to un-DNAT its SYN-ACK (issue 13's timeouts, when the scan removed a
/// flow's entries one by one; it now removes the forward one first and keeps both if either
/// is touched, so what is left is a packet racing the two removals, or a return entry the
/// scan did not find from its forward one). Only
/// SYNs pay the return entry's lookup, and only SYNs that found an entry.
#[cold]
#[inline(never)]
fn reopens(cnat: &Cnat, k: &FlowKey, s: &Session, ret_fib: u16, wants_return: bool) -> bool {
    let peer_stage = if s.flags & sflags::PEER_OUTPUT != 0 {
        stage::OUTPUT
    } else {
        stage::INPUT
    };
    let pk = FlowKey::reverse_of(&s.rw, k.proto, k.ip6, ret_fib, peer_stage);
    let peer = cnat
        .sessions
        .lookup(&pk)
        .filter(|p| p.session.flags & sflags::RETURN != 0);
    if s.class != class::TCP_CLOSING && (peer.is_some() || !wants_return) {
        return false;
    }
    if let Some(old) = cnat.sessions.remove(k) {
        cnat.release(k, &old, ret_fib);
    }
    if peer.is_some() {
        if let Some(old) = cnat.sessions.remove(&pk) {
            cnat.release(&pk, &old, ret_fib);
        }
    }
    true
}

/// Insert a new flow's return entry `ret` under `rk`. With `replace` (the flow's forward entry
/// was just made) an entry already there is stale, left by a flow on the same 5-tuple whose
/// forward entry the scan removed first, and it would go with that scan: it is replaced, as
/// VPP's cnat overwrites it.
fn insert_return(
    cnat: &Cnat,
    rk: &FlowKey,
    ret: &Session,
    replace: bool,
) -> Result<(), InsertError> {
    match cnat.sessions.insert(rk, ret) {
        Err(InsertError::Exists) if replace => {
            if let Some(old) = cnat.sessions.remove(rk) {
                cnat.release(rk, &old, rk.fib);
            }
            match cnat.sessions.insert(rk, ret) {
                Err(InsertError::Exists) => Ok(()),
                r => r.map(|_| ()),
            }
        }
        Err(InsertError::Exists) => Ok(()),
        r => r.map(|_| ()),
    }
}

/// Insert a new flow's forward entry: `Ok(Ok(entry))` made, `Ok(Err(entry))` another worker
/// made the flow's entry since this one's lookup missed (the packet then goes by that one,
/// as its later packets will), or why there is none.
fn insert_or_winner(
    cnat: &Cnat,
    k: &FlowKey,
    s: &Session,
) -> Result<Result<Made, Found>, InsertError> {
    for _ in 0..2 {
        match cnat.sessions.insert(k, s) {
            Ok(made) => return Ok(Ok(made)),
            Err(InsertError::Exists) => {
                if let Some(winner) = cnat.sessions.lookup(k) {
                    return Ok(Err(winner));
                }
                // Gone again (expired or purged meanwhile): try once more.
            }
            Err(e) => return Err(e),
        }
    }
    Err(InsertError::NoSlot)
}

/// The input side for one packet (`b` from its IP header): established and return traffic by
/// its session, ICMP errors quoting a session's flow translated back, new flows to a VIP
/// DNATed to a backend.
#[inline]
pub fn input_packet(
    cnat: &Cnat,
    tr: &TranslationTable,
    snat: &SnatConfig,
    b: &mut Buf<'_>,
    ip6: bool,
    now: u32,
) -> Verdict {
    input_packet_hashed(cnat, tr, snat, b, ip6, now, 0)
}

/// [`input_packet`] given `hash`, the packet's [`key_hash`] on the input stage in its FIB
/// (0: not worked out).
///
/// An IPv4 TCP or UDP packet of an established flow (most of them) takes a path of its own,
/// small enough for its flow to stay in registers: parse, lookup, rewrite by the entry. The
/// rest, and the flows that path finds no entry for, take [`input_any`].
#[inline(always)]
pub fn input_packet_hashed(
    cnat: &Cnat,
    tr: &TranslationTable,
    snat: &SnatConfig,
    b: &mut Buf<'_>,
    ip6: bool,
    now: u32,
    hash: u64,
) -> Verdict {
    b.meta.flags &= !(CNAT_SESSION | CNAT_NO_SNAT);
    let (fib, ret_fib) = (b.meta.fib_index as u16, snat.ret_fib_index as u16);
    let partial = b.meta.flags & flags::OFFLOAD_L4_CKSUM != 0;
    // The packet's bytes, bounds checked once for the parse and the rewrite.
    let d = b.data_mut();
    let plain = if ip6 { None } else { nat::flow4_plain(d) };
    let Some(f) = plain else {
        return input_any(cnat, tr, snat, b, ip6, now, hash, None);
    };
    let mut k = f.key(stage::INPUT, fib);
    let h = if hash != 0 { hash } else { k.hash() };
    let mut hit = cnat.sessions.lookup_hashed(&k, h);
    if hit.is_none() && ret_fib != fib {
        k.fib = ret_fib;
        hit = cnat.sessions.lookup(&k);
    }
    match hit {
        // A SYN on a forward entry may re-open the flow: the general path decides.
        Some(found) if is_syn(&f) && found.session.flags & sflags::RETURN == 0 => {
            input_any(cnat, tr, snat, b, ip6, now, hash, None)
        }
        Some(found) => {
            let s = &found.session;
            nat::rewrite_by_entry(d, &f, &s.rw, found.csum_deltas4, partial);
            cnat.sessions.touch(&found, now, class_of(&f, s.class));
            // Not a fragment (a plain packet is whole): the session goes on for npol.
            mark_established(b, &found, snat, now, true);
            Ok(None)
        }
        None => input_any(cnat, tr, snat, b, ip6, now, hash, Some(f)),
    }
}

/// Mark a packet rewritten by the entry `found`: DNATed or returning and, with `session`
/// (not a first fragment: npol leaves its verdict for the rest), the session for npol and
/// cnat-output.
#[inline(always)]
fn mark_established(b: &mut Buf<'_>, found: &Found, snat: &SnatConfig, now: u32, session: bool) {
    let s = &found.session;
    let mut mark = if s.flags & sflags::RETURN != 0 {
        CNAT_RETURN
    } else {
        CNAT_DNAT
    };
    // The session for npol, which keeps its verdict's copy there (`nodes::npol`). The packet
    // that refreshes the session in a new second gets the word's generation only, as if npol
    // had copied nothing: npol looks its own entry up for it (keeping that alive for what
    // reads it without a session: ICMP errors, fragments) and brings the copy in line.
    if session {
        mark |= CNAT_SESSION;
        // cnat-output decided this flow gets no SNAT, under the policy as it is.
        if found.snat_epoch() == snat.epoch {
            mark |= CNAT_NO_SNAT;
        }
        b.meta.cnat_slot = found.slot as u32;
        b.meta.cnat_npol = if s.last_seen == now {
            found.npol
        } else {
            found.npol & !NPOL_MASK
        };
    }
    b.meta.flags |= mark;
}

/// [`input_packet_hashed`] of any packet. `missed`: the packet's flow, already parsed, for
/// which both lookups found nothing.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn input_any(
    cnat: &Cnat,
    tr: &TranslationTable,
    snat: &SnatConfig,
    b: &mut Buf<'_>,
    ip6: bool,
    now: u32,
    hash: u64,
    missed: Option<Flow>,
) -> Verdict {
    let ret_fib = snat.ret_fib_index as u16;
    let partial = b.meta.flags & flags::OFFLOAD_L4_CKSUM != 0;
    let chained = b.meta.flags & flags::NEXT_PRESENT != 0;
    let fib = b.meta.fib_index as u16;
    let f = match missed {
        Some(f) => f,
        None => flow_of(b.data(), ip6).map_err(|_| in_err::TRUNCATED)?,
    };
    match f.l4 {
        L4::Fragment => {
            // A later fragment: the rewrite its first fragment got (addresses only).
            let fk = f.fragment_key(stage::INPUT, fib);
            return match cnat.fragments.lookup(&fk) {
                Some(s) => {
                    nat::rewrite(b.data_mut(), &f, &s.session.rw, partial);
                    Ok(Some(in_err::FRAGMENT_FOLLOWED))
                }
                None => Ok(Some(in_err::FRAGMENT)),
            };
        }
        L4::Other => return Ok(None),
        L4::IcmpError => {
            let Ok(q) = nat::quoted_flow(b.data(), &f) else {
                return Ok(None);
            };
            let mut rk = FlowKey {
                src: q.dst,
                dst: q.src,
                sport: q.dport,
                dport: q.sport,
                proto: q.proto,
                ip6,
                stage: stage::INPUT,
                fib,
            };
            let mut hit = cnat.sessions.lookup(&rk);
            if hit.is_none() && ret_fib != fib {
                rk.fib = ret_fib;
                hit = cnat.sessions.lookup(&rk);
            }
            let Some(s) = hit else { return Ok(None) };
            if chained {
                return Ok(Some(in_err::ICMP_ERROR_CHAINED));
            }
            nat::rewrite_icmp_error(b.data_mut(), &f, &q, &s.session.rw);
            return Ok(Some(in_err::ICMP_ERROR_TRANSLATED));
        }
        L4::Ports | L4::Echo => {}
    }
    let mut k = f.key(stage::INPUT, fib);
    let mut hit = None;
    if missed.is_none() {
        let h = if hash != 0 { hash } else { k.hash() };
        hit = cnat.sessions.lookup_hashed(&k, h);
        if hit.is_none() && ret_fib != fib {
            k.fib = ret_fib;
            hit = cnat.sessions.lookup(&k);
        }
    }
    let mut reopened = false;
    if let Some(found) = hit {
        let s = found.session;
        let wants_return = || {
            tr.get(f.dst, f.dport, f.proto)
                .is_some_and(|t| t.flags & tflags::NO_RETURN_SESSION == 0)
        };
        reopened = is_syn(&f)
            && s.flags & sflags::RETURN == 0
            && reopens(cnat, &k, &s, ret_fib, wants_return());
        if !reopened {
            input_by_entry(cnat, snat, b, &f, &found, fib, now);
            return Ok(None);
        }
    }
    if f.l4 != L4::Ports {
        return Ok(None);
    }
    let Some(t) = tr.get(f.dst, f.dport, f.proto) else {
        return Ok(None);
    };
    let h = flow_hash(
        t.flow_hash_fields(),
        f.src,
        f.dst,
        f.sport,
        f.dport,
        f.proto,
    );
    let aff_key = FlowKey {
        sport: 0,
        ..f.key(stage::INPUT, fib)
    };
    let sticky = if t.flags & tflags::AFFINITY != 0 {
        cnat.affinity.lookup(&aff_key).and_then(|a| {
            let p = t.active_path(a.session.rw.dst, a.session.rw.dport)?;
            cnat.affinity.touch(&a, now, class::GENERIC);
            Some(p)
        })
    } else {
        None
    };
    let Some(p) = sticky.or_else(|| t.pick(h)) else {
        // Not a drop: the glue answers it with an ICMP port unreachable.
        return Err(in_err::NO_BACKENDS);
    };
    // Its sessions (and affinity) carry its id from here: a delete must look for them.
    t.used.mark();
    if t.flags & tflags::AFFINITY != 0 && sticky.is_none() {
        // A stale entry (its backend left) is replaced.
        cnat.affinity.remove(&aff_key);
        let a = Session {
            rw: Rewrite {
                src: f.src,
                dst: p.dst.addr,
                sport: 0,
                dport: p.dst.port,
            },
            translation: t.id,
            flags: 0,
            class: class::GENERIC,
            last_seen: now,
        };
        // Best effort: a full affinity table only loses stickiness.
        let _ = cnat.affinity.insert(&aff_key, &a);
    }
    if p.dst.ip6 != ip6 || (p.src.is_set() && p.src.ip6 != ip6) {
        return Ok(Some(in_err::PATH_FAMILY));
    }
    let mut rw = Rewrite {
        src: f.src,
        dst: if p.flags & pflags::NO_NAT != 0 {
            f.dst
        } else {
            p.dst.addr
        },
        sport: f.sport,
        dport: if p.dst.port != 0 { p.dst.port } else { f.dport },
    };
    let mut owns = 0;
    if p.src.is_set() {
        rw.src = p.src.addr;
        if t.flags & tflags::ALLOC_PORT != 0 {
            rw.sport = cnat
                .ports
                .alloc(ip6, fib as u32, f.proto, h)
                .ok_or(in_err::PORTS_EXHAUSTED)?;
            owns = sflags::OWNS_PORT;
        } else if p.src.port != 0 {
            rw.sport = p.src.port;
        }
    }
    let cl = class_of(&f, class::GENERIC);
    let fwd = Session {
        rw,
        translation: t.id,
        flags: owns,
        class: cl,
        last_seen: now,
    };
    let free_port = |cnat: &Cnat| {
        if owns != 0 {
            cnat.ports.free(ip6, fib as u32, f.proto, rw.sport);
        }
    };
    k.fib = fib;
    let made = match insert_or_winner(cnat, &k, &fwd) {
        Ok(Ok(made)) => made,
        Ok(Err(winner)) => {
            free_port(cnat);
            input_by_entry(cnat, snat, b, &f, &winner, fib, now);
            return Ok(None);
        }
        Err(e) => {
            free_port(cnat);
            return Err(if e == InsertError::Full {
                in_err::SESSIONS_FULL
            } else {
                in_err::NO_SLOT
            });
        }
    };
    if t.flags & tflags::NO_RETURN_SESSION == 0 {
        let rk = FlowKey::reverse_of(&rw, f.proto, ip6, ret_fib, stage::INPUT);
        let ret = Session {
            rw: Rewrite {
                src: f.dst,
                dst: f.src,
                sport: f.dport,
                dport: f.sport,
            },
            translation: t.id,
            flags: sflags::RETURN,
            class: cl,
            last_seen: now,
        };
        match insert_return(cnat, &rk, &ret, true) {
            Ok(()) => {}
            Err(e) => {
                cnat.sessions.remove(&k);
                free_port(cnat);
                return Err(if e == InsertError::Full {
                    in_err::SESSIONS_FULL
                } else {
                    in_err::NO_SLOT
                });
            }
        }
    }
    nat::rewrite(b.data_mut(), &f, &rw, partial);
    if f.more_frags {
        remember_fragment(cnat, &f, fib, &rw, now);
    }
    // The new session goes on with the packet, so cnat-output can keep its SNAT decision
    // from this first packet on (and npol its verdict). A new entry is a forward one, seen
    // this second, with no SNAT mark (epoch 0): as `mark_established` would mark it.
    let mut mark = CNAT_DNAT;
    if !f.more_frags {
        mark |= CNAT_SESSION;
        if snat.epoch == 0 {
            mark |= CNAT_NO_SNAT;
        }
        b.meta.cnat_slot = made.slot as u32;
        b.meta.cnat_npol = made.npol;
    }
    b.meta.flags |= mark;
    Ok(Some(if reopened {
        in_err::REOPENED
    } else {
        in_err::NEW_SESSIONS
    }))
}

/// Translate `b` (flow `f`, in `fib`) by its session's entry `found` and mark it.
#[inline(always)]
fn input_by_entry(
    cnat: &Cnat,
    snat: &SnatConfig,
    b: &mut Buf<'_>,
    f: &Flow,
    found: &Found,
    fib: u16,
    now: u32,
) {
    let s = &found.session;
    let partial = b.meta.flags & flags::OFFLOAD_L4_CKSUM != 0;
    nat::rewrite_by_entry(b.data_mut(), f, &s.rw, found.csum_deltas4, partial);
    cnat.sessions.touch(found, now, class_of(f, s.class));
    if f.more_frags {
        remember_fragment(cnat, f, fib, &s.rw, now);
    }
    mark_established(b, found, snat, now, !f.more_frags);
}

/// A first fragment was translated: keep its rewrite for the rest (best effort: a full
/// fragment table leaves them untranslated, counted).
fn remember_fragment(cnat: &Cnat, f: &Flow, fib: u16, rw: &Rewrite, now: u32) {
    let s = Session {
        rw: Rewrite {
            sport: 0,
            dport: 0,
            ..*rw
        },
        translation: u32::MAX,
        flags: 0,
        class: class::GENERIC,
        last_seen: now,
    };
    let _ = cnat
        .fragments
        .insert(&f.fragment_key(stage::INPUT, fib), &s);
}

/// The output side for one packet: established SNAT flows by their session; new flows the
/// SNAT policy selects get the SNAT address and a port, with a return entry that also undoes
/// any DNAT the input side did. `l3` is where the IP header starts in `b.data()`: on the
/// output arc, after rewrite, the length of the L2 header the adjacency wrote.
#[inline]
pub fn output_packet(
    cnat: &Cnat,
    cfg: &SnatConfig,
    b: &mut Buf<'_>,
    l3: usize,
    ip6: bool,
    now: u32,
) -> Verdict {
    output_packet_hashed(cnat, cfg, b, l3, ip6, now, 0)
}

/// [`output_packet`] given `hash`, the packet's [`key_hash`] on the output stage in its FIB
/// (0: not worked out).
#[inline(always)]
pub fn output_packet_hashed(
    cnat: &Cnat,
    cfg: &SnatConfig,
    b: &mut Buf<'_>,
    l3: usize,
    ip6: bool,
    now: u32,
    hash: u64,
) -> Verdict {
    if b.meta.flags & CNAT_RETURN != 0 {
        return Ok(None);
    }
    // A DNATed flow has an SNAT session only if the policy wanted one (a hairpin, a backend
    // outside the pools): otherwise nothing to look up. Should the policy stop wanting SNAT
    // for a flow that has one, the flow goes on without it, as a new flow would. The policy
    // reads addresses only, and cnat-input parsed this flow whole: no second parse for it.
    // The decision is per flow, made on its first pass and kept on its session (as VPP's
    // cnat decides at session creation): a later packet whose rx/tx interfaces changed keeps
    // it; an edit of the SNAT config (new epoch) or a purge makes it be taken again.
    if b.meta.flags & CNAT_DNAT != 0 {
        if b.meta.flags & CNAT_NO_SNAT != 0 {
            return Ok(None);
        }
        let (rx, tx) = (b.meta.rx_sw_if_index, b.meta.tx_sw_if_index);
        let (src, dst) =
            nat::addrs(b.data().get(l3..).unwrap_or(&[]), ip6).ok_or(out_err::TRUNCATED)?;
        if !cfg.wants_snat(rx, tx, ip6, src, dst) {
            if b.meta.flags & CNAT_SESSION != 0 {
                cnat.mark_no_snat(cfg, b.meta.cnat_slot as usize, b.meta.cnat_npol);
            }
            return Ok(None);
        }
    }
    let partial = b.meta.flags & flags::OFFLOAD_L4_CKSUM != 0;
    let fib = b.meta.fib_index as u16;
    let ret_fib = cfg.ret_fib_index as u16;
    let f = flow_of(b.data().get(l3..).unwrap_or(&[]), ip6).map_err(|_| out_err::TRUNCATED)?;
    if !matches!(f.l4, L4::Ports | L4::Echo) {
        return Ok(None);
    }
    let k = f.key(stage::OUTPUT, fib);
    let h = if hash != 0 { hash } else { k.hash() };
    let mut reopened = false;
    if let Some(found) = cnat.sessions.lookup_hashed(&k, h) {
        reopened = is_syn(&f) && reopens(cnat, &k, &found.session, ret_fib, true);
        if !reopened {
            output_by_entry(cnat, b, l3, &f, &found, now, partial);
            return Ok(None);
        }
    }
    // Read here, not before the DNATed flows' early return: live that long, they cost the
    // loop two spills a packet.
    let (rx, tx) = (b.meta.rx_sw_if_index, b.meta.tx_sw_if_index);
    if !cfg.wants_snat(rx, tx, ip6, f.src, f.dst) {
        return Ok(None);
    }
    let snat = if ip6 { cfg.ip6 } else { cfg.ip4 };
    if snat == 0 || snat == 0xffff_0000_0000 {
        return Ok(Some(out_err::NO_SNAT_ADDRESS));
    }
    // What the return traffic becomes: back to the client, through the DNAT if there was one.
    let dnat_ret = FlowKey {
        src: f.dst,
        dst: f.src,
        sport: f.dport,
        dport: f.sport,
        proto: f.proto,
        ip6,
        stage: stage::INPUT,
        fib: ret_fib,
    };
    let (back, tid) = match cnat.sessions.lookup(&dnat_ret) {
        Some(d) => (d.session.rw, d.session.translation),
        None => (
            Rewrite {
                src: f.dst,
                dst: f.src,
                sport: f.dport,
                dport: f.sport,
            },
            u32::MAX,
        ),
    };
    let h = flow_hash(0x1f, f.src, f.dst, f.sport, f.dport, f.proto);
    let cl = class_of(&f, class::GENERIC);
    for attempt in 0..8u32 {
        let port = cnat
            .ports
            .alloc(
                ip6,
                ret_fib as u32,
                f.proto,
                h.wrapping_add(attempt.wrapping_mul(977)),
            )
            .ok_or(out_err::PORTS_EXHAUSTED)?;
        let rw = Rewrite {
            src: snat,
            dst: f.dst,
            sport: port,
            dport: if f.l4 == L4::Echo { port } else { f.dport },
        };
        let rk = FlowKey::reverse_of(&rw, f.proto, ip6, ret_fib, stage::INPUT);
        let ret = Session {
            rw: back,
            translation: tid,
            flags: sflags::RETURN | sflags::PEER_OUTPUT,
            class: cl,
            last_seen: now,
        };
        match insert_snat_return(cnat, &rk, &ret) {
            Ok(()) => {}
            Err(InsertError::Exists) => {
                // Another kind of flow holds the port (the allocator does not know it): give
                // the port back, or it would stay marked with no owner, and try another.
                cnat.ports.free(ip6, ret_fib as u32, f.proto, port);
                continue;
            }
            Err(e) => {
                cnat.ports.free(ip6, ret_fib as u32, f.proto, port);
                return Err(if e == InsertError::Full {
                    out_err::SESSIONS_FULL
                } else {
                    out_err::NO_SLOT
                });
            }
        }
        let fwd = Session {
            rw,
            translation: tid,
            flags: sflags::OWNS_PORT,
            class: cl,
            last_seen: now,
        };
        match insert_or_winner(cnat, &k, &fwd) {
            Ok(Ok(_)) => {}
            won => {
                cnat.sessions.remove(&rk);
                cnat.ports.free(ip6, ret_fib as u32, f.proto, port);
                return match won {
                    // Another worker SNATed this flow since the lookup: its port.
                    Ok(Err(winner)) => {
                        output_by_entry(cnat, b, l3, &f, &winner, now, partial);
                        Ok(None)
                    }
                    Err(InsertError::Full) => Err(out_err::SESSIONS_FULL),
                    _ => Err(out_err::NO_SLOT),
                };
            }
        }
        if let Some(d) = b.data_mut().get_mut(l3..) {
            nat::rewrite_new_flow(d, &f, &rw, partial);
        }
        return Ok(Some(if reopened {
            out_err::REOPENED
        } else {
            out_err::NEW_SESSIONS
        }));
    }
    Err(out_err::PORTS_TAKEN)
}

/// Translate `b` (its IP header at `l3`, flow `f`) by its SNAT session's entry `found`.
#[inline(always)]
fn output_by_entry(
    cnat: &Cnat,
    b: &mut Buf<'_>,
    l3: usize,
    f: &Flow,
    found: &Found,
    now: u32,
    partial: bool,
) {
    let s = &found.session;
    if let Some(d) = b.data_mut().get_mut(l3..) {
        nat::rewrite_by_entry(d, f, &s.rw, found.csum_deltas4, partial);
    }
    cnat.sessions.touch(found, now, class_of(f, s.class));
}

/// Insert a new SNAT flow's return entry `ret` under `rk`, on a port just allocated. An SNAT
/// return entry already there is stale: the allocator gave its port out again, so its flow's
/// forward entry, which owned the port, is gone (the scan removes a flow's entries one after
/// the other, and a reply may have kept the return one): it is replaced, as on the input side.
/// `Exists`: another kind of entry holds the key (a flow from the SNAT address and port the
/// allocator did not give out, a host's own connection DNATed).
#[cold]
fn insert_snat_return(cnat: &Cnat, rk: &FlowKey, ret: &Session) -> Result<(), InsertError> {
    const SNAT_RETURN: u8 = sflags::RETURN | sflags::PEER_OUTPUT;
    match cnat.sessions.insert(rk, ret) {
        Err(InsertError::Exists) => {
            let held = cnat.sessions.lookup(rk);
            if held.is_some_and(|o| o.session.flags & SNAT_RETURN != SNAT_RETURN) {
                return Err(InsertError::Exists);
            }
            if held.is_some() {
                if let Some(old) = cnat.sessions.remove(rk) {
                    cnat.release(rk, &old, rk.fib);
                }
            }
            cnat.sessions.insert(rk, ret).map(|_| ())
        }
        r => r.map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::snat::{IfTable, Policy, PORTS};
    use super::super::translation::{Endpoint, PathEp, Translation};
    use super::super::CnatConfig;
    use super::*;
    use crate::buffer::BufferPool;
    use etherparse::PacketBuilder;
    use std::sync::Arc;

    const POD: u32 = 5;
    const UPLINK: u32 = 1;

    fn a4(x: [u8; 4]) -> u128 {
        0xffff_0000_0000 | u32::from_be_bytes(x) as u128
    }

    fn udp(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, l2: bool) -> Vec<u8> {
        let mut v = Vec::new();
        if l2 {
            PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
                .ipv4(src, dst, 64)
                .udp(sp, dp)
                .write(&mut v, b"q")
                .unwrap();
        } else {
            PacketBuilder::ipv4(src, dst, 64)
                .udp(sp, dp)
                .write(&mut v, b"q")
                .unwrap();
        }
        v
    }

    /// An IPv4 service `vip`:`vport` (`proto`) with the one backend `be`:`bport`.
    fn one_backend(c: &Cnat, vip: [u8; 4], vport: u16, proto: u8, be: [u8; 4], bport: u16) {
        let ep = |a, port| Endpoint {
            addr: a4(a),
            port,
            ip6: false,
        };
        c.translation_update(Translation {
            vip: ep(vip, vport),
            proto,
            paths: vec![PathEp {
                dst: ep(be, bport),
                ..Default::default()
            }],
            ..Default::default()
        });
    }

    fn setup() -> Arc<Cnat> {
        let c = Cnat::new(CnatConfig { max_sessions: 256 });
        c.snat_edit(|s| {
            s.ip4 = a4([198, 18, 0, 1]);
            s.policy = Policy::K8s;
            s.tables.insert(IfTable::Pod, POD);
            s.tables.insert(IfTable::IncludeV4, POD);
            s.exclude.add(a4([198, 18, 0, 0]), 96 + 16);
        });
        c
    }

    /// Run `frame` through `f` as a buffer received on `rx`, sent to `tx`; returns the verdict,
    /// the bytes after, and the buffer flags.
    fn run(
        frame: &[u8],
        rx: u32,
        tx: u32,
        f: impl FnOnce(&mut Buf<'_>) -> Verdict,
    ) -> (Verdict, Vec<u8>, u32) {
        let pool = BufferPool::with_backing(16, 2048, false).unwrap();
        let mut bufs = pool.local();
        let bi = bufs.alloc_from_bytes(frame).unwrap();
        let r;
        let out;
        let fl;
        {
            let mut b = bufs.get(bi);
            b.meta.rx_sw_if_index = rx;
            b.meta.tx_sw_if_index = tx;
            b.meta.fib_index = 0;
            r = f(&mut b);
            out = b.data().to_vec();
            fl = b.meta.flags;
        }
        bufs.free(&[bi]);
        (r, out, fl)
    }

    fn addrs(p: &[u8]) -> ([u8; 4], [u8; 4], u16, u16) {
        let s = etherparse::SlicedPacket::from_ip(p).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = s.net else {
            panic!()
        };
        let Some(etherparse::TransportSlice::Udp(u)) = s.transport else {
            panic!()
        };
        let uh = u.to_header();
        let (src, dst) = (ip.header().source(), ip.header().destination());
        assert_eq!(
            uh.calc_checksum_ipv4_raw(src, dst, u.payload()).unwrap(),
            uh.checksum
        );
        (src, dst, uh.source_port, uh.destination_port)
    }

    #[test]
    fn snat_by_policy_and_return_un_snat() {
        let c = setup();
        let cfg = c.snat.load();
        let tr = c.translations.load();
        let (pod, out) = ([198, 18, 5, 2], [198, 51, 100, 9]);
        // Ethernet before the IP header, as on an output arc after rewrite.
        let (r, p, _) = run(&udp(pod, out, 1234, 53, true), POD, UPLINK, |b| {
            output_packet(&c, &cfg, b, 14, false, 10)
        });
        assert_eq!(r, Ok(Some(out_err::NEW_SESSIONS)));
        let (src, dst, sp, dp) = addrs(&p[14..]);
        assert_eq!(
            (src, dst, dp),
            ([198, 18, 0, 1], out, 53),
            "SNAT to the node address"
        );
        assert!(sp >= 49152);
        assert_eq!(c.sessions.len(), 2);
        // The reply un-SNATs on the input side and is marked so the output side leaves it.
        let (r, p, fl) = run(
            &udp(out, [198, 18, 0, 1], 53, sp, false),
            UPLINK,
            POD,
            |b| input_packet(&c, &tr, &c.snat.load(), b, false, 11),
        );
        assert_eq!(r, Ok(None));
        assert_eq!(addrs(&p), (out, pod, 53, 1234));
        assert!(fl & CNAT_RETURN != 0);
        // Excluded destination (include rule does not apply, the pod rule says no): unchanged.
        let (r, p, _) = run(&udp(pod, [198, 18, 9, 9], 1, 2, false), POD, UPLINK, |b| {
            output_packet(&c, &cfg, b, 0, false, 10)
        });
        assert_eq!(r, Ok(None));
        assert_eq!(addrs(&p).0, pod);
        // The next packet of the first flow reuses its session and port.
        let (r, p, _) = run(&udp(pod, out, 1234, 53, false), POD, UPLINK, |b| {
            output_packet(&c, &cfg, b, 0, false, 12)
        });
        assert_eq!((r, addrs(&p).2), (Ok(None), sp));
        assert_eq!(c.sessions.len(), 2);
    }

    #[test]
    fn hairpin_through_the_service_is_snatted_and_returns_through_the_vip() {
        let c = setup();
        let (pod, vip) = ([198, 18, 5, 2], [198, 19, 255, 1]);
        one_backend(&c, vip, 80, 17, pod, 8080);
        let (cfg, tr) = (c.snat.load(), c.translations.load());
        let (_, p, _) = run(&udp(pod, vip, 1234, 80, false), POD, POD, |b| {
            input_packet(&c, &tr, &c.snat.load(), b, false, 1)
        });
        assert_eq!(addrs(&p), (pod, pod, 1234, 8080), "DNAT to itself");
        let (r, p, _) = run(&p, POD, POD, |b| output_packet(&c, &cfg, b, 0, false, 1));
        assert_eq!(
            r,
            Ok(Some(out_err::NEW_SESSIONS)),
            "source equals destination: SNAT"
        );
        let (src, _, sp, _) = addrs(&p);
        assert_eq!(src, [198, 18, 0, 1]);
        let (_, p, _) = run(&udp(pod, [198, 18, 0, 1], 8080, sp, false), POD, POD, |b| {
            input_packet(&c, &tr, &c.snat.load(), b, false, 2)
        });
        assert_eq!(
            addrs(&p),
            (vip, pod, 80, 1234),
            "the reply comes from the VIP"
        );
    }

    /// One packet through cnat-input then cnat-output on the same buffer, as the graph runs
    /// it (the input's marks reach the output): output verdict, bytes, flags after input.
    fn through(c: &Cnat, frame: &[u8], now: u32) -> (Verdict, Vec<u8>, u32) {
        let (cfg, tr) = (c.snat.load(), c.translations.load());
        let mut in_flags = 0;
        let (r, p, _) = run(frame, POD, UPLINK, |b| {
            input_packet(c, &tr, &c.snat.load(), b, false, now)?;
            in_flags = b.meta.flags;
            output_packet(c, &cfg, b, 0, false, now)
        });
        (r, p, in_flags)
    }

    const POD_IP: [u8; 4] = [198, 18, 5, 2];
    const SERVICE: [u8; 4] = [198, 19, 255, 1];
    const EXCLUDED_BACKEND: [u8; 4] = [198, 18, 6, 3];

    /// [`setup`] with a UDP service whose backend is in the excluded prefix, and a pod's
    /// packet to it: a flow the policy gives no SNAT.
    fn no_snat_service() -> (Arc<Cnat>, Vec<u8>) {
        let c = setup();
        one_backend(&c, SERVICE, 80, 17, EXCLUDED_BACKEND, 8080);
        (c, udp(POD_IP, SERVICE, 1234, 80, false))
    }

    #[test]
    fn a_dnat_flows_cached_no_snat_holds_until_the_policy_changes_or_a_purge() {
        let (c, pkt) = no_snat_service();
        let (pod, backend) = (POD_IP, EXCLUDED_BACKEND);
        // The packet that makes the session: decided (excluded backend, pod side: no SNAT)
        // and cached by cnat-output.
        let (r, p, fl) = through(&c, &pkt, 1);
        assert_eq!((r, addrs(&p)), (Ok(None), (pod, backend, 1234, 8080)));
        assert_eq!(fl & CNAT_NO_SNAT, 0);
        // Later packets carry the cached decision.
        let (r, p, fl) = through(&c, &pkt, 2);
        assert_eq!((r, addrs(&p).0), (Ok(None), pod));
        assert_ne!(fl & CNAT_NO_SNAT, 0, "cached on the session");
        // The policy now SNATs it (the backend is no longer excluded): the cache is stale.
        c.snat_edit(|s| s.exclude = Default::default());
        let (r, p, fl) = through(&c, &pkt, 3);
        assert_eq!(
            fl & CNAT_NO_SNAT,
            0,
            "an edit makes the decision be taken again"
        );
        assert_eq!(r, Ok(Some(out_err::NEW_SESSIONS)));
        assert_eq!(addrs(&p).0, [198, 18, 0, 1]);
        // Back to no SNAT, cached again, then purged: the new session caches nothing.
        c.snat_edit(|s| s.exclude.add(a4([198, 18, 0, 0]), 96 + 16));
        c.purge();
        assert_eq!(through(&c, &pkt, 4).0, Ok(None));
        let (_, _, fl) = through(&c, &pkt, 5);
        assert_ne!(fl & CNAT_NO_SNAT, 0);
        c.purge();
        let (r, p, fl) = through(&c, &pkt, 6);
        assert_eq!(fl & CNAT_NO_SNAT, 0, "a purge leaves no cached decision");
        assert_eq!((r, addrs(&p).0), (Ok(None), pod));
    }

    /// The input-stage forward key of an IPv4 UDP packet in FIB 0.
    fn udp_key(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16) -> FlowKey {
        FlowKey {
            src: a4(src),
            dst: a4(dst),
            sport: sp,
            dport: dp,
            proto: 17,
            ip6: false,
            stage: stage::INPUT,
            fib: 0,
        }
    }

    #[test]
    fn a_dnat_flows_first_packet_stores_its_no_snat_decision() {
        let (c, pkt) = no_snat_service();
        let (pod, vip, backend) = (POD_IP, SERVICE, EXCLUDED_BACKEND);
        let (r, p, fl) = through(&c, &pkt, 1);
        assert_eq!((r, addrs(&p)), (Ok(None), (pod, backend, 1234, 8080)));
        assert_ne!(
            fl & CNAT_SESSION,
            0,
            "the first packet carries its new session"
        );
        let f = c.sessions.lookup(&udp_key(pod, vip, 1234, 80)).unwrap();
        assert_eq!(
            f.snat_epoch(),
            c.snat.load().epoch,
            "decided after one packet"
        );
        let (_, _, fl) = through(&c, &pkt, 1);
        assert_ne!(fl & CNAT_NO_SNAT, 0, "the second packet carries it");
    }

    /// A flow idle through as many SNAT edits as the session keeps epochs must not find its
    /// old "no SNAT" current again: the policy changed in between and now SNATs it.
    #[test]
    fn a_no_snat_mark_does_not_come_back_when_the_epoch_wraps() {
        let (c, pkt) = no_snat_service();
        let marked = c.snat.load().epoch;
        let mut cached = false;
        for _ in 0..3 {
            cached = through(&c, &pkt, 1).2 & CNAT_NO_SNAT != 0;
        }
        assert!(cached, "no SNAT decided and cached");
        c.snat_edit(|s| s.exclude = Default::default());
        for _ in 1..super::super::session::SNAT_EPOCH_MAX {
            c.snat_edit(|_| {});
        }
        assert_eq!(c.snat.load().epoch, marked, "the epoch came round again");
        let (r, p, fl) = through(&c, &pkt, 2);
        assert_eq!(fl & CNAT_NO_SNAT, 0, "a mark from before the wrap is stale");
        assert_eq!(r, Ok(Some(out_err::NEW_SESSIONS)));
        assert_eq!(addrs(&p).0, [198, 18, 0, 1]);
    }

    /// A worker judges a flow by the SNAT config it holds while control edits it round a whole
    /// cycle of epochs (the wrap clearing every mark): its mark, made late, would carry the
    /// epoch that is current again, for a decision the config no longer makes. Before the
    /// judging (a worker that held its config that long) and between judging and mark.
    #[test]
    fn a_mark_made_by_a_config_a_cycle_old_is_not_left() {
        let key = udp_key(POD_IP, SERVICE, 1234, 80);
        for racing in [false, true] {
            let (c, pkt) = no_snat_service();
            let old = c.snat.load();
            let (_, _, fl) = through(&c, &pkt, 1);
            assert_ne!(fl & CNAT_SESSION, 0);
            let f = c.sessions.lookup(&key).unwrap();
            c.sessions.snat_mark(f.slot, f.npol, 0);
            let cycle = || {
                for _ in 0..super::super::session::SNAT_EPOCH_MAX {
                    c.snat_edit(|_| {});
                }
                assert_eq!(c.snat.load().epoch, old.epoch, "the epoch came round");
            };
            if racing {
                c.mark_no_snat_racing(&old, f.slot, f.npol, cycle);
            } else {
                cycle();
                c.mark_no_snat(&old, f.slot, f.npol);
            }
            let epoch = c.sessions.lookup(&key).unwrap().snat_epoch();
            assert_ne!(epoch, c.snat.load().epoch, "racing {racing}: a stale mark");
        }
    }

    /// A NodePort-like service: the source becomes the node's address and a port allocated
    /// per flow.
    fn alloc_port_service(c: &Cnat, vip: [u8; 4], be: [u8; 4]) {
        let ep = |a, port| Endpoint {
            addr: a4(a),
            port,
            ip6: false,
        };
        c.translation_update(Translation {
            vip: ep(vip, 80),
            proto: 17,
            flags: tflags::ALLOC_PORT,
            paths: vec![PathEp {
                src: ep([198, 18, 0, 1], 0),
                dst: ep(be, 8080),
                ..Default::default()
            }],
            ..Default::default()
        });
    }

    /// Another worker creates a flow's entries between this worker's lookup (a miss) and its
    /// insert: the packet is translated by the winner's entries (its port), and the loser
    /// leaves no entry or port behind. A wrong hash makes the lookup miss as if it ran first.
    #[test]
    fn an_input_insert_that_lost_the_race_translates_by_the_winner() {
        let c = setup();
        let (client, vip, backend) = ([198, 51, 100, 7], [198, 19, 255, 1], [198, 18, 6, 3]);
        alloc_port_service(&c, vip, backend);
        let pkt = udp(client, vip, 1234, 80, false);
        let tr = c.translations.load();
        let (r, p, _) = run(&pkt, UPLINK, POD, |b| {
            input_packet(&c, &tr, &c.snat.load(), b, false, 1)
        });
        assert_eq!(r, Ok(Some(in_err::NEW_SESSIONS)));
        let (src, dst, sp, dp) = addrs(&p);
        assert_eq!((src, dst, dp), ([198, 18, 0, 1], backend, 8080));
        let winner = c.sessions.lookup(&udp_key(client, vip, 1234, 80)).unwrap();
        let (r, p, fl) = run(&pkt, UPLINK, POD, |b| {
            input_packet_hashed(&c, &tr, &c.snat.load(), b, false, 1, 0x1234_5678)
        });
        assert_eq!(r, Ok(None), "not a new flow");
        assert_eq!(
            addrs(&p),
            ([198, 18, 0, 1], backend, sp, 8080),
            "the winner's port"
        );
        assert_ne!(fl & CNAT_SESSION, 0);
        assert_eq!(c.sessions.len(), 2, "no entry of the loser's left");
        assert_eq!(
            c.ports.in_use(false, 0, 17),
            1,
            "the loser's port given back"
        );
        assert_eq!(
            c.sessions
                .lookup(&udp_key(client, vip, 1234, 80))
                .unwrap()
                .slot,
            winner.slot
        );
    }

    /// As above on the output side: another worker made the flow's SNAT entries first. The
    /// packet is SNATed by them, not dropped, and the loser's port and return entry go.
    #[test]
    fn an_snat_insert_that_lost_the_race_translates_by_the_winner() {
        let c = setup();
        let cfg = c.snat.load();
        let (pod, out) = ([198, 18, 5, 2], [198, 51, 100, 9]);
        let pkt = udp(pod, out, 1234, 53, false);
        let (r, p, _) = run(&pkt, POD, UPLINK, |b| {
            output_packet(&c, &cfg, b, 0, false, 1)
        });
        assert_eq!(r, Ok(Some(out_err::NEW_SESSIONS)));
        let sp = addrs(&p).2;
        let (r, p, _) = run(&pkt, POD, UPLINK, |b| {
            output_packet_hashed(&c, &cfg, b, 0, false, 1, 0x1234_5678)
        });
        assert_eq!(r, Ok(None), "translated by the winner's entry, not dropped");
        assert_eq!(addrs(&p), ([198, 18, 0, 1], out, sp, 53));
        assert_eq!(c.sessions.len(), 2);
        assert_eq!(c.ports.in_use(false, 0, 17), 1);
    }

    /// A hairpin in a pod's VRF: the packet's FIB is not the return FIB, whose space the SNAT
    /// port comes from (its return entry is keyed there). When the flow goes the port must
    /// go back to that space, or each such flow leaks one until SNAT runs out of ports.
    #[test]
    fn an_snat_port_goes_back_to_the_return_fibs_space() {
        let c = setup();
        let cfg = c.snat.load();
        let pod = [198, 18, 5, 2];
        let (r, _, _) = run(&udp(pod, pod, 1234, 8080, false), POD, POD, |b| {
            b.meta.fib_index = 3;
            output_packet(&c, &cfg, b, 0, false, 1)
        });
        assert_eq!(
            r,
            Ok(Some(out_err::NEW_SESSIONS)),
            "source is destination: SNAT"
        );
        assert_eq!(
            c.ports.in_use(false, 0, 17),
            1,
            "taken in the return FIB's space"
        );
        assert_eq!(c.purge(), 2);
        assert_eq!(c.ports.in_use(false, 0, 17), 0, "given back there");
        assert_eq!(c.ports.in_use(false, 3, 17), 0);
    }

    #[test]
    fn port_exhaustion_is_a_drop_and_leaves_no_session() {
        let c = setup();
        let cfg = c.snat.load();
        for i in 0..PORTS as u32 {
            c.ports.alloc(false, 0, 17, i).unwrap();
        }
        let (r, _, _) = run(
            &udp([198, 18, 5, 2], [198, 51, 100, 9], 1, 53, false),
            POD,
            UPLINK,
            |b| output_packet(&c, &cfg, b, 0, false, 1),
        );
        assert_eq!(r, Err(out_err::PORTS_EXHAUSTED));
        assert!(c.sessions.is_empty());
    }

    #[test]
    fn ping_out_gets_a_snat_id_and_the_reply_gets_it_back() {
        let c = setup();
        let (cfg, tr) = (c.snat.load(), c.translations.load());
        let (pod, out) = ([198, 18, 5, 2], [198, 51, 100, 9]);
        let mut req = Vec::new();
        PacketBuilder::ipv4(pod, out, 64)
            .icmpv4_echo_request(0x77, 1)
            .write(&mut req, b"ping")
            .unwrap();
        let (r, p, _) = run(&req, POD, UPLINK, |b| {
            output_packet(&c, &cfg, b, 0, false, 1)
        });
        assert_eq!(r, Ok(Some(out_err::NEW_SESSIONS)));
        let ip = etherparse::Ipv4HeaderSlice::from_slice(&p).unwrap();
        assert_eq!(ip.source(), [198, 18, 0, 1]);
        let icmp = etherparse::Icmpv4Slice::from_slice(&p[20..]).unwrap();
        assert_eq!(crate::wire::checksum(&p[20..]), 0, "icmp checksum");
        let etherparse::Icmpv4Type::EchoRequest(e) = icmp.icmp_type() else {
            panic!("not an echo request")
        };
        assert!(e.id >= 49152, "id from the SNAT range: {}", e.id);
        let mut rep = Vec::new();
        PacketBuilder::ipv4(out, [198, 18, 0, 1], 64)
            .icmpv4_echo_reply(e.id, 1)
            .write(&mut rep, b"ping")
            .unwrap();
        let (_, p, _) = run(&rep, UPLINK, POD, |b| {
            input_packet(&c, &tr, &c.snat.load(), b, false, 2)
        });
        let ip = etherparse::Ipv4HeaderSlice::from_slice(&p).unwrap();
        assert_eq!(ip.destination(), pod);
        let icmp = etherparse::Icmpv4Slice::from_slice(&p[20..]).unwrap();
        assert!(matches!(icmp.icmp_type(), etherparse::Icmpv4Type::EchoReply(e) if e.id == 0x77));
        assert_eq!(crate::wire::checksum(&p[20..]), 0);
    }

    #[test]
    fn truncated_transport_is_a_counted_drop() {
        let c = setup();
        let tr = c.translations.load();
        let mut v = Vec::new();
        PacketBuilder::ipv4([198, 18, 5, 2], [198, 19, 255, 1], 64)
            .tcp(1, 80, 0, 100)
            .write(&mut v, b"")
            .unwrap();
        v.truncate(30);
        v[2..4].copy_from_slice(&30u16.to_be_bytes());
        let (r, _, _) = run(&v, POD, UPLINK, |b| {
            input_packet(&c, &tr, &c.snat.load(), b, false, 1)
        });
        assert_eq!(r, Err(in_err::TRUNCATED));
        assert!(c.sessions.is_empty());
    }

    #[test]
    fn syn_ack_reopens_a_closing_session() {
        let flow = |syn: bool, ack: bool, fin: bool| {
            let mut v = Vec::new();
            let mut t =
                PacketBuilder::ipv4([198, 18, 2, 2], [198, 18, 1, 2], 64).tcp(80, 1, 0, 100);
            if syn {
                t = t.syn();
            }
            if ack {
                t = t.ack(1);
            }
            if fin {
                t = t.fin();
            }
            t.write(&mut v, b"").unwrap();
            nat::flow4(&v).unwrap()
        };
        // (SYN, ACK, FIN, class before, class after)
        let cases = [
            (
                true,
                true,
                false,
                class::TCP_CLOSING,
                class::TCP_ESTABLISHED,
            ),
            (true, false, false, class::TCP_CLOSING, class::TCP_CLOSING),
            (false, true, false, class::TCP_CLOSING, class::TCP_CLOSING),
            (false, true, false, class::GENERIC, class::TCP_ESTABLISHED),
            (
                false,
                true,
                true,
                class::TCP_ESTABLISHED,
                class::TCP_CLOSING,
            ),
        ];
        for (syn, ack, fin, before, after) in cases {
            let got = class_of(&flow(syn, ack, fin), before);
            assert_eq!(got, after, "syn {syn} ack {ack} fin {fin} from {before}");
        }
    }

    const CLIENT: [u8; 4] = [198, 18, 1, 2];
    const VIP: [u8; 4] = [198, 19, 0, 1];
    const BACKEND: [u8; 4] = [198, 18, 2, 2];

    /// A TCP segment with `flags` (S, A, F, R).
    fn tcp(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, flags: &str) -> Vec<u8> {
        let mut t = PacketBuilder::ipv4(src, dst, 64).tcp(sp, dp, 7, 1000);
        for c in flags.chars() {
            t = match c {
                'S' => t.syn(),
                'A' => t.ack(1),
                'F' => t.fin(),
                'R' => t.rst(),
                _ => panic!("flag {c}"),
            };
        }
        let mut v = Vec::new();
        t.write(&mut v, b"").unwrap();
        v
    }

    /// (src, dst, sport, dport) of a TCP packet, its checksum verified.
    fn tcp_addrs(p: &[u8]) -> ([u8; 4], [u8; 4], u16, u16) {
        let s = etherparse::SlicedPacket::from_ip(p).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = s.net else {
            panic!()
        };
        let Some(etherparse::TransportSlice::Tcp(t)) = s.transport else {
            panic!()
        };
        let th = t.to_header();
        let (src, dst) = (ip.header().source(), ip.header().destination());
        assert_eq!(
            th.calc_checksum_ipv4_raw(src, dst, t.payload()).unwrap(),
            th.checksum
        );
        (src, dst, th.source_port, th.destination_port)
    }

    /// The bench's service: VIP:80 -> the backend's 8080, one backend.
    fn service_crr() -> Arc<Cnat> {
        let c = setup();
        one_backend(&c, VIP, 80, 6, BACKEND, 8080);
        c
    }

    /// An IPv4 packet, TCP (ACK set) or UDP, with `payload`, its checksums from scratch.
    fn data4(tcp: bool, src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16, payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ipv4(src, dst, 64);
        let mut v = Vec::new();
        if tcp {
            b.tcp(sp, dp, 7, 1000)
                .ack(1)
                .write(&mut v, payload)
                .unwrap();
        } else {
            b.udp(sp, dp).write(&mut v, payload).unwrap();
        }
        v
    }

    /// Established packets, both ways, TCP and UDP, rewritten by their entries' stored checksum
    /// deltas: byte for byte the translated packet built from scratch (every checksum as a
    /// full sum gives it), and a UDP checksum of 0 stays 0.
    #[test]
    fn established_flows_rewrite_by_their_entries_deltas() {
        let c = service_crr();
        one_backend(&c, VIP, 53, 17, BACKEND, 5353);
        let mut x = 0x5eed_1234_abcd_0001u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..40u16 {
            let tcp = i % 2 == 0;
            let (vport, bport) = if tcp { (80, 8080) } else { (53, 5353) };
            let cport = 1024 + rnd() as u16 % 60000;
            let first = data4(tcp, CLIENT, VIP, cport, vport, b"first packet");
            if tcp {
                let (r, _) = input(&c, &tcp_syn(cport), 1);
                assert_eq!(r, Ok(Some(in_err::NEW_SESSIONS)));
            } else {
                let (r, p) = input(&c, &first, 1);
                assert_eq!(r, Ok(Some(in_err::NEW_SESSIONS)));
                let want = data4(tcp, CLIENT, BACKEND, cport, bport, b"first packet");
                assert_eq!(p, want, "new flow");
            }
            for _ in 0..4 {
                let payload: Vec<u8> = (0..rnd() % 64).map(|_| rnd() as u8).collect();
                let out = data4(tcp, CLIENT, VIP, cport, vport, &payload);
                let (r, p) = input(&c, &out, 2);
                assert_eq!(r, Ok(None));
                assert_eq!(
                    p,
                    data4(tcp, CLIENT, BACKEND, cport, bport, &payload),
                    "forward"
                );
                let back = data4(tcp, BACKEND, CLIENT, bport, cport, &payload);
                let (r, p) = input(&c, &back, 2);
                assert_eq!(r, Ok(None));
                assert_eq!(p, data4(tcp, VIP, CLIENT, vport, cport, &payload), "return");
                if !tcp {
                    // No UDP checksum (0): translated, it stays none.
                    let mut none = out.clone();
                    none[26..28].copy_from_slice(&[0, 0]);
                    let mut want = data4(tcp, CLIENT, BACKEND, cport, bport, &payload);
                    want[26..28].copy_from_slice(&[0, 0]);
                    assert_eq!(input(&c, &none, 2).1, want, "udp checksum 0");
                }
            }
        }
    }

    fn tcp_syn(cport: u16) -> Vec<u8> {
        tcp(CLIENT, VIP, cport, 80, "S")
    }

    /// One packet through the input side at `now`: its verdict and bytes after.
    fn input(c: &Cnat, p: &[u8], now: u32) -> (Verdict, Vec<u8>) {
        let tr = c.translations.load();
        let (r, p, _) = run(p, POD, POD, |b| {
            input_packet(c, &tr, &c.snat.load(), b, false, now)
        });
        (r, p)
    }

    /// A connection on client port 40000 at `now`, closed both ways (both entries closing).
    fn connect_and_close(c: &Cnat, now: u32) {
        let (r, p) = input(c, &tcp(CLIENT, VIP, 40000, 80, "S"), now);
        assert_eq!(r, Ok(Some(in_err::NEW_SESSIONS)));
        assert_eq!(tcp_addrs(&p), (CLIENT, BACKEND, 40000, 8080));
        let (_, p) = input(c, &tcp(BACKEND, CLIENT, 8080, 40000, "SA"), now);
        assert_eq!(tcp_addrs(&p), (VIP, CLIENT, 80, 40000));
        for fin in [
            tcp(BACKEND, CLIENT, 8080, 40000, "FA"),
            tcp(CLIENT, VIP, 40000, 80, "FA"),
        ] {
            assert_eq!(input(c, &fin, now).0, Ok(None));
        }
        assert_eq!(c.sessions.len(), 2);
        c.sessions
            .for_each(|_, _, s| assert_eq!(s.class, class::TCP_CLOSING));
    }

    fn fwd_key() -> FlowKey {
        FlowKey {
            src: a4(CLIENT),
            dst: a4(VIP),
            sport: 40000,
            dport: 80,
            proto: 6,
            ip6: false,
            stage: stage::INPUT,
            fib: 0,
        }
    }

    fn ret_key() -> FlowKey {
        FlowKey {
            src: a4(BACKEND),
            dst: a4(CLIENT),
            sport: 8080,
            dport: 40000,
            ..fwd_key()
        }
    }

    /// The new connection's SYN-ACK must reach the client from the VIP (issue 13: it came
    /// from the backend's own address, the client reset it, and the connection timed out).
    fn syn_ack_is_un_dnatted(c: &Cnat, now: u32) {
        let (r, p) = input(c, &tcp(BACKEND, CLIENT, 8080, 40000, "SA"), now);
        assert_eq!(r, Ok(None));
        assert_eq!(tcp_addrs(&p), (VIP, CLIENT, 80, 40000), "SYN-ACK un-DNATed");
        assert!(c.sessions.lookup(&fwd_key()).is_some());
        assert!(c.sessions.lookup(&ret_key()).is_some());
    }

    #[test]
    fn a_reused_port_syn_on_a_closing_flow_opens_it_again() {
        let c = service_crr();
        connect_and_close(&c, 100);
        // The client port comes round again 2 s later: a new connection, new entries.
        let (r, p) = input(&c, &tcp(CLIENT, VIP, 40000, 80, "S"), 102);
        assert_eq!(r, Ok(Some(in_err::REOPENED)));
        assert_eq!(tcp_addrs(&p), (CLIENT, BACKEND, 40000, 8080));
        assert_eq!(c.sessions.len(), 2);
        c.sessions.for_each(|_, _, s| {
            assert_eq!(
                (s.class, s.last_seen),
                (class::GENERIC, 102),
                "fresh entries"
            )
        });
        syn_ack_is_un_dnatted(&c, 102);
        // Its retransmitted SYN (the flow is live, both entries there) uses its session.
        let (r, _) = input(&c, &tcp(CLIENT, VIP, 40000, 80, "S"), 103);
        assert_eq!(r, Ok(None));
        assert_eq!(c.sessions.len(), 2);
    }

    #[test]
    fn a_syn_after_the_scan_removed_the_return_entry_first_opens_the_flow_again() {
        let c = service_crr();
        connect_and_close(&c, 100);
        // The scan at 106 judged both idle and removed the return entry first; the new SYN
        // touches the forward one before its turn, which keeps it (a touched entry stays).
        assert!(c.sessions.remove(&ret_key()).is_some());
        let (r, p) = input(&c, &tcp(CLIENT, VIP, 40000, 80, "S"), 106);
        assert_eq!(tcp_addrs(&p), (CLIENT, BACKEND, 40000, 8080));
        assert_eq!(c.scan(106), 0);
        syn_ack_is_un_dnatted(&c, 106);
        assert_eq!(r, Ok(Some(in_err::REOPENED)));
    }

    #[test]
    fn a_syn_after_the_scan_removed_the_forward_entry_first_replaces_the_stale_return() {
        let c = service_crr();
        connect_and_close(&c, 100);
        // The scan judges both idle; it removes the forward entry first, the new SYN comes
        // before it removes the return entry it judged (emulated inside the judging, which
        // reads each entry's meta word before it judges).
        let mut syn = None;
        let gone = c.sessions.expire_if(|k, _| {
            if *k != ret_key() {
                return false;
            }
            assert!(c.sessions.remove(&fwd_key()).is_some());
            syn = Some(input(&c, &tcp(CLIENT, VIP, 40000, 80, "S"), 106));
            true
        });
        let (r, p) = syn.expect("the return entry was judged");
        assert_eq!(r, Ok(Some(in_err::NEW_SESSIONS)));
        assert_eq!(tcp_addrs(&p), (CLIENT, BACKEND, 40000, 8080));
        syn_ack_is_un_dnatted(&c, 106);
        assert!(gone.is_empty(), "the new flow's return entry stays");
    }

    #[test]
    fn a_syn_on_a_snat_flow_whose_return_entry_went_opens_it_again() {
        let c = setup();
        let cfg = c.snat.load();
        let (pod, out) = ([198, 18, 5, 2], [198, 51, 100, 9]);
        let out_tcp = |flags, now| {
            run(&tcp(pod, out, 1234, 80, flags), POD, UPLINK, |b| {
                output_packet(&c, &cfg, b, 0, false, now)
            })
        };
        let (r, p, _) = out_tcp("S", 100);
        assert_eq!(r, Ok(Some(out_err::NEW_SESSIONS)));
        let sp = tcp_addrs(&p).2;
        // The return entry expired first (one-sided removal); the forward one is closing.
        let rk = FlowKey {
            src: a4(out),
            dst: a4([198, 18, 0, 1]),
            sport: 80,
            dport: sp,
            ..fwd_key()
        };
        assert!(c.sessions.remove(&rk).is_some());
        assert_eq!(out_tcp("FA", 100).0, Ok(None));
        let (r, p, _) = out_tcp("S", 106);
        let (src, _, sp2, _) = tcp_addrs(&p);
        assert_eq!(src, [198, 18, 0, 1]);
        let tr = c.translations.load();
        let (_, p, _) = run(
            &tcp(out, [198, 18, 0, 1], 80, sp2, "SA"),
            UPLINK,
            POD,
            |b| input_packet(&c, &tr, &c.snat.load(), b, false, 106),
        );
        assert_eq!(tcp_addrs(&p), (out, pod, 80, 1234), "SYN-ACK un-SNATed");
        assert_eq!(r, Ok(Some(out_err::REOPENED)));
        assert_eq!(c.sessions.len(), 2);
        assert_eq!(c.ports.in_use(false, 0, 6), 1, "the old port freed");
    }

    /// A UDP service, VIP:53 -> the backend's 5353, and one flow on it from client port 40000
    /// at 100 (both entries).
    fn udp_flow() -> Arc<Cnat> {
        let c = setup();
        one_backend(&c, VIP, 53, 17, BACKEND, 5353);
        let (r, p) = input(&c, &udp(CLIENT, VIP, 40000, 53, false), 100);
        assert_eq!(r, Ok(Some(in_err::NEW_SESSIONS)));
        assert_eq!(addrs(&p), (CLIENT, BACKEND, 40000, 5353));
        assert_eq!(c.sessions.len(), 2);
        c
    }

    /// The backend's reply at `now` reaches the client from the VIP.
    fn udp_reply_is_un_dnatted(c: &Cnat, now: u32) {
        let (r, p) = input(c, &udp(BACKEND, CLIENT, 5353, 40000, false), now);
        assert_eq!(r, Ok(None));
        assert_eq!(addrs(&p), (VIP, CLIENT, 53, 40000), "reply un-DNATed");
    }

    #[test]
    fn an_idle_udp_flow_expires_whole() {
        let c = udp_flow();
        assert_eq!(c.scan(130), 0, "not idle past 30 s yet");
        assert_eq!(c.scan(131), 2);
        assert!(c.sessions.is_empty());
    }

    #[test]
    fn a_udp_packet_after_the_scan_judged_its_flow_keeps_both_entries() {
        let c = udp_flow();
        // The client sends again (its 5-tuple reused) just as the flow expires: after the scan
        // judged both entries idle, before it removes them. Its touch keeps the forward entry,
        // so the return entry must stay with it.
        let gone = c.scan_with(131, || {
            let (r, p) = input(&c, &udp(CLIENT, VIP, 40000, 53, false), 131);
            assert_eq!(r, Ok(None), "the flow's session");
            assert_eq!(addrs(&p), (CLIENT, BACKEND, 40000, 5353));
        });
        assert_eq!(gone, 0);
        assert_eq!(c.sessions.len(), 2);
        udp_reply_is_un_dnatted(&c, 131);
    }

    #[test]
    fn a_udp_reply_after_the_scan_judged_its_flow_keeps_both_entries() {
        let c = udp_flow();
        let gone = c.scan_with(131, || udp_reply_is_un_dnatted(&c, 131));
        assert_eq!(gone, 0);
        assert_eq!(c.sessions.len(), 2);
        // The client's next packet still uses the flow's session.
        let (r, _) = input(&c, &udp(CLIENT, VIP, 40000, 53, false), 132);
        assert_eq!(r, Ok(None));
    }

    #[test]
    fn a_hairpin_flow_sending_one_way_keeps_its_snat_return_entry() {
        // A pod reaching itself through the service, DNATed then SNATed; it only sends, so
        // neither return entry is touched. Its SNAT return entry rewrites to the VIP form, and
        // the scan must find its forward entry (the output side's, pod -> pod:8080) from it.
        let c = setup();
        let (pod, vip) = ([198, 18, 5, 2], [198, 19, 255, 1]);
        one_backend(&c, vip, 80, 17, pod, 8080);
        let (cfg, tr) = (c.snat.load(), c.translations.load());
        let send = |now| {
            let (_, p, _) = run(&udp(pod, vip, 1234, 80, false), POD, POD, |b| {
                input_packet(&c, &tr, &c.snat.load(), b, false, now)
            });
            let (_, p, _) = run(&p, POD, POD, |b| output_packet(&c, &cfg, b, 0, false, now));
            addrs(&p).2
        };
        let sp = send(1);
        assert_eq!(c.sessions.len(), 4);
        assert_eq!(send(20), sp);
        assert_eq!(c.scan(40), 0, "the forward entries are live");
        let (_, p, _) = run(&udp(pod, [198, 18, 0, 1], 8080, sp, false), POD, POD, |b| {
            input_packet(&c, &tr, &c.snat.load(), b, false, 40)
        });
        assert_eq!(
            addrs(&p),
            (vip, pod, 80, 1234),
            "the reply comes from the VIP"
        );
        assert_eq!(c.scan(71), 4, "idle past 30 s: all of it");
        assert_eq!(c.ports.in_use(false, 0, 17), 0);
    }

    /// A UDP flow pod:1234 -> out:53 SNATed at `now`: its SNAT port.
    fn snat_udp(c: &Cnat, now: u32) -> (Verdict, u16) {
        let cfg = c.snat.load();
        let (r, p, _) = run(
            &udp([198, 18, 5, 2], [198, 51, 100, 9], 1234, 53, false),
            POD,
            UPLINK,
            |b| output_packet(c, &cfg, b, 0, false, now),
        );
        let (src, _, sp, _) = addrs(&p);
        assert_eq!(src, [198, 18, 0, 1]);
        (r, sp)
    }

    /// The return key of `snat_udp`'s flow on SNAT port `sp`.
    fn snat_ret_key(sp: u16) -> FlowKey {
        FlowKey {
            src: a4([198, 51, 100, 9]),
            dst: a4([198, 18, 0, 1]),
            sport: 53,
            dport: sp,
            proto: 17,
            ..fwd_key()
        }
    }

    #[test]
    fn a_new_snat_flow_replaces_a_stale_return_entry_and_leaks_no_port() {
        let c = setup();
        let (r, sp) = snat_udp(&c, 10);
        assert_eq!(r, Ok(Some(out_err::NEW_SESSIONS)));
        // The flow's forward entry went (its port freed) and its return entry stayed: a reply
        // touched it as the scan removed the flow.
        let fk = FlowKey {
            src: a4([198, 18, 5, 2]),
            dst: a4([198, 51, 100, 9]),
            sport: 1234,
            dport: 53,
            proto: 17,
            stage: stage::OUTPUT,
            ..fwd_key()
        };
        let old = c.sessions.remove(&fk).expect("the forward entry");
        c.release(&fk, &old, 0);
        assert_eq!(c.ports.in_use(false, 0, 17), 0);
        // The 5-tuple again: the same port, the stale return entry replaced, one port used.
        let (r, sp2) = snat_udp(&c, 50);
        assert_eq!(r, Ok(Some(out_err::NEW_SESSIONS)));
        assert_eq!(sp2, sp);
        assert_eq!(
            c.ports.in_use(false, 0, 17),
            1,
            "no port left without owner"
        );
        assert_eq!(c.sessions.len(), 2);
        let ret = c.sessions.lookup(&snat_ret_key(sp)).expect("return entry");
        assert_eq!(ret.session.last_seen, 50, "the new flow's");
        // Expired, the flow gives its one port back.
        assert_eq!(c.scan(81), 2);
        assert_eq!(c.ports.in_use(false, 0, 17), 0);
    }

    #[test]
    fn an_snat_port_another_flow_holds_is_given_back() {
        let c = setup();
        let (_, sp) = snat_udp(&c, 10);
        assert_eq!(c.purge(), 2);
        // A DNAT return entry (a host's own connection from the SNAT address) holds the key
        // the flow's first port would make.
        let other = Session {
            rw: Rewrite::default(),
            translation: 9,
            flags: sflags::RETURN,
            class: class::GENERIC,
            last_seen: 10,
        };
        c.sessions.insert(&snat_ret_key(sp), &other).unwrap();
        let (r, sp2) = snat_udp(&c, 11);
        assert_eq!(r, Ok(Some(out_err::NEW_SESSIONS)));
        assert_ne!(sp2, sp, "another port");
        assert_eq!(
            c.ports.in_use(false, 0, 17),
            1,
            "the port skipped was given back"
        );
        let held = c.sessions.lookup(&snat_ret_key(sp)).unwrap();
        assert_eq!(held.session, other, "the other flow's entry left alone");
        assert_eq!(c.sessions.len(), 3);
    }
}
