//! rvpp devices. Each implements the engine's `RxQueue`/`TxQueue` traits.
pub mod af_packet;
pub mod af_xdp;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod memif;
pub mod netdev;
pub mod netns;
pub mod pcap;
pub mod pg;
pub mod shm;
pub mod tap;
pub mod vnet_hdr;
pub mod wait;
