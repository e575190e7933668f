//! `proc`: real programs, real process groups, checked by PID.

use crate::harness::kmsctl;
use std::path::Path;
use std::time::{Duration, Instant};

/// Gone, or a zombie nobody reaps (orphans of a dead parent on machines whose init does not).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn assert_gone(pids: &[u32]) {
    let start = Instant::now();
    while !pids.iter().all(|p| gone(*p)) {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "still running: {:?}",
            pids.iter().filter(|p| !gone(**p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_pid(dir: &Path, file: &str) -> u32 {
    let text = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    text.trim().parse().unwrap_or_else(|e| panic!("{file}: {text:?}: {e}"))
}

fn wait_for_files(dir: &Path, files: &[&str]) {
    let start = Instant::now();
    while !files.iter().all(|f| dir.join(f).exists()) {
        assert!(start.elapsed() < Duration::from_secs(20), "the playbook did not write {files:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The writer may not have finished the line yet.
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn run_captures_output_and_exit_codes_without_a_shell() {
    let r = kmsctl()
        .file("sub/keep", "")
        .file(
            "p.rhai",
            r#"
            import "proc" as proc;
            import "fs" as fs;
            import "data" as data;
            let failing = proc::run("sh", ["-c", "echo out; echo err >&2; exit 3"]);
            let literal = proc::run("printf", ["%s|", "a b", "$HOME", "*", "; rm -rf x", 42]);
            let env = proc::run("env", [], #{ env: #{ FOO: "bar", N: 7 }, env_clear: true });
            let removed = proc::run("sh", ["-c", "echo \"[$HOME]\""], #{ env: #{ HOME: () } });
            let cwd = proc::run("sh", ["-c", "pwd"], #{ cwd: "sub" });
            let stdin = proc::run("cat", [], #{ stdin: "from stdin" });
            let checked = "";
            try { proc::check("sh", ["-c", "echo first >&2; echo boom >&2; exit 2"]); } catch (e) { checked = e; }
            let missing = "";
            try { proc::run("kmsctl-no-such-tool", []); } catch (e) { missing = e; }
            let opt = "";
            let typo = #{ timout: "1s" }; // a literal with it is refused before the run
            try { proc::run("true", [], typo); } catch (e) { opt = e.message; }
            fs::write("out.json", data::to_json(#{
                failing: failing, literal: literal.stdout, env: env.stdout, removed: removed.stdout,
                cwd: cwd.stdout, stdin: stdin.stdout, checked: checked, missing: missing, opt: opt,
                which: proc::which("sh"), which_missing: proc::which("kmsctl-no-such-tool"),
            }));
            "#,
        )
        .args(["run", "p.rhai"])
        .code(0)
        .run();
    let out: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.path().join("out.json")).unwrap()).unwrap();
    let f = &out["failing"];
    assert_eq!((f["code"].as_i64(), f["ok"].as_bool()), (Some(3), Some(false)));
    assert_eq!((f["stdout"].as_str(), f["stderr"].as_str()), (Some("out\n"), Some("err\n")));
    assert!(f["pid"].as_i64().unwrap() > 0 && f["duration_ms"].as_i64().is_some() && f["signal"].is_null(), "{f}");
    assert_eq!(f["command"], "sh -c 'echo out; echo err >&2; exit 3'");
    assert_eq!(out["literal"], "a b|$HOME|*|; rm -rf x|42|", "arguments reach the program untouched");
    assert_eq!(out["env"], "FOO=bar\nN=7\n");
    assert_eq!(out["removed"], "[]\n");
    assert!(out["cwd"].as_str().unwrap().trim_end().ends_with("/sub"), "{}", out["cwd"]);
    assert_eq!(out["stdin"], "from stdin");
    assert_eq!(out["checked"]["kind"], "failed");
    assert_eq!(out["checked"]["code"], 2);
    assert!(
        out["checked"]["message"].as_str().unwrap().ends_with("exited with code 2:\nfirst\nboom"),
        "{}",
        out["checked"]
    );
    assert_eq!(out["missing"]["kind"], "unavailable");
    assert_eq!(out["missing"]["message"], "program 'kmsctl-no-such-tool' not found on PATH");
    assert!(out["missing"]["hint"].as_str().unwrap().contains("PATH"));
    assert!(
        out["opt"].as_str().unwrap().contains("unknown option 'timout' (did you mean 'timeout'?)"),
        "{}",
        out["opt"]
    );
    assert!(out["which"].as_str().unwrap().ends_with("/sh"));
    assert!(out["which_missing"].is_null());
}

#[test]
fn output_lines_go_to_the_debug_log() {
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "proc" as proc;
            proc::run("sh", ["-c", "echo to-stdout; echo to-stderr >&2"]);
            proc::run("sh", ["-c", "echo shown"], #{ log: "info" });
            proc::run("sh", ["-c", "echo hidden"], #{ log: "none" });
            "#,
        )
        .args(["run", "p.rhai", "--output", "json"])
        .code(0)
        .run();
    let logs: Vec<(String, String)> = r
        .events()
        .iter()
        .filter(|e| e["event"] == "log")
        .map(|e| (e["level"].as_str().unwrap().to_string(), e["message"].as_str().unwrap().to_string()))
        .collect();
    let has = |lvl: &str, msg: &str| logs.contains(&(lvl.to_string(), msg.to_string()));
    assert!(has("debug", "sh: to-stdout") && has("debug", "sh: to-stderr") && has("info", "sh: shown"), "{logs:?}");
    assert!(!logs.iter().any(|(_, m)| m.contains("hidden")), "{logs:?}");
}

#[test]
fn a_timeout_stops_the_whole_process_group() {
    let start = Instant::now();
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "proc" as proc;
            import "log" as log;
            try {
                proc::run("sh", ["-c", "sleep 1000 & echo $! > grandchild.txt; echo $$ > child.txt; echo waiting; wait"], #{ timeout: "500ms" });
            } catch (e) {
                log::info(`${e.kind}: ${e.message}`);
            }
            "#,
        )
        .args(["run", "p.rhai"])
        .code(0).run();
    assert!(
        r.stderr.contains("timeout: `sh -c") && r.stderr.contains("timed out after 500ms and was stopped: waiting"),
        "{}",
        r.stderr
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_gone(&[read_pid(&r.path(), "child.txt"), read_pid(&r.path(), "grandchild.txt")]);
}

const SECRET: &str = "planted-proc-s3cr3t";

/// Secrets reach a child through its environment or stdin: never argv, never output.
#[test]
fn secrets_go_through_env_or_stdin_never_argv() {
    let run = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "proc" as proc;
            import "env" as env;
            import "fs" as fs;
            import "log" as log;
            let tok = env::secret("TOK");
            let p = proc::start("sleep", ["30"], #{ env: #{ TOK: tok } });
            fs::write("pid.txt", `${p.pid()}`);
            proc::run("sh", ["-c", "while [ ! -f go ]; do sleep 0.05; done"]);
            let echoed = proc::run("sh", ["-c", "echo \"token is $TOK\"; echo \"err $TOK\" >&2"], #{ env: #{ TOK: tok } });
            let o = echoed.stdout;
            let e = echoed.stderr;
            o.trim();
            e.trim();
            log::info(`${o} / ${e}`);
            log::info(`piped: ${proc::run("cat", [], #{ stdin: tok }).stdout}`);
            try { proc::run("echo", ["--password", tok]); } catch (e) { log::info(e.message); }
            try { proc::run("echo", ["--password=" + tok]); } catch (e) { log::info(e.message); }
            try { proc::check("sh", ["-c", "echo \"bad $TOK\" >&2; exit 1"], #{ env: #{ TOK: tok } }); } catch (e) { log::info(e.message); }
            let minted = proc::run("printf", ["minted-token-value"], #{ secret_stdout: true });
            log::info(`minted ${minted.stdout} ${type_of(minted.stdout)}`);
            log::info(`stopped with ${p.stop()}`);
            "#,
        )
        .env("TOK", SECRET)
        .args(["run", "p.rhai", "--output", "json"])
        .spawn();
    let dir = run.path().to_path_buf();
    wait_for_files(&dir, &["pid.txt"]);
    let pid = read_pid(&dir, "pid.txt");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline, b"sleep\x0030\x00");
    let environ = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).unwrap()).into_owned();
    assert!(environ.split('\0').any(|kv| kv == format!("TOK={SECRET}")), "the secret reaches the child's environment");
    std::fs::write(dir.join("go"), "").unwrap();
    let out = run.child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for text in [&stdout, &stderr] {
        assert!(!text.contains(SECRET) && !text.contains("minted-token-value"), "a secret leaked:\n{text}");
    }
    for want in [
        "token is *** / err ***",
        "piped: ***",
        "proc::run: argument 2 is a secret; secrets must not go on a command line",
        "exited with code 1: bad ***",
        "minted *** Secret",
        "stopped with 143",
    ] {
        assert!(stdout.contains(want), "{want:?} missing from\n{stdout}");
    }
    assert!(
        stdout.matches("argument 2 is a secret").count() == 1 && stdout.contains("argument 1 is a secret"),
        "{stdout}"
    );
    assert_gone(&[pid]);
}

#[test]
fn a_background_process_and_its_children_stop_when_the_run_ends() {
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "proc" as proc;
            import "log" as log;
            let p = proc::start("sh", ["-c", "sleep 1000 & echo $! > grandchild.txt; echo $$ > child.txt; echo ready; wait"], #{ ready: "ready" });
            let out = p.output();
            log::info(`running=${p.running()} out=${out.stdout} code=${type_of(out.code)}`);
            "#,
        )
        .args(["run", "p.rhai"])
        .code(0).run();
    assert!(r.stderr.contains("running=true out=ready\n code=()"), "{}", r.stderr);
    assert_gone(&[read_pid(&r.path(), "child.txt"), read_pid(&r.path(), "grandchild.txt")]);
}

#[test]
fn ready_waits_for_a_line_and_fails_clearly_otherwise() {
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "proc" as proc;
            import "log" as log;
            let p = proc::start("sh", ["-c", "sleep 0.3; echo 'server listening on :8080' >&2; sleep 30"], #{ ready_regex: "listening on :\\d+" });
            log::info(`ready: ${p.output().stderr}`);
            try { p.wait("100ms"); } catch (e) { log::info(`wait: ${e.kind} ${e.message}`); }
            log::info(`stop: ${p.stop()} running=${p.running()} ${p}`);
            let done = proc::start("sh", ["-c", "exit 5"]);
            log::info(`exit: ${done.wait()}`);
            try { proc::start("sh", ["-c", "echo 'fatal: no config' >&2; exit 1"], #{ ready: "listening" }); } catch (e) { log::info(`early: ${e.kind} ${e.message}`); }
            try { proc::start("sh", ["-c", "sleep 30"], #{ ready: "listening", ready_timeout: "200ms" }); } catch (e) { log::info(`silent: ${e.kind} ${e.message}`); }
            "#,
        )
        .args(["run", "p.rhai"])
        .code(0).run();
    let s = &r.stderr;
    assert!(s.contains(": server listening on :8080"), "{s}");
    assert!(s.contains("wait: timeout `sh -c 'sleep 0.3;"), "{s}");
    assert!(s.contains("was still running after 100ms"), "{s}");
    assert!(s.contains("stop: 143 running=false process `sh -c"), "{s}");
    assert!(s.contains("exited with code 143)"), "{s}");
    assert!(s.contains("exit: 5"), "{s}");
    assert!(s.contains("early: failed `sh -c") && s.contains("exited with code 1: fatal: no config"), "{s}");
    assert!(
        s.contains(
            "silent: timeout `sh -c 'sleep 30'` was not ready after 200ms (waiting for a line matching 'listening')"
        ),
        "{s}"
    );
}

/// The mission's bar: Ctrl-C → exit 130 within 2 s, child processes stopped. Both children
/// here ignore SIGTERM (and so do their own children), so the SIGKILL path is exercised too.
#[test]
fn ctrl_c_stops_foreground_and_background_processes_and_exits_130() {
    let mut run = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "proc" as proc;
            import "log" as log;
            let bg = proc::start("sh", ["-c", "trap '' TERM; sleep 1000 & echo $! > bg-grandchild.txt; echo $$ > bg.txt; echo ready; while :; do sleep 0.1; done"], #{ ready: "ready" });
            log::step("deploy", || {
                proc::run("sh", ["-c", "trap '' TERM; sleep 1000 & echo $! > fg-grandchild.txt; echo $$ > fg.txt; while :; do sleep 0.1; done"]);
            });
            "#,
        )
        .args(["run", "p.rhai", "--output", "json"])
        .spawn();
    let dir = run.path().to_path_buf();
    wait_for_files(&dir, &["bg.txt", "bg-grandchild.txt", "fg.txt", "fg-grandchild.txt"]);
    let pids: Vec<u32> =
        ["bg.txt", "bg-grandchild.txt", "fg.txt", "fg-grandchild.txt"].iter().map(|f| read_pid(&dir, f)).collect();
    assert!(!pids.iter().any(|p| gone(*p)), "all running before Ctrl-C");
    let start = Instant::now();
    run.signal("INT");
    let status = loop {
        if let Some(s) = run.child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "kmsctl did not stop after SIGINT");
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = start.elapsed();
    assert_eq!(status.code(), Some(130));
    assert!(took < Duration::from_secs(2), "exit took {took:?}");
    assert_gone(&pids);
}

/// The session a process leads or belongs to (`/proc/<pid>/stat` field 6).
fn session(pid: u32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = stat.rsplit_once(')').expect("stat line").1;
    rest.split_whitespace().nth(3).expect("session field").parse().expect("a number")
}

/// The kind CI lifecycle: one run starts a deploy detached and returns once it is ready; the
/// process outlives that run (its own session, no cleanup); a later run finds it by pid and
/// command line, and stops its whole process group.
#[test]
fn a_detached_process_outlives_its_run_and_a_later_run_stops_it() {
    const MARKER: &str = "kmsctl-detach-test-deploy";
    let first = kmsctl()
        .file(
            "p.rhai",
            &r#"
            import "proc" as proc;
            import "fs" as fs;
            import "log" as log;
            let p = proc::start("sh", ["-c", ": @MARKER@; echo starting; sleep 60 & echo $! > child.txt; sleep 0.2; echo 'deploy ready' >&2; wait"],
                #{ detach: true, ready: "deploy ready", ready_timeout: "20s" });
            fs::write("pid.txt", `${p.pid()}`);
            fs::write("log.txt", p.log_file());
            log::info(`running=${p.running()} output=${p.output().stdout.split("\n")}`);
            "#
            .replace("@MARKER@", MARKER),
        )
        .args(["run", "p.rhai", "--artifacts", "art"])
        .code(0)
        .run();
    let dir = first.path();
    let (pid, child) = (read_pid(&dir, "pid.txt"), read_pid(&dir, "child.txt"));
    // Stopped in any case, whatever fails below.
    struct Reap(u32);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{}", self.0)]).status();
        }
    }
    let _reap = Reap(pid);
    assert!(!gone(pid) && !gone(child), "the detached process runs on after its run ended:\n{}", first.stderr);
    assert_eq!(session(pid), pid as i32, "it leads a session of its own");
    assert!(first.stderr.contains(r#"running=true output=["starting", "deploy ready", ""]"#), "{}", first.stderr);
    let log = std::fs::read_to_string(dir.join("log.txt")).unwrap();
    assert!(log.starts_with(&format!("{}/art/processes/sh-", dir.display())) && log.ends_with(".log"), "{log}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "starting\ndeploy ready\n");
    assert!(first.stderr.contains(&format!("detached (pid {pid}; output in {log})")), "{}", first.stderr);

    let second = kmsctl()
        .file(
            "p.rhai",
            &r#"
            import "proc" as proc;
            import "log" as log;
            let ours = #{ command_contains: "@MARKER@" };
            log::info(`before=${proc::is_running(@PID@, ours)} other=${proc::is_running(@PID@, #{ command_contains: "kms-other" })}`);
            log::info(`stopped=${proc::stop_pid(@PID@, #{ command_contains: "@MARKER@", grace: "2s" })}`);
            log::info(`after=${proc::is_running(@PID@, ours)} again=${proc::stop_pid(@PID@, ours)}`);
            "#
            .replace("@MARKER@", MARKER)
            .replace("@PID@", &pid.to_string()),
        )
        .args(["run", "p.rhai"])
        .code(0)
        .run();
    for want in ["before=true other=false", "stopped=true", "after=false again=false"] {
        assert!(second.stderr.contains(want), "{want:?} missing from\n{}", second.stderr);
    }
    assert_gone(&[pid, child]);
}

/// A pid whose command line does not match, or that leads no group of its own, is refused and
/// nothing is signalled: the process would note a SIGTERM in a file.
#[test]
fn stop_pid_refuses_a_pid_that_is_not_the_process_asked_for() {
    use std::os::unix::process::CommandExt as _;
    let dir = tempfile::tempdir().unwrap();
    let mut other = std::process::Command::new("sh")
        .args(["-c", "trap 'echo TERM >> got' TERM; sleep 60 & echo $! > inner; while :; do sleep 0.1; done"])
        .current_dir(dir.path())
        .process_group(0)
        .spawn()
        .expect("spawn");
    wait_for_files(dir.path(), &["inner"]);
    let (pid, inner) = (other.id(), read_pid(dir.path(), "inner"));
    let r = kmsctl()
        .file(
            "p.rhai",
            &r#"
            import "proc" as proc;
            import "log" as log;
            try { proc::stop_pid(@PID@, #{ command_contains: "kms-deploy" }); } catch (e) { log::info(`mismatch: ${e.kind} ${e.message}`); }
            try { proc::stop_pid(@INNER@, #{ command_contains: "sleep 60" }); } catch (e) { log::info(`member: ${e.kind} ${e.message}`); }
            try { proc::stop_pid(@PID@, #{}); } catch (e) { log::info(`unguarded: ${e.kind} ${e.message}`); }
            try { proc::stop_pid(1, #{ command_contains: "init" }); } catch (e) { log::info(`init: ${e.kind} ${e.message}`); }
            log::info(`running=${proc::is_running(@PID@, #{ command_contains: "kms-deploy" })} alive=${proc::is_running(@PID@)}`);
            "#
            .replace("@PID@", &pid.to_string())
            .replace("@INNER@", &inner.to_string()),
        )
        .args(["run", "p.rhai"])
        .code(0)
        .run();
    let s = &r.stderr;
    let quoted = "sh -c trap 'echo TERM >> got' TERM; sleep 60 & echo $! > inner; while :; do sleep 0.1; done";
    for want in [
        format!("mismatch: conflict pid {pid} runs `{quoted}`, whose command line does not contain 'kms-deploy'"),
        format!("member: conflict pid {inner} does not lead its own process group (it is in group {pid})"),
        "unguarded: usage proc::stop_pid: give command_contains".to_string(),
        "init: usage proc::stop_pid: 1 is not the pid of a process kmsctl could have started".to_string(),
        "running=false alive=true".to_string(),
    ] {
        assert!(s.contains(&want), "{want:?} missing from\n{s}");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(!dir.path().join("got").exists(), "a refused stop must signal nothing");
    assert!(!gone(pid) && !gone(inner));
    let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
    let _ = other.wait();
}

/// Regression: cleanup hooks ran one after another, each child given 200 ms after SIGTERM,
/// so a dozen children that ignore SIGTERM took kmsctl past its two seconds after Ctrl-C.
#[test]
fn ctrl_c_with_many_stubborn_children_still_exits_130_within_2s() {
    const N: usize = 12;
    let mut run = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "proc" as proc;
            import "log" as log;
            import "wait" as wait;
            for i in 0..12 {
                proc::start("sh", ["-c", `trap '' TERM; echo $$ > child-${i}.txt; echo ready; while :; do sleep 0.1; done`], #{ ready: "ready" });
            }
            log::step("deploy", || wait::sleep("120s"));
            "#,
        )
        .args(["run", "p.rhai", "--output", "json"])
        .spawn();
    let dir = run.path().to_path_buf();
    let files: Vec<String> = (0..N).map(|i| format!("child-{i}.txt")).collect();
    wait_for_files(&dir, &files.iter().map(String::as_str).collect::<Vec<_>>());
    let pids: Vec<u32> = files.iter().map(|f| read_pid(&dir, f)).collect();
    let _rest = run.wait_for_stdout("step_started");
    let start = Instant::now();
    run.signal("INT");
    let status = loop {
        if let Some(s) = run.child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "kmsctl did not stop after SIGINT");
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = start.elapsed();
    assert_eq!(status.code(), Some(130));
    assert!(took < Duration::from_secs(2), "exit took {took:?}");
    assert_gone(&pids);
}

/// `--timeout` ends the process within 2 s of the deadline, like Ctrl-C (it gave a script that
/// would not wind down 5 s), a child that ignores SIGTERM with a long grace killed.
#[test]
fn the_run_deadline_ends_the_process_within_2s_like_ctrl_c() {
    let start = Instant::now();
    let mut run = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "proc" as proc;
            proc::run("sh", ["-c", "trap '' TERM; echo $$ > child.txt; while :; do sleep 0.1; done"], #{ grace: "30s" });
            "#,
        )
        .args(["run", "p.rhai", "--timeout", "1s"])
        .spawn();
    let dir = run.path().to_path_buf();
    wait_for_files(&dir, &["child.txt"]);
    let pid = read_pid(&dir, "child.txt");
    let status = loop {
        if let Some(s) = run.child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "kmsctl did not stop at its deadline");
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = start.elapsed();
    assert_eq!(status.code(), Some(3));
    assert!(took < Duration::from_millis(3500), "exit took {took:?} (start, the 1 s deadline, at most 2 s to stop)");
    assert_gone(&[pid]);
}
