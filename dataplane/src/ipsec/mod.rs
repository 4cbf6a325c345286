//! IPsec ESP: security associations ([`sa`]), the replay window ([`replay`]) and the tables the
//! ESP nodes (`nodes/esp.rs`) read ([`IpsecTable`], published whole, no lock per packet).
//!
//! rvpp protects tunnel interfaces (VPP's tunnel protection, calico's IPsec mode): an `ipipN`
//! or `ipsecN` interface has one outbound SA and up to four inbound SAs. A packet routed into
//! the interface is sealed as tunnel-mode ESP between the tunnel's endpoints (outer IP | [UDP
//! 4500] | ESP | inner IP | trailer with next header 4 or 41 | ICV); received ESP is found by
//! SPI, checked against the SA's replay window, opened and handed on as received on the
//! interface.

pub mod replay;
pub mod sa;

pub use sa::{CryptoAlg, EspDrop, IntegAlg, Sa, SaConfig, SaError, SaState, SaTunnel};

use ahash::RandomState;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Inbound SAs one protected interface accepts at once (VPP's limit too): room for the old and
/// new SA of a rekey.
pub const MAX_SA_IN: usize = 4;

/// Where a protected interface's sealed packets go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outer {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The FIB the outer packet is looked up in.
    pub encap_fib: u32,
}

/// A protected interface: what it sends with and what it accepts.
#[derive(Clone, Debug)]
pub struct Protect {
    pub sw_if_index: u32,
    pub out: Arc<Sa>,
    /// sad_ids of the inbound SAs, as configured.
    pub sa_in: Vec<u32>,
    pub outer: Outer,
}

/// An inbound SA and the interface its packets arrive on.
#[derive(Clone, Debug)]
pub struct Inbound {
    pub sa: Arc<Sa>,
    pub sw_if_index: u32,
}

/// Every SA, every protection, and the inbound SPIs of the protected interfaces.
#[derive(Clone, Debug, Default)]
pub struct IpsecTable {
    sas: HashMap<u32, Arc<Sa>, RandomState>,
    protect: Vec<Option<Protect>>,
    inbound: HashMap<u32, Inbound, RandomState>,
}

/// The table the ESP nodes snapshot (one per daemon, from `FeatureTables`).
pub type Table = crate::rcu::Published<IpsecTable>;

impl IpsecTable {
    /// The protection of interface `sw`.
    #[inline(always)]
    pub fn protect(&self, sw: u32) -> Option<&Protect> {
        self.protect.get(sw as usize).and_then(|p| p.as_ref())
    }

    /// The inbound SA with this SPI on a protected interface.
    #[inline(always)]
    pub fn inbound(&self, spi: u32) -> Option<&Inbound> {
        if self.inbound.is_empty() {
            return None;
        }
        self.inbound.get(&spi)
    }

    pub fn sa(&self, id: u32) -> Option<&Arc<Sa>> {
        self.sas.get(&id)
    }

    /// Every SA, by sad_id.
    pub fn sas(&self) -> impl Iterator<Item = &Arc<Sa>> {
        let mut v: Vec<_> = self.sas.values().collect();
        v.sort_by_key(|s| s.cfg.id);
        v.into_iter()
    }

    /// Every protection, by sw_if_index.
    pub fn protections(&self) -> impl Iterator<Item = &Protect> {
        self.protect.iter().flatten()
    }

    /// The interfaces whose protection names SA `id` (in or out).
    pub fn users(&self, id: u32) -> impl Iterator<Item = u32> + '_ {
        self.protections()
            .filter(move |p| p.out.cfg.id == id || p.sa_in.contains(&id))
            .map(|p| p.sw_if_index)
    }

    pub fn insert_sa(&mut self, sa: Arc<Sa>) {
        self.sas.insert(sa.cfg.id, sa);
    }

    pub fn remove_sa(&mut self, id: u32) -> Option<Arc<Sa>> {
        self.sas.remove(&id)
    }

    /// Set (or replace) a protection; the inbound SPIs are rebuilt from every protection.
    pub fn set_protect(&mut self, p: Protect) {
        let i = p.sw_if_index as usize;
        if self.protect.len() <= i {
            self.protect.resize(i + 1, None);
        }
        self.protect[i] = Some(p);
        self.rebuild_inbound();
    }

    pub fn remove_protect(&mut self, sw: u32) -> Option<Protect> {
        let p = self.protect.get_mut(sw as usize)?.take();
        self.rebuild_inbound();
        p
    }

    fn rebuild_inbound(&mut self) {
        let mut inbound = HashMap::default();
        for p in self.protect.iter().flatten() {
            for id in &p.sa_in {
                if let Some(sa) = self.sas.get(id) {
                    inbound.insert(
                        sa.cfg.spi,
                        Inbound {
                            sa: sa.clone(),
                            sw_if_index: p.sw_if_index,
                        },
                    );
                }
            }
        }
        self.inbound = inbound;
    }
}
