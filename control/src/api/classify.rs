//! `classify_add_del_table`, `input_acl_set_interface`, `ip_session_redirect_add_v2` /
//! `ip_session_redirect_del`: decode, call `service::classify`, answer VPP's retvals.

use super::convert::{self, rv, ApiPath, NONE};
use super::handlers::State;
use crate::service::classify::{self as svc, TableSpec};
use crate::service::SvcError;
use rvpp_dataplane::forwarding::Af;
use rvpp_vppapi::defs as d;
use rvpp_vppapi::transport::{Response, Router};

fn opt(i: u32) -> Option<u32> {
    (i != NONE).then_some(i)
}

fn add_del_table(s: &State, m: &d::ClassifyAddDelTable) -> Result<(u32, u32, u32), SvcError> {
    if !m.is_add {
        svc::del_table(&s.dp, m.table_index, m.del_chain)?;
        return Ok((NONE, NONE, NONE));
    }
    if m.table_index != NONE {
        svc::update_table(
            &s.dp,
            m.table_index,
            opt(m.next_table_index),
            m.miss_next_index,
        )?;
        return Ok((m.table_index, m.skip_n_vectors, m.match_n_vectors));
    }
    let spec = TableSpec {
        mask: m.mask.clone(),
        skip_n: m.skip_n_vectors,
        match_n: m.match_n_vectors,
        nbuckets: m.nbuckets,
        next_table: opt(m.next_table_index),
        miss_next: m.miss_next_index,
        current_data: m.current_data_flag == 1,
        offset: m.current_data_offset,
    };
    svc::add_table(&s.dp, &spec)
}

fn redirect_add(s: &State, m: &d::IpSessionRedirectAddV2) -> Result<(), SvcError> {
    if m.is_punt {
        return Err(SvcError::new(rv::UNIMPLEMENTED, "punt redirects"));
    }
    let len = m.match_len as usize;
    if len > m.match_.len() {
        return Err(SvcError::new(
            rv::INVALID_VALUE,
            "match longer than 80 bytes",
        ));
    }
    let n = (m.n_paths as usize).min(m.paths.len());
    let ip6 = match m.proto {
        d::FibPathNhProto::FIB_API_PATH_NH_PROTO_IP6 => true,
        d::FibPathNhProto::FIB_API_PATH_NH_PROTO_IP4 => false,
        // ~0 (the default): the family of the paths.
        _ => m.paths[..n]
            .first()
            .is_some_and(|p| p.proto == d::FibPathNhProto::FIB_API_PATH_NH_PROTO_IP6),
    };
    let mut paths = Vec::with_capacity(n);
    for p in &m.paths[..n] {
        match convert::path_in(p, ip6) {
            ApiPath::Fwd(p) => paths.push(p),
            ApiPath::Other => {
                return Err(SvcError::new(
                    rv::UNIMPLEMENTED,
                    "a path rvpp cannot redirect to",
                ))
            }
        }
    }
    let af = if ip6 { Af::Ip6 } else { Af::Ip4 };
    svc::redirect_add(
        &s.dp,
        m.table_index,
        &m.match_[..len],
        af,
        &paths,
        m.opaque_index,
    )
}

fn err_rv<T>(r: Result<T, SvcError>) -> i32 {
    convert::svc_retval(r)
}

pub(super) fn register(r: &mut Router<State>) {
    r.on(|s: &mut State, m: d::ClassifyAddDelTable, _c| {
        let (retval, (new_table_index, skip_n_vectors, match_n_vectors)) =
            match add_del_table(s, &m) {
                Ok(v) => (0, v),
                Err(e) => {
                    log::warn!("api: classify_add_del_table: {e}");
                    (e.retval, (NONE, NONE, NONE))
                }
            };
        Response::reply(d::ClassifyAddDelTableReply {
            context: 0,
            retval,
            new_table_index,
            skip_n_vectors,
            match_n_vectors,
        })
    });
    r.on(|s: &mut State, m: d::InputAclSetInterface, _c| {
        let r = svc::set_input(
            &s.dp,
            m.sw_if_index.0,
            opt(m.ip4_table_index),
            opt(m.ip6_table_index),
            opt(m.l2_table_index),
            m.is_add,
        );
        reply!(InputAclSetInterfaceReply, err_rv(r))
    });
    r.on(|s: &mut State, m: d::IpSessionRedirectAddV2, _c| {
        let r = redirect_add(s, &m);
        if let Err(e) = &r {
            log::warn!("api: ip_session_redirect_add_v2: {e}");
        }
        reply!(IpSessionRedirectAddV2Reply, err_rv(r))
    });
    r.on(|s: &mut State, m: d::IpSessionRedirectDel, _c| {
        let r = svc::redirect_del(&s.dp, m.table_index, &m.match_);
        reply!(IpSessionRedirectDelReply, err_rv(r))
    });
}
