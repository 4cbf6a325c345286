//! Feature arcs per interface: which registered features run on it.

use super::{Forwarding, FwdError};
use crate::feature::{arc, FeatureSet, ARCS};
use crate::tables::AdjKind;
use std::sync::Arc;

impl Forwarding {
    /// Take the feature registrations of the graph the workers run (`Graph::features`): the
    /// names `feature_enable` accepts. Every worker's graph is built from the same registrations.
    pub fn use_features(&mut self, set: Arc<FeatureSet>) {
        self.features = set;
    }

    /// The registered features of every arc, in the order they run.
    pub fn features(&self) -> &FeatureSet {
        &self.features
    }

    /// Enable or disable feature `feature` of arc `arc` on interface `sw` (VPP's
    /// `vnet_feature_enable_disable`). Workers see it with the next publish: input arcs through
    /// the interface's `IfFast`, output arcs through its adjacencies.
    pub fn feature_enable(
        &mut self,
        sw: u32,
        arc: &str,
        feature: &str,
        on: bool,
    ) -> Result<(), FwdError> {
        // As VPP's handler: the interface is checked before the names.
        self.iface(sw)?;
        let (a, bit) = self
            .features
            .find(arc, feature)
            .map_err(FwdError::Feature)?;
        let i = self.iface_mut(sw)?;
        if on {
            i.features[a] |= bit;
        } else {
            i.features[a] &= !bit;
        }
        if ARCS[a].output {
            self.fwd_dirty = true;
        }
        self.refresh_fast(sw);
        self.publish();
        Ok(())
    }

    /// (arc name, enabled features in order) of every arc with a feature enabled on `sw`.
    pub fn interface_features(
        &self,
        sw: u32,
    ) -> Result<Vec<(&'static str, Vec<&'static str>)>, FwdError> {
        let i = self.iface(sw)?;
        Ok((0..arc::COUNT)
            .filter(|&a| i.features[a] != 0)
            .map(|a| (ARCS[a].name, self.features.enabled(a, i.features[a])))
            .collect())
    }

    /// Each rewrite adjacency carries its tx interface's output-arc mask, so ip4-rewrite and
    /// ip6-rewrite test one word of what they already read.
    pub(super) fn sync_output_features(&mut self) {
        for adj in self.fwd.adjs.iter_mut() {
            let mask = match self.ifs.ifs.get(adj.sw_if_index as usize) {
                Some(Some(i)) if adj.kind == AdjKind::Rewrite => {
                    i.features[if adj.is_ip6 {
                        arc::IP6_OUTPUT
                    } else {
                        arc::IP4_OUTPUT
                    }]
                }
                _ => 0,
            };
            adj.out_features = mask;
        }
    }
}
