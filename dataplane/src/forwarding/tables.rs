//! VRFs: the IPv4 and IPv6 tables, by table id and fib index.

use super::{AdjKey, Forwarding, FwdError, Prefix, Route};
use crate::fib::{Ip4FibWriter, Ip6FibWriter};
use std::collections::BTreeMap;

pub(super) struct Ip4Table {
    pub(super) table_id: u32,
    pub(super) name: String,
    pub(super) writer: Ip4FibWriter,
    pub(super) routes: BTreeMap<(u32, u8), Route>,
}

pub(super) struct Ip6Table {
    pub(super) table_id: u32,
    pub(super) name: String,
    pub(super) writer: Ip6FibWriter,
    pub(super) routes: BTreeMap<(u128, u8), Route>,
}

impl Forwarding {
    /// The fib index of a table id.
    pub fn fib_index(&self, ip6: bool, table_id: u32) -> Option<u32> {
        if ip6 {
            self.ip6
                .iter()
                .position(|t| t.as_ref().is_some_and(|t| t.table_id == table_id))
                .map(|i| i as u32)
        } else {
            self.ip4
                .iter()
                .position(|t| t.as_ref().is_some_and(|t| t.table_id == table_id))
                .map(|i| i as u32)
        }
    }

    pub(super) fn table_id_of(&self, ip6: bool, fib_index: u32) -> u32 {
        if ip6 {
            self.ip6
                .get(fib_index as usize)
                .and_then(|t| t.as_ref())
                .map_or(0, |t| t.table_id)
        } else {
            self.ip4
                .get(fib_index as usize)
                .and_then(|t| t.as_ref())
                .map_or(0, |t| t.table_id)
        }
    }

    /// Create a table (idempotent; a new name replaces the old).
    pub fn table_add(&mut self, ip6: bool, table_id: u32, name: &str) -> Result<u32, FwdError> {
        if let Some(fi) = self.fib_index(ip6, table_id) {
            if !name.is_empty() {
                if ip6 {
                    if let Some(t) = self.ip6[fi as usize].as_mut() {
                        t.name = name.into();
                    }
                } else if let Some(t) = self.ip4[fi as usize].as_mut() {
                    t.name = name.into();
                }
            }
            return Ok(fi);
        }
        let gp = self.shared.grace.clone();
        let name = if name.is_empty() {
            format!("{}-VRF:{table_id}", if ip6 { "ipv6" } else { "ipv4" })
        } else {
            name.to_string()
        };
        let fi = if ip6 {
            let t = Ip6Table {
                table_id,
                name,
                writer: Ip6FibWriter::new(gp),
                routes: BTreeMap::new(),
            };
            let slot = self
                .ip6
                .iter()
                .position(|t| t.is_none())
                .unwrap_or(self.ip6.len());
            if slot == self.ip6.len() {
                self.ip6.push(None);
            }
            self.ip6[slot] = Some(t);
            slot
        } else {
            let mut cfg = self.fib4_config.clone();
            if table_id != 0 {
                // VRFs other than the default are usually small (Calico pod VRFs): few tbl8
                // groups, and 4 KiB pages so a handful of routes commits kilobytes, not 2 MiB
                // pages (or 128 MiB of reserved hugetlb pages) per VRF.
                cfg.tbl8_groups = cfg.tbl8_groups.min(1 << 12);
                cfg.huge_pages = false;
            }
            let t = Ip4Table {
                table_id,
                name,
                writer: Ip4FibWriter::new(cfg, gp)?,
                routes: BTreeMap::new(),
            };
            let slot = self
                .ip4
                .iter()
                .position(|t| t.is_none())
                .unwrap_or(self.ip4.len());
            if slot == self.ip4.len() {
                self.ip4.push(None);
            }
            self.ip4[slot] = Some(t);
            slot
        };
        self.publish_fibs();
        Ok(fi as u32)
    }

    pub fn table_del(&mut self, ip6: bool, table_id: u32) -> Result<(), FwdError> {
        if table_id == 0 {
            return Err(FwdError::Invalid("table 0 cannot be deleted".into()));
        }
        let fi = self
            .fib_index(ip6, table_id)
            .ok_or(FwdError::NoSuchTable(table_id))?;
        let in_use = self.ifs.ifs.iter().flatten().any(|i| {
            if ip6 {
                i.ip6_fib == fi
            } else {
                i.ip4_fib == fi
            }
        });
        // Routes or punt redirects elsewhere that continue their lookup in this table.
        let lookup_adj = self
            .adj_index
            .get(&AdjKey::Lookup { fib: fi, v6: ip6 })
            .copied();
        let looked_into = lookup_adj.is_some_and(|a| {
            self.lb_index.keys().any(|buckets| buckets.contains(&a))
                || self
                    .fwd
                    .punt4
                    .iter()
                    .chain(&self.fwd.punt6)
                    .any(|p| p.adj == a)
        });
        if in_use || looked_into {
            return Err(FwdError::TableInUse);
        }
        let prefixes: Vec<Prefix> = self
            .routes(ip6, table_id)
            .into_iter()
            .map(|r| r.0)
            .collect();
        for p in prefixes {
            let _ = self.route_del(ip6, table_id, p);
        }
        if ip6 {
            self.ip6[fi as usize] = None;
        } else {
            self.ip4[fi as usize] = None;
        }
        self.publish_fibs();
        Ok(())
    }

    /// (table_id, name) of every table of a family.
    pub fn tables(&self, ip6: bool) -> Vec<(u32, String)> {
        if ip6 {
            self.ip6
                .iter()
                .flatten()
                .map(|t| (t.table_id, t.name.clone()))
                .collect()
        } else {
            self.ip4
                .iter()
                .flatten()
                .map(|t| (t.table_id, t.name.clone()))
                .collect()
        }
    }
}
