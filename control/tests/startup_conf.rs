//! startup.conf parsing: calico's template, VPP syntax forms, errors with file:line, warnings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rvpp_control::startup_conf::*;

/// calico-vpp's startup.conf template (vpp-container.md §3), verbatim.
const CALICO_TEMPLATE: &str = "\
unix { nodaemon  full-coredump  cli-listen /var/run/vpp/cli.sock  pidfile /run/vpp/vpp.pid  exec /etc/vpp/startup.exec }
api-trace { on }
cpu { workers 0 }
socksvr { socket-name /var/run/vpp/vpp-api.sock }
plugins { plugin default { enable }  plugin dpdk_plugin.so { disable }  plugin ping_plugin.so { disable }
          plugin bpf_trace_filter.so { enable }  plugin dispatch_trace_plugin.so { enable } }
buffers { buffers-per-numa 131072 }
";

#[test]
fn calico_template() {
    let c = StartupConfig::parse(CALICO_TEMPLATE, "/etc/vpp/startup.conf").unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(c.unix.nodaemon);
    assert!(c.unix.full_coredump);
    assert!(!c.unix.interactive);
    assert_eq!(c.unix.cli_listen.as_deref(), Some("/var/run/vpp/cli.sock"));
    assert_eq!(c.cli_socket(), Some(PathBuf::from("/var/run/vpp/cli.sock")));
    assert_eq!(c.unix.pidfile, Some(PathBuf::from("/run/vpp/vpp.pid")));
    assert_eq!(c.unix.exec, Some(PathBuf::from("/etc/vpp/startup.exec")));
    assert_eq!(c.unix.cli_prompt, "vpp# ");
    assert!(c.api_trace.on);
    assert_eq!(c.api_trace.nitems, 256 << 10);
    assert_eq!(c.cpu.workers, Some(0));
    assert_eq!(c.cpu.n_workers(), 0);
    assert_eq!(c.api_socket(), Some(Path::new("/var/run/vpp/vpp-api.sock")));
    assert!(!c.plugins.default_disable);
    assert!(!c.plugins.is_enabled("dpdk_plugin.so"));
    assert!(!c.plugins.is_enabled("ping_plugin.so"));
    assert!(c.plugins.is_enabled("bpf_trace_filter.so"));
    assert!(c.plugins.is_enabled("af_packet_plugin.so"));
    assert_eq!(c.plugins.plugins.len(), 4);
    assert_eq!(c.buffers.buffers_per_numa, 131072);
    assert_eq!(c.buffers.default_data_size, 2048);
    // No statseg stanza: VPP's default <runtime-dir>/stats.sock.
    assert_eq!(c.statseg.socket_name, PathBuf::from("/run/vpp/stats.sock"));
    assert_eq!(c.statseg.size, 32 << 20);
    assert!(c.dpdk.is_none());
    assert_eq!(c.logging.default_log_level, LogLevel::Notice);
    // Line numbers survive the one-line form: plugins' continuation is on line 6.
    let plugins = c.tree.section("plugins").unwrap();
    assert_eq!(plugins.line, 5);
    let bpf = plugins
        .children_named("plugin")
        .find(|p| p.arg() == Some("bpf_trace_filter.so"))
        .unwrap();
    assert_eq!(bpf.line, 6);
}

/// What vpp-manager's dpdk driver appends, plus the no-hugepage edits.
#[test]
fn calico_template_with_dpdk_edits() {
    let src = format!(
        "{CALICO_TEMPLATE}dpdk {{\n  dev 0000:00:04.0 {{ num-rx-queues 2 num-tx-queues 2 num-rx-desc 1024 num-tx-desc 1024 tag main-eth0 }}\n  iova-mode va\n  no-hugetlb\n}}\nbuffers {{ no-hugetlb }}\n"
    );
    let c = StartupConfig::parse(&src, "startup.conf").unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let d = c.dpdk.as_ref().unwrap();
    assert_eq!(d.devs.len(), 1);
    let dev = d.dev("0000:00:04.0").unwrap();
    assert_eq!(dev.num_rx_queues, Some(2));
    assert_eq!(dev.num_tx_queues, Some(2));
    assert_eq!(dev.num_rx_desc, Some(1024));
    assert_eq!(dev.num_tx_desc, Some(1024));
    assert_eq!(dev.tag.as_deref(), Some("main-eth0"));
    assert_eq!(dev.line, 9);
    assert_eq!(d.iova_mode.as_deref(), Some("va"));
    assert!(d.no_hugetlb);
    assert!(c.buffers.no_hugetlb);
    assert_eq!(
        c.buffers.buffers_per_numa, 131072,
        "repeated sections merge"
    );
    // The full subtree is kept.
    assert_eq!(d.node.children().len(), 3);
}

#[test]
fn nested_dpdk_single_line_and_vdev() {
    let c = StartupConfig::parse(
        "dpdk { dev 0000:00:04.0 { num-rx-queues 2 tag main-eth0 } vdev net_null0 socket-mem 1024,1024 uio-driver vfio-pci dev 0000:00:05.0 dev default { num-rx-desc 512 } }",
        "x",
    )
    .unwrap();
    let d = c.dpdk.unwrap();
    assert_eq!(d.vdevs, vec!["net_null0"]);
    assert_eq!(d.socket_mem.as_deref(), Some("1024,1024"));
    assert_eq!(d.uio_driver.as_deref(), Some("vfio-pci"));
    assert_eq!(d.devs.len(), 2);
    assert_eq!(d.devs[1].addr, "0000:00:05.0");
    assert_eq!(d.devs[1].num_rx_queues, None);
    // Unlisted devices fall back to `dev default`.
    assert_eq!(d.dev("0000:00:06.0").unwrap().num_rx_desc, Some(512));
}

#[test]
fn comments_flags_values_and_cpu() {
    let src = "\
## rvpp test config
unix {
  nodaemon        # stay in the foreground
  interactive
  cli-listen /run/vpp/cli.sock
  log /var/log/vpp/vpp.log
  gid 1000
  coredump-size unlimited
  runtime-dir /run/rvpp-test
  cli-prompt \"rvpp# \"
}
cpu {
  main-core 1
  corelist-workers 2-3,5
}
buffers { buffers-per-numa 4096 default data-size 9216 page-size 2M }
statseg { size 64M per-node-counters on }
logging { default-log-level debug default-syslog-log-level error class dpdk { level warn } }
socksvr { }
api-trace { on nitems 1024 }
plugins { path /usr/lib/rvpp_plugins plugin default { disable } plugin memif_plugin.so { enable } }
";
    let c = StartupConfig::parse(src, "t.conf").unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(c.unix.nodaemon && c.unix.interactive);
    assert_eq!(c.unix.log, Some(PathBuf::from("/var/log/vpp/vpp.log")));
    assert_eq!(c.unix.gid, Some(GidSpec::Id(1000)));
    assert_eq!(c.unix.coredump_size, Some(CoredumpSize::Unlimited));
    assert_eq!(c.unix.cli_prompt, "rvpp# ");
    assert_eq!(c.cpu.main_core, Some(1));
    assert_eq!(c.cpu.corelist_workers, Some(vec![2, 3, 5]));
    assert_eq!(c.cpu.n_workers(), 3);
    assert_eq!(c.cpu.worker_cores(), vec![Some(2), Some(3), Some(5)]);
    assert_eq!(c.buffers.buffers_per_numa, 4096);
    assert_eq!(c.buffers.default_data_size, 9216);
    assert_eq!(c.buffers.page_size, Some(PageSize::Bytes(2 << 20)));
    assert_eq!(c.statseg.size, 64 << 20);
    assert!(c.statseg.per_node_counters);
    // runtime-dir moves the default sockets.
    assert_eq!(
        c.statseg.socket_name,
        PathBuf::from("/run/rvpp-test/stats.sock")
    );
    assert_eq!(c.api_socket(), Some(Path::new("/run/rvpp-test/api.sock")));
    assert_eq!(c.logging.default_log_level, LogLevel::Debug);
    assert_eq!(c.logging.default_syslog_log_level, LogLevel::Error);
    assert_eq!(c.logging.classes[0].class, "dpdk");
    assert_eq!(c.logging.classes[0].level, Some(LogLevel::Warn));
    assert_eq!(c.api_trace.nitems, 1024);
    assert!(c.plugins.default_disable);
    assert!(c.plugins.is_enabled("memif_plugin.so"));
    assert!(!c.plugins.is_enabled("dpdk_plugin.so"));
    assert_eq!(c.plugins.path.as_deref(), Some("/usr/lib/rvpp_plugins"));
}

#[test]
fn absent_socksvr_means_no_api_socket() {
    let c = StartupConfig::parse("unix { nodaemon }", "t").unwrap();
    assert!(c.socksvr.is_none());
    assert!(c.api_socket().is_none());
    assert!(c.cli_socket().is_none());
    let c = StartupConfig::parse("socksvr { default }", "t").unwrap();
    assert_eq!(c.api_socket(), Some(Path::new("/run/vpp/api.sock")));
}

#[test]
fn workers_without_main_core() {
    let c = StartupConfig::parse("cpu { workers 2 }", "t").unwrap();
    assert_eq!(c.cpu.n_workers(), 2);
    assert_eq!(c.cpu.worker_cores(), vec![None, None]);
    let c = StartupConfig::parse("cpu { main-core 0 skip-cores 1 workers 2 }", "t").unwrap();
    assert_eq!(c.cpu.worker_cores(), vec![Some(2), Some(3)]);
}

#[test]
fn unknown_options_are_warnings() {
    let src = "\
unix {
  nodaemon
  frobnicate 3
  cli-listen /run/vpp/cli.sock
}
session { enable use-app-socket-api }
mystery { a b { c } }
cpu { workers 1 corelist-io 3 }
";
    let c = StartupConfig::parse(src, "w.conf").unwrap();
    let msgs: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(msgs.len(), 4, "{msgs:#?}");
    assert!(msgs[0].starts_with("w.conf:3: unknown option `frobnicate 3` in `unix { }`"));
    assert!(msgs[1].starts_with("w.conf:6: section `session` is not supported"));
    assert!(msgs[2].starts_with("w.conf:7: unknown section `mystery`"));
    assert!(msgs[3].starts_with("w.conf:8: `corelist-io`"));
    // The known options around them still apply, and everything stays in the tree.
    assert!(c.unix.nodaemon);
    assert_eq!(c.cli_socket(), Some(PathBuf::from("/run/vpp/cli.sock")));
    let m = c.tree.section("mystery").unwrap();
    assert_eq!(m.children()[0].name, "a");
    assert_eq!(m.children()[0].args, vec!["b"]);
    assert_eq!(m.children()[0].children()[0].name, "c");
    // Inside sections rvpp does not know, an option takes the rest of its line.
    let session = c.tree.section("session").unwrap();
    assert_eq!(
        session.child("enable").unwrap().args,
        vec!["use-app-socket-api"]
    );
}

#[test]
fn unknown_option_in_single_line_form_stops_at_next_known_option() {
    let c = StartupConfig::parse("unix { nodaemon bogus cli-listen /x.sock }", "t").unwrap();
    assert_eq!(c.warnings.len(), 1);
    assert!(c.warnings[0].message.contains("`bogus`"));
    assert_eq!(c.unix.cli_listen.as_deref(), Some("/x.sock"));
}

fn err(src: &str) -> String {
    StartupConfig::parse(src, "/etc/vpp/startup.conf")
        .unwrap_err()
        .to_string()
}

#[test]
fn errors_name_file_and_line() {
    assert_eq!(
        err("unix {\n  nodaemon\n"),
        "/etc/vpp/startup.conf:1: `{` opened here is never closed (missing `}`)"
    );
    assert_eq!(
        err("unix { nodaemon }\n}\n"),
        "/etc/vpp/startup.conf:2: unexpected `}` (no `{` is open here)"
    );
    assert_eq!(
        err("unix {\n nodaemon\n cli-listen\n}"),
        "/etc/vpp/startup.conf:3: `cli-listen` in `unix { }` needs a value, found the end of the section"
    );
    assert_eq!(
        err("buffers {\n\n  buffers-per-numa lots\n}"),
        "/etc/vpp/startup.conf:3: `buffers-per-numa` expects an unsigned integer, got `lots`"
    );
    assert_eq!(
        err("cpu {\n corelist-workers 2-3,5\n}"),
        "/etc/vpp/startup.conf:1: main-core must be specified when using corelist-* or coremask-* attribute"
    );
    assert!(err("cpu { main-core 0 corelist-workers 5-2 }")
        .contains(":1: `corelist-workers`: bad CPU list `5-2`"));
    assert!(
        err("unix\n{ nodaemon }\nplugins { plugin x.so }").starts_with(
            "/etc/vpp/startup.conf:3: `plugin x.so` in `plugins { }` must be followed by `{ ... }`"
        )
    );
    assert!(err("unix { nodaemon { } }")
        .contains(":1: `nodaemon` in `unix { }` does not take a `{ }` block"));
    assert!(err("dpdk {\n dev eth0 { }\n}")
        .starts_with("/etc/vpp/startup.conf:2: `dev` expects a PCI address"));
    assert!(err("logging { default-log-level loud }").contains("expects a log level"));
    assert!(err("unix { cli-prompt \"oops }").contains(":1: unterminated double quote"));
    assert!(err("{ nodaemon }").contains(":1: unexpected `{` at top level"));
}

#[test]
fn file_loading_and_command_line() {
    let dir = std::env::temp_dir().join(format!("rvpp-conf-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("startup.conf");
    std::fs::write(&f, CALICO_TEMPLATE).unwrap();

    let c = load_from_args(["-c", f.to_str().unwrap()]).unwrap();
    assert_eq!(c.tree.origin, f.display().to_string());
    assert!(c.unix.nodaemon);
    let joined = format!("-c{}", f.display());
    let c = load_from_args([joined.as_str(), "-i"]).unwrap();
    assert!(c.unix.interactive);

    // VPP's inline form: the configuration as command-line words.
    let c = load_from_args(["unix", "{", "nodaemon", "cli-listen", "/tmp/x.sock", "}"]).unwrap();
    assert_eq!(c.cli_socket(), Some(PathBuf::from("/tmp/x.sock")));
    assert_eq!(c.tree.origin, CMDLINE_ORIGIN);

    // Nothing: the built-in default.
    let c = load_from_args(Vec::<String>::new()).unwrap();
    assert_eq!(c.cli_socket(), Some(PathBuf::from("/run/rvpp/cli.sock")));
    assert_eq!(c.cpu.n_workers(), 0);

    let missing = dir.join("nope.conf");
    let e = load_from_args(["-c", missing.to_str().unwrap()]).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("{}: failed to open", missing.display())),
        "{e}"
    );
    assert!(CommandLine::parse(["-c"]).is_err());
    let cl = CommandLine::parse(["-v"]).unwrap();
    assert!(cl.version);

    // Errors in a file name the file.
    std::fs::write(&f, "unix {\n  nodaemon\n  cli-listen\n}\n").unwrap();
    let e = StartupConfig::load(&f).unwrap_err();
    assert_eq!(e.line, 3);
    assert!(e.to_string().starts_with(&format!("{}:3: ", f.display())));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn default_constant_is_clean() {
    let c = StartupConfig::parse(DEFAULT_STARTUP_CONF, DEFAULT_ORIGIN).unwrap();
    assert!(c.warnings.is_empty());
    assert!(c.unix.nodaemon);
    assert_eq!(c.cpu.n_workers(), 0);
    assert_eq!(c.cli_socket(), Some(PathBuf::from("/run/rvpp/cli.sock")));
}

#[test]
fn tree_display_reparses() {
    let c = StartupConfig::parse(CALICO_TEMPLATE, "t").unwrap();
    let text = c.tree.to_string();
    let again = StartupConfig::parse(&text, "t2").unwrap();
    assert_eq!(again.unix, c.unix);
    assert_eq!(again.plugins.plugins.len(), c.plugins.plugins.len());
    assert_eq!(again.buffers, c.buffers);
}

#[test]
fn group_names_resolve_through_the_group_database() {
    assert_eq!(GidSpec::Name("root".into()).resolve().unwrap(), 0);
    let e = GidSpec::Name("rvpp-no-such-group-x".into())
        .resolve()
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn metrics_stanza() {
    let c = StartupConfig::parse("unix { nodaemon }", "t").unwrap();
    assert_eq!(c.metrics.listen, None, "off by default");
    let c = StartupConfig::parse("metrics {\n listen 127.0.0.1:9482\n}", "t").unwrap();
    assert_eq!(c.metrics.listen, Some("127.0.0.1:9482".parse().unwrap()));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let c = StartupConfig::parse("metrics { listen [::1]:9 }", "t").unwrap();
    assert_eq!(c.metrics.listen, Some("[::1]:9".parse().unwrap()));
    for bad in ["localhost:9482", "127.0.0.1", "127.0.0.1:99999", ":9482"] {
        assert_eq!(
            err(&format!("metrics {{\n listen {bad}\n}}")),
            format!(
                "/etc/vpp/startup.conf:2: `metrics listen` expects an address and port such as \
                 127.0.0.1:9482 or [::1]:9482, got `{bad}`"
            )
        );
    }
    assert!(err("metrics { listen }").contains("`listen` in `metrics { }` needs a value"));
}

#[test]
fn cnat_stanza() {
    let c = StartupConfig::parse("unix { nodaemon }", "t").unwrap();
    assert_eq!(
        c.cnat,
        CnatConfig::default(),
        "VPP's defaults without a stanza"
    );
    assert_eq!(
        c.cnat.dataplane().max_sessions,
        1 << 16,
        "rvpp's default size"
    );
    assert_eq!(c.cnat.scan_every(), Some(Duration::from_secs(1)));
    let src = "\
cnat {
  session-max 100000
  session-max-age 60 tcp-max-age 7200
  session-cleanup-timeout 0.5
  translation-db-buckets 4096
  snat-db-memory 1M
  maglev-len 1009
  wibble 3
}
";
    let c = StartupConfig::parse(src, "c.conf").unwrap();
    assert_eq!(c.cnat.session_max, Some(100_000));
    assert_eq!(
        c.cnat.dataplane().max_sessions,
        200_000,
        "two entries a flow"
    );
    let t = c.cnat.timeouts();
    assert_eq!((t.generic, t.tcp_established), (60, 7200));
    assert_eq!(t.tcp_closing, 5, "rvpp's own stays");
    assert_eq!(c.cnat.scan_every(), Some(Duration::from_millis(500)));
    let msgs: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(msgs.len(), 3, "{msgs:#?}");
    assert!(msgs[0].starts_with("c.conf:8: unknown option `wibble 3` in `cnat { }`"));
    assert!(msgs[1].starts_with("c.conf:5: `cnat translation-db-buckets`: no effect"));
    assert!(msgs[2].starts_with("c.conf:6: `cnat snat-db-memory`"));
    // maglev-len other than rvpp's table length warns; scanner off turns expiry off.
    let c = StartupConfig::parse("cnat { maglev-len 65537 scanner off }", "t").unwrap();
    assert_eq!(c.cnat.scan_every(), None);
    assert!(c.warnings[0]
        .message
        .contains("maglev tables have 1009 slots"));
    assert!(err("cnat {\n session-max 16777217\n}")
        .contains(":2: cnat session-max 16777217: expects 1 to 16777216"));
    assert!(err("cnat { session-max 0 }").contains("expects 1 to"));
    assert!(err("cnat { scanner maybe }").contains("`scanner` expects on or off"));
    assert!(err("cnat { session-cleanup-timeout 0 }").contains("seconds > 0"));
    assert!(err("cnat { tcp-max-age forever }").contains("expects an unsigned integer"));
}
