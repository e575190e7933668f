//! Pods without containers: logs (kwok's ClusterLogs serves files the test writes), collect_logs
//! to files, events of an object, exec (kwok's ClusterExec runs the command on this machine, in
//! a directory of the test's), and the context guard.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::{Value, json};

use super::{Cleanup, all_files, artifact, cri_log, error_of, finish, kwok, logged, playbook};
use crate::testenv::{TestEnv, testenv};

const STATEFULSET: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: app}
spec:
  replicas: 2
  serviceName: app
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      containers:
      - {name: main, image: kms-core:test}
      - {name: sidecar, image: envoy:test}
"#;

/// A StatefulSet `app` of two pods with containers `main` and `sidecar`, whose logs kwok reads
/// from files the test wrote, and whose exec runs commands in `dir` on this machine (with
/// `KWOK_EXEC=yes`). Keep the result until the test ends.
async fn pods_with_logs_and_exec(env: &TestEnv, ns: &str) -> (tempfile::TempDir, Cleanup, Cleanup) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    };
    let main_log = file("main.log", cri_log(&["boot", "listening on :50100", "ready"]));
    let main_prev = file("main.previous.log", cri_log(&["boot", "panic: out of memory"]));
    let sidecar_log = file("sidecar.log", cri_log(&["envoy up"]));
    file("input.txt", "from the pod's filesystem\n".into());
    let (_, logs) = kwok(
        env,
        "ClusterLogs",
        "pods-logs",
        json!({"selector": {"matchNamespaces": [ns]}, "logs": [
            {"containers": ["main"], "logsFile": main_log, "previousLogsFile": main_prev},
            {"containers": ["sidecar"], "logsFile": sidecar_log},
        ]}),
    )
    .await;
    let (_, exec) = kwok(
        env,
        "ClusterExec",
        "pods-exec",
        json!({"selector": {"matchNamespaces": [ns]}, "execs": [
            {"local": {"workDir": dir.path(), "envs": [{"name": "KWOK_EXEC", "value": "yes"}]}},
        ]}),
    )
    .await;
    (dir, logs, exec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_collect_logs_events_and_exec() {
    let env = testenv!();
    let ns = env.namespace("pods").await;
    let _kwok = pods_with_logs_and_exec(&env, &ns.name).await;

    let r = finish(
        playbook(
            &env,
            r#"
            import "k8s" as k8s;
            import "log" as log;
            import "data" as data;
            let kc = k8s::connect();
            let ns = "@NS@";
            kc.wait(kc.apply_file("sts.yaml", #{ namespace: ns }));
            log::info(`main: ${data::to_json(kc.logs("app-0", #{ namespace: ns, container: "main" }))}`);
            log::info(`tail: ${data::to_json(kc.logs("app-0", #{ namespace: ns, container: "main", tail: 1 }))}`);
            log::info(`previous: ${data::to_json(kc.logs("app-0", #{ namespace: ns, container: "main", previous: true }))}`);
            let files = kc.collect_logs(#{ namespace: ns, selector: "app=app", dir: "pod-logs", previous: true });
            log::info(`files: ${data::to_json(files.map(|f| #{ pod: f.pod, container: f.container, previous: f.previous, error: f.error }))}`);
            let evs = kc.events("Pod", "app-0", #{ namespace: ns });
            log::info(`pod events: ${evs.map(|e| e.reason)}`);
            log::info(`sts events: ${kc.events("StatefulSet", "app", #{ namespace: ns }).map(|e| e.message)}`);
            let out = kc.exec("app-0", ["sh", "-c", "cat input.txt; echo \"env $KWOK_EXEC\"; read -r l; echo \"stdin $l\"; echo oops >&2"],
                #{ namespace: ns, container: "main", stdin: "typed in\n" });
            log::info(`exec: ${data::to_json(out)}`);
            let bad = kc.exec("app-1", ["sh", "-c", "exit 3"], #{ namespace: ns, container: "sidecar" });
            log::info(`exit: ${bad.code != 0}`);
            "#,
            &[("NS", &ns.name)],
        )
        .file("sts.yaml", STATEFULSET),
    )
    .await;
    r.code(0);
    let ev = r.events();
    let json_of = |prefix: &str| -> Value { serde_json::from_str(&logged(&ev, prefix)).expect("json") };
    assert_eq!(json_of("main: "), "boot\nlistening on :50100\nready\n");
    assert_eq!(json_of("tail: "), "ready\n");
    assert_eq!(json_of("previous: "), "boot\npanic: out of memory\n");

    // Every container of both pods, and the previous main container; a sidecar without a
    // previous log gets a file saying why.
    let files = json_of("files: ");
    let mut got: Vec<(String, String, bool, bool)> = files
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            (
                f["pod"].as_str().unwrap().to_string(),
                f["container"].as_str().unwrap().to_string(),
                f["previous"].as_bool().unwrap(),
                f["error"].is_string(),
            )
        })
        .collect();
    got.sort();
    let want: Vec<(String, String, bool, bool)> = ["app-0", "app-1"]
        .iter()
        .flat_map(|p| {
            [("main", false, false), ("main", true, false), ("sidecar", false, false), ("sidecar", true, true)]
                .map(|(c, prev, err)| (p.to_string(), c.to_string(), prev, err))
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(artifact(&r.path(), "pod-logs/app-1.main.log"), "boot\nlistening on :50100\nready\n");
    assert_eq!(artifact(&r.path(), "pod-logs/app-0.main.previous.log"), "boot\npanic: out of memory\n");
    assert_eq!(artifact(&r.path(), "pod-logs/app-0.sidecar.log"), "envoy up\n");
    assert!(artifact(&r.path(), "pod-logs/app-0.sidecar.previous.log").starts_with("# logs unavailable: "));
    assert_eq!(all_files(&r.path().join("art/pod-logs")).len(), 8);

    assert!(logged(&ev, "pod events: ").contains("\"Scheduled\""), "{}", logged(&ev, "pod events: "));
    let sts_events = logged(&ev, "sts events: ");
    assert!(sts_events.contains("Create Pod app-0 in StatefulSet app successful"), "{sts_events}");

    // (kwok never closes the command's stdin, so the command reads a line rather than to EOF.)
    assert_eq!(
        json_of("exec: "),
        json!({"code": 0, "stdout": "from the pod's filesystem\nenv yes\nstdin typed in\n", "stderr": "oops\n"})
    );
    // kwok reports a failed command without its exit code, so only "non-zero" is certain here.
    assert_eq!(logged(&ev, "exit: "), "true");
}

/// Regression: logs and exec without a container passed none to the API server, which refuses
/// that for a pod with several containers ("a container name must be specified"), although
/// the docs promised a default. They now use the pod's default container, as kubectl does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_exec_without_a_container_use_the_pods_default_container() {
    let env = testenv!();
    let ns = env.namespace("pods-default").await;
    let _kwok = pods_with_logs_and_exec(&env, &ns.name).await;
    let r = finish(
        playbook(
            &env,
            r#"
            import "k8s" as k8s;
            import "log" as log;
            import "data" as data;
            let kc = k8s::connect();
            let ns = "@NS@";
            kc.wait(kc.apply_file("sts.yaml", #{ namespace: ns }));
            log::info(`first: ${data::to_json(kc.logs("app-0", #{ namespace: ns }))}`);
            kc.patch("Pod", "app-1", #{ metadata: #{ annotations: #{ "kubectl.kubernetes.io/default-container": "sidecar" } } },
                #{ namespace: ns });
            log::info(`annotated: ${data::to_json(kc.logs("app-1", #{ namespace: ns }))}`);
            log::info(`exec: ${kc.exec("app-0", ["sh", "-c", "echo $KWOK_EXEC"], #{ namespace: ns }).stdout}`);
            "#,
            &[("NS", &ns.name)],
        )
        .file("sts.yaml", STATEFULSET),
    )
    .await;
    r.code(0);
    let ev = r.events();
    assert_eq!(logged(&ev, "first: "), r#""boot\nlistening on :50100\nready\n""#);
    assert_eq!(logged(&ev, "annotated: "), r#""envoy up\n""#);
    assert_eq!(logged(&ev, "exec: "), "yes\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_context_refuses_other_clusters() {
    let env = testenv!();
    let ns = env.namespace("guard").await;
    let script = r#"
        import "k8s" as k8s;
        import "log" as log;
        let kc = k8s::connect();
        log::info(`context: ${kc.context()}`);
        kc.require_context(@PATTERNS@);
        kc.config_map("@NS@", "touched", #{ by: "kmsctl" });
        "#;
    let r = finish(playbook(
        &env,
        script,
        &[("NS", &ns.name), ("PATTERNS", r#"["kind-*", "arn:aws:eks:*:cluster/kms-ci"]"#)],
    ))
    .await;
    r.code(1);
    let ev = r.events();
    let context = logged(&ev, "context: ");
    assert_eq!(
        error_of(&ev),
        (
            "usage".into(),
            format!(
                "refusing to run against context '{context}': this playbook only runs against contexts matching \
                 kind-*, arn:aws:eks:*:cluster/kms-ci"
            )
        )
    );
    let cms = Api::<ConfigMap>::namespaced(env.client.clone(), &ns.name);
    assert!(cms.get_opt("touched").await.expect("get").is_none(), "nothing ran after the guard");

    let r = finish(playbook(&env, script, &[("NS", &ns.name), ("PATTERNS", r#"["kind-*", "kwok-*"]"#)])).await;
    r.code(0);
    assert!(cms.get_opt("touched").await.expect("get").is_some());
}

/// `kc.events` used to report any failure to list events as "cannot reach the cluster"; the
/// API server's answer (here: a name the field selector cannot hold) is the error now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_fail_with_the_api_servers_reason() {
    let env = testenv!();
    let ns = env.namespace("events-error").await;
    let r = finish(playbook(
        &env,
        r#"
        import "k8s" as k8s;
        import "log" as log;
        let kc = k8s::connect();
        log::info(`none: ${kc.events("Pod", "nothing-here", #{ namespace: "@NS@" }).len()}`);
        let r = "no error";
        try { kc.events("Pod", "a,b", #{ namespace: "@NS@" }); } catch (e) { r = `${e.kind}: ${e.message}`; }
        log::info(`bad name: ${r}`);
        "#,
        &[("NS", &ns.name)],
    ))
    .await;
    r.code(0);
    let ev = r.events();
    assert_eq!(logged(&ev, "none: "), "0");
    assert_eq!(
        logged(&ev, "bad name: "),
        "failed: events of Pod a,b: invalid selector: 'involvedObject.kind=Pod,involvedObject.name=a,b'; can't understand 'b'"
    );
}

/// Regression: `collect_logs` wrote container logs to the artifacts unscrubbed, and took a
/// `dir` anywhere (an absolute path, `..`). Secrets are scrubbed before the files are written,
/// and a `dir` outside the artifacts directory is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_logs_scrubs_secrets_and_stays_inside_the_artifacts_dir() {
    const SECRET: &str = r#"log-s3cr3t"with\quote"#;
    let env = testenv!();
    let ns = env.namespace("pods-scrub").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("main.log");
    std::fs::write(&log, cri_log(&["boot", &format!("token={SECRET} ok")])).expect("write");
    let (_, _logs) = kwok(
        &env,
        "ClusterLogs",
        "scrub-logs",
        json!({"selector": {"matchNamespaces": [ns.name]}, "logs": [{"containers": ["main", "sidecar"], "logsFile": log}]}),
    )
    .await;
    let outside = dir.path().join("outside");
    let r = finish(
        playbook(
            &env,
            r#"
            import "k8s" as k8s;
            import "log" as log;
            import "env" as env;
            let token = env::secret("DEMO_TOKEN");
            let kc = k8s::connect();
            let ns = "@NS@";
            kc.wait(kc.apply_file("sts.yaml", #{ namespace: ns }));
            kc.collect_logs(#{ namespace: ns, selector: "app=app", dir: "pod-logs" });
            for d in ["@OUTSIDE@", "../escaped", "pod-logs/../../escaped"] {
                try { kc.collect_logs(#{ namespace: ns, dir: d }); log::info(`wrote to ${d}`); }
                catch (e) { log::info(`refused ${e.kind}: ${e.message}`); }
            }
            "#,
            &[("NS", &ns.name), ("OUTSIDE", &outside.display().to_string())],
        )
        .env("DEMO_TOKEN", SECRET)
        .file("sts.yaml", STATEFULSET),
    )
    .await;
    r.code(0);
    assert_eq!(artifact(&r.path(), "pod-logs/app-0.main.log"), "boot\ntoken=*** ok\n");
    for (p, text) in all_files(&r.path()) {
        assert!(!text.contains("log-s3cr3t"), "the secret leaked into {}:\n{text}", p.display());
    }
    let refused: Vec<String> = super::logs(&r.events()).into_iter().filter(|l| l.starts_with("refused")).collect();
    assert_eq!(refused.len(), 3, "{refused:#?}");
    assert!(
        refused[1].starts_with(
            "refused usage: collect_logs: dir: '../escaped' must be a relative path inside the artifacts directory"
        ),
        "{refused:#?}"
    );
    assert!(!outside.exists() && !r.path().join("escaped").exists());
}
