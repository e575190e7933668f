//! Helm (v4 and v3) installs tests/charts/kms-core, which has the KMS chart's shape, and kwok
//! makes its pods Ready and its init Job complete.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::Api;
use kube::runtime::wait::{Condition, await_condition, conditions};

use crate::testenv::{TestEnv, chart, run, testenv, unique, within};

/// A pod whose Ready condition is True.
fn is_pod_ready() -> impl Condition<Pod> {
    |pod: Option<&Pod>| {
        pod.and_then(|p| p.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    }
}

fn peers_json(parties: &[(u32, &str)]) -> String {
    let list: Vec<_> = parties
        .iter()
        .map(|(id, rel)| serde_json::json!({"id": id, "host": format!("{rel}-core-{id}"), "port": 50001}))
        .collect();
    format!("kmsCore.thresholdMode.peersList={}", serde_json::Value::Array(list))
}

async fn assert_services(env: &TestEnv, ns: &str, rel: &str, ids: &[u32]) {
    let services = Api::<Service>::namespaced(env.client.clone(), ns);
    let headless = services.get(&format!("{rel}-core")).await.expect("headless Service");
    assert_eq!(headless.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()), Some("None"));
    for id in ids {
        let svc = services.get(&format!("{rel}-core-{id}")).await.expect("per-pod Service");
        let spec = svc.spec.expect("spec");
        let ip = spec.cluster_ip.as_deref().unwrap_or("None");
        assert!(ip != "None" && ip.parse::<std::net::Ipv4Addr>().is_ok(), "ClusterIP {ip}");
        let ports: BTreeMap<_, _> =
            spec.ports.iter().flatten().map(|p| (p.name.clone().unwrap_or_default(), p.port)).collect();
        let want: BTreeMap<_, _> =
            [("client".to_string(), 50100), ("metrics".into(), 9646), ("peer".into(), 50001)].into();
        assert_eq!(ports, want);
        let selector = spec.selector.expect("selector");
        assert_eq!(selector.get("statefulset.kubernetes.io/pod-name"), Some(&format!("{rel}-core-{id}")));
    }
}

#[tokio::test]
async fn helm_installs_kms_core_party_pod_ready_and_init_job_completes() {
    let env = testenv!();
    let ns = env.namespace("helm4-kms-core").await;
    let rel = unique("kms");
    // No --wait: the readiness below is observed with kube-rs watches. Helm itself waits for
    // the post-install hook Job, as it always does for hooks.
    run(env
        .helm()
        .args(["install", &rel])
        .arg(chart("kms-core"))
        .args(["--namespace", &ns.name, "--timeout", "120s"])
        .args(["--set", "kmsPeers.id=3", "--set", "kmsInit.enabled=true"])
        .args(["--set-json", &peers_json(&[(3, &rel)])]))
    .await;

    let pod_name = format!("{rel}-core-3");
    let pods = Api::<Pod>::namespaced(env.client.clone(), &ns.name);
    let pod = within(60, "the kms-core pod to be Ready", await_condition(pods, &pod_name, is_pod_ready()))
        .await
        .expect("watch pod")
        .expect("pod exists");
    let labels = pod.metadata.labels.as_ref().expect("labels");
    assert_eq!(labels.get("app").map(String::as_str), Some("kms-core"));
    assert_eq!(labels.get("app.kubernetes.io/name"), Some(&format!("{rel}-core")));
    let status = pod.status.as_ref().expect("status");
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert!(status.pod_ip.is_some(), "kwok gives pods an IP");
    assert!(pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| n.starts_with("testenv-node-")));

    let jobs = Api::<Job>::namespaced(env.client.clone(), &ns.name);
    let job_name = format!("{rel}-threshold-init");
    let job = within(
        60,
        "the threshold init Job to complete",
        await_condition(jobs, &job_name, conditions::is_job_completed()),
    )
    .await
    .expect("watch job")
    .expect("job exists");
    assert_eq!(job.status.as_ref().and_then(|s| s.succeeded), Some(1));
    let job_labels = job.metadata.labels.as_ref().expect("labels");
    assert_eq!(job_labels.get("app").map(String::as_str), Some("kms-threshold-init-job"));

    let sts = Api::<StatefulSet>::namespaced(env.client.clone(), &ns.name)
        .get(&format!("{rel}-core"))
        .await
        .expect("StatefulSet");
    let spec = sts.spec.as_ref().expect("spec");
    assert_eq!(spec.ordinals.as_ref().and_then(|o| o.start), Some(3));
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));

    let cm = Api::<ConfigMap>::namespaced(env.client.clone(), &ns.name)
        .get(&format!("{rel}-core-config"))
        .await
        .expect("config hook ConfigMap");
    let hook = cm.metadata.annotations.as_ref().and_then(|a| a.get("helm.sh/hook"));
    assert_eq!(hook.map(String::as_str), Some("pre-install,pre-upgrade"));
    let toml = cm.data.as_ref().and_then(|d| d.get("config.toml")).expect("config.toml");
    assert!(toml.contains("my_id = 3"), "{toml}");

    assert_services(&env, &ns.name, &rel, &[3]).await;

    let status = run(env.helm().args(["status", &rel, "--namespace", &ns.name, "-o", "json"])).await;
    let status: serde_json::Value = serde_json::from_str(&status).expect("helm status json");
    assert_eq!(status["info"]["status"], "deployed", "{status}");

    // Uninstall removes the StatefulSet; hook resources (config, init Job) stay, as in the KMS chart.
    let uid = sts.metadata.uid.clone().expect("uid");
    run(env.helm().args(["uninstall", &rel, "--namespace", &ns.name])).await;
    let stss = Api::<StatefulSet>::namespaced(env.client.clone(), &ns.name);
    within(
        60,
        "the StatefulSet to be deleted",
        await_condition(stss, &format!("{rel}-core"), conditions::is_deleted(&uid)),
    )
    .await
    .expect("watch StatefulSet");
    let cms = Api::<ConfigMap>::namespaced(env.client.clone(), &ns.name);
    assert!(cms.get_opt(&format!("{rel}-core-config")).await.expect("get").is_some());
}

#[tokio::test]
async fn helm3_installs_two_pod_party_with_wait() {
    let env = testenv!();
    let ns = env.namespace("helm3-kms-core").await;
    let rel = unique("kms");
    let out = run(env.helm3().arg("version").arg("--short")).await;
    assert!(out.starts_with("v3."), "helm3 is {out}");
    run(env
        .helm3()
        .args(["install", &rel])
        .arg(chart("kms-core"))
        .args(["--namespace", &ns.name, "--wait", "--wait-for-jobs", "--timeout", "120s"])
        .args(["--set", "kmsPeers.id=1", "--set", "kmsPeers.count=2"])
        .args(["--set-json", &peers_json(&[(1, &rel), (2, &rel)])]))
    .await;
    // --wait returned: both pods must already be Ready, with no waiting on our side.
    let pods = Api::<Pod>::namespaced(env.client.clone(), &ns.name);
    for id in [1, 2] {
        let pod = pods.get(&format!("{rel}-core-{id}")).await.expect("pod");
        assert!(is_pod_ready().matches_object(Some(&pod)), "{rel}-core-{id} not Ready after helm --wait");
    }
    assert!(pods.get_opt(&format!("{rel}-core-0")).await.expect("get").is_none(), "ordinals start at 1");
    assert_services(&env, &ns.name, &rel, &[1, 2]).await;
    // kmsInit.enabled is false by default: no init Job.
    let jobs = Api::<Job>::namespaced(env.client.clone(), &ns.name);
    assert!(jobs.get_opt(&format!("{rel}-threshold-init")).await.expect("get").is_none());
}
