//! Builds the DPDK bindings and the C shim, only with the `dpdk` feature. Without it the crate is
//! empty and this script does nothing, so a default workspace build never looks for DPDK.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "dpdk")]
    dpdk::build();
}

#[cfg(feature = "dpdk")]
mod dpdk {
    use std::path::PathBuf;

    pub fn build() {
        println!("cargo:rerun-if-changed=shim/shim.h");
        println!("cargo:rerun-if-changed=shim/shim.c");
        // Shared libraries only: Debian's libdpdk.pc puts the static --whole-archive list in
        // Libs.private, which pkg-config leaves out unless asked for static linking.
        let lib = pkg_config::Config::new()
            .atleast_version("22.11")
            .statik(false)
            .probe("libdpdk")
            .unwrap_or_else(|e| {
                panic!(
                    "rvpp-dpdk-sys: DPDK not found through pkg-config ({e}).\n\
                     Install Debian's libdpdk-dev (scripts/install-deps.sh) or build without \
                     the `dpdk` feature."
                )
            });
        // rte_eth_from_rings (the ring PMD's API, used by tests) lives in the PMD library.
        println!("cargo:rustc-link-lib=dylib=rte_net_ring");

        // The include paths and `-include rte_config.h -march=...` come from pkg-config's cflags.
        let cflags = cflags_from_pkg_config();

        let mut cc = cc::Build::new();
        cc.file("shim/shim.c").opt_level(3).warnings(false);
        for f in &cflags {
            cc.flag(f);
        }
        for p in &lib.include_paths {
            cc.include(p);
        }
        cc.compile("rvpp_dpdk_shim");

        let mut b = bindgen::Builder::default()
            .header("shim/shim.h")
            .clang_args(cflags.iter().filter(|f| !f.starts_with("-march")))
            .clang_args(
                lib.include_paths
                    .iter()
                    .map(|p| format!("-I{}", p.display())),
            )
            .allowlist_function("rte_eal_(init|cleanup)")
            .allowlist_function("rte_eth_.*")
            .allowlist_function("rte_pktmbuf_.*")
            .allowlist_function("rte_mempool_(free|lookup|avail_count|in_use_count)")
            .allowlist_function("rte_dev_(probe|remove)")
            .allowlist_function("rte_strerror|rte_socket_id|rte_thread_(register|unregister)")
            .allowlist_function("rte_ring_(create|free)")
            .allowlist_function("rvpp_.*")
            .allowlist_type("rte_mbuf|rte_mempool|rte_eth_.*|rte_ether_addr")
            .allowlist_var("RTE_ETH_.*|RTE_MAX_ETHPORTS|RTE_PKTMBUF_HEADROOM|RTE_MBUF_DEFAULT_.*")
            .allowlist_var("RING_F_.*|RTE_MAX_LCORE|SOCKET_ID_ANY")
            .blocklist_function("rte_eth_(rx|tx)_burst|rte_eth_call_.*")
            .default_enum_style(bindgen::EnumVariation::Consts)
            .prepend_enum_name(false)
            .derive_default(true)
            .layout_tests(false)
            .generate_comments(false)
            .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
        if let Ok(v) = std::env::var("RVPP_BINDGEN_EXTRA") {
            b = b.clang_args(v.split_whitespace().map(String::from));
        }
        let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
        b.generate()
            .expect("rvpp-dpdk-sys: bindgen failed on the DPDK headers")
            .write_to_file(out.join("bindings.rs"))
            .expect("write bindings.rs");
    }

    fn cflags_from_pkg_config() -> Vec<String> {
        let out = std::process::Command::new("pkg-config")
            .args(["--cflags", "libdpdk"])
            .output()
            .expect("run pkg-config --cflags libdpdk");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect()
    }
}
