//! DPDK ethdev uplinks: EAL init, ports, and rx/tx queues that move packets between DPDK mbufs
//! and rvpp buffers.
//!
//! * The EAL is initialised once per process ([`eal_init`]); a later call returns the same EAL.
//!   Devices are probed afterwards, one at a time, with `rte_dev_probe` ([`Eal::probe`]), so an
//!   unknown or broken device is an error naming it, and tests can add vdevs as they go.
//! * Arguments are built and validated here before EAL sees them (EAL prints its usage and may
//!   give up on bad ones); the process gets `--in-memory --no-telemetry` and a unique
//!   `--file-prefix`, so nothing on disk is shared with another DPDK process and nothing blocks.
//! * Two buffer strategies ([`RxMode`], `RVPP_DPDK_RX=copy|in-place`, chosen per port by
//!   [`PortConfig::rx_in_place`]):
//!   - `InPlace` (default): each rx and tx queue gets a mempool of data-less mbufs, each
//!     attached to an rvpp buffer it holds. Rx: the PMD receives straight into rvpp's pool; the
//!     packet is handed to the graph where it is and its mbuf re-pointed at a fresh rvpp
//!     buffer (two stores). Tx: an mbuf of the tx pool swaps its rvpp buffer for the packet's
//!     (no copy) and rvpp frees the swapped-out buffer; the PMD frees the mbuf whenever and
//!     wherever it likes (no callback, unlike `rte_pktmbuf_attach_extbuf`). Foreign mbufs (a
//!     ring peer's), chains, and packets with more than DPDK's 128 B of headroom used are
//!     copied. IOVA = VA for the attached buffers: right for vdevs; a PCI NIC needs the rvpp
//!     region registered and DMA-mapped (`rte_extmem_register` + `rte_dev_dma_map`, not done
//!     yet), so control/src/dpdk_setup.rs uses it for vdevs only.
//!   - `Copy`: rx copies each mbuf into a fresh rvpp buffer; tx copies into a fresh mbuf of
//!     the EAL's pool (one C call per burst each way).
//!
//!   Measured with `rvpp-bench dpdk-null --seconds 1 --runs 1` (64 B, one core at 2.6 GHz,
//!   2-core box shared with other jobs, so absolute figures swing by ~1.5x between runs):
//!
//!   | run | mode    | xconnect   | ip4 1k routes | testpmd io (same run) |
//!   |-----|---------|------------|---------------|-----------------------|
//!   | A   | Copy    | 10.30 Mpps | 9.23 Mpps     | 44.66 Mpps            |
//!   | A   | InPlace (rx only) | 18.27 Mpps | 12.77 Mpps | 44.66 Mpps      |
//!   | B   | Copy    | 17.66 Mpps | 14.81 Mpps    | 59.59 Mpps            |
//!   | B   | InPlace (rx + tx) | 42.43 Mpps | 23.75 Mpps | 59.59 Mpps      |
//!
//!
//!   `rvpp-bench dpdk-null --seconds 2 --runs 3 --json`, medians (testpmd io 60.87 Mpps):
//!   Copy xconnect 19.76 Mpps (0.32x) / ip4-1k 14.66 (0.24x); InPlace xconnect 41.60 Mpps
//!   (0.68x) / ip4-1k 23.32 (0.38x). Clocks per packet, InPlace xconnect: dpdk-input 26.0,
//!   dpdk-tx 26.3, ethernet-input 5.8, interface-output 3.9 (62 in all); Copy: 63.6 and 57.9.
//!   Per-node clocks (run A, xconnect): copy rx 119.5 clk/pkt, in-place rx 37.2; copy tx
//!   117.7. The copy reads net_null's cold mbuf data and writes a cold rvpp buffer.
//! * Rx queue `i` goes to a worker chosen by the daemon; each worker transmits on tx queue
//!   `worker % num_tx_queues`, under a lock only when several workers share a queue.

mod eal;
mod mempool;
mod port;
mod rx;
mod tx;

pub use eal::{eal, eal_args, eal_init, normalize_pci, Eal, EalConfig};
pub use port::{vpp_pci_name, Link, Port, PortConfig, PortStats};
pub use rx::{rx_mode, set_rx_mode, DpdkRx, RxMode, RxTemplate, DEFAULT_RX_MODE};
pub use tx::DpdkTx;

/// The input and tx node names of DPDK queues.
pub const INPUT_NODE: &str = crate::DPDK_INPUT_NODE;
pub const TX_NODE: &str = crate::DPDK_TX_NODE;

/// Largest burst moved at once.
const BURST: usize = 256;
