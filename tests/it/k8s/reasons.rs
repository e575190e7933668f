//! The failure report names the real reason a rehearsal is refused, against the real scheduler
//! and kube-controller-manager: a pod no node has room for, and a pod held by a claim whose
//! StorageClass does not exist (the claim's phase, class and ProvisioningFailed event). The
//! other refusals (a missing ConfigMap, a missing image pull secret, an untolerated taint)
//! need a kubelet or tainted nodes; their summaries are pinned in the crate's unit tests.

use serde_json::{Value, json};

use super::{artifact, error_of, finish, playbook};
use crate::testenv::{TestEnv, testenv};

/// A one-replica StatefulSet `kms-core` with `pod` merged into its pod spec and `extra` into
/// its spec.
fn statefulset(pod: Value, extra: Value) -> String {
    let mut pod_spec = json!({"containers": [{"name": "kms-core", "image": "kms-core:test"}]});
    for (k, v) in pod.as_object().into_iter().flatten() {
        pod_spec[k] = v.clone();
    }
    let mut spec = json!({
        "replicas": 1,
        "serviceName": "kms-core",
        "selector": {"matchLabels": {"app": "kms-core"}},
        "template": {"metadata": {"labels": {"app": "kms-core"}}, "spec": pod_spec},
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        spec[k] = v.clone();
    }
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "kms-core"}, "spec": spec}).to_string()
}

/// Apply and wait with a 2s unschedulable grace: (error message, the report's summary).
async fn refused(env: &TestEnv, ns: &str, manifest: &str) -> (String, String) {
    let r = finish(
        playbook(
            env,
            r#"
            import "k8s" as k8s;
            let kc = k8s::connect();
            kc.wait(kc.apply_file("m.json", #{ namespace: "@NS@" }), #{ timeout: "2m", unschedulable_grace: "2s" });
            "#,
            &[("NS", ns)],
        )
        .file("m.json", manifest),
    )
    .await;
    r.code(1);
    let (kind, message) = error_of(&r.events());
    assert_eq!(kind, "failed", "{message}");
    (message, artifact(&r.path(), &format!("failures/pod-{ns}-kms-core-0/summary.txt")))
}

/// The summary with its event lines sorted: which of two events of the same moment comes last
/// varies from run to run.
fn events_sorted(summary: &str) -> String {
    let (mut events, mut out): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    for l in summary.lines() {
        if l.starts_with("  event ") { events.push(l) } else { out.push(l) }
    }
    events.sort();
    out.extend(events);
    out.join("\n") + "\n"
}

/// Names and counts that vary between runs.
fn filters(ns: &str) -> Vec<(String, &'static str)> {
    vec![(regex::escape(ns), "[ns]"), (r"for \d+s".into(), "for [n]s"), (r" \(x\d+\)".into(), "")]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_no_node_has_room_for_is_reported_with_the_schedulers_reason() {
    let env = testenv!();
    let ns = env.namespace("no-room").await;
    let greedy = json!({"containers": [{"name": "kms-core", "image": "kms-core:test",
        "resources": {"requests": {"cpu": "1000"}}}]});
    let (message, summary) = refused(&env, &ns.name, &statefulset(greedy, json!({}))).await;
    assert!(
        message.starts_with(&format!("StatefulSet {}/kms-core: pod kms-core-0: unschedulable for ", ns.name)),
        "{message}"
    );
    assert!(message.contains("3 Insufficient cpu"), "{message}");
    let filters = filters(&ns.name);
    insta::with_settings!({filters => filters.iter().map(|(a, b)| (a.as_str(), *b)).collect::<Vec<_>>()}, {
        insta::assert_snapshot!(summary, @r"
        Pod [ns]/kms-core-0: unschedulable for [n]s: 0/3 nodes are available: 3 Insufficient cpu. no new claims to deallocate, preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.
          owners: StatefulSet kms-core
          pod kms-core-0: container kms-core not started
          event Warning FailedScheduling on Pod kms-core-0: 0/3 nodes are available: 3 Insufficient cpu. no new claims to deallocate, preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.
        ");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_held_by_a_claim_of_an_unknown_class_is_reported_with_the_claim() {
    let env = testenv!();
    let ns = env.namespace("no-class").await;
    // The KMS chart asks for `gp3`, which a rehearsal cluster does not have.
    let claims = json!({"volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
        "storageClassName": "gp3", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]});
    let pod = json!({"containers": [{"name": "kms-core", "image": "kms-core:test",
        "volumeMounts": [{"name": "data", "mountPath": "/keys"}]}]});
    let (message, summary) = refused(&env, &ns.name, &statefulset(pod, claims)).await;
    assert!(message.contains("pod has unbound immediate PersistentVolumeClaims"), "{message}");
    let filters = filters(&ns.name);
    insta::with_settings!({filters => filters.iter().map(|(a, b)| (a.as_str(), *b)).collect::<Vec<_>>()}, {
        insta::assert_snapshot!(events_sorted(&summary), @r#"
        Pod [ns]/kms-core-0: unschedulable for [n]s: 0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. not found
          owners: StatefulSet kms-core
          pod kms-core-0: container kms-core not started
          claim data-kms-core-0: Pending (storage class gp3)
          event Warning FailedScheduling on Pod kms-core-0: 0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. not found
          event Warning ProvisioningFailed on PersistentVolumeClaim data-kms-core-0: storageclass.storage.k8s.io "gp3" not found
        "#);
    });
}
