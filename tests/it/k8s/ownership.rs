//! Pods belong to their workload by `ownerReferences`, not by label selector: every party's
//! StatefulSet selects `app: kms-core`, and one party's crashing pod must fail that party's
//! wait only, and be the pod its report is about.

use k8s_openapi::api::apps::v1::StatefulSet;
use kmsctl_k8s::FailureReport;
use kube::api::Api;
use serde_json::{Value, json};

use super::{CRASH_LOOP_STATUS, artifact, finish, kwok, logged, playbook, step};
use crate::testenv::{testenv, unique};

/// A party's StatefulSet; all parties have the same selector and pod labels. `annotations` go
/// on the pod template (a Stage can pick pods by them without touching their labels).
fn party(name: &str, annotations: Value) -> String {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "serviceName": name,
            "selector": {"matchLabels": {"app": "kms-core"}},
            "template": {
                "metadata": {"labels": {"app": "kms-core"}, "annotations": annotations},
                "spec": {"containers": [{"name": "kms-core", "image": "kms-core:test"}]},
            },
        },
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_pod_fails_its_own_statefulset_not_one_sharing_its_selector() {
    let env = testenv!();
    let ns = env.namespace("owners").await;
    // Crash the pods annotated with this value only; labels stay identical across parties.
    let crash = unique("crash-party");
    let (_stage, _cleanup) = kwok(
        &env,
        "Stage",
        "crash-party",
        json!({
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {
                "matchAnnotations": {"testenv.kmsctl/stage": crash},
                "matchExpressions": [
                    {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                    {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
                ],
            },
            "weight": 1,
            "next": {"statusTemplate": CRASH_LOOP_STATUS},
        }),
    )
    .await;

    // Party 2 crashes first; party 1 is applied and waited for while party 2's pod, which its
    // selector matches, is crash-looping.
    let r = finish(
        playbook(
            &env,
            r#"
            import "k8s" as k8s;
            import "log" as log;
            let kc = k8s::connect();
            let ns = "@NS@";
            let r = "no error";
            try { kc.wait(kc.apply_file("party-2.json", #{ namespace: ns }), #{ timeout: "2m" }); }
            catch (e) { r = `${e.kind}: ${e.message}`; }
            log::info(`party 2: ${r}`);
            kc.wait(kc.apply_file("party-1.json", #{ namespace: ns }), #{ timeout: "2m" });
            log::info("party 1: ready");
            "#,
            &[("NS", &ns.name)],
        )
        .file("party-2.json", &party("party-2", json!({"testenv.kmsctl/stage": crash})))
        .file("party-1.json", &party("party-1", json!({}))),
    )
    .await;
    r.code(0);
    let ev = r.events();
    assert_eq!(
        logged(&ev, "party 2: "),
        format!(
            "failed: StatefulSet {}/party-2: pod party-2-0: CrashLoopBackOff in container kms-core (exit code 1, 4 restarts)",
            ns.name
        )
    );
    assert_eq!(logged(&ev, "party 1: "), "ready");
    assert_eq!(step(&ev, &format!("wait for StatefulSet {}/party-1", ns.name))["outcome"], "ok");

    // The report is about party 2's own pod, owned by party 2.
    let report: Value =
        serde_json::from_str(&artifact(&r.path(), &format!("failures/pod-{}-party-2-0/report.json", ns.name)))
            .expect("report.json");
    assert_eq!(
        report["owners"],
        json!([{"api_version": "apps/v1", "kind": "StatefulSet", "namespace": ns.name, "name": "party-2"}])
    );
    assert_eq!(report["pods"][0]["name"], "party-2-0");

    // Reported from a StatefulSet, the pods are its own, not the crashing one it selects too.
    let sts = Api::<StatefulSet>::namespaced(env.client.clone(), &ns.name);
    for (name, pod) in [("party-1", "party-1-0"), ("party-2", "party-2-0")] {
        let obj = serde_json::to_value(sts.get(name).await.expect("get StatefulSet")).expect("json");
        let r = FailureReport::collect(&env.client, &obj, "timed out").await;
        assert_eq!(r.pods.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), [pod], "{name}: {:?}", r.notes);
    }
}
