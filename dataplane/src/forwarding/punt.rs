//! Punt redirects: where local packets this stack does not handle go.

use super::{Af, Forwarding, FwdError};
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
        self.iface(tx)?;
        let adj = match next_hop {
            Some(nh) => self.neighbor_adj(tx, nh),
            None => self.attached_adj(tx, af),
        };
        self.punt_set(af, rx, adj, add);
        Ok(())
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
