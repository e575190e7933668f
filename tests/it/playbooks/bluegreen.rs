//! `playbooks/bluegreen.rhai` (`std/bluegreen`) on the test cluster: a Deployment behind a
//! Service is adopted as blue, green deployed beside it and switched to in one selector update,
//! the next release goes back to blue; a failed check after the switch switches back; an abort
//! at the gate during the keep window switches back at once.

use std::sync::atomic::Ordering;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::Api;

use crate::harness::Kmsctl;
use crate::k8s::{error_of, finish, logs};
use crate::playbooks::canary::{endpoint, stable};
use crate::testenv::{TestEnv, testenv};

fn bluegreen(env: &TestEnv, ns: &str, args: &[&str]) -> Kmsctl {
    super::run_playbook(env, "bluegreen.rhai")
        .args(["--namespace", ns, "--service", "web", "--check-interval", "200ms", "--checks", "2"])
        .args(args)
}

async fn selector(env: &TestEnv, ns: &str) -> std::collections::BTreeMap<String, String> {
    let s = Api::<Service>::namespaced(env.client.clone(), ns).get("web").await.expect("web");
    s.spec.and_then(|s| s.selector).unwrap_or_default()
}

async fn deployments(env: &TestEnv, ns: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Api::<Deployment>::namespaced(env.client.clone(), ns)
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|d| {
            let image = d.spec.and_then(|s| s.template.spec).map(|s| s.containers[0].image.clone().unwrap_or_default());
            (d.metadata.name.unwrap_or_default(), image.unwrap_or_default())
        })
        .collect();
    out.sort();
    out
}

fn colour(c: &str) -> std::collections::BTreeMap<String, String> {
    [("app".to_string(), "web".to_string()), ("kmsctl.io/colour".to_string(), c.to_string())].into()
}

#[tokio::test]
async fn blue_green_switches_and_the_next_release_switches_back() {
    let env = testenv!();
    let ns = env.namespace("bg-switch").await;
    stable(&env, &ns.name).await;
    let (url, _status) = endpoint().await;
    let r = finish(bluegreen(
        &env,
        &ns.name,
        &["--image", "registry.example/web:2", "--http-check", &url, "--live-http-check", &url, "--keep-old", "0s"],
    ))
    .await;
    r.code(0);
    let all = logs(&r.events());
    assert!(
        all.iter().any(|m| m.starts_with(&format!("{}/web is blue (its pods carry kmsctl.io/colour=blue", ns.name))),
        "{all:#?}"
    );
    assert_eq!(
        crate::playbooks::canary::decisions(&r.events()),
        [
            format!("decision: blue/green {}/web: switch: blue → green: 2 checks passed", ns.name),
            format!("decision: blue/green {}/web: promote: green web-green is live; blue web deleted", ns.name),
        ]
    );
    assert_eq!(selector(&env, &ns.name).await, colour("green"));
    assert_eq!(deployments(&env, &ns.name).await, [("web-green".to_string(), "registry.example/web:2".to_string())]);
    // The next release is blue again, beside green.
    let r = finish(bluegreen(&env, &ns.name, &["--image", "registry.example/web:3", "--keep-old", "0s"])).await;
    r.code(0);
    assert_eq!(selector(&env, &ns.name).await, colour("blue"));
    assert_eq!(deployments(&env, &ns.name).await, [("web-blue".to_string(), "registry.example/web:3".to_string())]);
    assert!(
        Api::<Service>::namespaced(env.client.clone(), &ns.name).get_opt("web-preview").await.expect("get").is_none()
    );
}

#[tokio::test]
async fn a_failure_after_the_switch_switches_back() {
    let env = testenv!();
    let ns = env.namespace("bg-back").await;
    stable(&env, &ns.name).await;
    let (url, status) = endpoint().await;
    let (live_url, live_status) = endpoint().await;
    live_status.store(503, Ordering::SeqCst);
    let r = finish(bluegreen(
        &env,
        &ns.name,
        &["--image", "registry.example/web:2", "--http-check", &url, "--live-http-check", &live_url],
    ))
    .await;
    r.code(1);
    let (_, message) = error_of(&r.events());
    assert_eq!(
        message,
        format!("switched back to blue: green failed after the switch: GET {live_url} 503, expected 2xx")
    );
    assert_eq!(selector(&env, &ns.name).await, colour("blue"));
    assert_eq!(deployments(&env, &ns.name).await, [("web".to_string(), "registry.example/web:1".to_string())]);
    // A failure before the switch never switches.
    status.store(500, Ordering::SeqCst);
    let r = finish(bluegreen(&env, &ns.name, &["--image", "registry.example/web:2", "--http-check", &url])).await;
    r.code(1);
    assert_eq!(error_of(&r.events()).1, format!("green web-green not switched to: GET {url} 500, expected 2xx"));
    assert_eq!(selector(&env, &ns.name).await, colour("blue"));
    assert_eq!(deployments(&env, &ns.name).await, [("web".to_string(), "registry.example/web:1".to_string())]);
}

#[tokio::test]
async fn an_abort_while_the_old_colour_is_kept_switches_back_at_once() {
    let env = testenv!();
    let ns = env.namespace("bg-abort").await;
    stable(&env, &ns.name).await;
    let mut run = bluegreen(&env, &ns.name, &["--image", "registry.example/web:2", "--keep-old", "2m"]).spawn();
    let _out = run.wait_for_stdout("switches back at once");
    assert_eq!(selector(&env, &ns.name).await, colour("green"));
    let t = std::time::Instant::now();
    super::gate(&env, "abort", &format!("{}/web", ns.name)).code(0);
    let status = super::exited(run).await;
    assert_eq!(status.code(), Some(1));
    assert!(t.elapsed() < std::time::Duration::from_secs(20), "the abort took {:?}", t.elapsed());
    assert_eq!(selector(&env, &ns.name).await, colour("blue"));
    assert_eq!(deployments(&env, &ns.name).await, [("web".to_string(), "registry.example/web:1".to_string())]);
}

/// `--plan --against-cluster`: the new colour and the switch as they would be made, from the
/// live Service and Deployment, and nothing changed.
#[tokio::test]
async fn blue_green_plans_against_the_cluster_and_changes_nothing() {
    let env = testenv!();
    let ns = env.namespace("bg-plan").await;
    stable(&env, &ns.name).await;
    let svc = Api::<Service>::namespaced(env.client.clone(), &ns.name);
    let before = svc.get("web").await.expect("web").metadata.resource_version;
    let r = finish(bluegreen(
        &env,
        &ns.name,
        &["--image", "registry.example/web:2", "--plan", "--against-cluster", "--artifacts", "art"],
    ))
    .await;
    r.code(0);
    let actions = crate::plan::actions(&crate::plan::plan_of(&r));
    let green = format!("Deployment {}/web-green", ns.name);
    assert!(actions.iter().any(|a| a.starts_with("k8s apply ") && a.contains(&green)), "the new colour: {actions:?}");
    assert!(
        actions.contains(&format!("k8s delete Deployment {}/web", ns.name)),
        "the old colour, after the keep window: {actions:?}"
    );
    assert!(actions.iter().any(|a| *a == format!("k8s patch Service {}/web", ns.name)), "the switch: {actions:?}");
    assert_eq!(svc.get("web").await.expect("web").metadata.resource_version, before, "the plan switched the Service");
    assert_eq!(deployments(&env, &ns.name).await, [("web".to_string(), "registry.example/web:1".to_string())]);
}
