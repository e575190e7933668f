//! The kind playbooks end to end, as the workflows run them, on the simulated kind cluster
//! (`TESTENV_PROFILE=kind`: a tainted control plane and one big worker) with the rehearsal's
//! stand-ins for kind and docker (no container engine runs here), moto as the S3 that
//! LocalStack would be, and tests/kms-repo as the KMS checkout (copied: the run writes the TLS
//! certificates into it, as the toolkit did).

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;
use serde_json::Value;

use super::{releases, values};
use crate::harness::{Kmsctl, kmsctl};
use crate::k8s::finish;
use crate::testenv::{TestEnv, run, testenv_profile, unique};

fn root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).to_path_buf()
}

/// The kind stand-in maps one cluster onto the environment's nodes at a time: tests that make
/// one take turns, and leave none behind (deleting a cluster deletes the namespaces made in it,
/// and waits for them, so the next test has the worker to itself).
static ONE_CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A turn with the kind environment: no kind cluster exists when it starts or after it ends.
pub(crate) struct Turn {
    _lock: tokio::sync::MutexGuard<'static, ()>,
    kind: std::process::Command,
}

pub(crate) async fn turn(env: &TestEnv) -> Turn {
    let lock = ONE_CLUSTER.lock().await;
    let mut kind = std::process::Command::new(env.dir.join("standins/kind"));
    kind.args(["delete", "clusters", "--all"])
        .env("TESTENV_DIR", &env.dir)
        .env("TESTENV_KUBECONFIG", &env.kubeconfig)
        .env("KUBECONFIG", "/dev/null")
        .stdout(std::process::Stdio::null());
    let mut t = Turn { _lock: lock, kind };
    t.clear();
    t
}

impl Turn {
    fn clear(&mut self) {
        let out = self.kind.output().expect("run the kind stand-in");
        assert!(out.status.success(), "kind delete clusters: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.clear();
        }
    }
}

/// `kmsctl run playbooks/<playbook> --namespace <ns> ...` in a temp dir holding a copy of the
/// KMS checkout (`kms/`), against the kind environment through the stand-ins.
pub(crate) fn kind_run(env: &TestEnv, playbook: &str, ns: &str, args: &[&str]) -> Kmsctl {
    let root = root();
    let mut k = kmsctl().tree("kms", &root.join("tests/kms-repo"));
    for (key, v) in env.env_vars() {
        k = k.env(&key, &v.to_string_lossy());
    }
    let standins = env.dir.join("standins");
    k.env("KUBECONFIG", "kubeconfig")
        .env("TESTENV_DIR", &env.dir.display().to_string())
        .env("TESTENV_KUBECONFIG", &env.kubeconfig.display().to_string())
        .env("KMSCTL_KIND", &standins.join("kind").display().to_string())
        .env("KMSCTL_DOCKER", &standins.join("docker").display().to_string())
        .env("KMSCTL_HELM", &env.dir.join("bin/helm").display().to_string())
        .env("KMS_S3_ENDPOINT", &env.aws_endpoint)
        .env("HARBOR_READ_LOGIN", "ci-reader")
        .env("HARBOR_READ_TOKEN", "harbor-Planted-T0ken")
        .env("KMSCTL_STDLIB_DIR", &root.join("stdlib").display().to_string())
        .args(["run", &root.join("playbooks").join(playbook).display().to_string()])
        .args(["--kms-repo", "kms", "--namespace", ns, "--output", "json", "--timeout", "10m"])
        .args(args)
}

/// The keys of a moto bucket.
async fn s3_keys(env: &TestEnv, bucket: &str) -> Vec<String> {
    let sdk = crate::aws::sdk(env).await;
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk).force_path_style(true).build());
    let list = s3.list_objects_v2().bucket(bucket).send().await.unwrap_or_else(|e| panic!("list {bucket}: {e}"));
    let mut keys: Vec<String> = list.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kind_ci_threshold_deploys_four_parties_with_tls_and_the_init_job() {
    let env = testenv_profile!("kind");
    let _turn = turn(&env).await;
    let ns = unique("kind-ci-thr");
    let r =
        finish(kind_run(&env, "kind-ci.rhai", &ns, &["--tag", "v9", "--num-parties", "4", "--no-port-forward"])).await;
    r.code(0);
    assert_eq!(releases(&env, &ns).await, ["kms-core-1", "kms-core-2", "kms-core-3", "kms-core-4", "kms-core-init"]);
    // What kmsctl computed lands on top of the kind base file.
    let v = values(&env, &ns, "kms-core-3").await;
    assert_eq!(v["kmsPeers"]["id"], 3);
    let peers = v["kmsCore"]["thresholdMode"]["peersList"].as_array().expect("peers");
    assert_eq!(peers.len(), 4);
    assert_eq!(peers[3]["host"], "kms-core-4-core-4");
    assert_eq!(v["kmsCore"]["publicVault"]["s3"]["prefix"], "PUB-p3");
    assert_eq!(v["kmsCore"]["thresholdMode"]["thresholdValue"], 1);
    assert_eq!(v["kmsCore"]["thresholdMode"]["tls"]["enabled"], true);
    assert_eq!(v["kmsCore"]["storage"]["storageClassName"], "standard", "kind's class, not the base file's gp3");
    assert_eq!(v["kmsCore"]["image"]["tag"], "v9");
    assert_eq!(v["kmsCore"]["resources"]["requests"]["cpu"], 12, "the base file's requests");
    assert_eq!(v["kmsCoreClient"]["num_majority"], 2);
    // One StatefulSet per party, starting at its id.
    let sts = Api::<StatefulSet>::namespaced(env.client.clone(), &ns);
    for id in 1..=4 {
        let s = sts.get(&format!("kms-core-{id}-core")).await.expect("statefulset");
        let start = s.spec.and_then(|s| s.ordinals).and_then(|o| o.start);
        assert_eq!(start, Some(id), "party {id}'s first ordinal");
    }
    let job = Api::<Job>::namespaced(env.client.clone(), &ns).get("kms-core-init-threshold-init").await;
    assert_eq!(job.expect("init job").status.and_then(|s| s.succeeded), Some(1));
    // TLS: each party's certificate and key where the chart reads them, and the combination.
    let keys = s3_keys(&env, "kms-public").await;
    for id in 1..=4 {
        assert!(keys.contains(&format!("PUB-p{id}/CACert/cert.pem")), "{keys:?}");
        assert!(keys.contains(&format!("PUB-p{id}/PrivateKey/key.pem")), "{keys:?}");
    }
    assert!(keys.contains(&"certs/cert_combined.pem".to_string()), "{keys:?}");
    let combined = std::fs::read_to_string(r.path().join("kms/ci/kube-testing/certs/cert_combined.pem")).unwrap();
    assert_eq!(combined.matches("BEGIN CERTIFICATE").count(), 4);
    assert!(!r.path().join("kms/ci/kube-testing/certs/key_kms-core-1-core-1.pem").exists(), "keys stay off disk");
    for text in [&r.stdout, &r.stderr] {
        assert!(!text.contains("harbor-Planted-T0ken"), "the registry token leaked:\n{text}");
        assert!(!text.contains("PRIVATE KEY"), "a TLS key leaked:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kind_ci_centralized_is_one_release_without_init_or_tls() {
    let env = testenv_profile!("kind");
    let _turn = turn(&env).await;
    let ns = unique("kind-ci-cen");
    let r =
        finish(kind_run(&env, "kind-ci.rhai", &ns, &["--deployment-type", "centralized", "--no-port-forward"])).await;
    r.code(0);
    assert_eq!(releases(&env, &ns).await, ["kms-core"]);
    let v = values(&env, &ns, "kms-core").await;
    assert_eq!(v["kmsCore"]["thresholdMode"]["enabled"], false);
    assert_eq!(v["kmsCore"]["thresholdMode"]["tls"]["enabled"], false);
    assert_eq!(v["kmsCoreClient"]["nameOverride"], "kms-core-client");
    let sts = Api::<StatefulSet>::namespaced(env.client.clone(), &ns).get("kms-core-core").await.expect("sts");
    assert_eq!(sts.spec.and_then(|s| s.ordinals).and_then(|o| o.start), Some(1));
    assert!(Api::<Job>::namespaced(env.client.clone(), &ns).get("kms-core-init-threshold-init").await.is_err());
}

/// kind-local: the developer overlays (dev-minimal.yaml) layered last, ~/dockerconfig.yaml as
/// the registry credentials, and the resource estimate, which goes on without a terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kind_local_threshold_layers_the_developer_overlays() {
    let env = testenv_profile!("kind");
    let _turn = turn(&env).await;
    let ns = unique("kind-local-thr");
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("dockerconfig.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata: {name: registry-credentials}\ntype: kubernetes.io/dockerconfigjson\n\
         data: {.dockerconfigjson: eyJhdXRocyI6e319}\n",
    )
    .unwrap();
    let r = finish(
        kind_run(&env, "kind-local.rhai", &ns, &["--num-parties", "2", "--no-port-forward"])
            .env("HOME", &home.path().display().to_string()),
    )
    .await;
    r.code(0);
    assert_eq!(releases(&env, &ns).await, ["kms-core-1", "kms-core-2", "kms-core-init"]);
    let v = values(&env, &ns, "kms-core-2").await;
    let dev = yaml_file(&root().join("tests/kms-repo/ci/values/overrides/dev-minimal.yaml"));
    assert_eq!(
        v["kmsCore"]["resources"], dev["kmsCore"]["resources"],
        "dev-minimal.yaml's resources win over the base file's"
    );
    assert_eq!(v["kmsCore"]["thresholdMode"]["peersList"].as_array().map(Vec::len), Some(2));
    assert!(crate::k8s::logs(&r.events()).iter().any(|l| l.starts_with("kind-local needs ")), "the estimate");
}

/// kind-local centralized with `--build`: the images are built with the requested tags (not
/// always latest-dev) and loaded into the worker, so no pull and no credentials are needed —
/// without `~/dockerconfig.yaml`, which is said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kind_local_centralized_builds_and_loads_its_images() {
    let env = testenv_profile!("kind");
    let _turn = turn(&env).await;
    let ns = unique("kind-local-cen");
    let home = tempfile::tempdir().unwrap();
    let r = finish(
        kind_run(
            &env,
            "kind-local.rhai",
            &ns,
            &["--deployment-type", "centralized", "--build", "--tag", "pr-7", "--yes", "--no-port-forward"],
        )
        .env("HOME", &home.path().display().to_string()),
    )
    .await;
    r.code(0);
    assert_eq!(releases(&env, &ns).await, ["kms-core"]);
    let v = values(&env, &ns, "kms-core").await;
    assert_eq!(v["kmsCore"]["resources"]["requests"]["cpu"], 12, "centralized deployments never read dev-minimal.yaml");
    assert_eq!(v["kmsCore"]["image"]["pullPolicy"], "IfNotPresent", "kind-loaded images are not pulled again");
    let logs = crate::k8s::logs(&r.events());
    assert!(logs.iter().any(|l| l.contains("dockerconfig.yaml not found")), "a missing ~/dockerconfig.yaml is said");
    let loads = std::fs::read_to_string(env.dir.join("kind/loads.log")).unwrap_or_default();
    for image in ["hub.zama.org/ghcr/zama-ai/kms/core-service:pr-7", "hub.zama.org/ghcr/zama-ai/kms/core-client:pr-7"] {
        assert!(loads.contains(image), "{image} loaded into the worker:\n{loads}");
    }
}

/// A later values file cannot change what kmsctl computes (the toolkit let an extra file's
/// `peersList: []` wipe the peers); a base file's empty list is simply below kmsctl's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_computed_peers_win_over_the_base_file_and_an_extra_file_may_not_touch_them() {
    let env = testenv_profile!("kind");
    let _turn = turn(&env).await;
    let ns = unique("kind-layers");
    let r = kind_run(&env, "kind-ci.rhai", &ns, &["--extra-values", "wipe.yaml", "--no-port-forward"])
        .file("wipe.yaml", "kmsCore:\n  thresholdMode:\n    peersList: []\n")
        .code(2)
        .run();
    assert!(r.stderr.contains("sets kmsCore.thresholdMode.peersList, which kmsctl computes"), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was run"), "{}", r.stderr);
    assert!(releases(&env, &ns).await.is_empty());

    let r = finish(
        kind_run(
            &env,
            "kind-ci.rhai",
            &ns,
            &["--num-parties", "2", "--extra-values", "more.yaml", "--no-port-forward"],
        )
        .file("more.yaml", "kmsCore:\n  metricsLabels:\n    deployment_profile: rehearsal\n"),
    )
    .await;
    r.code(0);
    let v = values(&env, &ns, "kms-core-1").await;
    assert_eq!(v["kmsCore"]["thresholdMode"]["peersList"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["kmsCore"]["metricsLabels"]["deployment_profile"], "rehearsal", "the extra file is applied last");
}

/// A pod that references a ConfigMap nobody made fails the deploy with the kubelet's reason,
/// as on a real cluster (the rehearsal used to make it Ready).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_config_map_fails_the_party_with_its_reason() {
    let env = testenv_profile!("kind");
    let _turn = turn(&env).await;
    let ns = unique("kind-nocm");
    let r = finish(
        kind_run(
            &env,
            "kind-ci.rhai",
            &ns,
            &["--num-parties", "1", "--extra-values", "env.yaml", "--no-port-forward", "--disable-tls"],
        )
        .file("env.yaml", "kmsCore:\n  envFrom:\n    configmap:\n      name: party-env-missing\n"),
    )
    .await;
    r.code(1);
    let error = failure(&r.events());
    assert!(error.contains(r#"configmap "party-env-missing" not found"#), "{error}");
    assert!(error.contains("CreateContainerConfigError"), "{error}");
}

/// Pods that may only run on the control plane, which is tainted, fail with the scheduler's
/// reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_toleration_fails_the_party_with_the_schedulers_reason() {
    let env = testenv_profile!("kind");
    let _turn = turn(&env).await;
    let ns = unique("kind-taint");
    let r = finish(
        kind_run(
            &env,
            "kind-ci.rhai",
            &ns,
            &["--num-parties", "1", "--extra-values", "cp.yaml", "--no-port-forward", "--disable-tls"],
        )
        .file("cp.yaml", "kmsCore:\n  nodeSelector:\n    node-role.kubernetes.io/control-plane: \"\"\n"),
    )
    .await;
    r.code(1);
    let error = failure(&r.events());
    assert!(error.contains("untolerated taint"), "{error}");
}

/// The message of the run's error event (one line, unlike the rendered report).
fn failure(events: &[Value]) -> String {
    events.iter().find(|e| e["event"] == "error").and_then(|e| e["message"].as_str()).unwrap_or_default().to_string()
}

/// A YAML file as JSON, read by kmsctl itself (the tests' package has no YAML parser).
fn yaml_file(path: &Path) -> Value {
    let r = kmsctl()
        .file("in.yaml", &std::fs::read_to_string(path).unwrap())
        .file(
            "p.rhai",
            "import \"fs\" as fs;\nimport \"data\" as data;\nprint(data::to_json(fs::read_yaml(\"in.yaml\")));\n",
        )
        .args(["run", "p.rhai", "--output", "json"])
        .code(0)
        .run();
    let json = r.events().iter().find(|e| e["event"] == "log").and_then(|e| e["message"].as_str().map(str::to_string));
    serde_json::from_str(&json.unwrap_or_default()).unwrap()
}

/// An HTTP GET of `/` on a local port: the status line.
fn http_get(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("connect :{port}: {e}"));
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines().next().unwrap_or_default().to_string()
}

/// manage_lifecycle.sh as a playbook: start returns once the background deploy (kind-ci
/// --block) is ready, and its port-forwards answer on localhost:<base>+100·i; stop stops that
/// process and deletes the kind cluster start made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lifecycle_starts_a_blocking_deploy_and_stops_only_it() {
    let env = testenv_profile!("kind");
    let _turn = turn(&env).await;
    let ns = unique("kind-life");
    let start = finish(kind_run(
        &env,
        "kind-lifecycle.rhai",
        &ns,
        &["--action", "start", "--num-parties", "2", "--disable-tls", "--port-base", "21000"],
    ))
    .await;
    start.code(0);
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(start.path().join(".kmsctl-lifecycle.json")).unwrap()).unwrap();
    let pid = state["pid"].as_i64().expect("pid") as u32;
    assert_eq!(state["created_cluster"], true);
    assert!(alive(pid), "the deploy runs on after start returned");
    let log = std::fs::read_to_string(start.path().join("setup_kms.log")).unwrap();
    assert!(log.contains("Press Ctrl+C to stop port forwarding and exit"), "{log}");
    // (A base below the ephemeral range: a port there is never some connection's source port.)
    for port in [21100, 21200] {
        let status = http_get(port);
        assert!(status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200"), "port {port}: {status}");
    }
    // Stop, from the same directory (where start left its state).
    let dir = start.path();
    let stop = finish(
        start
            .again()
            .env("KUBECONFIG", &dir.join("kubeconfig").display().to_string())
            .env("TESTENV_DIR", &env.dir.display().to_string())
            .env("TESTENV_KUBECONFIG", &env.kubeconfig.display().to_string())
            .env("KMSCTL_KIND", &env.dir.join("standins/kind").display().to_string())
            .env("KMSCTL_STDLIB_DIR", &root().join("stdlib").display().to_string())
            .args(["run", &root().join("playbooks/kind-lifecycle.rhai").display().to_string(), "--action", "stop"])
            .args(["--namespace", &ns, "--kms-repo", "kms", "--output", "json"]),
    )
    .await;
    stop.code(0);
    assert!(
        crate::k8s::logs(&stop.events()).iter().any(|l| l.contains(&format!("deleted kind cluster {ns}: true"))),
        "{:?}",
        crate::k8s::logs(&stop.events())
    );
    assert!(!alive(pid), "the background deploy stopped");
    assert!(std::net::TcpStream::connect(("127.0.0.1", 21100)).is_err(), "its port-forwards went with it");
}

/// A live process (a zombie is not: an orphan may stay unreaped where pid 1 does not reap).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|st| st.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// `--enable-metrics`: kube-prometheus-stack (a stand-in chart at the pinned version, served
/// from a local repository) in `monitoring`, the Grafana Cloud credentials in a Secret, the
/// remote-write URL merged into the values file's first entry (keeping its basicAuth) — and
/// neither the URL nor the password in kmsctl's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_metrics_installs_the_stack_with_its_secrets_off_argv_and_output() {
    let env = testenv_profile!("kind");
    let _turn = turn(&env).await;
    let ns = unique("kind-metrics");
    let repo = crate::helm::serve_charts(&env, &[root().join("tests/charts/kube-prometheus-stack")]).await;
    let url = "https://prom.example/api/prom/push?token=planted-Url-S3cret";
    let r = finish(
        kind_run(
            &env,
            "kind-ci.rhai",
            &ns,
            &["--num-parties", "1", "--enable-metrics", "--no-port-forward", "--disable-tls"],
        )
        .args(["--prometheus-repo", &repo.url, "--github-run-id", "4242"])
        .env("GRAFANA_CLOUD_PROM_URL", url)
        .env("GRAFANA_CLOUD_PROM_USERNAME", "123456")
        .env("GRAFANA_CLOUD_PROM_PASSWORD", "planted-Prom-Passw0rd"),
    )
    .await;
    r.code(0);
    let v = values(&env, "monitoring", "kube-prometheus-stack").await;
    let write = &v["prometheus"]["prometheusSpec"]["remoteWrite"][0];
    assert_eq!(write["url"], url);
    assert_eq!(write["basicAuth"]["username"]["name"], "grafana-cloud-prom-auth", "the values file's entry is kept");
    assert_eq!(v["prometheus"]["prometheusSpec"]["externalLabels"]["ci_run_id"], "4242");
    let party = values(&env, &ns, "kms-core-1").await;
    assert_eq!(party["kmsCore"]["serviceMonitor"]["enabled"], true);
    let secret = run(env.kubectl().args([
        "get",
        "secret",
        "grafana-cloud-prom-auth",
        "-n",
        "monitoring",
        "-o",
        "jsonpath={.data.password}",
    ]))
    .await;
    assert!(!secret.is_empty(), "the password is in the Secret");
    for text in [&r.stdout, &r.stderr] {
        assert!(!text.contains("planted-Url-S3cret"), "the remote-write URL leaked:\n{text}");
        assert!(!text.contains("planted-Prom-Passw0rd"), "the password leaked:\n{text}");
    }
}

/// `--collect-logs` after a deploy: `logs/<pod>.log` in the working directory for every party,
/// found by the chart's labels (the toolkit's selector matched none), and every container's log
/// in the artifacts dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_logs_writes_the_files_the_workflows_upload() {
    let env = testenv_profile!("kind");
    let _turn = turn(&env).await;
    let ns = unique("kind-logs");
    let deployed =
        finish(kind_run(&env, "kind-ci.rhai", &ns, &["--num-parties", "2", "--no-port-forward", "--disable-tls"]))
            .await;
    deployed.code(0);
    let dir = deployed.path();
    let r = finish(
        deployed
            .again()
            .env("KUBECONFIG", &dir.join("kubeconfig").display().to_string())
            .env("KMSCTL_STDLIB_DIR", &root().join("stdlib").display().to_string())
            .args(["run", &root().join("playbooks/deploy.rhai").display().to_string()])
            .args([
                "--target",
                "kind-ci",
                "--namespace",
                &ns,
                "--num-parties",
                "2",
                "--collect-logs",
                "--kms-repo",
                "kms",
            ])
            .args(["--artifacts", "art", "--output", "json"]),
    )
    .await;
    r.code(0);
    for pod in ["kms-core-1-core-1", "kms-core-2-core-2"] {
        assert!(dir.join(format!("logs/{pod}.log")).exists(), "logs/{pod}.log");
        assert!(dir.join(format!("art/logs/{pod}.kms-core.log")).exists(), "art/logs/{pod}.kms-core.log");
    }
}
