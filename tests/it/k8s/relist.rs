//! A wait survives its watch breaking and having to relist.
//!
//! How the watch is broken without disturbing the other tests that share the cluster: the
//! waited-for object is a custom resource of a CRD group only this test uses. Changing that
//! CRD's spec makes the API server replace the CRD's storage: every open watch on it ends, and
//! the new watch cache starts at the current resource version, so re-watching from the old one
//! answers 410 Gone ("too old resource version"), exactly as after an API server restart. The
//! watcher must then list again and carry on. A second list of the widget by name (scope
//! `resource` in the API server's `apiserver_request_total`) proves the relist happened: kmsctl
//! is the only client reading that group by name (the garbage collector and quota controllers
//! list it cluster-wide, the namespace controller per namespace; the test only writes). Restarting kube-apiserver
//! itself would break every other test running at the same time.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::{Crd, Live, cond, metric, metrics, playbook, step};
use crate::testenv::{testenv, within};

/// Lists of one object by name (a watcher's list with `metadata.name=`, which the API server
/// counts as a GET of scope `resource`).
async fn lists_by_name(env: &crate::testenv::TestEnv, group: &str) -> f64 {
    let m = metrics(env).await;
    ["GET", "LIST"]
        .iter()
        .map(|verb| {
            metric(&m, "apiserver_request_total", &[("group", group), ("verb", verb), ("scope", "resource")], &[])
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_resumes_after_its_watch_is_relisted() {
    let env = testenv!();
    let ns = env.namespace("relist").await;
    let crd = Crd::create(&env, "relist").await;
    crd.widget(&env, &ns.name, "w", json!([cond("Ready", "False", "Provisioning", "")])).await;

    let mut live = Live::start(playbook(
        &env,
        r#"
        import "k8s" as k8s;
        import "log" as log;
        let kc = k8s::connect();
        let got = kc.wait(#{ api_version: "@AV@", kind: "Widget", namespace: "@NS@", name: "w" }, #{ timeout: "2m" });
        log::info(`ready: ${got[0].status.conditions[0].reason}`);
        "#,
        &[("NS", &ns.name), ("AV", &crd.api_version)],
    ));
    let target = format!("Widget {}/w", ns.name);
    live.progress(&target).await;
    let lists_before = lists_by_name(&env, &crd.group).await;
    assert_eq!(lists_before, 1.0, "one initial list");

    // A spec change (a printer column) replaces the CRD's storage: the watch ends, the re-watch
    // gets 410 Gone.
    let mut versions = super::crd_doc(&crd.group)["spec"]["versions"].clone();
    versions[0]["additionalPrinterColumns"] = json!([{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]);
    Api::<CustomResourceDefinition>::all(env.client.clone())
        .patch(&crd.name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"versions": versions}})))
        .await
        .expect("patch CRD");

    // Metrics cannot be watched: poll them (the object must not become ready before the relist,
    // or the old watch could deliver it).
    within(60, "kmsctl to list the widget again", async {
        loop {
            if lists_by_name(&env, &crd.group).await > lists_before {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    })
    .await;

    // Still waiting, now on the new watch: the object becoming ready ends the wait.
    crd.set_conditions(&env, &ns.name, "w", json!([cond("Ready", "True", "Relisted", "")])).await;
    assert_eq!(live.log("ready: ").await, "Relisted");
    let ended = live.end().await;
    ended.code(0);
    assert_eq!(step(&ended.events, &format!("wait for {target}"))["outcome"], "ok");
}
