//! The project's playbooks, run as users run them (`kmsctl run playbooks/...`) against the local
//! cluster: the real helm, the test chart with the KMS chart's shape.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use crate::harness::{Kmsctl, kmsctl};
use crate::k8s::{finish, logged};
use crate::testenv::{TestEnv, testenv, unique};

fn root() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/..").to_string()
}

/// `kmsctl run playbooks/<name>` from the repository, against the test cluster.
fn run_playbook(env: &TestEnv, name: &str, args: &[&str]) -> Kmsctl {
    let root = root();
    let mut k = kmsctl()
        .env("KUBECONFIG", &env.kubeconfig.display().to_string())
        .env("KMSCTL_HELM", &env.dir.join("bin/helm").display().to_string())
        .args(["run", &format!("{root}/playbooks/{name}")])
        .args(args)
        .args(["--stdlib-dir", &format!("{root}/stdlib"), "--output", "json", "--timeout", "5m"]);
    for (key, v) in env.env_vars() {
        if key.starts_with("HELM_") {
            k = k.env(&key, &v.to_string_lossy());
        }
    }
    k
}

async fn ready_pods(env: &TestEnv, ns: &str) -> Vec<String> {
    let pods = Api::<Pod>::namespaced(env.client.clone(), ns)
        .list(&ListParams::default().labels("app=kms-core"))
        .await
        .expect("pods");
    let mut names: Vec<String> = pods
        .items
        .into_iter()
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|p| p.metadata.name)
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn deploy_threshold_brings_up_every_party_and_initialises() {
    let env = testenv!();
    let ns = env.namespace("pb-threshold").await;
    let r = finish(run_playbook(&env, "deploy.rhai", &["--namespace", &ns.name, "--num-parties", "4", "--tag", "v9"]))
        .await;
    r.code(0);
    assert_eq!(
        ready_pods(&env, &ns.name).await,
        ["kms-core-1-core-1", "kms-core-2-core-2", "kms-core-3-core-3", "kms-core-4-core-4"]
    );
    let job = Api::<Job>::namespaced(env.client.clone(), &ns.name)
        .get("kms-core-init-threshold-init")
        .await
        .expect("init job");
    assert_eq!(job.status.and_then(|s| s.succeeded), Some(1));
    assert_eq!(
        logged(&r.events(), "ready: "),
        r#"["kms-core-1 r1", "kms-core-2 r1", "kms-core-3 r1", "kms-core-4 r1"]"#
    );
    // Re-running upgrades in place.
    let r = finish(run_playbook(
        &env,
        "deploy.rhai",
        &["--namespace", &ns.name, "--num-parties", "4", "--core-tag", "v10"],
    ))
    .await;
    r.code(0);
    assert_eq!(
        logged(&r.events(), "ready: "),
        r#"["kms-core-1 r2", "kms-core-2 r2", "kms-core-3 r2", "kms-core-4 r2"]"#
    );
    let pod = Api::<Pod>::namespaced(env.client.clone(), &ns.name).get("kms-core-2-core-2").await.expect("pod");
    let image = pod.spec.and_then(|s| s.containers.first().and_then(|c| c.image.clone())).unwrap_or_default();
    assert!(image.ends_with(":v10"), "{image}");
}

#[tokio::test]
async fn deploy_centralized_is_one_party_without_init() {
    let env = testenv!();
    let ns = env.namespace("pb-central").await;
    let r = finish(run_playbook(
        &env,
        "deploy.rhai",
        &["--namespace", &ns.name, "--deployment-type", "centralized", "--num-parties", "4"],
    ))
    .await;
    r.code(0);
    assert_eq!(ready_pods(&env, &ns.name).await, ["kms-core-core-1"]);
    assert!(
        Api::<Job>::namespaced(env.client.clone(), &ns.name)
            .list(&ListParams::default())
            .await
            .expect("jobs")
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn collect_logs_writes_a_file_per_container() {
    let env = testenv!();
    let ns = env.namespace("pb-logs").await;
    finish(run_playbook(&env, "deploy.rhai", &["--namespace", &ns.name, "--num-parties", "2"])).await.code(0);
    let r =
        finish(run_playbook(&env, "deploy.rhai", &["--namespace", &ns.name, "--collect-logs", "--artifacts", "art"]))
            .await;
    r.code(0);
    let mut files: Vec<String> = std::fs::read_dir(r.path().join("art/logs"))
        .expect("logs dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    // kwok runs no containers: each file says why it has no logs instead of silently missing.
    assert_eq!(
        files,
        [
            "kms-core-1-core-1.kms-core-init-load-env.log",
            "kms-core-1-core-1.kms-core.log",
            "kms-core-2-core-2.kms-core-init-load-env.log",
            "kms-core-2-core-2.kms-core.log"
        ]
    );
}

#[test]
fn deploy_help_lists_the_toolkit_flags() {
    let root = root();
    let r = kmsctl().args(["run", &format!("{root}/playbooks/deploy.rhai"), "--help"]).code(0).run();
    let canonical = std::fs::canonicalize(&root).expect("root").display().to_string();
    insta::assert_snapshot!(r.stdout.replace(&canonical, "[root]"));
}

#[test]
fn a_typo_in_the_deployment_type_is_refused_before_anything_runs() {
    let root = root();
    let name = unique("never");
    let r = kmsctl()
        .env("KUBECONFIG", "/nonexistent")
        .args(["run", &format!("{root}/playbooks/deploy.rhai"), "--deployment-type", "treshold", "--namespace", &name])
        .code(2)
        .run();
    assert!(
        r.stderr.contains("--deployment-type must be one of: threshold, centralized; got 'treshold'"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing was run"), "{}", r.stderr);
}
