//! Faults (issue #12), each on a private environment since it breaks the control plane: the
//! API server restarted, etcd paused, in the middle of a deploy's waits. The run must complete
//! as if nothing happened: its watches resume, nothing is installed twice.

use std::path::Path;
use std::time::Duration;

use crate::k8s::{READY_STATUS, playbook, pod_stage};
use crate::testenv::{TestEnv, alive};

/// A release of the test chart per id in `@IDS@`, all at once, each waited for; their pods become Ready only
/// `@DELAY@` ms after they are created (a kwok stage), so the waits are still open when the
/// test breaks the control plane.
const DEPLOY: &str = r#"
    import "k8s" as k8s;
    import "helm" as helm;
    import "log" as log;
    let kc = k8s::connect();
    let rs = parallel_map(@IDS@, |i| helm::upgrade(kc, `party-${i}`, "@CHART@", #{
        namespace: "@NS@",
        values: #{ kmsPeers: #{ id: i }, kmsCore: #{ podLabels: #{ "testenv.kmsctl/stage": "@STAGE@" } } },
        timeout: "3m",
    }));
    log::info(`revisions: ${rs.map(|r| r.revision)}`);
"#;

fn deploy(env: &TestEnv, ns: &str, stage: &str, n: usize) -> crate::harness::Kmsctl {
    let chart = crate::testenv::chart("kms-core").display().to_string();
    let ids = format!("{:?}", (1..=n).collect::<Vec<_>>());
    let mut k = playbook(env, DEPLOY, &[("CHART", &chart), ("NS", ns), ("STAGE", stage), ("IDS", &ids)]);
    for (key, v) in env.env_vars() {
        if key.starts_with("HELM_") {
            k = k.env(&key, &v.to_string_lossy());
        }
    }
    k.env("KMSCTL_HELM", &env.dir.join("bin/helm").display().to_string())
}

/// Each release is deployed, and deployed once: a retried attempt after a failed one adds a
/// revision that failed (its description says so; helm marks it `superseded` once a later
/// upgrade succeeds), never a second successful install or upgrade.
async fn deployed_once_each(env: &TestEnv, ns: &str, n: usize) {
    for i in 1..=n {
        let out =
            crate::testenv::run(env.helm().args(["history", &format!("party-{i}"), "-n", ns, "-o", "json"])).await;
        let h: serde_json::Value = serde_json::from_str(&out).expect("history");
        let revisions: Vec<(&str, &str)> = h
            .as_array()
            .expect("history")
            .iter()
            .map(|r| (r["status"].as_str().unwrap_or_default(), r["description"].as_str().unwrap_or_default()))
            .collect();
        assert_eq!(revisions.last().map(|r| r.0), Some("deployed"), "party-{i}: {revisions:?}");
        let succeeded = revisions.iter().filter(|r| matches!(r.1, "Install complete" | "Upgrade complete")).count();
        assert_eq!(succeeded, 1, "party-{i}: {revisions:?}");
    }
}

/// A running process's command line, environment and working directory, from /proc.
struct Launch {
    argv: Vec<String>,
    environ: Vec<(String, String)>,
    cwd: std::path::PathBuf,
}

impl Launch {
    fn of(pid: u32) -> Launch {
        let proc =
            |f: &str| std::fs::read(format!("/proc/{pid}/{f}")).unwrap_or_else(|e| panic!("/proc/{pid}/{f}: {e}"));
        let split = |b: Vec<u8>| -> Vec<String> {
            b.split(|c| *c == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
        };
        let environ = split(proc("environ"))
            .into_iter()
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.into(), v.into())))
            .collect();
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).expect("cwd");
        Launch { argv: split(proc("cmdline")), environ, cwd }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.environ.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Start it again (in a process group of its own, as testenv.sh does), its output appended
    /// to `log`, its PID written to `pid_file`; `extra` variables override the environment.
    fn spawn(&self, log: &Path, pid_file: &Path, extra: &[(&str, &str)]) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        let log = std::fs::OpenOptions::new().append(true).open(log).expect("log");
        let child = std::process::Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .env_clear()
            .envs(self.environ.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().copied())
            .current_dir(&self.cwd)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.argv[0]));
        std::fs::write(pid_file, child.id().to_string()).expect("pid file");
        child
    }
}

/// SIGKILL `pid` (a crash) and wait until it is gone and its ports are free (the thread-group
/// leader is a zombie before its last thread has closed the sockets).
async fn crash(pid: u32, ports: &[u16]) {
    std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("kill");
    crate::testenv::within(30, "the killed process to free its ports", async {
        while alive(pid) || ports.iter().any(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_err()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// The port of an `http(s)://127.0.0.1:<port>` URL.
fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

/// Kill kube-apiserver (a crash: its graceful shutdown waits out open watches) and start it
/// again with the same command line, environment and working directory (kwokctl's pid file
/// updated, so `testenv.sh down` stops the new one).
async fn restart_apiserver(env: &TestEnv) {
    let pid = env.component_pid("kube-apiserver");
    let launch = Launch::of(pid);
    crash(pid, &[port_of(&env.api_server)]).await;
    let log_path = env.dir.join("kwok/clusters/testenv/logs/kube-apiserver.log");
    let mut child = launch.spawn(&log_path, &env.dir.join("kwok/clusters/testenv/pids/kube-apiserver.pid"), &[]);
    crate::testenv::within(60, "the restarted kube-apiserver to answer", async {
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let pid = format!(" {} ", child.id());
                let own: Vec<&str> = log.lines().filter(|l| l.contains(&pid) || !l.starts_with(['I', 'W'])).collect();
                panic!("the restarted kube-apiserver exited ({status}):\n{}", own.join("\n"));
            }
            if env.client.apiserver_version().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}

/// The API server killed and restarted twice during a 13-party deploy: while the releases
/// install, then once all 13 wait for their pods (Ready 20 s after they are created, so every
/// wait is open). A helm upgrade cut off by it is tried again once the server answers (with a warning), the
/// waits resume on the new server, the run succeeds, and every release is deployed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_restart_in_the_middle_of_the_waits_is_ridden_out() {
    let Some((env, _private)) = TestEnv::private().await else { return };
    let ns = env.namespace("fault-apiserver").await;
    let (stage, _cleanup) = pod_stage(&env, "late-ready", 20000, READY_STATUS).await;
    let mut live = crate::k8s::Live::start(deploy(&env, &ns.name, &stage, 13));
    // Once when the first wait opens while the others still install, then once every party's
    // wait is open (each has reported its StatefulSet pending).
    let waiting = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let pending = regex::Regex::new(r"StatefulSet [^/ ]+/(party-\d+)-core \(").expect("regex");
    let open_waits = |e: &serde_json::Value| {
        let message = e["message"].as_str().unwrap_or_default();
        let mut w = waiting.lock().expect("lock");
        if e["event"] == "progress" && message.contains("waiting for") {
            w.extend(pending.captures_iter(message).map(|c| c[1].to_string()));
        }
        w.len()
    };
    live.until("the first wait", |e| open_waits(e) > 0).await;
    let t = std::time::Instant::now();
    restart_apiserver(&env).await;
    live.until("all 13 waits open", |e| open_waits(e) == 13).await;
    restart_apiserver(&env).await;
    let ended = live.end().await;
    assert_eq!(ended.code, 0, "{}", ended.stderr);
    assert!(t.elapsed() > Duration::from_secs(1), "the restart happened during the waits");
    for e in ended.events.iter().filter(|e| e["event"] == "log" && e["level"] == "warn") {
        eprintln!("warning: {}", e["message"].as_str().unwrap_or_default());
    }

    deployed_once_each(&env, &ns.name, 13).await;
}

/// etcd paused for five seconds (SIGSTOP) while the releases wait: the API server stalls, the
/// run does not fail, and it finishes once etcd answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_pause_in_the_middle_of_the_waits_is_ridden_out() {
    let Some((env, _private)) = TestEnv::private().await else { return };
    let ns = env.namespace("fault-etcd").await;
    let (stage, _cleanup) = pod_stage(&env, "late-ready", 3000, READY_STATUS).await;
    let mut live = crate::k8s::Live::start(deploy(&env, &ns.name, &stage, 4));
    live.progress("waiting").await;
    let etcd = env.component_pid("etcd").to_string();
    std::process::Command::new("kill").args(["-STOP", &etcd]).status().expect("stop etcd");
    tokio::time::sleep(Duration::from_secs(5)).await;
    std::process::Command::new("kill").args(["-CONT", &etcd]).status().expect("continue etcd");
    let ended = live.end().await;
    assert_eq!(ended.code, 0, "{}", ended.stderr);
    deployed_once_each(&env, &ns.name, 4).await;
}

/// moto (the environment's AWS) crashes while a playbook waits for an EKS cluster to be ACTIVE,
/// and comes back: the polls that cannot connect are retried (with progress saying so), the
/// cluster then reports CREATING (the restarted fake creates it — moto keeps no state across a
/// restart, real AWS would — and answers CREATING for 3 s from the first poll), then ACTIVE, and
/// the run succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_restarted_during_eks_wait_active_is_ridden_out() {
    let Some((env, _private)) = TestEnv::private().await else { return };
    let name = crate::testenv::unique("eks-restart");
    let pid_file = env.dir.join("aws_fake.pid");
    let pid: u32 = std::fs::read_to_string(&pid_file).expect("aws_fake.pid").trim().parse().expect("pid");
    let launch = Launch::of(pid);
    let webhook: u16 = launch.var("WEBHOOK_PORT").and_then(|p| p.parse().ok()).expect("WEBHOOK_PORT");
    crash(pid, &[port_of(&env.aws_endpoint), webhook]).await;

    let script = r#"
        import "aws" as aws;
        import "log" as log;
        let c = aws::eks_wait_active("@NAME@", #{ timeout: "2m", interval: "1s" });
        log::info(`cluster: ${c.status}`);
    "#;
    let mut k = playbook(&env, script, &[("NAME", &name)]);
    for (key, v) in env.env_vars() {
        if key.starts_with("AWS_") {
            k = k.env(&key, &v.to_string_lossy());
        }
    }
    let mut live = crate::k8s::Live::start(k);
    live.progress("could not poll").await;

    let log = env.dir.join("aws_fake.log");
    let extra = [("TESTENV_EKS_CLUSTERS", name.as_str()), ("TESTENV_EKS_CREATING_SECONDS", "3")];
    // It outlives the test: the environment's `down` stops it by its pid file.
    #[expect(clippy::zombie_processes, reason = "testenv.sh down stops and reaps it")]
    let mut child = launch.spawn(&log, &pid_file, &extra);
    crate::testenv::within(60, "the restarted moto to create the cluster", async {
        let created = format!("eks cluster {name} created");
        while !std::fs::read_to_string(&log).unwrap_or_default().contains(&created) {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the restarted aws_fake.py exited ({status}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    live.progress("CREATING").await;
    assert_eq!(live.log("cluster: ").await, "ACTIVE");
    let ended = live.end().await;
    assert_eq!(ended.code, 0, "{}", ended.stderr);
}
