//! Interface addresses and the connected and local routes they own.

use super::{fib_of, Forwarding, FwdError, Path, PathKind, Prefix, Source};

impl Forwarding {
    pub fn address_add(&mut self, sw: u32, p: Prefix) -> Result<(), FwdError> {
        let i = self.iface(sw)?.clone();
        match p {
            Prefix::V4(a, l) => {
                if i.ip4_addrs.iter().any(|x| x.0 == a) {
                    return Ok(());
                }
                self.iface_mut(sw)?.ip4_addrs.push((a, l));
            }
            Prefix::V6(a, l) => {
                if i.ip6_addrs.iter().any(|x| x.0 == a) {
                    return Ok(());
                }
                self.iface_mut(sw)?.ip6_addrs.push((a, l));
            }
        }
        let t = self.table_id_of(p.af(), fib_of(&i, p.af()));
        // The connected subnet (unless the address is a host prefix), then the address itself.
        if p.prefix_len() < p.max_len() {
            // Attached: L2 interfaces glean each destination, L3 ones send straight out.
            let conn = Path::attached(sw);
            self.route_set(t, p.masked(), vec![conn], Source::Interface)?;
        }
        self.route_set(
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
            Prefix::V4(a, _) => {
                if !i.ip4_addrs.iter().any(|x| x.0 == a) {
                    return Err(FwdError::NoSuchEntry);
                }
                self.iface_mut(sw)?.ip4_addrs.retain(|x| x.0 != a);
            }
            Prefix::V6(a, _) => {
                if !i.ip6_addrs.iter().any(|x| x.0 == a) {
                    return Err(FwdError::NoSuchEntry);
                }
                self.iface_mut(sw)?.ip6_addrs.retain(|x| x.0 != a);
            }
        }
        let t = self.table_id_of(p.af(), fib_of(&i, p.af()));
        if p.prefix_len() < p.max_len() {
            let _ = self.route_del_source(t, p.masked(), Source::Interface);
        }
        let _ = self.route_del_source(t, p.host(), Source::Interface);
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }
}
