//! Per-interface features by name (`feature_enable_disable`) and GSO.

use super::convert;
use super::handlers::{sw_ok, unimplemented_on, State};
use rvpp_vppapi::defs as d;
use rvpp_vppapi::transport::Router;

pub(super) fn register(r: &mut Router<State>) {
    r.on(|s: &mut State, m: d::FeatureEnableDisable, _c| {
        // VPP: an unknown (arc, feature) is INVALID_VALUE, an unknown interface
        // INVALID_SW_IF_INDEX.
        let (arc, feature) = (convert::text(&m.arc_name), convert::text(&m.feature_name));
        let r =
            s.dp.fwd()
                .feature_enable(m.sw_if_index.0, arc, feature, m.enable);
        reply!(FeatureEnableDisableReply, convert::retval(r))
    });
    r.on(|s: &mut State, m: d::FeatureGsoEnableDisable, _c| {
        // rvpp segments GSO super-frames in software (gso-segment) on every interface whose
        // device cannot take them: enabling is already in effect; it cannot be turned off.
        let f = s.dp.fwd();
        let rv = match m.enable_disable {
            true => sw_ok(&f, m.sw_if_index.0),
            false => unimplemented_on(&f, m.sw_if_index.0),
        };
        reply!(FeatureGsoEnableDisableReply, rv)
    });
}
