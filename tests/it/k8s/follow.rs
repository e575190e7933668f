//! `kc.follow_logs`: the logs of pods that start one after another (an Argo workflow's steps),
//! followed as each starts, prefixed by the annotation that names it, into one file; kwok's
//! ClusterLogs serves each pod's log from a file the test wrote.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;

use super::{Live, artifact, cri_log, kwok, playbook};
use crate::testenv::testenv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_that_start_later_are_followed_too_prefixed_by_their_node() {
    let env = testenv!();
    let ns = env.namespace("follow").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("main.log");
    std::fs::write(&log, cri_log(&["step started", "token=S3CRET-FOLLOW", "step done"])).expect("write");
    let (_, _logs) = kwok(
        &env,
        "ClusterLogs",
        "follow-logs",
        json!({"selector": {"matchNamespaces": [ns.name]}, "logs": [{"containers": ["main"], "logsFile": log}]}),
    )
    .await;
    let pods = Api::<Pod>::namespaced(env.client.clone(), &ns.name);
    let pod = |name: &str, node: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"workflows.argoproj.io/workflow": "wf"},
                "annotations": {"workflows.argoproj.io/node-name": node}},
            "spec": {"containers": [{"name": "main", "image": "client:test"}]},
        }))
        .expect("pod")
    };
    pods.create(&PostParams::default(), &pod("wf-keygen-1", "wf.keygen")).await.expect("create");
    let mut live = Live::start(
        playbook(
            &env,
            r#"
        import "k8s" as k8s;
        import "env" as env;
        import "log" as log;
        import "data" as data;
        import "wait" as wait;
        let kc = k8s::connect();
        let hidden = env::secret("PLANTED");
        let f = kc.follow_logs(#{ namespace: "@NS@", selector: "workflows.argoproj.io/workflow=wf",
            prefix_annotation: "workflows.argoproj.io/node-name", file: "argo/wf-logs.txt" });
        log::info("following");
        wait::poll(|| kc.list("Pod", #{ namespace: "@NS@" }).len() >= 2, #{ interval: "100ms", timeout: "30s" });
        wait::sleep("1500ms");
        log::info(`followed: ${data::to_json(f.stop())}`);
        "#,
            &[("NS", &ns.name)],
        )
        .env("PLANTED", "S3CRET-FOLLOW"),
    );
    live.log("following").await;
    // A later step starts after the follower did.
    pods.create(&PostParams::default(), &pod("wf-decrypt-2", "wf.decrypt")).await.expect("create");
    let followed = live.log("followed: ").await;
    let ended = live.end().await;
    assert_eq!(ended.code, 0, "{}", ended.stderr);
    let summary: serde_json::Value = serde_json::from_str(&followed).expect("json");
    assert_eq!((summary["pods"].as_i64(), summary["lines"].as_i64()), (Some(2), Some(6)), "{summary}");
    let text = artifact(ended.path(), "argo/wf-logs.txt");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "wf.decrypt: step done",
            "wf.decrypt: step started",
            "wf.decrypt: token=***",
            "wf.keygen: step done",
            "wf.keygen: step started",
            "wf.keygen: token=***",
        ]
    );
    let echoed: Vec<&str> = ended
        .events
        .iter()
        .filter(|e| e["event"] == "log")
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.starts_with("wf."))
        .collect();
    assert_eq!(echoed.len(), 6, "each line is also in the run's log: {echoed:?}");
    assert!(!ended.events.iter().any(|e| e.to_string().contains("S3CRET-FOLLOW")), "the secret is masked");
}
