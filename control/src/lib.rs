//! rvpp control surface: startup.conf, the CLI socket, the VPP binary API, and the daemon's runtime.
#![forbid(unsafe_code)]
pub mod api;
pub mod cli;
pub mod cli_classify;
pub mod cli_cnat;
pub mod cli_feature;
pub mod cli_ikev2;
pub mod cli_ipsec;
pub mod cli_linux;
pub mod cli_memif;
pub mod cli_neighbor;
pub mod cli_npol;
pub mod cli_server;
pub mod cli_srv6;
pub mod cli_ttl_fixup;
pub mod cli_tunnel;
pub mod cli_urpf;
pub mod cli_wireguard;
pub mod daemon;
#[cfg(feature = "dpdk")]
pub mod dpdk_setup;
pub mod metrics;
pub mod service;
pub mod socket_access;
pub mod startup_conf;
pub mod stats;
pub mod takeover;
