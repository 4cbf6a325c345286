//! Punt redirects: where local packets this stack does not handle go.

use super::{Af, Forwarding, FwdError, Path, PathKind};
use crate::tables::PuntRedirect;
use std::net::IpAddr;

impl Forwarding {
    /// Send local packets this stack does not handle into table `table_id` (a lookup there).
    pub fn punt_redirect_table(
        &mut self,
        af: Af,
        rx: Option<u32>,
        table_id: u32,
        add: bool,
    ) -> Result<(), FwdError> {
        let fib = self
            .fib_index(af, table_id)
            .ok_or(FwdError::NoSuchTable(table_id))?;
        let adj = self.lookup_adj(af, fib);
        self.punt_set(af, rx, adj, add);
        Ok(())
    }

    /// Send local packets this stack does not handle out of `tx` (via `next_hop`, else to
    /// whatever is attached there).
    pub fn punt_redirect(
        &mut self,
        af: Af,
        rx: Option<u32>,
        tx: u32,
        next_hop: Option<IpAddr>,
        add: bool,
    ) -> Result<(), FwdError> {
        let adj = self.out_adj(af, tx, next_hop)?;
        self.punt_set(af, rx, adj, add);
        Ok(())
    }

    /// Out of `tx`: via `next_hop`, else to whatever is attached there.
    fn out_adj(&mut self, af: Af, tx: u32, next_hop: Option<IpAddr>) -> Result<u32, FwdError> {
        self.iface(tx)?;
        Ok(match next_hop {
            Some(nh) => self.neighbor_adj(tx, nh),
            None => self.attached_adj(tx, af),
        })
    }

    /// The adjacency a redirect along `p` sends to (a session redirect's path): a lookup in
    /// its table, or out of its interface. Published before it is returned, so a table that
    /// names it never names an adjacency the workers lack.
    pub fn redirect_adj(&mut self, af: Af, p: &Path) -> Result<u32, FwdError> {
        let adj = match (p.kind, p.sw_if_index) {
            (PathKind::Lookup(t), _) => {
                let fib = self.fib_index(af, t).ok_or(FwdError::NoSuchTable(t))?;
                self.lookup_adj(af, fib)
            }
            (PathKind::Normal, Some(sw)) => self.out_adj(af, sw, p.next_hop)?,
            _ => {
                return Err(FwdError::Invalid(
                    "a redirect needs an interface or a table".into(),
                ))
            }
        };
        self.publish();
        Ok(adj)
    }

    /// Replace the redirect of packets received on `rx` (None: any) with `adj`, or remove it.
    fn punt_set(&mut self, af: Af, rx: Option<u32>, adj: u32, add: bool) {
        let list = match af {
            Af::Ip4 => &mut self.fwd.punt4,
            Af::Ip6 => &mut self.fwd.punt6,
        };
        list.retain(|p| p.rx_sw_if_index != rx);
        if add {
            list.push(PuntRedirect {
                rx_sw_if_index: rx,
                adj,
            });
        }
        self.fwd_dirty = true;
        self.publish();
    }
}
