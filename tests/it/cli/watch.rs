//! `kmsctl run --watch`: a change to the playbook or a module it imports runs it again, a burst
//! of writes runs it once, a broken edit is reported and watched on, Ctrl-C stops it.

use crate::harness::kmsctl;
use std::io::BufRead;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The next stdout event whose line contains `needle`, within 20 s.
fn next(lines: &mpsc::Receiver<String>, seen: &mut Vec<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) => {
                seen.push(l.clone());
                if l.contains(needle) {
                    return l;
                }
            }
            Err(_) => panic!("no {needle:?} in 20s; saw:\n{}", seen.join("\n")),
        }
    }
}

#[test]
fn watch_runs_again_on_a_change_once_per_burst_until_ctrl_c() {
    let mut run = kmsctl()
        .file("lib/greet.rhai", "fn greet() { \"hello\" }\n")
        .file("p.rhai", "import \"./lib/greet\" as g;\nimport \"log\" as log;\nlog::info(`says ${g::greet()}`);\n")
        .args(["run", "p.rhai", "--watch", "--output", "json"])
        .spawn();
    let dir = run.path().to_path_buf();
    let (tx, lines) = mpsc::channel();
    let out = run.child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut seen = Vec::new();
    next(&lines, &mut seen, "says hello");
    next(&lines, &mut seen, "run_finished");
    // The watch starts once the run is over.
    std::thread::sleep(Duration::from_millis(500));
    // An editor's save: two writes in a row are one change.
    std::fs::write(dir.join("lib/greet.rhai"), "fn greet() { \"bonjour\" }\n").unwrap();
    std::thread::sleep(Duration::from_millis(30));
    std::fs::write(dir.join("lib/greet.rhai"), "fn greet() { \"hallo\" }\n").unwrap();
    next(&lines, &mut seen, "says hallo");
    next(&lines, &mut seen, "run_finished");
    std::thread::sleep(Duration::from_millis(500));
    // A broken edit is reported, and the watch goes on.
    std::fs::write(dir.join("p.rhai"), "import \"./lib/greet\" as g;\nlet x = ;\n").unwrap();
    next(&lines, &mut seen, "\"kind\":\"compile\"");
    next(&lines, &mut seen, "run_finished");
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(
        dir.join("p.rhai"),
        "import \"./lib/greet\" as g;\nimport \"log\" as log;\nlog::info(`fixed ${g::greet()}`);\n",
    )
    .unwrap();
    next(&lines, &mut seen, "fixed hallo");
    next(&lines, &mut seen, "run_finished");
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    run.signal("INT");
    let status = loop {
        if let Some(s) = run.child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(2), "Ctrl-C did not stop the watch");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    assert!(!seen.iter().any(|l| l.contains("says bonjour")), "a burst ran twice:\n{}", seen.join("\n"));
    assert_eq!(seen.iter().filter(|l| l.contains("\"event\":\"run_finished\"")).count(), 4, "{}", seen.join("\n"));
}
