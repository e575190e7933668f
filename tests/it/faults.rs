//! Faults (issue #12), each on a private environment since it breaks the control plane: the
//! API server restarted, etcd paused, in the middle of a deploy's waits. The run must complete
//! as if nothing happened: its watches resume, nothing is installed twice.

use std::time::Duration;

use crate::k8s::{READY_STATUS, playbook, pod_stage};
use crate::testenv::{TestEnv, alive};

/// Four releases of the test chart at once, each waited for; their pods become Ready only
/// `@DELAY@` ms after they are created (a kwok stage), so the waits are still open when the
/// test breaks the control plane.
const DEPLOY: &str = r#"
    import "k8s" as k8s;
    import "helm" as helm;
    import "log" as log;
    let kc = k8s::connect();
    let rs = parallel_map([1, 2, 3, 4], |i| helm::upgrade(kc, `party-${i}`, "@CHART@", #{
        namespace: "@NS@",
        values: #{ kmsPeers: #{ id: i }, kmsCore: #{ podLabels: #{ "testenv.kmsctl/stage": "@STAGE@" } } },
        timeout: "3m",
    }));
    log::info(`revisions: ${rs.map(|r| r.revision)}`);
"#;

fn deploy(env: &TestEnv, ns: &str, stage: &str) -> crate::harness::Kmsctl {
    let chart = crate::testenv::chart("kms-core").display().to_string();
    let mut k = playbook(env, DEPLOY, &[("CHART", &chart), ("NS", ns), ("STAGE", stage)]);
    for (key, v) in env.env_vars() {
        if key.starts_with("HELM_") {
            k = k.env(&key, &v.to_string_lossy());
        }
    }
    k.env("KMSCTL_HELM", &env.dir.join("bin/helm").display().to_string())
}

/// Each release is deployed, and deployed once: a retried attempt after a failed one adds a
/// `failed` revision, never a second successful install.
async fn deployed_once_each(env: &TestEnv, ns: &str) {
    for i in 1..=4 {
        let out =
            crate::testenv::run(env.helm().args(["history", &format!("party-{i}"), "-n", ns, "-o", "json"])).await;
        let h: serde_json::Value = serde_json::from_str(&out).expect("history");
        let statuses: Vec<&str> = h.as_array().expect("history").iter().filter_map(|r| r["status"].as_str()).collect();
        assert_eq!(statuses.last(), Some(&"deployed"), "party-{i}: {statuses:?}");
        assert_eq!(
            statuses.iter().filter(|s| matches!(**s, "deployed" | "superseded")).count(),
            1,
            "party-{i}: {statuses:?}"
        );
    }
}

/// Kill kube-apiserver (a crash: its graceful shutdown waits out open watches) and start it
/// again with the same command line, environment and working directory (kwokctl's pid file
/// updated, so `testenv.sh down` stops the new one).
async fn restart_apiserver(env: &TestEnv) {
    use std::os::unix::process::CommandExt;
    let pid = env.component_pid("kube-apiserver");
    let proc = |f: &str| std::fs::read(format!("/proc/{pid}/{f}")).unwrap_or_else(|e| panic!("/proc/{pid}/{f}: {e}"));
    let split = |b: Vec<u8>| -> Vec<String> {
        b.split(|c| *c == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
    };
    let argv = split(proc("cmdline"));
    let environ: Vec<(String, String)> = split(proc("environ"))
        .into_iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.into(), v.into())))
        .collect();
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).expect("cwd");
    std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().expect("kill");
    // The thread-group leader is a zombie before its last thread has closed the sockets: wait
    // for the port itself.
    let port: u16 = env.api_server.rsplit(':').next().and_then(|p| p.trim_end_matches('/').parse().ok()).expect("port");
    crate::testenv::within(30, "kube-apiserver to stop and free its port", async {
        while alive(pid) || std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(env.dir.join("kwok/clusters/testenv/logs/kube-apiserver.log"))
        .expect("log");
    let mut child = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .envs(environ)
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("start kube-apiserver");
    std::fs::write(env.dir.join("kwok/clusters/testenv/pids/kube-apiserver.pid"), child.id().to_string())
        .expect("pid file");
    crate::testenv::within(60, "the restarted kube-apiserver to answer", async {
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(env.dir.join("kwok/clusters/testenv/logs/kube-apiserver.log"))
                    .unwrap_or_default();
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

/// The API server killed and restarted while four releases install and wait for their pods:
/// a helm upgrade cut off by it is tried again once the server answers (with a warning), the
/// waits resume on the new server, the run succeeds, and every release is deployed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_restart_in_the_middle_of_the_waits_is_ridden_out() {
    let Some((env, _private)) = TestEnv::private().await else { return };
    let ns = env.namespace("fault-apiserver").await;
    let (stage, _cleanup) = pod_stage(&env, "late-ready", 8000, READY_STATUS).await;
    let mut live = crate::k8s::Live::start(deploy(&env, &ns.name, &stage));
    live.progress("waiting").await;
    let t = std::time::Instant::now();
    restart_apiserver(&env).await;
    let ended = live.end().await;
    assert_eq!(ended.code, 0, "{}", ended.stderr);
    assert!(t.elapsed() > Duration::from_secs(1), "the restart happened during the waits");
    for e in ended.events.iter().filter(|e| e["event"] == "log" && e["level"] == "warn") {
        eprintln!("warning: {}", e["message"].as_str().unwrap_or_default());
    }

    deployed_once_each(&env, &ns.name).await;
}

/// etcd paused for five seconds (SIGSTOP) while the releases wait: the API server stalls, the
/// run does not fail, and it finishes once etcd answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_pause_in_the_middle_of_the_waits_is_ridden_out() {
    let Some((env, _private)) = TestEnv::private().await else { return };
    let ns = env.namespace("fault-etcd").await;
    let (stage, _cleanup) = pod_stage(&env, "late-ready", 3000, READY_STATUS).await;
    let mut live = crate::k8s::Live::start(deploy(&env, &ns.name, &stage));
    live.progress("waiting").await;
    let etcd = env.component_pid("etcd").to_string();
    std::process::Command::new("kill").args(["-STOP", &etcd]).status().expect("stop etcd");
    tokio::time::sleep(Duration::from_secs(5)).await;
    std::process::Command::new("kill").args(["-CONT", &etcd]).status().expect("continue etcd");
    let ended = live.end().await;
    assert_eq!(ended.code, 0, "{}", ended.stderr);
    deployed_once_each(&env, &ns.name).await;
}
