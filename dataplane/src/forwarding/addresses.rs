//! Interface addresses and the connected and local routes they own.

use super::{mask4, mask6, Forwarding, FwdError, Path, PathKind, Prefix, Source};

impl Forwarding {
    pub fn address_add(&mut self, sw: u32, p: Prefix) -> Result<(), FwdError> {
        let i = self.iface(sw)?.clone();
        let ip6 = p.is_ip6();
        let fib = match p {
            Prefix::V4(a, l) => {
                if i.ip4_addrs.iter().any(|x| x.0 == a) {
                    return Ok(());
                }
                self.iface_mut(sw)?.ip4_addrs.push((a, l));
                i.ip4_fib
            }
            Prefix::V6(a, l) => {
                if i.ip6_addrs.iter().any(|x| x.0 == a) {
                    return Ok(());
                }
                self.iface_mut(sw)?.ip6_addrs.push((a, l));
                i.ip6_fib
            }
        };
        let t = self.table_id_of(ip6, fib);
        // The connected subnet (unless the address is a host prefix), then the address itself.
        if p.prefix_len() < p.max_len() {
            // Attached: L2 interfaces glean each destination, L3 ones send straight out.
            let conn = Path::attached(sw);
            self.route_set(ip6, t, p.masked(), vec![conn], Source::Interface)?;
        }
        self.route_set(
            ip6,
            t,
            p.host(),
            vec![Path::special(PathKind::Local)],
            Source::Interface,
        )?;
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }

    pub fn address_del(&mut self, sw: u32, p: Prefix) -> Result<(), FwdError> {
        let i = self.iface(sw)?.clone();
        match p {
            Prefix::V4(a, l) => {
                if !i.ip4_addrs.iter().any(|x| x.0 == a) {
                    return Err(FwdError::NoSuchEntry);
                }
                self.iface_mut(sw)?.ip4_addrs.retain(|x| x.0 != a);
                let t = self.table_id_of(false, i.ip4_fib);
                if l < 32 {
                    let _ = self.route_del(false, t, Prefix::V4(a & mask4(l), l));
                }
                let _ = self.route_del(false, t, Prefix::V4(a, 32));
            }
            Prefix::V6(a, l) => {
                if !i.ip6_addrs.iter().any(|x| x.0 == a) {
                    return Err(FwdError::NoSuchEntry);
                }
                self.iface_mut(sw)?.ip6_addrs.retain(|x| x.0 != a);
                let t = self.table_id_of(true, i.ip6_fib);
                if l < 128 {
                    let _ = self.route_del(true, t, Prefix::V6(a & mask6(l), l));
                }
                let _ = self.route_del(true, t, Prefix::V6(a, 128));
            }
        }
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }
}
