//! The AWS playbooks end to end on the simulated EKS cluster (`TESTENV_PROFILE=eks`: the perf
//! cluster's Karpenter pools and gp3, with the rehearsal controller playing Crossplane's
//! tkms-infra and the external-secrets operator) and moto as AWS: each test registers an EKS
//! cluster in moto whose endpoint is the local apiserver, and the playbook connects to it with
//! `--eks-cluster`, as CI would without tailscale. The tkms-infra and sync-secrets charts are the
//! stand-ins under tests/charts (their OCI originals cannot be pulled here).

use std::path::{Path, PathBuf};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;

use super::{releases, values};
use crate::harness::{Kmsctl, kmsctl};
use crate::k8s::finish;
use crate::testenv::{EKS_POOLS, TestEnv, run, testenv_profile, unique};

fn root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).to_path_buf()
}

/// A moto EKS cluster for one test, deleted when dropped.
struct Eks {
    name: String,
    sdk: aws_config::SdkConfig,
}

impl Eks {
    async fn new(env: &TestEnv) -> Eks {
        let sdk = crate::aws::sdk(env).await;
        let name = unique("eks");
        crate::aws::create_cluster(&sdk, &name).await;
        Eks { name, sdk }
    }

    async fn delete(self) {
        crate::aws::delete_cluster(&self.sdk, &self.name).await;
    }
}

/// `kmsctl run playbooks/<playbook> --eks-cluster <cluster>` with the environment's AWS
/// variables, no kubeconfig (the EKS connection is kmsctl's own), its helm and docker stand-in.
fn playbook_run(env: &TestEnv, k: Kmsctl, playbook: &str, eks: &Eks) -> Kmsctl {
    let root = root();
    let mut k = k;
    for (key, v) in env.env_vars() {
        k = k.env(&key, &v.to_string_lossy());
    }
    k.env("KUBECONFIG", "/dev/null")
        .env("KMSCTL_HELM", &env.dir.join("bin/helm").display().to_string())
        .env("KMSCTL_DOCKER", &env.dir.join("standins/docker").display().to_string())
        .env("TESTENV_DIR", &env.dir.display().to_string())
        .env("KMSCTL_STDLIB_DIR", &root.join("stdlib").display().to_string())
        .args(["run", &root.join("playbooks").join(playbook).display().to_string()])
        .args(["--eks-cluster", &eks.name, "--output", "json"])
}

/// [`playbook_run`] with `--namespace <ns>`, in a temp dir holding a copy of the KMS checkout
/// (`kms/`), with the stand-in charts.
fn aws_run(env: &TestEnv, playbook: &str, ns: &str, eks: &Eks, args: &[&str]) -> Kmsctl {
    let root = root();
    let charts = root.join("tests/charts");
    playbook_run(env, kmsctl().tree("kms", &root.join("tests/kms-repo")), playbook, eks)
        .args(["--kms-repo", "kms", "--namespace", ns, "--timeout", "10m"])
        .args(["--artifacts", "out"])
        .args(["--tkms-infra-chart", &charts.join("tkms-infra").display().to_string()])
        .args(["--sync-secrets-chart", &charts.join("sync-secrets").display().to_string()])
        .args(args)
}

fn tkms(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "tkms.zama.ai".into(),
        version: "v1alpha1".into(),
        api_version: "tkms.zama.ai/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn ready(o: &DynamicObject) -> bool {
    o.data["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// The node a pod was scheduled to, and that node's labels.
async fn node_of(env: &TestEnv, ns: &str, pod: &str) -> (String, std::collections::BTreeMap<String, String>) {
    let p = Api::<Pod>::namespaced(env.client.clone(), ns).get(pod).await.unwrap_or_else(|e| panic!("pod {pod}: {e}"));
    let node = p.spec.and_then(|s| s.node_name).unwrap_or_else(|| panic!("{pod} is not scheduled"));
    let n = Api::<k8s_openapi::api::core::v1::Node>::all(env.client.clone()).get(&node).await.expect("node");
    (node, n.metadata.labels.unwrap_or_default())
}

/// Destroy the preview with the playbook, and wait until the namespace is gone.
async fn destroy(env: &TestEnv, eks: &Eks, ns: &str) -> crate::harness::Run {
    finish(playbook_run(env, kmsctl(), "pr-preview-destroy.rhai", eks).args(["--namespace", ns])).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_perf_threshold_deploys_thirteen_parties_on_the_spot_pool() {
    let env = testenv_profile!("eks");
    let _pools = EKS_POOLS.lock().await;
    let eks = Eks::new(&env).await;
    let ns = unique("aws-perf-thr");
    let r = finish(aws_run(
        &env,
        "aws-perf.rhai",
        &ns,
        &eks,
        &["--deployment-type", "threshold", "--core-tag", "v0.14.0", "--client-tag", "v0.14.1", "--num-parties", "13"],
    ))
    .await;
    r.code(0);
    let mut want: Vec<String> = (1..=13).map(|i| format!("kms-core-{i}")).collect();
    want.extend(["kms-core-init", "sync-secrets", "tkms-infra"].map(String::from));
    want.sort();
    assert_eq!(releases(&env, &ns).await, want);
    // tkms-infra: the perf values file alone; every Kmsparty of this deployment Ready.
    let parties = Api::<DynamicObject>::namespaced_with(env.client.clone(), &ns, &tkms("Kmsparty", "kmsparties"));
    for i in 1..=13 {
        let p = parties.get(&format!("kms-party-kms-ci-{i}")).await.expect("Kmsparty");
        assert!(ready(&p), "kms-party-kms-ci-{i}: {:?}", p.data["status"]);
    }
    // The parties: the perf file after kmsctl's override, the toolkit's --sets after it.
    let v = values(&env, &ns, "kms-core-7").await;
    assert_eq!(v["kmsCore"]["image"]["tag"], "v0.14.0", "the perf file's <version> placeholder is replaced");
    assert_eq!(v["kmsCoreClient"]["image"]["tag"], "v0.14.1");
    assert_eq!(v["kmsCore"]["serviceAccountName"], "kms-ci-7");
    assert_eq!(v["kmsCore"]["envFrom"]["configmap"]["name"], "kms-ci-7");
    assert_eq!(v["kmsCore"]["thresholdMode"]["thresholdValue"], 4);
    assert_eq!(v["kmsCore"]["thresholdMode"]["tls"]["enabled"], true);
    assert_eq!(v["kmsGenCertAndKeys"]["enabled"], true, "the chart's job makes the TLS material on AWS");
    assert_eq!(v["kmsCore"]["thresholdMode"]["peersList"].as_array().map(Vec::len), Some(13));
    assert_eq!(v["kmsCore"]["publicVault"]["s3"]["prefix"], "PUB-p7");
    assert_eq!(v["kmsCore"]["resources"]["requests"]["cpu"], 12, "the perf file wins over the override");
    // What tkms-infra published exists, and the party runs with it on the spot pool.
    assert!(Api::<ServiceAccount>::namespaced(env.client.clone(), &ns).get("kms-ci-7").await.is_ok());
    assert!(Api::<ConfigMap>::namespaced(env.client.clone(), &ns).get("kms-ci-7").await.is_ok());
    for i in [1, 13] {
        let (node, labels) = node_of(&env, &ns, &format!("kms-core-{i}-core-{i}")).await;
        assert_eq!(labels.get("karpenter.sh/nodepool").map(String::as_str), Some("kms-bench-spot-64"), "{node}");
    }
    // The perf init values name the client kms-core-client-threshold-staging (inventory §3).
    let (_, labels) = node_of(&env, &ns, "kms-core-client-threshold-staging-0").await;
    assert_eq!(labels.get("karpenter.sh/nodepool").map(String::as_str), Some("zws-pool"), "the client");
    let job = Api::<Job>::namespaced(env.client.clone(), &ns).get("kms-core-init-threshold-init").await;
    assert_eq!(job.expect("init job").status.and_then(|s| s.succeeded), Some(1));
    assert!(Api::<Secret>::namespaced(env.client.clone(), &ns).get("registry-credentials").await.is_ok());
    // aws-perf's namespace is not a preview.
    let n = Api::<Namespace>::all(env.client.clone()).get(&ns).await.expect("ns");
    assert!(!n.metadata.labels.unwrap_or_default().contains_key("kmsctl.io/preview"));
    // The perf workflow's log step: one file per party, in the working directory.
    let logs = finish(aws_run(
        &env,
        "collect-logs.rhai",
        &ns,
        &eks,
        &["--num-parties", "13", "--deployment-type", "threshold"],
    ))
    .await;
    logs.code(0);
    for i in 1..=13 {
        let f = logs.path().join(format!("kms-core-{i}-logs.txt"));
        assert!(f.exists(), "{} missing", f.display());
    }
    run(env.kubectl().args(["delete", "namespace", &ns, "--wait=true", "--timeout=120s"])).await;
    eks.delete().await;
}

/// The rolling-upgrade job as one step (rolling-upgrade-run.rhai), in rehearsal: 4 parties
/// deployed at the old version, the baseline workflow gated, parties 1 and 2 upgraded, the
/// mixed workflow run with the baseline's key id and the upgrade's shape, both gated, the logs,
/// and the cleanup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_upgrade_run_tests_before_and_after_upgrading_in_one_step() {
    let env = testenv_profile!("eks");
    let _pools = EKS_POOLS.lock().await;
    let eks = Eks::new(&env).await;
    let ns = unique("rolling-run");
    let r = finish(
        aws_run(
            &env,
            "rolling-upgrade-run.rhai",
            &ns,
            &eks,
            &["--deployment-type", "threshold", "--num-parties", "4", "--deploy", "--old-tag", "v1", "--new-tag", "v2"],
        )
        .args(["--parties-to-upgrade", "1,2", "--keep"]),
    )
    .await;
    r.code(0);
    let read = |rel: &str| {
        let p = r.path().join(rel);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    assert!(read("out/argo/baseline-junit.xml").contains(r#"tests="4" failures="0""#));
    assert!(read("out/argo/mixed-junit.xml").contains(r#"tests="2" failures="0""#));
    for (release, tag) in [("kms-core-1", "v2"), ("kms-core-2", "v2"), ("kms-core-3", "v1"), ("kms-core-4", "v1")] {
        assert_eq!(values(&env, &ns, release).await["kmsCore"]["image"]["tag"], tag, "{release}");
    }
    // The mixed run's pods got the baseline's key id and the upgrade's label.
    let gvk = kube::api::GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Workflow");
    let wfs = Api::<DynamicObject>::namespaced_with(
        env.client.clone(),
        &ns,
        &ApiResource::from_gvk_with_plural(&gvk, "workflows"),
    );
    let mixed = wfs.list(&kube::api::ListParams::default().labels("kmsctl.io/argo-run=mixed")).await.expect("list");
    let params = &mixed.items[0].data["spec"]["arguments"]["parameters"];
    let param = |name: &str| params.as_array().unwrap().iter().find(|p| p["name"] == name).map(|p| p["value"].clone());
    assert_eq!(param("key-id"), Some(serde_json::json!("0x0042")), "{params}");
    assert_eq!(param("test_label"), Some(serde_json::json!("mixed-2-of-4")), "{params}");
    assert_eq!(param("num_total"), Some(serde_json::json!("4")), "{params}");
    run(env.kubectl().args(["delete", "namespace", &ns, "--wait=true", "--timeout=120s"])).await;
    eks.delete().await;
}

/// The nightly perf job as one step (perf-run.rhai), in rehearsal: 13 parties deployed as
/// aws-perf does, diagnostics before and after, the CPU sampler, the workflow generated from the
/// test KMS repo's scenarios and run by the test environment's Argo stand-in, gated green with
/// its results in the artifacts dir, every party's log, and the shared namespace cleaned
/// (releases and workflow gone, namespace kept).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perf_run_deploys_tests_gates_collects_and_cleans_up_in_one_step() {
    let env = testenv_profile!("eks");
    let _pools = EKS_POOLS.lock().await;
    let eks = Eks::new(&env).await;
    let ns = unique("perf-run");
    let r = finish(aws_run(
        &env,
        "perf-run.rhai",
        &ns,
        &eks,
        &["--deployment-type", "threshold", "--tag", "v0.14.0", "--num-parties", "13", "--sample-interval", "1s"],
    ))
    .await;
    r.code(0);
    let read = |rel: &str| {
        let p = r.path().join(rel);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let junit = read("out/argo/perf-junit.xml");
    assert!(junit.contains(r#"tests="4" failures="0" skipped="0""#), "the four scenarios passed:\n{junit}");
    for scenario in ["insecure-key-gen", "warmup-public-decrypt", "public-decrypt", "user-decrypt"] {
        assert!(junit.contains(&format!(r#"name="{scenario}""#)), "{scenario}:\n{junit}");
    }
    assert!(read("out/argo/perf-summary.md").contains(": Succeeded, gate passed"));
    let samples = read("out/core-cpu-samples.log");
    for i in [1, 13] {
        assert!(samples.contains(&format!(" kms-core-{i}-core-{i} ")), "party {i} sampled:\n{samples}");
    }
    assert!(read("network-diagnostics/after-perf/traffic.tsv").lines().any(|l| l.starts_with("total\t")));
    for i in 1..=13 {
        assert!(r.path().join(format!("kms-core-{i}-logs.txt")).exists(), "party {i}'s log");
    }
    assert_eq!(releases(&env, &ns).await, Vec::<String>::new(), "the releases are uninstalled");
    let gvk = kube::api::GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Workflow");
    let wfs = Api::<DynamicObject>::namespaced_with(
        env.client.clone(),
        &ns,
        &ApiResource::from_gvk_with_plural(&gvk, "workflows"),
    );
    assert!(wfs.list(&Default::default()).await.expect("workflows").items.is_empty(), "the workflow is deleted");
    assert!(
        Api::<Namespace>::all(env.client.clone()).get_opt(&ns).await.expect("get").is_some(),
        "the namespace is kept"
    );
    run(env.kubectl().args(["delete", "namespace", &ns, "--wait=true", "--timeout=120s"])).await;
    eks.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_ci_threshold_with_enclave_is_a_labelled_preview_on_its_own_enclave_nodes() {
    let env = testenv_profile!("eks");
    let _pools = EKS_POOLS.lock().await;
    let eks = Eks::new(&env).await;
    let ns = unique("kms-ci-alice");
    let r = finish(aws_run(
        &env,
        "aws-ci.rhai",
        &ns,
        &eks,
        &[
            "--deployment-type",
            "thresholdWithEnclave",
            "--tag",
            "abc123",
            "--num-parties",
            "4",
            "--pcr0",
            "p0",
            "--pcr1",
            "p1",
            "--pcr2",
            "p2",
            "--owner",
            "alice",
            "--pr-number",
            "812",
        ],
    ))
    .await;
    r.code(0);
    let n = Api::<Namespace>::all(env.client.clone()).get(&ns).await.expect("ns");
    let labels = n.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("kmsctl.io/preview").map(String::as_str), Some("true"));
    assert_eq!(labels.get("kmsctl.io/owner").map(String::as_str), Some("alice"));
    assert_eq!(labels.get("kmsctl.io/pr").map(String::as_str), Some("812"));
    let expires: i64 = labels.get("kmsctl.io/expires").expect("expiry").parse().expect("unix seconds");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((expires - now - 72 * 3600).abs() < 600, "72h from now: {expires} vs {now}");
    let rb = Api::<RoleBinding>::namespaced(env.client.clone(), &ns).get("kms-dev-binding").await.expect("rolebinding");
    assert_eq!(rb.role_ref.name, "admin");
    assert_eq!(rb.subjects.unwrap_or_default()[0].name, "kms-dev-access");
    // tkms-infra named after the namespace, the enclave taint and PCR0 set.
    let t = values(&env, &ns, "tkms-infra").await;
    assert_eq!(t["fullnameOverride"], format!("kms-party-{ns}"));
    assert_eq!(t["kmsParties"]["replicas"], 4);
    assert_eq!(t["kmsParties"]["enclaveNodeGroup"]["taint"][0]["value"], ns.as_str());
    assert_eq!(t["kmsParties"]["awsKms"]["recipientAttestationImageSHA384"], "p0");
    let v = values(&env, &ns, "kms-core-2").await;
    assert_eq!(v["kmsCore"]["image"]["name"], "hub.zama.org/ghcr/zama-ai/kms/core-service-enclave");
    assert_eq!(v["kmsCore"]["serviceAccountName"], format!("{ns}-2"));
    assert_eq!(v["kmsCore"]["tolerations"][0]["key"], "app");
    assert_eq!(v["kmsCore"]["tolerations"][0]["value"], ns.as_str());
    assert_eq!(
        v["kmsCore"]["thresholdMode"]["tls"]["trustedReleases"],
        serde_json::json!([{"pcr0": "p0", "pcr1": "p1", "pcr2": "p2"}]),
        "where the chart reads them (the toolkit wrote thresholdMode.trustedReleases)"
    );
    // The parties run on this preview's enclave node group, which tkms-infra made.
    let (node, labels) = node_of(&env, &ns, "kms-core-3-core-3").await;
    assert_eq!(
        labels.get("tkms.zama.ai/enclave-node-group-namespace").map(String::as_str),
        Some(ns.as_str()),
        "{node}"
    );
    // The PR comment, in the artifacts dir.
    let comment = std::fs::read_to_string(r.path().join("out/pr-comment.md")).expect("pr-comment.md");
    assert!(comment.contains(&format!("kubectl -n {ns} port-forward svc/kms-core-4-core-4 50400:50100")), "{comment}");
    // Destroy: every release, then the namespace; the enclave nodes go with tkms-infra.
    let d = destroy(&env, &eks, &ns).await;
    d.code(0);
    assert!(Api::<Namespace>::all(env.client.clone()).get(&ns).await.is_err(), "the namespace is gone");
    let nodes = Api::<k8s_openapi::api::core::v1::Node>::all(env.client.clone())
        .list(&ListParams::default().labels(&format!("tkms.zama.ai/enclave-node-group-namespace={ns}")))
        .await
        .expect("nodes");
    assert!(
        nodes.items.is_empty(),
        "enclave nodes left: {:?}",
        nodes.items.iter().map(|n| &n.metadata.name).collect::<Vec<_>>()
    );
    eks.delete().await;
}

/// A namespace with `labels`, created for the sweep test.
async fn namespace_with(env: &TestEnv, name: &str, labels: &[(&str, String)]) {
    let mut all: std::collections::BTreeMap<String, String> =
        labels.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    all.insert("kmsctl.test/owner".into(), "it".into());
    let ns = Namespace {
        metadata: kube::api::ObjectMeta { name: Some(name.into()), labels: Some(all), ..Default::default() },
        ..Default::default()
    };
    Api::<Namespace>::all(env.client.clone()).create(&Default::default(), &ns).await.expect("create namespace");
}

/// The sweep deletes expired previews only: an unlabelled `kms-ci-*` namespace and a preview that
/// has not expired survive, and `--dry-run` deletes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_sweep_leaves_unlabelled_and_unexpired_namespaces_alone() {
    let env = crate::testenv::testenv!();
    let eks = Eks::new(&env).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let (expired, fresh, unlabelled) = (unique("kms-ci-old"), unique("kms-ci-new"), unique("kms-ci-foo"));
    namespace_with(
        &env,
        &expired,
        &[("kmsctl.io/preview", "true".into()), ("kmsctl.io/expires", (now - 60).to_string())],
    )
    .await;
    namespace_with(
        &env,
        &fresh,
        &[("kmsctl.io/preview", "true".into()), ("kmsctl.io/expires", (now + 3600).to_string())],
    )
    .await;
    // Expired by its label's name, but not a preview: never touched.
    namespace_with(&env, &unlabelled, &[("kmsctl.io/expires", (now - 60).to_string())]).await;
    let sweep = |dry: bool| {
        let k = playbook_run(&env, kmsctl(), "pr-preview-destroy.rhai", &eks).args(["--sweep"]);
        if dry { k.args(["--dry-run"]) } else { k }
    };
    let exists = |name: String| {
        let api = Api::<Namespace>::all(env.client.clone());
        async move { api.get(&name).await.is_ok_and(|n| n.metadata.deletion_timestamp.is_none()) }
    };
    let dry = finish(sweep(true)).await;
    dry.code(0);
    let logs = crate::k8s::logs(&dry.events());
    assert!(logs.contains(&format!("would destroy {expired}")), "{logs:#?}");
    assert!(!logs.iter().any(|l| l.contains(&fresh) || l.contains(&unlabelled)), "{logs:#?}");
    assert!(exists(expired.clone()).await, "--dry-run deleted {expired}");
    finish(sweep(false)).await.code(0);
    assert!(!exists(expired.clone()).await, "{expired} was not swept");
    assert!(exists(fresh.clone()).await, "an unexpired preview was swept");
    assert!(exists(unlabelled.clone()).await, "an unlabelled namespace was swept");
    for ns in [fresh, unlabelled] {
        run(env.kubectl().args(["delete", "namespace", &ns, "--wait=false"])).await;
    }
    eks.delete().await;
}

/// A preview is destroyed only when it is one: an unlabelled namespace is refused, unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_a_namespace_that_is_not_a_preview_is_refused() {
    let env = crate::testenv::testenv!();
    let eks = Eks::new(&env).await;
    let ns = unique("kms-ci-bob");
    namespace_with(&env, &ns, &[]).await;
    let r = destroy(&env, &eks, &ns).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("{ns} is not a preview (no kmsctl.io/preview=true label)")), "{}", r.stderr);
    let n = Api::<Namespace>::all(env.client.clone()).get(&ns).await.expect("still there");
    assert!(n.metadata.deletion_timestamp.is_none());
    run(env.kubectl().args(["delete", "namespace", &ns, "--wait=false"])).await;
    eks.delete().await;
}

/// One deployment type on one AWS target, end to end: what exists afterwards, by type.
async fn deploys(target: &str, ty: &str) {
    let env = testenv_profile!("eks");
    let _pools = EKS_POOLS.lock().await;
    let eks = Eks::new(&env).await;
    let ns = unique(&format!("{target}-{}", ty.to_lowercase()));
    let threshold = ty.starts_with("threshold");
    let enclave = ty.ends_with("WithEnclave");
    let r =
        finish(aws_run(&env, &format!("{target}.rhai"), &ns, &eks, &["--deployment-type", ty, "--tag", "t1"])).await;
    r.code(0);
    let parties: Vec<u32> = if threshold { (1..=4).collect() } else { vec![1] };
    let mut want: Vec<String> = if threshold {
        parties.iter().map(|i| format!("kms-core-{i}")).chain(["kms-core-init".to_string()]).collect()
    } else {
        vec!["kms-core".into()]
    };
    want.extend(["sync-secrets", "tkms-infra"].map(String::from));
    want.sort();
    assert_eq!(releases(&env, &ns).await, want, "{target} {ty}");
    let (identity, prefix) = if target == "aws-ci" {
        (ns.clone(), format!("kms-party-{ns}"))
    } else {
        let suffix = if enclave { "kms-enclave-ci" } else { "kms-ci" };
        (suffix.to_string(), format!("kms-party-{suffix}"))
    };
    let kmsparties = Api::<DynamicObject>::namespaced_with(env.client.clone(), &ns, &tkms("Kmsparty", "kmsparties"));
    for &i in &parties {
        let release = if threshold { format!("kms-core-{i}") } else { "kms-core".into() };
        let v = values(&env, &ns, &release).await;
        assert_eq!(v["kmsCore"]["serviceAccountName"], format!("{identity}-{i}"), "{target} {ty} {release}");
        assert_eq!(v["kmsCore"]["envFrom"]["configmap"]["name"], format!("{identity}-{i}"));
        let toleration = &v["kmsCore"]["tolerations"][0];
        if enclave {
            assert_eq!(
                (toleration["key"].as_str(), toleration["value"].as_str()),
                (Some("app"), Some(identity.as_str()))
            );
        } else {
            assert_eq!(toleration["value"], "kms-bench-spot-64", "{target} {ty}");
        }
        // TLS certificates from the chart's job for threshold types; centralizedWithEnclave's
        // signing key always.
        let job = threshold || ty == "centralizedWithEnclave";
        assert_eq!(v["kmsGenCertAndKeys"]["enabled"], job, "{target} {ty} kmsGenCertAndKeys");
        assert!(!v.to_string().contains("\"null\""), "a PCR written as the string null: {v}");
        let p = kmsparties.get(&format!("{prefix}-{i}")).await.expect("Kmsparty");
        assert!(ready(&p), "{prefix}-{i}");
        let pod = if threshold { format!("kms-core-{i}-core-{i}") } else { "kms-core-core-1".into() };
        let (node, labels) = node_of(&env, &ns, &pod).await;
        if enclave {
            assert_eq!(
                labels.get("aws.amazon.com/nitro-enclaves").map(String::as_str),
                Some("true"),
                "{pod} on {node}"
            );
        } else {
            assert_eq!(
                labels.get("karpenter.sh/nodepool").map(String::as_str),
                Some("kms-bench-spot-64"),
                "{pod} on {node}"
            );
        }
    }
    let job = Api::<Job>::namespaced(env.client.clone(), &ns).get("kms-core-init-threshold-init").await;
    assert_eq!(job.is_ok(), threshold, "the init job exists for threshold types only");
    if enclave {
        let groups = Api::<DynamicObject>::namespaced_with(
            env.client.clone(),
            &ns,
            &tkms("EnclaveNodeGroup", "enclavenodegroups"),
        );
        assert!(ready(&groups.get(&prefix).await.expect("EnclaveNodeGroup")), "{prefix}");
    }
    if target == "aws-ci" {
        destroy(&env, &eks, &ns).await.code(0);
    } else {
        // The perf cleanup: every release and hook leftover goes, the shared namespace stays.
        let k = playbook_run(&env, kmsctl(), "perf-cleanup.rhai", &eks).args(["--namespace", &ns]);
        finish(k).await.code(0);
        assert_eq!(releases(&env, &ns).await, Vec::<String>::new(), "{target} {ty}: releases left");
        let n = Api::<Namespace>::all(env.client.clone()).get(&ns).await.expect("the namespace stays");
        assert!(n.metadata.deletion_timestamp.is_none());
        let jobs = Api::<Job>::namespaced(env.client.clone(), &ns).list(&ListParams::default()).await.expect("jobs");
        assert!(
            jobs.items.is_empty(),
            "hook Jobs left: {:?}",
            jobs.items.iter().map(|j| &j.metadata.name).collect::<Vec<_>>()
        );
        run(env.kubectl().args(["delete", "namespace", &ns, "--wait=true", "--timeout=120s"])).await;
    }
    eks.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_ci_threshold() {
    deploys("aws-ci", "threshold").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_ci_centralized() {
    deploys("aws-ci", "centralized").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_ci_centralized_with_enclave() {
    deploys("aws-ci", "centralizedWithEnclave").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_perf_threshold_with_enclave() {
    deploys("aws-perf", "thresholdWithEnclave").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_perf_centralized() {
    deploys("aws-perf", "centralized").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_perf_centralized_with_enclave() {
    deploys("aws-perf", "centralizedWithEnclave").await;
}

/// A rolling upgrade of parties 1 and 2 of 4 where party 2's new version crash-loops: the run
/// fails naming party 2, every other party is upgraded or kept as asked, and both releases are
/// trusted by every party (the toolkit's bare `wait` reported nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_upgrade_reports_the_party_that_failed() {
    let env = testenv_profile!("eks");
    let _pools = EKS_POOLS.lock().await;
    let eks = Eks::new(&env).await;
    let ns = unique("rolling");
    let pcrs = [
        ("OLD_PCR0", "o0"),
        ("OLD_PCR1", "o1"),
        ("OLD_PCR2", "o2"),
        ("NEW_PCR0", "n0"),
        ("NEW_PCR1", "n1"),
        ("NEW_PCR2", "n2"),
    ];
    let with_pcrs = |mut k: Kmsctl| {
        for (name, v) in pcrs {
            k = k.env(name, v);
        }
        k
    };
    let four = ["--deployment-type", "thresholdWithEnclave", "--num-parties", "4"];
    let first = finish(
        aws_run(&env, "aws-perf.rhai", &ns, &eks, &four)
            .args(["--tag", "v1", "--pcr0", "o0", "--pcr1", "o1", "--pcr2", "o2"]),
    )
    .await;
    first.code(0);
    // Party 2's new pod crash-loops (matched by name: the upgrade recreates it).
    let (_stage, _cleanup) = crate::k8s::kwok(
        &env,
        "Stage",
        "crash-upgraded",
        serde_json::json!({
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {"matchExpressions": [
                {"key": ".metadata.namespace", "operator": "In", "values": [ns]},
                {"key": ".metadata.name", "operator": "In", "values": ["kms-core-2-core-2"]},
                {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
            ]},
            "weight": 1,
            "next": {"statusTemplate": crate::k8s::CRASH_LOOP_STATUS},
        }),
    )
    .await;
    let r = finish(with_pcrs(aws_run(&env, "rolling-upgrade.rhai", &ns, &eks, &four).args([
        "--old-tag",
        "v1",
        "--new-tag",
        "v2",
        "--parties-to-upgrade",
        "1,2",
        "--wait-timeout",
        "2m",
    ])))
    .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("party-2"), "the failed party is named:\n{}", r.stderr);
    assert!(r.stderr.contains("CrashLoopBackOff"), "with its reason:\n{}", r.stderr);
    assert!(!r.stderr.contains("party-1 ") && !r.stderr.contains("party-3 "), "only party 2 failed:\n{}", r.stderr);
    for (release, tag) in [("kms-core-1", "v2"), ("kms-core-3", "v1"), ("kms-core-4", "v1")] {
        let v = values(&env, &ns, release).await;
        assert_eq!(v["kmsCore"]["image"]["tag"], tag, "{release}");
        assert_eq!(v["kmsCoreClient"]["image"]["tag"], "v2", "{release}: the client is at the new version");
        assert_eq!(
            v["kmsCore"]["thresholdMode"]["tls"]["trustedReleases"],
            serde_json::json!([{"pcr0": "o0", "pcr1": "o1", "pcr2": "o2"}, {"pcr0": "n0", "pcr1": "n1", "pcr2": "n2"}]),
            "{release}"
        );
        assert_eq!(
            v["kmsCore"]["thresholdMode"]["thresholdValue"], 1,
            "{release}: from 4 parties (the toolkit: always 4)"
        );
    }
    let t = values(&env, &ns, "tkms-infra").await;
    assert_eq!(t["kmsParties"]["awsKms"]["recipientAttestationImageSHA384"], "o0");
    assert_eq!(
        t["kmsParties"]["partyOverrides"],
        serde_json::json!([
            {"partyIndex": 1, "awsKms": {"recipientAttestationImageSHA384": "n0"}},
            {"partyIndex": 2, "awsKms": {"recipientAttestationImageSHA384": "n0"}},
        ])
    );
    run(env.kubectl().args(["delete", "namespace", &ns, "--wait=true", "--timeout=120s"])).await;
    eks.delete().await;
}

/// The PRSS phase with a kms-core chart that reads `kmsCore.legacyPrssMask` (the test KMS
/// checkout's template patched the way a newer chart reads it): parties 1 and 2 of 4 are
/// upgraded, then upgraded again with their values reused, the mask at the given threshold and
/// the cert job off; parties 3 and 4 are left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_upgrade_with_the_prss_phase_masks_the_upgraded_parties() {
    let env = testenv_profile!("eks");
    let _pools = EKS_POOLS.lock().await;
    let eks = Eks::new(&env).await;
    let ns = unique("prss");
    let four = ["--deployment-type", "threshold", "--num-parties", "4"];
    finish(aws_run(&env, "aws-perf.rhai", &ns, &eks, &four).args(["--tag", "v1"])).await.code(0);
    let tpl = "charts/kms-core/templates/kms-core-configmap.yaml";
    let text = std::fs::read_to_string(root().join("tests/kms-repo").join(tpl)).expect("template");
    let peers = "    {{- range .peersList }}\n";
    assert_eq!(text.matches(peers).count(), 1, "the template's peers loop moved: update this test");
    let masked = text.replace(
        peers,
        &format!(
            "    {{{{- with $core.legacyPrssMask }}}}\n\n    [threshold.legacy_prss_mask]\n    \
             before_public_decrypt_id = {{{{ .beforePublicDecryptId }}}}\n    \
             before_user_decrypt_id = {{{{ .beforeUserDecryptId }}}}\n    {{{{- end }}}}\n{peers}"
        ),
    );
    let r = finish(
        aws_run(&env, "rolling-upgrade.rhai", &ns, &eks, &four)
            .file(&format!("kms/{tpl}"), &masked)
            .args(["--old-tag", "v1", "--new-tag", "v2", "--parties-to-upgrade", "1,2", "--wait-timeout", "2m"])
            .args(["--enable-prss-threshold", "--legacy-prss-mask-threshold", "42"]),
    )
    .await;
    r.code(0);
    let steps: Vec<String> = r
        .events()
        .iter()
        .filter(|e| e["event"] == "step_finished")
        .map(|e| format!("{} {}", e["name"].as_str().unwrap_or_default(), e["outcome"].as_str().unwrap_or_default()))
        .collect();
    assert!(steps.contains(&"PRSS phase ok".to_string()), "{steps:?}");
    let mask = serde_json::json!({"beforePublicDecryptId": 42, "beforeUserDecryptId": 42});
    for release in ["kms-core-1", "kms-core-2"] {
        let v = values(&env, &ns, release).await;
        assert_eq!(v["kmsCore"]["legacyPrssMask"], mask, "{release}");
        assert_eq!(v["kmsGenCertAndKeys"]["enabled"], false, "{release}");
        assert_eq!(v["kmsCore"]["image"]["tag"], "v2", "{release}: the upgrade's values are reused");
    }
    for release in ["kms-core-3", "kms-core-4"] {
        let v = values(&env, &ns, release).await;
        assert!(v["kmsCore"].get("legacyPrssMask").is_none(), "{release} is not masked: {v}");
        assert_eq!(v["kmsCore"]["image"]["tag"], "v1", "{release}");
    }
    let cms = run(env.kubectl().args(["get", "configmap", "-n", &ns, "-l", "app=kms-core", "-o", "json"])).await;
    let cms: serde_json::Value = serde_json::from_str(&cms).expect("json");
    let mut rendered: Vec<(String, bool)> = cms["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|cm| {
            let toml = cm["data"]["config.toml"].as_str()?;
            let id = toml.lines().find_map(|l| l.trim().strip_prefix("my_id = "))?.to_string();
            Some((id, toml.contains("[threshold.legacy_prss_mask]\nbefore_public_decrypt_id = 42\n")))
        })
        .collect();
    rendered.sort();
    let want: Vec<(String, bool)> =
        [("1", true), ("2", true), ("3", false), ("4", false)].map(|(i, m)| (i.to_string(), m)).to_vec();
    assert_eq!(rendered, want, "the parties' rendered config");
    run(env.kubectl().args(["delete", "namespace", &ns, "--wait=true", "--timeout=120s"])).await;
    eks.delete().await;
}

/// An AWS playbook refuses a kind context before it changes anything (and a kind playbook an EKS
/// one: `kind.rs`), whatever the kubeconfig says is current.
#[test]
fn an_aws_playbook_refuses_a_kind_context() {
    let root = root();
    let kubeconfig = "apiVersion: v1\nkind: Config\ncurrent-context: kind-kms-test\nclusters:\n- name: kind\n  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: kind\n  user: {token: x}\ncontexts:\n- name: kind-kms-test\n  context: {cluster: kind, user: kind}\n";
    for playbook in ["aws-ci.rhai", "aws-perf.rhai", "pr-preview-destroy.rhai", "perf-cleanup.rhai"] {
        let mut k = kmsctl()
            .file("kubeconfig", kubeconfig)
            .env("KUBECONFIG", "kubeconfig")
            .env("KMSCTL_STDLIB_DIR", &root.join("stdlib").display().to_string())
            .args(["run", &root.join("playbooks").join(playbook).display().to_string()]);
        if playbook == "pr-preview-destroy.rhai" {
            k = k.args(["--sweep"]);
        } else if playbook != "perf-cleanup.rhai" {
            k = k.args(["--kms-repo", &root.join("tests/kms-repo").display().to_string()]);
        }
        let r = k.run();
        assert_eq!(r.code, 1, "{playbook}: {}", r.stderr);
        assert!(r.stderr.contains("refusing to run against context 'kind-kms-test'"), "{playbook}: {}", r.stderr);
    }
}

/// An image the registry does not have fails the run before any party is deployed, naming it
/// (the perf workflow's manifest check), instead of 4 parties in ImagePullBackOff later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_fails_before_any_party_is_deployed() {
    let env = testenv_profile!("eks");
    let eks = Eks::new(&env).await;
    let ns = unique("kms-ci-noimg");
    let tag = unique("pr");
    // The docker stand-in's registry: an image this list names is not there.
    let missing = env.dir.join("docker/missing");
    std::fs::create_dir_all(missing.parent().unwrap()).unwrap();
    let mut list = std::fs::read_to_string(&missing).unwrap_or_default();
    list.push_str(&format!("hub.zama.org/ghcr/zama-ai/kms/core-service:{tag}\n"));
    std::fs::write(&missing, list).unwrap();
    let r = finish(aws_run(&env, "aws-ci.rhai", &ns, &eks, &["--tag", &tag, "--image-check-attempts", "1"])).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("image hub.zama.org/ghcr/zama-ai/kms/core-service:{tag} is not in the registry")),
        "{}",
        r.stderr
    );
    let deployed = releases(&env, &ns).await;
    assert!(!deployed.iter().any(|r| r.starts_with("kms-core")), "parties were deployed: {deployed:?}");
    destroy(&env, &eks, &ns).await.code(0);
    eks.delete().await;
}

/// The wait is for *this* deployment's bucket: another Ready S3 in the namespace does not
/// satisfy it (the toolkit took any Ready S3), and when ours fails to reconcile the run fails
/// with Crossplane's reason, before any party is deployed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_deployments_ready_bucket_does_not_satisfy_the_wait() {
    let env = testenv_profile!("eks");
    let eks = Eks::new(&env).await;
    let ns = unique("kms-ci-bucket");
    namespace_with(&env, &ns, &[]).await;
    // Someone else's bucket, Ready at once.
    let s3 = Api::<DynamicObject>::namespaced_with(env.client.clone(), &ns, &tkms("S3", "s3s"));
    let other: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "tkms.zama.ai/v1alpha1", "kind": "S3",
        "metadata": {"name": "other-public", "labels": {"environment": "other"}, "annotations": {"testenv.kmsctl/ready-after": "0s"}},
        "spec": {"bucketName": "other-public", "visibility": "public"},
    }))
    .unwrap();
    s3.create(&Default::default(), &other).await.expect("create the other bucket");
    let values = format!(
        "rehearsal:\n  fail:\n    kms-party-{ns}-public: 'AccessDenied: not authorized to perform s3:CreateBucket'\n"
    );
    let r = finish(
        aws_run(
            &env,
            "aws-ci.rhai",
            &ns,
            &eks,
            &["--deployment-type", "threshold", "--num-parties", "2", "--infra-timeout", "20s"],
        )
        .file("tkms-fail.yaml", &values)
        .args(["--tkms-infra-values", "tkms-fail.yaml"]),
    )
    .await;
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("AccessDenied"), "the bucket's reason is shown:\n{}", r.stderr);
    let deployed = releases(&env, &ns).await;
    assert!(!deployed.iter().any(|r| r.starts_with("kms-core")), "parties were deployed: {deployed:?}");
    run(env.kubectl().args(["delete", "namespace", &ns, "--wait=false"])).await;
    eks.delete().await;
}

/// The run report of a 13-party rehearsal as headless Chromium draws it: a lane per party in
/// order, each with its Helm process, the hooks Helm ran and kmsctl's wait on it, and every
/// wait listed with the objects it waited for. Nothing of a planted secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_of_a_thirteen_party_rehearsal_draws_a_lane_per_party() {
    let env = testenv_profile!("eks");
    let Some(browser) = crate::report::chromium() else { return };
    let _pools = EKS_POOLS.lock().await;
    let eks = Eks::new(&env).await;
    let ns = unique("kms-report");
    let secret = "harbor-Planted-T0ken-report";
    let r = finish(
        aws_run(&env, "aws-perf.rhai", &ns, &eks, &["--num-parties", "13", "--junit", "out/junit.xml"])
            .env("HARBOR_READ_TOKEN", secret),
    )
    .await;
    r.code(0);
    let page = r.path().join("out/report.html");
    let dom = tokio::task::spawn_blocking(move || crate::report::dom(&browser, &page)).await.unwrap();
    let rows = crate::report::rows(&dom);
    let parties: Vec<&crate::report::Row> =
        rows.iter().filter(|r| r.kind == "task" && r.name.starts_with("party-")).collect();
    let names: Vec<&str> = parties.iter().map(|p| p.name.as_str()).collect();
    let want: Vec<String> = (1..=13).map(|i| format!("party-{i}")).collect();
    assert_eq!(names, want, "{dom}");
    for p in &parties {
        assert_eq!(p.outcome, "ok", "{p:?}");
        assert!(p.segments >= 3, "a party's lane has its helm, hook and wait phases: {p:?}");
    }
    use crate::report::segments;
    assert!(segments(&dom, "helm") >= 14, "13 parties and the init release: {}", segments(&dom, "helm"));
    assert!(segments(&dom, "wait") >= 14, "{}", segments(&dom, "wait"));
    assert!(segments(&dom, "hook") >= 13, "{}", segments(&dom, "hook"));
    assert!(dom.contains(r#"<span class="badge ok" id="outcome">ok</span>"#));
    assert!(dom.contains("wait for release kms-core-7"), "the waits table");
    assert!(dom.contains(&format!("StatefulSet {ns}/kms-core-7-core")), "what the wait waited for");
    assert!(!dom.contains(r#"id="failures""#), "no failure section in a run that did not fail");
    assert!(!dom.contains(secret));
    for (p, text) in crate::report::artifacts_text(&r, "out") {
        assert!(!text.contains(secret), "{p} holds the planted secret");
    }
    let junit = std::fs::read_to_string(r.path().join("out/junit.xml")).unwrap();
    assert!(junit.contains(r#"<testcase name="party-13" classname="#), "{junit}");
    assert!(!junit.contains("<failure"), "{junit}");
    run(env.kubectl().args(["delete", "namespace", &ns, "--wait=true", "--timeout=120s"])).await;
    eks.delete().await;
}

/// A failed rehearsal's report shows the failure with its report inline — the pod, its
/// containers' states, the events, the reason — and the failed party's lane; the JUnit file
/// fails that party's test case with the report's summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_of_a_failed_rehearsal_shows_the_failure_and_its_report() {
    let env = testenv_profile!("eks");
    let Some(browser) = crate::report::chromium() else { return };
    let _pools = EKS_POOLS.lock().await;
    let eks = Eks::new(&env).await;
    let ns = unique("kms-report-fail");
    let r = finish(
        aws_run(
            &env,
            "aws-perf.rhai",
            &ns,
            &eks,
            &["--num-parties", "2", "--disable-tls", "--extra-values", "env.yaml", "--junit", "out/junit.xml"],
        )
        .file("env.yaml", "kmsCore:\n  envFrom:\n    configmap:\n      name: party-env-missing\n"),
    )
    .await;
    r.code(1);
    let page = r.path().join("out/report.html");
    let dom = tokio::task::spawn_blocking(move || crate::report::dom(&browser, &page)).await.unwrap();
    assert!(dom.contains(r#"<span class="badge failed" id="outcome">failed</span>"#));
    assert!(dom.contains(r#"<section id="errors">"#), "the run's error");
    let failures =
        dom.split(r#"<section id="failures">"#).nth(1).unwrap_or_else(|| panic!("no failure section: {dom}"));
    let failures = failures.split("</section>").next().unwrap();
    assert!(failures.contains(&format!(r#"data-object="Pod {ns}/kms-core-"#)), "{failures}");
    assert!(failures.contains("configmap \"party-env-missing\" not found"), "the reason: {failures}");
    assert!(failures.contains(r#"<table class="containers">"#), "container states: {failures}");
    assert!(failures.contains("CreateContainerConfigError"), "{failures}");
    assert!(failures.contains(r#"<table class="events">"#), "events: {failures}");
    let rows = crate::report::rows(&dom);
    assert!(rows.iter().any(|r| r.kind == "task" && r.outcome == "failed"), "a failed party's lane: {rows:?}");
    let junit = std::fs::read_to_string(r.path().join("out/junit.xml")).unwrap();
    assert!(junit.contains("<failure"), "{junit}");
    assert!(junit.contains("party-env-missing"), "the report's summary in the failure: {junit}");
    run(env.kubectl().args(["delete", "namespace", &ns, "--wait=true", "--timeout=120s"])).await;
    eks.delete().await;
}

/// Helm release records in `ns`: (release, status) of each release's latest revision.
async fn release_statuses(env: &TestEnv, ns: &str) -> std::collections::BTreeMap<String, String> {
    let secrets = Api::<Secret>::namespaced(env.client.clone(), ns);
    let list = secrets.list(&ListParams::default().labels("owner=helm")).await.expect("release records");
    let mut latest: std::collections::BTreeMap<String, (u64, String)> = Default::default();
    for s in list {
        let l = s.metadata.labels.unwrap_or_default();
        let (Some(name), Some(status)) = (l.get("name"), l.get("status")) else { continue };
        let version: u64 = l.get("version").and_then(|v| v.parse().ok()).unwrap_or(0);
        if latest.get(name).is_none_or(|(v, _)| *v < version) {
            latest.insert(name.clone(), (version, status.clone()));
        }
    }
    latest.into_iter().map(|(k, (_, s))| (k, s)).collect()
}

/// Ctrl-C at three points of a 13-party aws-perf deploy — while the parties install, while
/// they are waited for, while the init release installs — each time: exit 130 within 2 s, no
/// child process left (the process table), no release left pending, no values file or
/// kubeconfig left in TMPDIR; then a re-run completes the deploy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_at_three_points_of_a_thirteen_party_deploy_leaves_nothing_behind_and_a_rerun_completes() {
    let env = testenv_profile!("eks");
    let _pools = EKS_POOLS.lock().await;
    let eks = Eks::new(&env).await;
    let ns = unique("aws-perf-ctrlc");
    let tmp = tempfile::tempdir().expect("tmp");
    // The init Job's pod takes 3 s (a kwok stage): the init release stays pending-install long
    // enough to be interrupted there (on simulated nodes it is otherwise done in milliseconds).
    let (slow_init, _stage) = crate::k8s::pod_stage(&env, "slow-init", 3000, crate::k8s::SUCCEEDED_STATUS).await;
    let extra = format!("kmsInit:\n  podLabels:\n    testenv.kmsctl/stage: {slow_init}\n");
    let deploy = || {
        aws_run(
            &env,
            "aws-perf.rhai",
            &ns,
            &eks,
            &["--deployment-type", "threshold", "--num-parties", "13", "--extra-values", "slow-init.yaml"],
        )
        .file("slow-init.yaml", &extra)
        .env("TMPDIR", &tmp.path().display().to_string())
    };
    let party = |r: &str| r.starts_with("kms-core-") && r != "kms-core-init";
    type Point = fn(&std::collections::BTreeMap<String, String>) -> bool;
    let points: [(&str, Point); 3] = [
        ("a party release installing", |s| {
            s.iter().any(|(r, st)| r.starts_with("kms-core-") && r != "kms-core-init" && st == "pending-install")
        }),
        ("party releases recorded, their pods waited for", |s| {
            s.iter().any(|(r, st)| r.starts_with("kms-core-") && r != "kms-core-init" && st == "deployed")
                && !s.contains_key("kms-core-init")
        }),
        ("the init release installing", |s| s.get("kms-core-init").is_some_and(|st| st == "pending-install")),
    ];
    for (what, reached) in points {
        let mut run = deploy().spawn();
        // Its output is read away (a full pipe would block it).
        let out = run.child.stdout.take().expect("stdout");
        let err = run.child.stderr.take().expect("stderr");
        let drain = std::thread::spawn(move || std::io::read_to_string(out).unwrap_or_default());
        let _drain_err = std::thread::spawn(move || std::io::read_to_string(err).unwrap_or_default());
        crate::testenv::within(120, what, async {
            while !reached(&release_statuses(&env, &ns).await) {
                assert!(run.child.try_wait().expect("try_wait").is_none(), "the deploy ended before {what}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await;
        let t = std::time::Instant::now();
        run.signal("INT");
        let status = super::exited(run).await;
        let took = t.elapsed();
        let events = drain.join().expect("drain");
        assert_eq!(
            status.code(),
            Some(130),
            "interrupted at {what}:\n{}",
            &events[events.len().saturating_sub(3000)..]
        );
        assert!(took < std::time::Duration::from_secs(2), "interrupted at {what}: the exit took {took:?}");
        assert_eq!(
            crate::helm::live_processes(&ns),
            Vec::<String>::new(),
            "interrupted at {what}: processes outlived kmsctl"
        );
        let statuses = release_statuses(&env, &ns).await;
        let pending: Vec<_> = statuses.iter().filter(|(_, s)| s.starts_with("pending-")).collect();
        assert!(pending.is_empty(), "interrupted at {what}: left pending: {pending:?}");
        let left: Vec<String> = std::fs::read_dir(tmp.path())
            .expect("tmp")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("kmsctl-"))
            .collect();
        assert_eq!(left, Vec::<String>::new(), "interrupted at {what}: files left in TMPDIR");
        assert!(statuses.keys().any(|r| party(r)), "interrupted at {what}: no party release was recorded");
    }
    let r = finish(deploy()).await;
    r.code(0);
    let statuses = release_statuses(&env, &ns).await;
    assert_eq!(statuses.len(), 16, "13 parties, init, tkms-infra, sync-secrets: {statuses:?}");
    assert!(statuses.values().all(|s| s == "deployed"), "{statuses:?}");
    let job = Api::<Job>::namespaced(env.client.clone(), &ns).get("kms-core-init-threshold-init").await;
    assert_eq!(job.expect("init job").status.and_then(|s| s.succeeded), Some(1));
    // 13 parties fill the spot pool: the next 13-party test needs it empty.
    run(env.kubectl().args(["delete", "namespace", &ns, "--wait=true", "--timeout=120s"])).await;
    eks.delete().await;
}
