//! cnat: Kubernetes services as calico-vpp programs them through VPP's cnat plugin.
//! Translations (VIP -> backends), the session table shared by all workers, SNAT, and the
//! input (DNAT, un-NAT of return traffic) and output (SNAT) nodes.
//!
//! One [`Cnat`] is the single source of truth: control writes translations and SNAT config
//! (published whole, so a change reaches new flows only) and calls the scanner; workers read
//! snapshots and the session table. It is a feature table (`FeatureTables::get::<Cnat>()`):
//! the graph's cnat nodes (`crate::nodes::cnat`) and the control side share that one `Arc`.

pub mod nat;
pub mod node;
pub mod session;
pub mod snat;
pub mod translation;

use crate::rcu::Published;
use session::{sflags, Expiry, FlowKey, Found, Session, SessionTable, Timeouts};
use snat::{PortAlloc, SnatConfig};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use translation::{Endpoint, Translation, TranslationTable, VipKey};

/// Fragmented datagrams in flight whose first fragment was translated.
const FRAGMENT_SLOTS: usize = 4096;
/// Seconds a first fragment's rewrite waits for the rest.
pub const FRAGMENT_TIMEOUT: u32 = 5;

/// Sizes fixed at start.
#[derive(Clone, Copy, Debug)]
pub struct CnatConfig {
    /// Session entries (a flow takes two: forward and return).
    pub max_sessions: usize,
}

impl Default for CnatConfig {
    fn default() -> Self {
        Self {
            max_sessions: 1 << 16,
        }
    }
}

#[derive(Default)]
struct Edits {
    next_id: u32,
    ids: HashMap<u32, VipKey, ahash::RandomState>,
}

pub struct Cnat {
    pub translations: Published<TranslationTable>,
    pub snat: Published<SnatConfig>,
    pub sessions: SessionTable,
    /// First fragments' rewrites by fragment id, for the fragments after them (no ports).
    pub fragments: SessionTable,
    pub ports: PortAlloc,
    /// ClientIP affinity: (client, VIP, port, protocol) -> the backend its flows go to.
    pub affinity: SessionTable,
    timeouts: [AtomicU32; 4],
    /// Serialises control's edits of the published tables (workers never take it), and
    /// holds what only control needs: the next translation id, ids -> VIP keys.
    edit: Mutex<Edits>,
    /// The number of the last SNAT edit ([`SnatConfig::edits`]), moved on before its config
    /// is published: a worker whose config is older makes no mark.
    snat_edits: AtomicU64,
    tsc_hz: u64,
}

/// The default size, as the nodes' registration takes it from `FeatureTables` when nothing
/// sized it before.
impl Default for Cnat {
    fn default() -> Self {
        Self::with_config(CnatConfig::default())
    }
}

impl Cnat {
    pub fn new(cfg: CnatConfig) -> Arc<Self> {
        Arc::new(Self::with_config(cfg))
    }

    pub fn with_config(cfg: CnatConfig) -> Self {
        let t = Timeouts::default();
        Self {
            translations: Published::new(TranslationTable::default()),
            snat: Published::new(SnatConfig {
                sw_if_index: u32::MAX,
                epoch: 1,
                ..Default::default()
            }),
            // Room for twice the limit keeps buckets from filling before the limit does.
            sessions: SessionTable::new(cfg.max_sessions * 2, cfg.max_sessions),
            fragments: SessionTable::new(FRAGMENT_SLOTS * 2, FRAGMENT_SLOTS),
            ports: PortAlloc::default(),
            timeouts: [
                AtomicU32::new(t.generic),
                AtomicU32::new(t.tcp_established),
                AtomicU32::new(t.tcp_closing),
                AtomicU32::new(t.affinity),
            ],
            affinity: SessionTable::new(cfg.max_sessions, cfg.max_sessions / 2),
            edit: Mutex::new(Edits {
                next_id: 1,
                ..Default::default()
            }),
            snat_edits: AtomicU64::new(0),
            tsc_hz: crate::runtime::tsc_hz().max(1),
        }
    }

    /// Seconds on the sessions' clock for a TSC reading.
    #[inline(always)]
    pub fn secs(&self, tsc: u64) -> u32 {
        (tsc / self.tsc_hz) as u32
    }
    pub fn now(&self) -> u32 {
        self.secs(crate::runtime::clocks())
    }

    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            generic: self.timeouts[0].load(Ordering::Relaxed),
            tcp_established: self.timeouts[1].load(Ordering::Relaxed),
            tcp_closing: self.timeouts[2].load(Ordering::Relaxed),
            affinity: self.timeouts[3].load(Ordering::Relaxed),
        }
    }
    pub fn set_timeouts(&self, t: Timeouts) {
        self.timeouts[0].store(t.generic, Ordering::Relaxed);
        self.timeouts[1].store(t.tcp_established, Ordering::Relaxed);
        self.timeouts[2].store(t.tcp_closing, Ordering::Relaxed);
        self.timeouts[3].store(t.affinity, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Edits> {
        self.edit.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add or replace the translation for `t`'s VIP, port and protocol; returns its id (an
    /// update keeps the id). Sessions to backends the update drops are removed; the others
    /// stay on their backend.
    pub fn translation_update(&self, mut t: Translation) -> u32 {
        let mut ed = self.lock();
        let mut table = (*self.translations.load()).clone();
        let key = t.key();
        let old = table.get_key(&key).cloned();
        t.id = match &old {
            Some(o) => {
                // Sessions the old one made keep its id: the new one has them too.
                if o.used.get() {
                    t.used.mark();
                }
                o.id
            }
            None => {
                let id = ed.next_id;
                ed.next_id += 1;
                id
            }
        };
        t.prepare();
        let id = t.id;
        let kept: Vec<Endpoint> = t.paths.iter().map(|p| p.dst).collect();
        ed.ids.insert(id, key);
        table.insert(t);
        self.translations.publish(table);
        drop(ed);
        if old.is_some_and(|o| o.used.get()) {
            self.purge_translation(id, &kept);
        }
        id
    }

    /// Delete a translation and every session it created. False: no such id.
    pub fn translation_del(&self, id: u32) -> bool {
        let mut ed = self.lock();
        let Some(key) = ed.ids.remove(&id) else {
            return false;
        };
        let mut table = (*self.translations.load()).clone();
        let old = table.remove(&key);
        self.translations.publish(table);
        drop(ed);
        if old.is_some_and(|o| o.used.get()) {
            self.purge_translation(id, &[]);
        }
        true
    }

    /// The translation with id `id`.
    pub fn translation_by_id(&self, id: u32) -> Option<Arc<Translation>> {
        let ed = self.lock();
        let key = ed.ids.get(&id)?;
        self.translations.load().get_key(key).cloned()
    }

    /// The id the next new translation gets.
    pub fn next_translation_id(&self) -> u32 {
        self.lock().next_id
    }

    /// Put back translations under the ids they had (a live restart's snapshot), into a table
    /// with none, new ones then numbered from `next_id`. Refused, changing nothing, when the
    /// table is not empty, or two share an id or a VIP key, or an id is not below `next_id`.
    pub fn translations_restore(
        &self,
        ts: Vec<Translation>,
        next_id: u32,
    ) -> Result<(), &'static str> {
        let mut ed = self.lock();
        if !ed.ids.is_empty() || !self.translations.load().is_empty() {
            return Err("the dataplane has translations already");
        }
        let mut table = TranslationTable::default();
        let mut ids = HashMap::default();
        for mut t in ts {
            if t.id >= next_id {
                return Err("a translation id is not below the next id");
            }
            if ids.insert(t.id, t.key()).is_some() || table.get_key(&t.key()).is_some() {
                return Err("two translations share an id or a VIP");
            }
            t.prepare();
            table.insert(t);
        }
        ed.ids = ids;
        ed.next_id = next_id;
        self.translations.publish(table);
        Ok(())
    }

    /// Record that the flow of the session in `slot` (its npol word `seen`, as cnat-input's
    /// lookup read it) needs no SNAT under `cfg`, the SNAT config a worker judged it by. Only
    /// while `cfg` is the last edit's: a worker whose config is a whole cycle of epochs old
    /// (one it held through 511 edits) would leave a mark that looks current. Checked before
    /// the mark and after it (taken back if an edit came between, whose wrap may have cleared
    /// the marks before this one landed). Lock-free; the packet path's cost is two loads of
    /// a word written once per SNAT edit, on a flow's first packet in each epoch only.
    pub fn mark_no_snat(&self, cfg: &SnatConfig, slot: usize, seen: u64) {
        self.mark_no_snat_racing(cfg, slot, seen, || {});
    }

    /// [`Self::mark_no_snat`], running `between` after its check and before its mark (tests
    /// edit the SNAT config there, as control would).
    pub(crate) fn mark_no_snat_racing(
        &self,
        cfg: &SnatConfig,
        slot: usize,
        seen: u64,
        between: impl FnOnce(),
    ) {
        if self.snat_edits.load(Ordering::SeqCst) != cfg.edits {
            return;
        }
        between();
        if self.sessions.snat_mark(slot, seen, cfg.epoch)
            && self.snat_edits.load(Ordering::SeqCst) != cfg.edits
        {
            self.sessions.clear_snat_mark(slot, cfg.epoch);
        }
    }

    /// Edit the SNAT configuration.
    pub fn snat_edit<R>(&self, f: impl FnOnce(&mut SnatConfig) -> R) -> R {
        let _g = self.lock();
        let mut c = (*self.snat.load()).clone();
        let (prev, edits) = (c.epoch, c.edits + 1);
        let r = f(&mut c);
        // Workers holding an older config stop marking before the marks are cleared.
        self.snat_edits.store(edits, Ordering::SeqCst);
        c.edits = edits;
        // A new epoch: every flow's cached "no SNAT" is stale (epoch 0 means none cached).
        // On a wrap the marks of the last round would look current again: cleared first,
        // while workers still run the old epoch (whose marks are never the new one).
        if prev >= session::SNAT_EPOCH_MAX {
            self.sessions.clear_snat_marks();
        }
        let e = prev.wrapping_add(1) & session::SNAT_EPOCH_MAX;
        c.epoch = e.max(1);
        self.snat.publish(c);
        r
    }

    /// Give back the port the entry `k`, `s` owns, to the space it came from
    /// ([`port_fib`]; `ret_fib`: the SNAT config's return FIB).
    fn release(&self, k: &FlowKey, s: &Session, ret_fib: u16) {
        if s.flags & sflags::OWNS_PORT != 0 {
            let fib = port_fib(k, ret_fib) as u32;
            self.ports.free(k.ip6, fib, k.proto, s.rw.sport);
        }
    }

    /// Remove the sessions of translation `id`, except those whose backend is in `keep`.
    pub fn purge_translation(&self, id: u32, keep: &[Endpoint]) -> usize {
        let ret_fib = self.snat.load().ret_fib_index as u16;
        let gone = self.sessions.remove_if(|k, s| {
            if s.translation != id {
                return false;
            }
            // The backend is the forward entry's new destination, the return entry's source.
            let (addr, port) = if s.flags & sflags::RETURN != 0 {
                (k.src, k.sport)
            } else {
                (s.rw.dst, s.rw.dport)
            };
            !keep.iter().any(|e| e.addr == addr && e.port == port)
        });
        for (k, s) in &gone {
            self.release(k, s, ret_fib);
        }
        self.affinity.remove_if(|_, s| {
            s.translation == id
                && !keep
                    .iter()
                    .any(|e| e.addr == s.rw.dst && e.port == s.rw.dport)
        });
        gone.len()
    }

    /// Remove every session (`cnat_session_purge`, `clear cnat session`).
    pub fn purge(&self) -> usize {
        self.fragments.remove_if(|_, _| true);
        self.affinity.remove_if(|_, _| true);
        let ret_fib = self.snat.load().ret_fib_index as u16;
        let gone = self.sessions.remove_if(|_, _| true);
        for (k, s) in &gone {
            self.release(k, s, ret_fib);
        }
        gone.len()
    }

    /// Expire sessions idle past their timeout at `now` (seconds). Workers keep running: an
    /// entry is removed by CAS on its slot. A flow's two entries go together, once both are
    /// idle (one-way traffic keeps the return path), and neither if a packet touched one
    /// after the judging. Returns how many went.
    pub fn scan(&self, now: u32) -> usize {
        self.scan_with(now, || {})
    }

    /// [`Self::scan`], running `between` after the judging and before the removals.
    pub(crate) fn scan_with(&self, now: u32, between: impl FnOnce()) -> usize {
        let t = self.timeouts();
        let ret_fib = self.snat.load().ret_fib_index as u16;
        let expired = |s: &Session| now.wrapping_sub(s.last_seen) > t.of(s.class);
        let is_return = |s: &Session| s.flags & sflags::RETURN != 0;
        let gone = self.sessions.expire_flows(
            |k, s| {
                if !expired(s) {
                    return Expiry::Keep;
                }
                if !is_return(s) {
                    return match self.return_of(k, s, ret_fib) {
                        None => Expiry::Alone,
                        Some((rk, r)) if expired(&r.session) => Expiry::WithReturn(rk, r),
                        Some(_) => Expiry::Keep,
                    };
                }
                let fk = forward_of(k, s);
                match self.sessions.lookup(&fk).filter(|f| !is_return(&f.session)) {
                    None => Expiry::Alone,
                    Some(f) if !expired(&f.session) => Expiry::Keep,
                    Some(f) => {
                        // Idle too: it goes with its forward entry, which leads back to it
                        // (`return_of`, from the forward entry found in this FIB).
                        if return_key(&fk, &f.session, k.fib) == *k {
                            Expiry::Keep
                        } else {
                            Expiry::AfterForward(fk)
                        }
                    }
                }
            },
            between,
        );
        for (k, s) in &gone {
            self.release(k, s, ret_fib);
        }
        let frags = self
            .fragments
            .expire_if(|_, s| now.wrapping_sub(s.last_seen) > FRAGMENT_TIMEOUT);
        self.affinity
            .expire_if(|_, s| now.wrapping_sub(s.last_seen) > t.affinity);
        gone.len() + frags.len()
    }

    /// A forward entry's return entry: where the nodes put it (the return FIB), else in the
    /// forward entry's own FIB.
    fn return_of(&self, k: &FlowKey, s: &Session, ret_fib: u16) -> Option<(FlowKey, Found)> {
        let mut rk = return_key(k, s, ret_fib);
        let is_return = |f: &Found| f.session.flags & sflags::RETURN != 0;
        if let Some(r) = self.sessions.lookup(&rk).filter(is_return) {
            return Some((rk, r));
        }
        if ret_fib == k.fib {
            return None;
        }
        rk.fib = k.fib;
        self.sessions.lookup(&rk).filter(is_return).map(|r| (rk, r))
    }
}

/// The key of forward entry `k`'s return entry in `fib`.
fn return_key(k: &FlowKey, s: &Session, fib: u16) -> FlowKey {
    FlowKey::reverse_of(&s.rw, k.proto, k.ip6, fib, session::stage::INPUT)
}

/// The key of return entry `k`'s forward entry (in the return entry's FIB: which FIB the
/// forward one is in is not kept). An SNAT return entry (its forward entry on the output
/// stage) rewrites to the client as the flow first was, DNATed or not, so its forward key is
/// the client's side of its rewrite and the server's side of its own key.
/// The FIB whose port space the port an entry `k` owns came from: an SNAT flow's (its owner
/// is the forward entry on the output stage) the return FIB's, where its return entry is
/// keyed, whatever FIB the packet was in (a hairpin in a pod's VRF); a DNAT flow's its own.
pub fn port_fib(k: &FlowKey, ret_fib: u16) -> u16 {
    if k.stage == session::stage::OUTPUT {
        ret_fib
    } else {
        k.fib
    }
}

fn forward_of(k: &FlowKey, s: &Session) -> FlowKey {
    if s.flags & sflags::PEER_OUTPUT == 0 {
        return FlowKey::reverse_of(&s.rw, k.proto, k.ip6, k.fib, session::stage::INPUT);
    }
    FlowKey {
        src: s.rw.dst,
        dst: k.src,
        sport: s.rw.dport,
        // Not DNATed (ICMP echo among them: its ids in both ports): the rewrite's port.
        dport: if s.rw.src == k.src {
            s.rw.sport
        } else {
            k.sport
        },
        proto: k.proto,
        ip6: k.ip6,
        stage: session::stage::OUTPUT,
        fib: k.fib,
    }
}

#[cfg(test)]
mod tests {
    use super::session::{class, stage, Rewrite};
    use super::translation::PathEp;
    use super::*;

    fn k(i: u16, st: u8) -> FlowKey {
        FlowKey {
            src: 0xffff_c612_0002,
            dst: 0xffff_c613_0009,
            sport: i,
            dport: 80,
            proto: 6,
            ip6: false,
            stage: st,
            fib: 0,
        }
    }

    fn s(cl: u8, last: u32, flags: u8, tid: u32) -> Session {
        Session {
            rw: Rewrite {
                src: 0xffff_c612_0002,
                dst: 0xffff_c614_0001,
                sport: 1,
                dport: 8080,
            },
            translation: tid,
            flags,
            class: cl,
            last_seen: last,
        }
    }

    #[test]
    fn translations_restore_keeps_ids_and_the_next_id() {
        let c = Cnat::new(CnatConfig { max_sessions: 64 });
        let t = |id, port| Translation {
            id,
            vip: Endpoint {
                addr: 0xffff_c613_0001,
                port,
                ip6: false,
            },
            proto: 6,
            ..Default::default()
        };
        assert!(c.translations_restore(vec![t(2, 80), t(2, 81)], 5).is_err());
        assert!(c.translations_restore(vec![t(2, 80), t(3, 80)], 5).is_err());
        assert!(c.translations_restore(vec![t(5, 80)], 5).is_err());
        assert!(
            c.translations.load().is_empty(),
            "a refused restore changes nothing"
        );
        c.translations_restore(vec![t(2, 80), t(4, 81)], 7).unwrap();
        assert_eq!(c.translation_by_id(4).map(|t| t.vip.port), Some(81));
        assert_eq!(c.translation_update(t(0, 80)), 2, "an update keeps the id");
        assert_eq!(c.translation_update(t(0, 82)), 7);
        assert!(c.translation_del(4));
        assert!(c.translations_restore(vec![], 1).is_err(), "not empty");
    }

    #[test]
    fn scanner_expires_by_class_and_frees_ports() {
        let c = Cnat::new(CnatConfig { max_sessions: 64 });
        c.sessions
            .insert(&k(1, stage::INPUT), &s(class::GENERIC, 100, 0, 1))
            .unwrap();
        c.sessions
            .insert(&k(2, stage::INPUT), &s(class::TCP_ESTABLISHED, 100, 0, 1))
            .unwrap();
        c.sessions
            .insert(&k(3, stage::INPUT), &s(class::TCP_CLOSING, 100, 0, 1))
            .unwrap();
        let port = c.ports.alloc(false, 0, 6, 0).unwrap();
        let mut owner = s(class::GENERIC, 100, sflags::OWNS_PORT, u32::MAX);
        owner.rw.sport = port;
        c.sessions.insert(&k(4, stage::OUTPUT), &owner).unwrap();
        assert_eq!(c.scan(104), 0, "nothing idle long enough");
        assert_eq!(c.scan(106), 1, "closing after 5 s");
        assert_eq!(c.scan(131), 2, "generic after 30 s, its port freed");
        assert_eq!(c.ports.in_use(false, 0, 6), 0);
        assert!(c.sessions.lookup(&k(2, stage::INPUT)).is_some());
        assert_eq!(c.scan(3701), 1, "established after an hour");
        assert!(c.sessions.is_empty());
        // Configurable.
        c.set_timeouts(Timeouts {
            generic: 2,
            tcp_established: 2,
            tcp_closing: 1,
            affinity: 5,
        });
        c.sessions
            .insert(&k(1, stage::INPUT), &s(class::GENERIC, 10, 0, 1))
            .unwrap();
        assert_eq!(c.scan(13), 1);
    }

    #[test]
    fn a_live_peer_keeps_an_idle_direction() {
        let c = Cnat::new(CnatConfig { max_sessions: 64 });
        let f = s(class::GENERIC, 0, 0, 1);
        c.sessions.insert(&k(9, stage::INPUT), &f).unwrap();
        let back = FlowKey::reverse_of(&f.rw, 6, false, 0, stage::INPUT);
        let fk = k(9, stage::INPUT);
        let mut r = s(class::GENERIC, 40, sflags::RETURN, 1);
        r.rw = Rewrite {
            src: fk.dst,
            dst: fk.src,
            sport: fk.dport,
            dport: fk.sport,
        };
        c.sessions.insert(&back, &r).unwrap();
        assert_eq!(c.scan(50), 0, "the return direction is live");
        assert_eq!(c.scan(200), 2);
    }

    #[test]
    fn update_and_delete_remove_exactly_their_sessions() {
        let c = Cnat::new(CnatConfig { max_sessions: 64 });
        let ep = |a: u128| Endpoint {
            addr: 0xffff_c614_0000 | a,
            port: 8080,
            ip6: false,
        };
        let path = |a| PathEp {
            dst: ep(a),
            ..Default::default()
        };
        let t = Translation {
            vip: Endpoint {
                addr: 0xffff_c613_ff01,
                port: 80,
                ip6: false,
            },
            proto: 6,
            paths: vec![path(1), path(2)],
            ..Default::default()
        };
        let id = c.translation_update(t.clone());
        let other = c.translation_update(Translation {
            vip: Endpoint { port: 81, ..t.vip },
            ..t.clone()
        });
        assert_ne!(id, other);
        // As the node does when it creates their sessions.
        for t in c.translations.load().iter() {
            t.used.mark();
        }
        for (i, (b, tid)) in [(1, id), (2, id), (1, other)].into_iter().enumerate() {
            let mut v = s(class::GENERIC, 0, 0, tid);
            v.rw.dst = ep(b).addr;
            c.sessions.insert(&k(i as u16, stage::INPUT), &v).unwrap();
        }
        // Backend 2 leaves translation `id`: only its session goes; the id is kept.
        let id2 = c.translation_update(Translation {
            paths: vec![path(1)],
            ..t.clone()
        });
        assert_eq!(id2, id);
        assert_eq!(c.sessions.len(), 2);
        assert!(c.sessions.lookup(&k(1, stage::INPUT)).is_none());
        assert!(c.translation_del(id));
        assert!(!c.translation_del(id));
        assert_eq!(c.sessions.len(), 1, "the other translation's session stays");
        assert!(c.sessions.lookup(&k(2, stage::INPUT)).is_some());
        assert_eq!(c.purge(), 1);
        assert!(c.translation_by_id(other).is_some());
    }

    /// The scan's cost over 1M entries (2^19 flows, forward and return entries as the input
    /// side makes them), all live and all idle; by hand, optimised:
    /// `cargo test -p rvpp-dataplane --lib scan_cost --config
    /// 'profile.dev.package.rvpp-dataplane.opt-level=3' -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn scan_cost_over_a_million_entries() {
        let flows: u32 = 1 << 19;
        let c = Cnat::new(CnatConfig {
            max_sessions: 2 * flows as usize,
        });
        let (vip, backend) = (0xffff_c613_0001u128, 0xffff_c612_ff02u128);
        let fill = |now| {
            for i in 0..flows {
                let client = 0xffff_c612_0000u128 | (i / 60000 + 1) as u128;
                let sport = 1024 + (i % 60000) as u16;
                let fk = FlowKey {
                    src: client,
                    dst: vip,
                    sport,
                    dport: 80,
                    proto: 17,
                    ip6: false,
                    stage: stage::INPUT,
                    fib: 0,
                };
                let rw = Rewrite {
                    src: client,
                    dst: backend,
                    sport,
                    dport: 8080,
                };
                let fwd = Session {
                    rw,
                    translation: 1,
                    flags: 0,
                    class: class::GENERIC,
                    last_seen: now,
                };
                c.sessions.insert(&fk, &fwd).unwrap();
                let rk = FlowKey::reverse_of(&rw, 17, false, 0, stage::INPUT);
                let ret = Session {
                    rw: Rewrite {
                        src: vip,
                        dst: client,
                        sport: 80,
                        dport: sport,
                    },
                    flags: sflags::RETURN,
                    ..fwd
                };
                c.sessions.insert(&rk, &ret).unwrap();
            }
        };
        let (mut live, mut idle) = (u128::MAX, u128::MAX);
        for round in 0..3 {
            fill(100 + round * 1000);
            let t = std::time::Instant::now();
            assert_eq!(c.scan(110 + round * 1000), 0);
            live = live.min(t.elapsed().as_micros());
            let t = std::time::Instant::now();
            assert_eq!(c.scan(200 + round * 1000), 2 * flows as usize);
            idle = idle.min(t.elapsed().as_micros());
            assert!(c.sessions.is_empty());
        }
        println!(
            "scan over {} entries: all live {} ms, all idle (all removed) {} ms",
            2 * flows,
            live / 1000,
            idle / 1000
        );
    }
}
