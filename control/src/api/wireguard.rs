//! The wireguard API module: interfaces and peers, translated to `service::wireguard`.

use super::convert::{self, rv};
use super::devices::deleted;
use super::handlers::State;
use crate::service::wireguard::{self as wg, PeerRequest, WgRequest};
use rvpp_vppapi::defs as d;
use rvpp_vppapi::transport::{Response, Router};

/// wireguard_interface_create: (retval, sw_if_index).
pub fn interface_create(s: &mut State, m: &d::WireguardInterfaceCreate) -> (i32, u32) {
    let i = &m.interface;
    let req = WgRequest {
        instance: (i.user_instance != u32::MAX).then_some(i.user_instance),
        port: i.port,
        src: convert::addr_ip(&i.src_ip),
        private_key: (!m.generate_key).then_some(i.private_key),
    };
    let r = wg::create(&s.dp, req);
    s.kick();
    match r {
        Ok((sw, _)) => (0, sw),
        Err(e) => {
            log::warn!("api: wireguard_interface_create: {e}");
            (e.retval, convert::NONE)
        }
    }
}

/// wireguard_interface_dump: one or every interface (~0: all); the private key only when
/// asked for, as VPP.
pub fn interface_dump(
    s: &State,
    m: &d::WireguardInterfaceDump,
) -> Vec<d::WireguardInterfaceDetails> {
    let sw = m.sw_if_index.0;
    wg::list(&s.dp, (sw != u32::MAX).then_some(sw))
        .into_iter()
        .map(|(i, private)| d::WireguardInterfaceDetails {
            context: 0,
            interface: d::WireguardInterface {
                user_instance: i.instance,
                sw_if_index: d::InterfaceIndex(i.sw_if_index),
                private_key: if m.show_private_key { private } else { [0; 32] },
                public_key: i.public,
                port: i.port,
                src_ip: convert::ip_addr(i.src),
            },
        })
        .collect()
}

/// wireguard_peer_add: (retval, peer_index).
pub fn peer_add(s: &mut State, m: &d::WireguardPeerAdd) -> (i32, u32) {
    let p = &m.peer;
    let mut allowed = Vec::with_capacity(p.allowed_ips.len());
    for a in &p.allowed_ips {
        let ip = convert::addr_ip(&a.address);
        if a.len > if ip.is_ipv4() { 32 } else { 128 } {
            return (rv::INVALID_VALUE, convert::NONE);
        }
        allowed.push((ip, a.len));
    }
    let req = PeerRequest {
        sw_if_index: p.sw_if_index.0,
        public_key: p.public_key,
        endpoint: convert::addr_ip(&p.endpoint),
        port: p.port,
        persistent_keepalive: p.persistent_keepalive,
        table_id: p.table_id,
        allowed,
    };
    match wg::peer_add(&s.dp, req) {
        Ok(i) => (0, i),
        Err(e) => {
            log::warn!("api: wireguard_peer_add: {e}");
            (e.retval, convert::NONE)
        }
    }
}

/// wireguard_peers_dump: one peer or all (~0).
pub fn peers_dump(s: &State, index: u32) -> Vec<d::WireguardPeersDetails> {
    wg::peers(&s.dp, (index != u32::MAX).then_some(index))
        .into_iter()
        .map(|v| {
            let p = v.peer;
            d::WireguardPeersDetails {
                context: 0,
                peer: d::WireguardPeer {
                    peer_index: p.index,
                    public_key: p.public,
                    port: p.port,
                    persistent_keepalive: p.persistent_keepalive,
                    table_id: p.table_id,
                    endpoint: convert::ip_addr(p.endpoint),
                    sw_if_index: d::InterfaceIndex(p.sw_if_index),
                    flags: if v.established {
                        d::WireguardPeerFlags::WIREGUARD_PEER_ESTABLISHED
                    } else {
                        d::WireguardPeerFlags::WIREGUARD_PEER_STATUS_DEAD
                    },
                    n_allowed_ips: p.allowed.len() as u8,
                    allowed_ips: p
                        .allowed
                        .iter()
                        .map(|&(a, len)| d::Prefix {
                            address: convert::ip_addr(a),
                            len,
                        })
                        .collect(),
                },
            }
        })
        .collect()
}

pub(super) fn register(r: &mut Router<State>) {
    r.on(|s: &mut State, m: d::WireguardInterfaceCreate, _c| {
        let (rv, sw) = interface_create(s, &m);
        Response::reply(d::WireguardInterfaceCreateReply {
            context: 0,
            retval: rv,
            sw_if_index: d::InterfaceIndex(sw),
        })
    });
    r.on(|s: &mut State, m: d::WireguardInterfaceDelete, _c| {
        let r = wg::delete(&s.dp, m.sw_if_index.0);
        let rv = deleted(s, "wireguard_interface_delete", r);
        reply!(WireguardInterfaceDeleteReply, rv)
    });
    r.on(|s: &mut State, m: d::WireguardInterfaceDump, _c| Response::stream(interface_dump(s, &m)));
    r.on(|s: &mut State, m: d::WireguardPeerAdd, _c| {
        let (rv, i) = peer_add(s, &m);
        Response::reply(d::WireguardPeerAddReply {
            context: 0,
            retval: rv,
            peer_index: i,
        })
    });
    r.on(|s: &mut State, m: d::WireguardPeerRemove, _c| {
        let rv = match wg::peer_remove(&s.dp, m.peer_index) {
            Ok(()) => 0,
            Err(e) => {
                log::warn!("api: wireguard_peer_remove: {e}");
                e.retval
            }
        };
        reply!(WireguardPeerRemoveReply, rv)
    });
    r.on(|s: &mut State, m: d::WireguardPeersDump, _c| {
        Response::stream(peers_dump(s, m.peer_index))
    });
}
