//! Bindings to the system DPDK (being built).
