//! Pod metrics and the usage sampler against the test environment's metrics API
//! (scripts/testenv/rehearsal/metrics.go: an aggregated `metrics.k8s.io`, its usage the pods'
//! `testenv.kmsctl/cpu-usage` / `memory-usage` annotations or a share of their requests).

use regex::Regex;
use serde_json::Value;

use super::{artifact, finish, logged, playbook};
use crate::testenv::testenv;

const PARTIES: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: kms-core}
spec:
  replicas: 2
  serviceName: kms-core
  selector: {matchLabels: {app: kms-core}}
  template:
    metadata:
      labels: {app: kms-core}
      annotations: {testenv.kmsctl/cpu-usage: 3500m, testenv.kmsctl/memory-usage: 2Gi}
    spec:
      containers:
      - name: core
        image: kms-core:test
        resources: {requests: {cpu: 100m, memory: 64Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: other, labels: {app: other}}
spec:
  containers:
  - name: main
    image: other:test
    resources: {requests: {cpu: "2", memory: 1Gi}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_pods_and_a_sampler_read_the_metrics_api() {
    let env = testenv!();
    let ns = env.namespace("metrics").await;
    let r = finish(
        playbook(
            &env,
            r#"
            import "k8s" as k8s;
            import "log" as log;
            import "data" as data;
            import "wait" as wait;
            let kc = k8s::connect();
            let ns = "@NS@";
            kc.wait(kc.apply_file("pods.yaml", #{ namespace: ns }));
            log::info(`top: ${data::to_json(kc.top_pods(#{ namespace: ns, selector: "app=kms-core" }))}`);
            log::info(`other: ${data::to_json(kc.top_pods(#{ namespace: ns, selector: "app=other" }))}`);
            let s = kc.sample_usage(#{ namespace: ns, selector: "app=kms-core", interval: "200ms", file: "perf/cpu.log" });
            wait::sleep("1s");
            let summary = s.stop();
            log::info(`summary: ${data::to_json(summary)}`);
            log::info(`again: ${data::to_json(s.stop()) == data::to_json(summary)}`);
            // Not stopped: the run's end stops it.
            kc.sample_usage(#{ namespace: ns, interval: "100ms", file: "left-running.log" });
            wait::sleep("300ms");
            "#,
            &[("NS", &ns.name)],
        )
        .file("pods.yaml", PARTIES),
    )
    .await;
    r.code(0);
    let ev = r.events();
    let json_of = |prefix: &str| -> Value { serde_json::from_str(&logged(&ev, prefix)).expect("json") };

    let top = json_of("top: ");
    let pods: Vec<_> = top.as_array().expect("array").iter().map(|p| p["pod"].as_str().unwrap().to_string()).collect();
    assert_eq!(pods, ["kms-core-0", "kms-core-1"]);
    for p in top.as_array().unwrap() {
        assert_eq!((p["cpu_millicores"].as_i64(), p["memory_bytes"].as_i64()), (Some(3500), Some(2 << 30)), "{p}");
        assert_eq!(p["containers"][0]["name"], "core");
        assert!(p["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{p}");
    }
    // Without annotations, a share (5-35 %) of the 2-CPU request and 40 % of the memory one.
    let other = &json_of("other: ")[0];
    let cpu = other["cpu_millicores"].as_i64().expect("cpu");
    assert!((100..=700).contains(&cpu), "{other}");
    assert_eq!(other["memory_bytes"].as_i64(), Some((1i64 << 30) * 4 / 10 / 1024 * 1024));

    let summary = json_of("summary: ");
    let rounds = summary["rounds"].as_i64().expect("rounds");
    assert!((3..=7).contains(&rounds), "a sample at once, then every 200ms for 1s: {summary}");
    assert_eq!(summary["failed_rounds"], 0);
    assert_eq!(summary["file"], "perf/cpu.log");
    for p in ["kms-core-0", "kms-core-1"] {
        let s = &summary["pods"][p];
        assert_eq!((s["samples"].as_i64(), s["cpu_max_millicores"].as_i64()), (Some(rounds), Some(3500)), "{summary}");
        assert_eq!((s["cpu_mean_millicores"].as_i64(), s["memory_max_bytes"].as_i64()), (Some(3500), Some(2 << 30)));
    }
    assert_eq!(logged(&ev, "again: "), "true");
    let log = artifact(&r.path(), "perf/cpu.log");
    let line = Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ kms-core-[01] 3500m 2048Mi$").expect("regex");
    assert_eq!(log.lines().count() as i64, 2 * rounds, "{log}");
    assert!(log.lines().all(|l| line.is_match(l)), "{log}");
    let left = artifact(&r.path(), "left-running.log");
    assert!(left.lines().any(|l| l.contains(" other ")), "the unstopped sampler sampled: {left}");
}

#[tokio::test]
async fn a_sampler_file_outside_the_artifacts_dir_is_refused() {
    let env = testenv!();
    let r = finish(playbook(
        &env,
        r#"
        import "k8s" as k8s;
        k8s::connect().sample_usage(#{ namespace: "default", file: "../escape.log" });
        "#,
        &[],
    ))
    .await;
    r.code(1);
    let e = r.events().into_iter().find(|e| e["event"] == "error").expect("an error event");
    assert_eq!(
        (e["kind"].as_str(), e["message"].as_str()),
        (
            Some("usage"),
            Some("sample_usage: file: '../escape.log' must be a relative path inside the artifacts directory")
        )
    );
}
