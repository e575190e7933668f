//! A planted secret never leaves kmsctl (issue #12), end to end on the test cluster: a secret
//! holding a quote, a backslash and a newline goes into a Kubernetes Secret, a Helm release's
//! values (the chart renders it into a ConfigMap with `quote`) and the log, and is served back
//! in a pod's log. It must not appear, raw or in any form a tool quotes it in, in stdout,
//! stderr, JSON events, the plan and its rendered manifests, a diff, collected logs, a failure
//! report, the HTML report, or the command line of any process while the run is in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;

use crate::k8s::{CRASH_LOOP_STATUS, all_files, cri_log, finish, kwok, playbook, pod_stage};

const TOKEN: &str = "e2e-s3cr3t\"quoted\\slashed\nsecond-line-of-it";

const DEPLOY: &str = r#"
    fn params() {[
        #{ name: "token", secret: true, env: "DEMO_TOKEN", required: true },
        #{ name: "port", type: "int", default_value: 50001 },
        #{ name: "stage", default_value: "none" },
    ]}
    import "k8s" as k8s;
    import "helm" as helm;
    import "log" as log;
    import "data" as data;
    let kc = k8s::connect();
    let token = param::token;
    log::info(`deploying with ${token}`);
    log::info(data::to_json(#{ auth: token }));
    kc.secret("@NS@", "creds", #{ token: token });
    helm::upgrade(kc, "party", "@CHART@", #{ namespace: "@NS@", timeout: "60s", values: #{
        kmsPeers: #{ id: 1 },
        kmsCore: #{
            podLabels: #{ "testenv.kmsctl/stage": param::stage },
            thresholdMode: #{ peersList: [#{ id: 1, host: token, port: param::port }] },
        },
    }});
    kc.collect_logs(#{ namespace: "@NS@", dir: "pod-logs" });
"#;

/// Every form the secret could leak in: its two lines, its JSON/Go-escaped text, its base64.
fn leaks(text: &str) -> Vec<&'static str> {
    static FORMS: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
        let b64 = base64::engine::general_purpose::STANDARD.encode(TOKEN);
        vec!["e2e-s3cr3t", "second-line-of-it", "quoted\\\\slashed", Box::leak(b64.into_boxed_str())]
    });
    FORMS.iter().copied().filter(|f| text.contains(f)).collect()
}

#[track_caller]
fn check_clean(text: &str, what: &str) {
    let found = leaks(text);
    assert!(found.is_empty(), "the secret leaked into {what} (as {found:?}):\n{text}");
}

/// Every output of a finished run: stdout, stderr and every file of its directory (artifacts,
/// plan manifests, collected logs, failure reports, report.html).
#[track_caller]
fn check_run(r: &crate::harness::Run, what: &str) {
    check_clean(&r.stdout, &format!("{what}: stdout"));
    check_clean(&r.stderr, &format!("{what}: stderr"));
    for (p, text) in all_files(&r.path()) {
        check_clean(&text, &format!("{what}: {}", p.display()));
    }
}

/// Command lines seen in /proc while `running` is set, every 10 ms, that hold the secret.
fn watch_argv(running: Arc<AtomicBool>) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        let (mut scans, mut seen) = (0, Vec::new());
        while running.load(Ordering::Relaxed) {
            for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
                let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                if !leaks(&cmd).is_empty() || cmd.contains("s3cr3t") {
                    seen.push(cmd);
                }
            }
            scans += 1;
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        (scans, seen)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_secret_with_quotes_and_a_newline_never_leaves_kmsctl() {
    let env = crate::testenv::testenv!();
    let ns = env.namespace("planted").await;
    let chart = crate::testenv::chart("kms-core").display().to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("main.log");
    std::fs::write(&log, cri_log(&["boot", &format!("login with {TOKEN}"), "ready"])).expect("write");
    let (_, _logs) = kwok(
        &env,
        "ClusterLogs",
        "planted-logs",
        serde_json::json!({"selector": {"matchNamespaces": [ns.name]}, "logs": [{"containers": ["kms-core"], "logsFile": log}]}),
    )
    .await;
    let run = |extra: &[&str]| {
        let mut k = playbook(&env, DEPLOY, &[("NS", &ns.name), ("CHART", &chart)])
            .env("DEMO_TOKEN", TOKEN)
            .env("KMSCTL_HELM", &env.dir.join("bin/helm").display().to_string());
        for (key, v) in env.env_vars() {
            if key.starts_with("HELM_") {
                k = k.env(&key, &v.to_string_lossy());
            }
        }
        k.args(extra)
    };

    // The plan: the rendered release (its ConfigMap quotes the secret) and the Secret.
    let plan = finish(run(&["--plan"])).await;
    plan.code(0);
    let rendered: String = all_files(&plan.path()).into_iter().map(|(_, t)| t).collect();
    assert!(rendered.contains("address = \"***\""), "the rendered ConfigMap, masked:\n{rendered}");
    check_run(&plan, "--plan");

    // The deploy, with every process's command line read while it runs.
    let running = Arc::new(AtomicBool::new(true));
    let argv = watch_argv(running.clone());
    let deployed = finish(run(&[])).await;
    running.store(false, Ordering::Relaxed);
    let (scans, seen) = argv.join().expect("argv watcher");
    deployed.code(0);
    assert!(scans > 10, "the process table was read {scans} times during the run");
    assert!(seen.is_empty(), "the secret was on a command line: {seen:#?}");
    let collected = crate::k8s::artifact(&deployed.path(), "pod-logs/party-core-1.kms-core.log");
    assert!(collected.contains("login with ***"), "{collected}");
    assert!(deployed.stdout.contains("deploying with ***"), "{}", deployed.stdout);
    check_run(&deployed, "the deploy");

    // A diff of a change beside it (the peer's port in the same ConfigMap line block).
    let diff = finish(run(&["--diff", "--port", "50002"])).await;
    diff.code(5);
    assert!(diff.stdout.contains("50002"), "{}", diff.stdout);
    check_run(&diff, "--diff");

    // A failed upgrade: the pods crash-loop; the failure report quotes their log lines.
    let (stage, _crash) = pod_stage(&env, "planted-crash", 0, CRASH_LOOP_STATUS).await;
    let failed = finish(run(&["--stage", &stage])).await;
    failed.code(1);
    let reports: Vec<String> = all_files(&failed.path())
        .into_iter()
        .filter(|(p, _)| p.to_string_lossy().contains("failures"))
        .map(|(_, t)| t)
        .collect();
    assert!(reports.iter().any(|t| t.contains("login with ***")), "the report's log lines: {reports:#?}");
    check_run(&failed, "the failed upgrade");
}
