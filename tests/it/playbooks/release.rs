//! `playbooks/release.rhai` (`std/release`, helm-deploy.sh) on the test cluster with the `web`
//! fixture chart (tests/charts/web) and a kustomize overlay (tests/fixtures/kustomize/web):
//! environment values, the production gate, health gates rolling a bad revision back, a
//! rollback to revision 1, an overlay applied, and flags refused before anything runs.

use std::sync::atomic::Ordering;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

use crate::harness::Kmsctl;
use crate::k8s::{error_of, finish, logs};
use crate::testenv::{TestEnv, testenv};

fn root() -> std::path::PathBuf {
    std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).to_path_buf()
}

/// `kmsctl run playbooks/release.rhai --release web --namespace NS ...`, health gates 200 ms
/// apart.
fn release(env: &TestEnv, ns: &str, args: &[&str]) -> Kmsctl {
    let mut k = super::run_playbook(env, "release.rhai");
    for (key, v) in env.env_vars() {
        if key.starts_with("HELM_") {
            k = k.env(&key, &v.to_string_lossy());
        }
    }
    k.env("KMSCTL_HELM", &env.dir.join("bin/helm").display().to_string())
        .env("KMSCTL_KUSTOMIZE_BIN", &env.dir.join("bin/kustomize").display().to_string())
        .args(["--release", "web", "--namespace", ns, "--check-interval", "200ms"])
        .args(args)
}

fn chart() -> String {
    root().join("tests/charts/web").display().to_string()
}

async fn image(env: &TestEnv, ns: &str, name: &str) -> Option<String> {
    let d = Api::<Deployment>::namespaced(env.client.clone(), ns).get_opt(name).await.expect("get")?;
    d.spec?.template.spec?.containers[0].image.clone()
}

async fn environment(env: &TestEnv, ns: &str) -> Option<String> {
    let cm = Api::<ConfigMap>::namespaced(env.client.clone(), ns).get_opt("web-config").await.expect("get")?;
    cm.data?.get("environment").cloned()
}

#[tokio::test]
async fn production_layers_its_values_and_waits_at_the_gate() {
    let env = testenv!();
    let ns = env.namespace("release-prod").await;
    let chart = chart();
    let args = [
        "--chart",
        &chart,
        "--env",
        "production",
        "--registry",
        "registry.example/team",
        "--tag",
        "7",
        "--checks",
        "2",
    ];
    // Production waits for a person: abort changes nothing.
    let mut run = release(&env, &ns.name, &args).spawn();
    let _out = run.wait_for_stdout("at the gate (release web): kmsctl gate promote ");
    let gate = |action: &str| super::gate(&env, action, &format!("{}/web", ns.name));
    let answered = gate("abort");
    answered.code(0);
    assert!(
        answered.stderr.contains(&format!("ConfigMap {}/kmsctl-gate-web: kmsctl.io/gate = abort by ", ns.name)),
        "{}",
        answered.stderr
    );
    let status = super::exited(run).await;
    assert_eq!(status.code(), Some(1));
    assert_eq!(image(&env, &ns.name, "web").await, None, "an aborted release deployed");

    // Promote: deployed with values.yaml, then values-production.yaml, then the image.
    let mut run = release(&env, &ns.name, &args).spawn();
    let _out = run.wait_for_stdout("at the gate (release web): kmsctl gate promote ");
    gate("promote").code(0);
    let status = super::exited(run).await;
    assert_eq!(status.code(), Some(0));
    assert_eq!(environment(&env, &ns.name).await.as_deref(), Some("production"));
    assert_eq!(image(&env, &ns.name, "web").await.as_deref(), Some("registry.example/team/web:7"));
    let d = Api::<Deployment>::namespaced(env.client.clone(), &ns.name).get("web").await.expect("web");
    assert_eq!(d.spec.and_then(|s| s.replicas), Some(3), "values-production.yaml's replicas");
    // The gate's ConfigMap is gone.
    assert!(
        Api::<ConfigMap>::namespaced(env.client.clone(), &ns.name)
            .get_opt("kmsctl-gate-web")
            .await
            .expect("get")
            .is_none()
    );

    // Staging needs no gate; an environment without its file is refused, naming what exists.
    let r = finish(release(&env, &ns.name, &["--chart", &chart, "--env", "staging", "--checks", "1"])).await;
    r.code(0);
    assert_eq!(environment(&env, &ns.name).await.as_deref(), Some("staging"));
}

#[tokio::test]
async fn a_failed_health_gate_rolls_back_and_rollback_goes_to_revision_1() {
    let env = testenv!();
    let ns = env.namespace("release-back").await;
    let chart = chart();
    let (url, status) = crate::playbooks::canary::endpoint().await;
    for tag in ["1", "2"] {
        let r =
            finish(release(&env, &ns.name, &["--chart", &chart, "--tag", tag, "--checks", "2", "--http-check", &url]))
                .await;
        r.code(0);
        assert!(
            logs(&r.events()).iter().any(|m| m.starts_with("health gate 2/2 passed: web ready; GET ")),
            "{:#?}",
            logs(&r.events())
        );
    }
    // Revision 3 fails its health gate: back to revision 2.
    status.store(500, Ordering::SeqCst);
    let r = finish(release(&env, &ns.name, &["--chart", &chart, "--tag", "3", "--checks", "2", "--http-check", &url]))
        .await;
    r.code(1);
    let (_, message) = error_of(&r.events());
    assert_eq!(
        message,
        format!("rolled back to revision 2: health gates failed on revision 3: GET {url} 500, expected 2xx")
    );
    assert_eq!(image(&env, &ns.name, "web").await.as_deref(), Some("registry.example/web:2"));
    // --rollback --revision 1 shows the history and restores revision 1.
    status.store(200, Ordering::SeqCst);
    let r = finish(release(&env, &ns.name, &["--rollback", "--revision", "1"])).await;
    r.code(0);
    let all = logs(&r.events());
    assert!(all.iter().any(|m| m == &format!("history of {}/web:", ns.name)), "{all:#?}");
    assert!(all.iter().any(|m| m == "  1  superseded  web-0.3.0  app 1  Install complete"), "{all:#?}");
    assert!(
        all.iter().any(|m| m.starts_with(&format!("{}/web: rolled back to revision 1 (now revision 5)", ns.name))),
        "{all:#?}"
    );
    assert_eq!(image(&env, &ns.name, "web").await.as_deref(), Some("registry.example/web:1"));
    // No such revision.
    let r = finish(release(&env, &ns.name, &["--rollback", "--revision", "9"])).await;
    r.code(1);
    assert!(
        error_of(&r.events()).1.contains("has no revision 9; it has [1, 2, 3, 4, 5]"),
        "{:?}",
        error_of(&r.events())
    );
}

#[tokio::test]
async fn a_kustomize_overlay_is_applied_and_checked() {
    let env = testenv!();
    let ns = env.namespace("release-kz").await;
    let overlay = root().join("tests/fixtures/kustomize/web/overlays/staging").display().to_string();
    let r = finish(release(&env, &ns.name, &["--kustomize", &overlay, "--checks", "1"])).await;
    r.code(0);
    assert!(
        logs(&r.events()).iter().any(|m| m == "health gate 1/1 passed: staging-web ready"),
        "{:#?}",
        logs(&r.events())
    );
    assert_eq!(image(&env, &ns.name, "staging-web").await.as_deref(), Some("registry.example/web:2-rc"));
}

#[tokio::test]
async fn bad_flags_are_refused_before_anything_runs() {
    let env = testenv!();
    let ns = env.namespace("release-bad").await;
    let chart = chart();
    let overlay = root().join("tests/fixtures/kustomize/web/overlays/staging").display().to_string();
    for (args, want) in [
        (vec!["--kustomize", &overlay, "--tag", "2"], "--tag is for --chart"),
        (vec!["--chart", &chart, "--kustomize", &overlay], "give --chart or --kustomize (one of them)"),
        (vec!["--chart", &chart, "--revision", "1"], "--revision is for --rollback"),
        (vec!["--chart", &chart, "--env", "qa"], "qa"),
        (vec!["--kustomize", &overlay, "--rollback"], "a kustomize overlay has none"),
    ] {
        let r = finish(release(&env, &ns.name, &args)).await;
        let text = format!("{}{}", r.stdout, r.stderr);
        assert_eq!(r.code, 2, "{args:?}:\n{text}");
        assert!(text.contains(want), "{args:?}: want {want:?} in\n{text}");
    }
    assert_eq!(image(&env, &ns.name, "web").await, None);
    assert_eq!(image(&env, &ns.name, "staging-web").await, None);
}
