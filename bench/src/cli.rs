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

/// `kmsctl version` and `kmsctl check` over the project's playbooks, examples and stdlib.
pub(crate) fn run(bin: &Path) {
    let root = crate::root();
    let count = ["playbooks", "examples", "stdlib"].iter().map(|d| walk(&root.join(d))).sum::<usize>();
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
    ];
    table(&rows);
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
