//! EKS through kmsctl-aws against moto and the local apiserver: describe, node groups and their
//! waits, a kube client authenticated by kmsctl's exec plugin, and kubectl using a kubeconfig
//! kmsctl wrote (`kmsctl eks token` as its credential plugin, no aws CLI).

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::Namespace;
use kmsctl_aws::AwsError;
use kmsctl_aws::eks::{self, ExecAuth, WaitOptions};
use kube::api::{Api, ListParams, PostParams};

use super::{
    ACCOUNT, create_cluster, create_nodegroup, delete_cluster, expiring_plugin, plugin, sdk, short_lived_plugin,
};
use crate::testenv::{run, testenv, unique};

/// A new EKS cluster in moto (named `<prefix>-<unique>`), described, and the exec auth of
/// `plugin` (made in `dir`) for it.
async fn cluster_with_plugin(
    env: &crate::testenv::TestEnv,
    sdk: &aws_config::SdkConfig,
    prefix: &str,
    dir: &std::path::Path,
    plugin: impl FnOnce(&crate::testenv::TestEnv, &std::path::Path) -> std::path::PathBuf,
) -> (eks::EksCluster, ExecAuth) {
    let name = unique(prefix);
    create_cluster(sdk, &name).await;
    let cluster = eks::describe_cluster(&aws_sdk_eks::Client::new(sdk), &name).await.expect("describe");
    let exec = ExecAuth {
        command: plugin(env, dir).display().to_string(),
        cluster: name,
        region: env.region.clone(),
        profile: None,
        role_arn: None,
        aws_endpoint: None,
    };
    (cluster, exec)
}

#[tokio::test]
async fn describe_list_and_wait_for_node_groups() {
    let env = testenv!();
    let sdk = sdk(&env).await;
    let eks_client = aws_sdk_eks::Client::new(&sdk);
    let name = unique("eks-describe");
    create_cluster(&sdk, &name).await;

    let c = eks::describe_cluster(&eks_client, &name).await.expect("describe");
    assert_eq!(c.name, name);
    assert_eq!(c.status, "ACTIVE");
    assert_eq!(c.version, "1.36");
    assert_eq!(c.endpoint, env.api_server);
    assert!(c.arn.starts_with("arn:aws:eks:") && c.arn.ends_with(&format!(":cluster/{name}")), "{}", c.arn);
    assert!(!c.certificate_authority.is_empty());

    assert_eq!(eks::list_nodegroups(&eks_client, &name).await.expect("list"), Vec::<String>::new());
    create_nodegroup(&sdk, &name, "workers").await;
    create_nodegroup(&sdk, &name, "system").await;
    let mut ngs = eks::list_nodegroups(&eks_client, &name).await.expect("list");
    ngs.sort();
    assert_eq!(ngs, ["system", "workers"]);

    let opts = WaitOptions { timeout: std::time::Duration::from_secs(30), interval: std::time::Duration::from_secs(1) };
    let mut progress = Vec::new();
    let ng =
        eks::wait_nodegroup_active(&eks_client, &name, "workers", &opts, &mut |p: &str| progress.push(p.to_string()))
            .await
            .expect("wait for the node group");
    assert_eq!(ng.status, "ACTIVE");
    assert!(progress.is_empty(), "moto's node groups are ACTIVE at once: {progress:?}");
    assert_eq!((ng.cluster.as_str(), ng.name.as_str()), (name.as_str(), "workers"));
    assert_eq!(ng.instance_types, ["m6i.large"]);
    assert_eq!((ng.scaling.min, ng.scaling.max, ng.scaling.desired), (1, 3, 2));
    assert_eq!(ng.labels.get("role").map(String::as_str), Some("kms"));
    let c = eks::wait_cluster_active(&eks_client, &name, &opts, &mut |_: &str| {}).await.expect("cluster wait");
    assert_eq!(c.status, "ACTIVE");

    // Missing things are `not_found`, at once rather than after the timeout.
    let t = std::time::Instant::now();
    let missing = eks::wait_nodegroup_active(&eks_client, &name, "nope", &opts, &mut |_: &str| {}).await;
    assert!(matches!(missing, Err(AwsError::NotFound(_))), "{missing:?}");
    let missing = eks::describe_cluster(&eks_client, &unique("no-such-cluster")).await;
    assert!(matches!(missing, Err(AwsError::NotFound(_))), "{missing:?}");
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
    delete_cluster(&sdk, &name).await;
}

#[tokio::test]
async fn eks_connect_authenticates_with_tokens_from_the_exec_plugin() {
    let env = testenv!();
    let sdk = sdk(&env).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (cluster, exec) = cluster_with_plugin(&env, &sdk, "eks-connect", dir.path(), plugin).await;
    let name = exec.cluster.clone();
    let kubeconfig = dir.path().join("kubeconfig");
    let k = eks::connect(&cluster, &cluster.arn, &exec, &kubeconfig).await.expect("connect to EKS");
    assert_eq!(k.context(), cluster.arn);
    assert_eq!(k.kubeconfig(), Some(kubeconfig.as_path()));

    let namespaces = Api::<Namespace>::all(k.client().clone()).list(&ListParams::default()).await.expect("list");
    assert!(namespaces.items.iter().any(|n| n.metadata.name.as_deref() == Some("kube-system")));
    // The caller is the AWS identity (via the token-review webhook), not the admin certificate.
    let review = Api::<SelfSubjectReview>::all(k.client().clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("SelfSubjectReview");
    let user = review.status.and_then(|s| s.user_info).and_then(|u| u.username).unwrap_or_default();
    assert_eq!(user, format!("arn:aws:sts::{ACCOUNT}:user/moto"));

    let text = std::fs::read_to_string(&kubeconfig).expect("kubeconfig");
    assert!(!text.contains("k8s-aws-v1."), "no token on disk:\n{text}");
    delete_cluster(&sdk, &name).await;
}

/// Long runs outlive a token (EKS accepts one for 15 minutes): kube-rs runs the plugin again
/// once the token is within a minute of the expiry the plugin reported. A plugin whose tokens
/// "expire" in 30 s is run again for every request, and every request succeeds.
#[tokio::test]
async fn tokens_are_refreshed_before_they_expire() {
    let env = testenv!();
    let sdk = sdk(&env).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (cluster, exec) = cluster_with_plugin(&env, &sdk, "eks-refresh", dir.path(), short_lived_plugin).await;
    let name = exec.cluster.clone();
    let k = eks::connect(&cluster, &cluster.arn, &exec, &dir.path().join("kubeconfig")).await.expect("connect");
    let runs = || std::fs::read_to_string(dir.path().join("runs")).unwrap_or_default().lines().count();
    let before = runs();
    let namespaces = Api::<Namespace>::all(k.client().clone());
    for _ in 0..3 {
        namespaces.list(&ListParams::default()).await.expect("list with a refreshed token");
    }
    assert!(runs() >= before + 3, "the plugin ran {} times before and {} after 3 requests", before, runs());
    delete_cluster(&sdk, &name).await;
}

/// A wait that outlives its token: the watch opened with the first token is broken (the relist
/// trick of tests/it/k8s/relist.rs) after that token has expired — the API server now refuses
/// it, checked — and the wait's relist authenticates with a fresh one and ends when the object
/// is ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expires_during_a_long_wait_is_refreshed() {
    use crate::k8s::{Crd, cond};
    use serde_json::json;
    const LIFE: u32 = 8;
    let env = testenv!();
    let sdk = sdk(&env).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (cluster, exec) =
        cluster_with_plugin(&env, &sdk, "eks-expiry", dir.path(), |e, d| expiring_plugin(e, d, LIFE)).await;
    let name = exec.cluster.clone();
    let k = eks::connect(&cluster, &cluster.arn, &exec, &dir.path().join("kubeconfig")).await.expect("connect");
    let ns = env.namespace("token-expiry").await;
    let crd = Crd::create(&env, "tokenexpiry").await;
    crd.widget(&env, &ns.name, "w", json!([cond("Ready", "False", "Provisioning", "")])).await;
    let first_token = {
        let out = run(tokio::process::Command::new(&exec.command).args(exec.args())).await;
        let v: serde_json::Value = serde_json::from_str(&out).expect("ExecCredential");
        v["status"]["token"].as_str().expect("token").to_string()
    };

    let steps = async {
        tokio::time::sleep(std::time::Duration::from_secs(u64::from(LIFE) + 3)).await;
        // The first token is dead now.
        let stale = {
            let mut kc = kube::config::Kubeconfig::read_from(&env.kubeconfig).expect("kubeconfig");
            for user in &mut kc.auth_infos {
                user.auth_info =
                    Some(kube::config::AuthInfo { token: Some(first_token.clone().into()), ..Default::default() });
            }
            let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("config");
            kube::Client::try_from(config).expect("client")
        };
        let refused = Api::<Namespace>::all(stale).list(&ListParams::default()).await.expect_err("an expired token");
        assert!(matches!(&refused, kube::Error::Api(s) if s.code == 401), "{refused}");

        crate::k8s::break_watches(&env, &crd).await;
        crate::k8s::relisted(&k).await;
        crd.set_conditions(&env, &ns.name, "w", json!([cond("Ready", "True", "Refreshed", "")])).await;
    };
    let ready = crate::k8s::wait_beside(&k, &crd, &ns.name, "w", steps).await;
    assert_eq!(ready[0]["status"]["conditions"][0]["reason"], "Refreshed");
    delete_cluster(&sdk, &name).await;
}

#[tokio::test]
async fn kubectl_reaches_eks_through_kmsctl_eks_token() {
    let env = testenv!();
    let sdk = sdk(&env).await;
    let name = unique("eks-kubectl");
    create_cluster(&sdk, &name).await;
    let cluster = eks::describe_cluster(&aws_sdk_eks::Client::new(&sdk), &name).await.expect("describe");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("kube/config");
    // As a playbook's aws::eks_kubeconfig writes it, with the real binary as the plugin and an
    // assumed role, so the token proves the plugin's assume-role path too.
    let role = format!("arn:aws:iam::{ACCOUNT}:role/deployer");
    let exec = ExecAuth {
        command: crate::harness::bin().to_string(),
        cluster: name.clone(),
        region: env.region.clone(),
        profile: None,
        role_arn: Some(role),
        aws_endpoint: None,
    };
    eks::write_kubeconfig(&path, eks::kubeconfig(&cluster, &cluster.arn, &exec).expect("kubeconfig"), true, true)
        .expect("write kubeconfig");

    let kubeconfig = path.display().to_string();
    let out =
        run(env.kubectl().args(["--kubeconfig", &kubeconfig, "get", "namespace", "kube-system", "-o", "name"])).await;
    assert_eq!(out.trim(), "namespace/kube-system");
    let whoami = run(env.kubectl().args([
        "--kubeconfig",
        &kubeconfig,
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]))
    .await;
    assert_eq!(whoami, format!("arn:aws:sts::{ACCOUNT}:assumed-role/deployer/kmsctl"));
    delete_cluster(&sdk, &name).await;
}
