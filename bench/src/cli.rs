//! The `cli` scenario: the release binary run repeatedly, median / p90 / min against the target.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Row {
    what: String,
    runs: usize,
    median: Duration,
    p90: Duration,
    min: Duration,
    target: Duration,
}

fn measure(what: &str, runs: usize, target: Duration, mut cmd: impl FnMut() -> Command) -> Row {
    // One warm-up run so the page cache holds the binary and the sources.
    let _ = cmd().stdout(Stdio::null()).stderr(Stdio::null()).status();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let st = cmd().stdout(Stdio::null()).stderr(Stdio::null()).status().expect("run kmsctl");
            let d = t.elapsed();
            assert!(st.success(), "{what} failed");
            d
        })
        .collect();
    times.sort();
    Row { what: what.into(), runs, median: times[runs / 2], p90: times[(runs * 9) / 10], min: times[0], target }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn table(rows: &[Row]) {
    println!("| scenario | runs | median | p90 | min | target | |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let ok = if r.median <= r.target { "ok" } else { "OVER" };
        println!(
            "| {} | {} | {} | {} | {} | ≤ {} | {ok} |",
            r.what,
            r.runs,
            ms(r.median),
            ms(r.p90),
            ms(r.min),
            ms(r.target)
        );
    }
}

/// `kmsctl version`, `kmsctl check` over the project's playbooks, examples and stdlib, and the
/// plan of the 13-party aws-perf deploy (no cluster, no AWS: `helm template` per release, with
/// the helm `KMSCTL_HELM` names; bench/run passes the test environment's).
pub(crate) fn run(bin: &Path) {
    let root = crate::root();
    let count = ["playbooks", "examples", "stdlib"].iter().map(|d| walk(&root.join(d))).sum::<usize>();
    // The plans' artifacts: one directory for all its runs, removed afterwards.
    let art = tempfile::Builder::new().prefix("kmsctl-bench-plan-").tempdir().expect("temp dir");
    let rows = vec![
        measure("kmsctl version", 50, Duration::from_millis(20), || {
            let mut c = Command::new(bin);
            c.arg("version");
            c
        }),
        measure(&format!("kmsctl check ({count} files)"), 30, Duration::from_millis(100), || {
            let mut c = Command::new(bin);
            c.current_dir(&root).args(["check", "-q", "--stdlib-dir", "stdlib", "playbooks", "examples", "stdlib"]);
            c
        }),
        measure("kmsctl run playbooks/aws-perf.rhai --plan --num-parties 13", 10, Duration::from_secs(1), || {
            plan(bin, &root, art.path())
        }),
    ];
    drop(art);
    table(&rows);
}

/// The 13-party aws-perf plan, as the plan tests run it (tests/it/plan.rs): nothing reachable
/// but helm.
fn plan(bin: &Path, root: &Path, art: &Path) -> Command {
    let mut c = Command::new(bin);
    c.current_dir(root)
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env("KMSCTL_STDLIB_DIR", root.join("stdlib"))
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .env("KMSCTL_DOCKER", "/nonexistent/docker")
        .env("KMSCTL_KIND", "/nonexistent/kind")
        .args(["run", "playbooks/aws-perf.rhai", "--kms-repo", "tests/kms-repo", "--target", "aws-perf"])
        .args(["--num-parties", "13", "--eks-cluster", "zws-dev", "--plan", "--artifacts"])
        .arg(art);
    c
}

fn walk(p: &Path) -> usize {
    match std::fs::read_dir(p) {
        Ok(rd) => rd
            .flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() { walk(&p) } else { usize::from(p.extension().is_some_and(|x| x == "rhai")) }
            })
            .sum(),
        Err(_) => 0,
    }
}
