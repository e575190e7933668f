//! What a run leaves for people and CI: GitHub Actions groups and annotations, the summary
//! appended to `$GITHUB_STEP_SUMMARY`, `--junit`, and `report.html` drawn by a real browser
//! (headless Chromium, the Debian package scripts/test installs): its rendered DOM, not the
//! file's text, is what the tests read. The rehearsal's reports are checked in
//! `playbooks::aws`.

use crate::harness::{Run, kmsctl};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The browser: `KMSCTL_CHROMIUM`, else `chromium` on PATH. Missing, a test skips — unless
/// `TESTENV_REQUIRED=1` (scripts/test, CI), where it fails.
pub(crate) fn chromium() -> Option<String> {
    let named = std::env::var("KMSCTL_CHROMIUM").ok().filter(|s| !s.is_empty());
    let found = named.or_else(|| {
        ["chromium", "chromium-browser"].into_iter().find_map(|b| {
            let ok = Command::new(b).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
            ok.is_ok_and(|s| s.success()).then(|| b.to_string())
        })
    });
    if found.is_none() {
        assert!(
            std::env::var("TESTENV_REQUIRED").as_deref() != Ok("1"),
            "no chromium: scripts/test installs it (apt-get install chromium), or set KMSCTL_CHROMIUM"
        );
        eprintln!("SKIP: no chromium (apt-get install chromium)");
    }
    found
}

/// The DOM of `page` once its scripts ran (`chromium --headless --dump-dom`).
pub(crate) fn dom(browser: &str, page: &Path) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let url = format!("file://{}", page.canonicalize().expect("the report exists").display());
    let mut child = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", &url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut out = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).map(|_| s)
    });
    let t = Instant::now();
    while child.try_wait().expect("chromium").is_none() {
        if t.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("chromium did not finish in 90s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let dom = reader.join().expect("reader").expect("chromium's output");
    assert!(dom.contains("id=\"timeline\""), "the report's script did not draw the page:\n{dom}");
    dom
}

/// One rendered timeline row: a step or a parallel task.
#[derive(Debug)]
pub(crate) struct Row {
    pub kind: String,
    pub name: String,
    pub outcome: String,
    /// Helm, wait and hook segments drawn on it.
    pub segments: usize,
}

/// The timeline's rows, in the order drawn.
pub(crate) fn rows(dom: &str) -> Vec<Row> {
    let re = regex::Regex::new(
        r#"<div class="row" data-kind="(\w+)" data-name="([^"]*)"(?: data-label="[^"]*")? data-outcome="(\w+)" data-segments="(\d+)">"#,
    )
    .expect("regex");
    re.captures_iter(dom)
        .map(|c| Row { kind: c[1].into(), name: c[2].into(), outcome: c[3].into(), segments: c[4].parse().unwrap() })
        .collect()
}

/// The segments of one kind drawn in the DOM.
pub(crate) fn segments(dom: &str, kind: &str) -> usize {
    dom.matches(&format!("data-kind=\"{kind}\" title=")).count()
}

const PARALLEL: &str = r#"
    import "log" as log;
    import "wait" as wait;
    fn work(id) { wait::sleep("50ms"); if id == 3 { throw #{ kind: "failed", message: "party 3: CrashLoopBackOff" }; } id }
    log::step("prepare", || { log::info("ready"); log::decision("canary kms-core", "promote", "error rate 0.1% <= 1%"); });
    log::step("deploy 4 parties", || parallel_map([1, 2, 3, 4], |id| work(id), #{ labels: ["party-1", "party-2", "party-3", "party-4"], fail_fast: false }));
"#;

/// Under GitHub Actions: each top-level step a group, the error an annotation on the playbook's
/// line (properties escaped), a warning an annotation, and the summary in Markdown appended to
/// `$GITHUB_STEP_SUMMARY` (what the job already had there stays).
#[test]
fn github_actions_get_groups_annotations_and_the_step_summary() {
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "log" as log;
            log::step("prepare", || log::info("ready"));
            log::step("deploy", || {
                log::warn("slow: 50% done");
                throw #{ kind: "timeout", message: "wait for StatefulSet kms/a timed out" };
            });
            "#,
        )
        .file("summary.md", "earlier step\n")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", "summary.md")
        .args(["run", "p.rhai"])
        .code(3)
        .run();
    let lines: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with("::")).collect();
    assert_eq!(
        lines,
        [
            "::group::prepare",
            "::endgroup::",
            "::group::deploy",
            "::warning::slow: 50%25 done",
            "::endgroup::",
            "::error file=p.rhai,line=5,col=5,title=kmsctl%3A%3Atimeout::wait for StatefulSet kms/a timed out",
        ],
        "{}",
        r.stderr
    );
    let summary = std::fs::read_to_string(r.path().join("summary.md")).unwrap();
    assert!(summary.starts_with("earlier step\n## ❌ `p.rhai` failed in "), "{summary}");
    insta::assert_snapshot!(crate::harness::normalize(&summary, &r.path()));
    let artifact = std::fs::read_to_string(r.path().join("kmsctl-artifacts/summary.md")).unwrap();
    assert!(summary.ends_with(&format!("{artifact}\n")), "the same summary in the artifacts dir");
}

/// An error raised inside a stdlib module is annotated where the playbook called it: the
/// annotation is for the playbook's author. A compile error points at its token.
#[test]
fn an_annotation_points_into_the_playbook_not_the_stdlib() {
    let r = kmsctl()
        .file("std/boom.rhai", "fn boom(what) {\n    throw #{ kind: \"conflict\", message: `${what} exists` };\n}\n")
        .file("playbooks/p.rhai", "import \"std/boom\" as b;\n\nb::boom(\"release kms-core-1\");\n")
        .env("GITHUB_ACTIONS", "true")
        .args(["run", "playbooks/p.rhai", "--stdlib-dir", "std"])
        .code(1)
        .run();
    let errors: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with("::error")).collect();
    assert_eq!(
        errors,
        ["::error file=playbooks/p.rhai,line=3,col=4,title=kmsctl%3A%3Aconflict::release kms-core-1 exists"],
        "{}",
        r.stderr
    );
    let r = r
        .again()
        .file("bad.rhai", "let x = 1;\nlet y = ;\n")
        .env("GITHUB_ACTIONS", "true")
        .args(["run", "bad.rhai"])
        .code(2)
        .run();
    let errors: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with("::error")).collect();
    assert_eq!(
        errors,
        ["::error file=bad.rhai,line=2,col=9,title=kmsctl%3A%3Acompile::Unexpected ';'"],
        "{}",
        r.stderr
    );
}

/// Outside Actions (and under `CI=true` alone) there are no workflow commands.
#[test]
fn no_workflow_commands_outside_github_actions() {
    let r = kmsctl().file("p.rhai", PARALLEL).args(["run", "p.rhai"]).code(1).run();
    assert!(!r.stderr.lines().any(|l| l.starts_with("::")), "{}", r.stderr);
}

/// `--junit FILE`: one test case per step (a parallel task's class names its step), a failed
/// one with its error, a cancelled one skipped, and one for the run itself.
#[test]
fn junit_has_a_test_case_per_step() {
    let r = kmsctl().file("p.rhai", PARALLEL).args(["run", "p.rhai", "--junit", "reports/junit.xml"]).code(1).run();
    let xml = std::fs::read_to_string(r.path().join("reports/junit.xml")).expect("junit file");
    let xml = regex::Regex::new(r#"time="[0-9.]+""#).unwrap().replace_all(&xml, r#"time="[t]""#);
    insta::assert_snapshot!(xml);
}

/// Every run leaves report.html, summary.md, run.log and events.jsonl in the artifacts dir
/// (default `kmsctl-artifacts`), and the report draws in a browser: a row per step, a lane per
/// parallel task in its labels' order, the error with where it points.
#[test]
fn the_report_of_a_local_run_draws_its_steps_and_error_in_a_browser() {
    let r = kmsctl().file("p.rhai", PARALLEL).args(["run", "p.rhai"]).code(1).run();
    let dir = r.path().join("kmsctl-artifacts");
    for f in ["report.html", "summary.md", "run.log", "events.jsonl"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let log = std::fs::read_to_string(dir.join("run.log")).unwrap();
    assert!(log.lines().any(|l| l.ends_with(" ready")), "{log}");
    let Some(browser) = chromium() else { return };
    let dom = dom(&browser, &dir.join("report.html"));
    let rows = rows(&dom);
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["prepare", "deploy 4 parties", "party-1", "party-2", "party-3", "party-4"], "{dom}");
    let failed: Vec<&str> = rows.iter().filter(|r| r.outcome == "failed").map(|r| r.name.as_str()).collect();
    assert_eq!(failed, ["deploy 4 parties", "party-3"]);
    assert!(rows.iter().filter(|r| r.kind == "task").count() == 4);
    assert!(dom.contains(r#"<span class="badge failed" id="outcome">failed</span>"#), "{dom}");
    assert!(dom.contains("p.rhai:5:"), "the error's place: {dom}");
    assert!(dom.contains("party 3: CrashLoopBackOff"), "{dom}");
    let decisions = dom.split(r#"<section id="decisions">"#).nth(1).expect("the decisions section");
    assert!(
        decisions.contains("<td>canary kms-core</td><td>promote</td><td>error rate 0.1% &lt;= 1%</td>"),
        "{decisions}"
    );
}

/// Every file under `dir` in a run's directory, with its text.
pub(crate) fn artifacts_text(r: &Run, dir: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![r.path().join(dir)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())).flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.display().to_string(), std::fs::read_to_string(&p).unwrap_or_default()));
            }
        }
    }
    out
}
