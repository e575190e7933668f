//! kmsctl benchmarks. Each scenario measures, side by side, and prints markdown tables; nothing
//! here asserts a timing (the targets from spec/MISSION.md are printed next to the results).
//!
//!   bench/run cli                   # kmsctl version, kmsctl check over the playbooks and stdlib
//!   bench/run readiness [--trials N] [--objects N]
//!                                   # reaction latency (--trials 0: skipped), and API requests while waiting on many objects
//!   bench/run deploy [--runs N] [--parties N]
//!                                   # 13-party threshold deploy: kmsctl vs the bash flow vs the cluster's floor
//!   bench/run aws-perf [--runs N] [--parties N]
//!                                   # the 13-party aws-perf deploy (eks profile): kmsctl vs the toolkit's flow
//!   bench/run scale [--runs N] [--max N]
//!                                   # kmsctl's deploy at 1, 4, 13, 50, 100 parties: wall, requests, RSS, exponents
//!
//! The cluster scenarios need the local test environment: `bench/run` starts a private one
//! (and stops it) unless `TESTENV_DIR` names a running one (see bench/run).

mod aws_perf;
mod cli;
mod deploy;
mod env;
mod fixtures;
mod readiness;
mod scale;
mod stats;

use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `--name VALUE` from the scenario's arguments, or `default`.
fn flag(args: &[String], name: &str, default: usize) -> usize {
    match args.iter().position(|a| a == name) {
        Some(i) => args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            eprintln!("{name} wants a number");
            std::process::exit(2)
        }),
        None => default,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bin = std::env::var("KMSCTL_BIN").map(PathBuf::from).unwrap_or_else(|_| root().join("target/release/kmsctl"));
    assert!(bin.exists(), "{} not found: build with `cargo build --release -p kmsctl`", bin.display());
    let rest = args.get(1..).unwrap_or_default();
    let outcome = match args.first().map(String::as_str) {
        Some("cli") | None => {
            cli::run(&bin);
            Ok(())
        }
        Some("readiness") => {
            cluster_scenario(|| readiness::run(bin, flag(rest, "--trials", 20), flag(rest, "--objects", 1000)))
        }
        Some("deploy") => cluster_scenario(|| deploy::run(bin, flag(rest, "--runs", 3), flag(rest, "--parties", 13))),
        Some("aws-perf") => {
            cluster_scenario(|| aws_perf::run(bin, flag(rest, "--runs", 3), flag(rest, "--parties", 13)))
        }
        Some("scale") => {
            let max = flag(rest, "--max", 100);
            let sizes: Vec<usize> = [1, 4, 13, 50, 100].into_iter().filter(|n| *n <= max).collect();
            cluster_scenario(|| scale::run(bin, &sizes, flag(rest, "--runs", 1)))
        }
        Some(other) => {
            eprintln!("unknown scenario {other}; scenarios: cli, readiness, deploy, aws-perf, scale");
            std::process::exit(2);
        }
    };
    if let Err(e) = outcome {
        eprintln!("benchmark failed: {e}");
        std::process::exit(1);
    }
}

/// Run an async cluster scenario on a runtime of its own.
fn cluster_scenario<F: Future<Output = env::Result<()>>>(f: impl FnOnce() -> F) -> env::Result<()> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(f())
}
