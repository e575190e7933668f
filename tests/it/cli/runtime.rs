//! The runtime: steps and the summary, parallel work, cancellation, deadlines.

use crate::harness::kmsctl;
use std::time::{Duration, Instant};

#[test]
fn steps_show_progress_and_a_summary() {
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "log" as log;
            log::step("prepare", || log::info("namespace ready"));
            log::step("deploy", || {
                log::step("party 1", || log::warn("slow image pull"));
                log::step("party 2", || 2);
            });
            "#,
        )
        .args(["run", "p.rhai"])
        .code(0)
        .run();
    insta::assert_snapshot!(r.stderr_normalized());
}

#[test]
fn parallel_returns_results_in_order_and_labels_output() {
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "log" as log;
            import "wait" as wait;
            let out = parallel([|| { wait::sleep("60ms"); log::info("one"); 1 }, || { log::info("two"); 2 }, || 3], #{ labels: ["a", "b", "c"], max: 2 });
            let by_label = parallel(#{ x: || "X", y: || "Y" });
            log::info(`${out} ${by_label.x}${by_label.y}`);
            "#,
        )
        .args(["run", "p.rhai", "--output", "json"])
        .code(0).run();
    let ev = r.events();
    let msgs: Vec<String> =
        ev.iter().filter(|e| e["event"] == "log").map(|e| format!("{} {}", e["label"], e["message"])).collect();
    assert!(msgs.contains(&"\"a\" \"one\"".to_string()), "{msgs:?}");
    assert!(msgs.contains(&"\"b\" \"two\"".to_string()), "{msgs:?}");
    assert!(msgs.contains(&"null \"[1, 2, 3] XY\"".to_string()), "{msgs:?}");
}

#[test]
fn the_first_parallel_failure_cancels_the_others() {
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "wait" as wait;
            import "fs" as fs;
            parallel(#{
                "party-1": || { wait::sleep("30s"); fs::write("party-1.txt", "finished"); },
                "party-2": || { wait::sleep("50ms"); throw #{ kind: "failed", message: "party 2 crashed" }; },
                "party-3": || { loop { } },
            });
            "#,
        )
        .args(["run", "p.rhai", "--output", "json"])
        .code(1)
        .run();
    let ev = r.events();
    let outcome = |name: &str| {
        ev.iter()
            .find(|e| e["event"] == "step_finished" && e["name"] == name)
            .map(|e| e["outcome"].as_str().unwrap().to_string())
    };
    assert_eq!(outcome("party-2").as_deref(), Some("failed"));
    assert_eq!(outcome("party-1").as_deref(), Some("cancelled"));
    assert_eq!(outcome("party-3").as_deref(), Some("cancelled"));
    assert!(r.stderr.contains("party 2 crashed"), "the original error is reported: {}", r.stderr);
    assert!(!r.path().join("party-1.txt").exists());
}

/// Regression: closures built in a loop all captured the same loop variable, so every "party"
/// deployed the last id. `parallel_map` passes each item as an argument instead.
#[test]
fn parallel_map_passes_each_item_to_its_task() {
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "log" as log;
            let got = parallel_map([1, 2, 3], |id| id * 10, #{ max: 2 });
            let named = parallel_map(["a", "b"], |x| x + "!", #{ labels: ["first", "second"] });
            log::info(`${got} ${named}`);
            "#,
        )
        .args(["run", "p.rhai", "--output", "json"])
        .code(0)
        .run();
    let ev = r.events();
    let steps: Vec<&str> =
        ev.iter().filter(|e| e["event"] == "step_started").map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(steps.len(), 5);
    for want in ["1", "2", "3", "first", "second"] {
        assert!(steps.contains(&want), "{steps:?}");
    }
    assert!(ev.iter().any(|e| e["message"] == "[10, 20, 30] [\"a!\", \"b!\"]"), "{}", r.stdout);
}

#[test]
fn parallel_without_fail_fast_reports_every_failure() {
    let r = kmsctl()
        .file(
            "p.rhai",
            "parallel(#{ a: || throw \"A broke\", b: || 2, c: || throw \"C broke\" }, #{ fail_fast: false });\n",
        )
        .args(["run", "p.rhai"])
        .code(1)
        .run();
    assert!(r.stderr.contains("2 of 3 tasks failed: a: A broke; c: C broke"), "{}", r.stderr);
}

#[test]
fn ctrl_c_cancels_a_blocked_run_and_exits_130() {
    let mut run = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "log" as log;
            import "wait" as wait;
            import "fs" as fs;
            log::step("deploy", || parallel([
                || { try { wait::sleep("120s"); } catch { fs::write("caught.txt", "a cancellation must not be catchable"); } },
                || { loop { } },
            ]));
            fs::write("after.txt", "the script must not continue after Ctrl-C");
            "#,
        )
        .args(["run", "p.rhai", "--output", "json"])
        .spawn();
    let dir = run.path().to_path_buf();
    let _rest = run.wait_for_stdout("step_started");
    let start = Instant::now();
    run.signal("INT");
    let status = loop {
        if let Some(s) = run.child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "kmsctl did not stop after SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    assert!(!dir.join("caught.txt").exists() && !dir.join("after.txt").exists());
}

#[test]
fn sigterm_is_an_interrupt_too() {
    let mut run = kmsctl()
        .file(
            "p.rhai",
            "import \"log\" as log;\nimport \"wait\" as wait;\nlog::step(\"s\", || wait::sleep(\"120s\"));\n",
        )
        .args(["run", "p.rhai", "--output", "json"])
        .spawn();
    let _rest = run.wait_for_stdout("step_started");
    run.signal("TERM");
    assert_eq!(run.child.wait().unwrap().code(), Some(130));
}

#[test]
fn the_run_deadline_exits_3() {
    let r = kmsctl()
        .file("p.rhai", "import \"wait\" as wait;\nwait::sleep(\"120s\");\n")
        .args(["run", "p.rhai", "--timeout", "300ms"])
        .code(3)
        .run();
    assert!(r.stderr.contains("the run exceeded --timeout 300ms"), "{}", r.stderr);
}

#[test]
fn wait_helpers_time_out_retry_and_poll() {
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "wait" as wait;
            import "log" as log;
            let caught = "";
            try { wait::timeout("50ms", || wait::sleep("60s")); } catch (e) { caught = `${e.kind}: ${e.message}`; }
            let tries = 0;
            let v = wait::retry(|| { tries += 1; if tries < 3 { throw #{ kind: "unavailable", message: "not yet" } } tries }, #{ backoff: "1ms" });
            let polls = 0;
            let p = wait::poll(|| { polls += 1; if polls == 4 { "ready" } }, #{ interval: "1ms" });
            let gave_up = "";
            try { wait::retry(|| throw #{ kind: "auth", message: "denied" }, #{ on: ["unavailable"] }); } catch (e) { gave_up = e.kind; }
            log::info(`${caught} | ${v} | ${p} after ${polls} | ${gave_up}`);
            "#,
        )
        .args(["run", "p.rhai"])
        .code(0).run();
    assert!(r.stderr.contains("timeout: timed out after 50ms | 3 | ready after 4 | auth"), "{}", r.stderr);
}

/// Regression: resources closed at the end of the run (a background process here) were only in
/// the JSON `run_finished` event; the human summary must list them too.
#[test]
fn the_summary_lists_what_cleanup_closed() {
    let r = kmsctl()
        .file(
            "p.rhai",
            "import \"proc\" as proc;\nimport \"log\" as log;\nlet p = proc::start(\"sleep\", [\"30\"]);\nlog::step(\"work\", || log::info(`pid ${p.pid()}`));\n",
        )
        .args(["run", "p.rhai"])
        .code(0).run();
    let line =
        r.stderr.lines().find(|l| l.trim_start().starts_with("closed:")).unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(line.contains("process sleep 30 (pid "), "{line}");
}

/// Without a terminal (the tests' stdin is /dev/null and CI=true), `env::confirm` returns its
/// default at once and says so.
#[test]
fn confirm_without_a_terminal_returns_the_default() {
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "env" as env;
            import "log" as log;
            log::info(`terminal=${env::is_terminal()} yes=${env::confirm("Create the cluster?", #{ default_value: true })} no=${env::confirm("Delete it?")}`);
            // A map built elsewhere is checked when the call is made (a literal, before the run).
            let o = #{ "default": true };
            try { env::confirm("x", o); } catch (e) { log::info(e.message); }
            "#,
        )
        .args(["run", "p.rhai"])
        .code(0)
        .run();
    for want in [
        "Create the cluster? → yes (the default: no terminal to ask)",
        "Delete it? → no (the default: no terminal to ask)",
        "terminal=false yes=true no=false",
        "env::confirm: unknown option 'default' (did you mean 'default_value'?)",
    ] {
        assert!(r.stderr.contains(want), "{want:?} missing from\n{}", r.stderr);
    }
}
