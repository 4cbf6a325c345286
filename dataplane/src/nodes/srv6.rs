//! SRv6's nodes (`crate::srv6`): `sr-pl-rewrite-encaps`, `sr-pl-rewrite-encaps-v4` and
//! `sr-localsid`, reached from ip4-/ip6-lookup through SR adjacencies; one shared
//! [`crate::srv6::Table`].

use crate::feature::FeatureTables;
use crate::graph::GraphBuilder;
use crate::srv6::{encap::SrEncap, localsid::SrLocalsid, Table};

pub fn register(b: GraphBuilder, tables: &FeatureTables) -> GraphBuilder {
    let t = tables.get::<Table>();
    b.node(Box::new(SrEncap::new(false, t.clone())))
        .node(Box::new(SrEncap::new(true, t.clone())))
        .node(Box::new(SrLocalsid::new(t)))
}
