//! `rvpp-bench`: benchmarks, each printed next to a peer, with `--json` for one JSON line.

mod graph;

const USAGE: &str = "usage: rvpp-bench <benchmark> [options] [--json]
  graph [--routes N] [--seconds S] [--runs R] [--size B]   one-core IPv4 forwarding graph
";

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    args.retain(|a| a != "--json");
    let Some(which) = args.first().cloned() else {
        eprint!("{USAGE}");
        std::process::exit(2);
    };
    let rest = &args[1..];
    let r = match which.as_str() {
        "graph" => graph::run(rest),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            return;
        }
        other => Err(format!("unknown benchmark {other}\n{USAGE}")),
    };
    match r {
        Ok(v) => {
            if json {
                println!("{v}");
            }
        }
        Err(e) => {
            eprintln!("rvpp-bench {which}: {e}");
            std::process::exit(1);
        }
    }
}
