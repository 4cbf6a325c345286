//! Punt redirects: where local packets this stack does not handle go.

use super::{Forwarding, FwdError};
use crate::tables::PuntRedirect;
use std::net::IpAddr;

impl Forwarding {
    /// Send local packets this stack does not handle to `tx_sw_if_index` via `next_hop`.
    /// Send local packets this stack does not handle into table `table_id` (a lookup there).
    pub fn punt_redirect_table(
        &mut self,
        ip6: bool,
        rx: Option<u32>,
        table_id: u32,
        add: bool,
    ) -> Result<(), FwdError> {
        let fib = self
            .fib_index(ip6, table_id)
            .ok_or(FwdError::NoSuchTable(table_id))?;
        let adj = self.lookup_adj(ip6, fib);
        let list = if ip6 {
            &mut self.fwd.punt6
        } else {
            &mut self.fwd.punt4
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
        Ok(())
    }

    pub fn punt_redirect(
        &mut self,
        ip6: bool,
        rx: Option<u32>,
        tx: u32,
        next_hop: Option<IpAddr>,
        add: bool,
    ) -> Result<(), FwdError> {
        self.iface(tx)?;
        let adj = match next_hop {
            Some(nh) => self.neighbor_adj(tx, nh),
            None => self.attached_adj(tx, ip6),
        };
        let list = if ip6 {
            &mut self.fwd.punt6
        } else {
            &mut self.fwd.punt4
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
        Ok(())
    }
}
