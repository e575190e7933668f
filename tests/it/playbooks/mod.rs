//! The project's playbooks, run as users run them (`kmsctl run playbooks/...`): their contract
//! without a cluster here, end to end on the simulated kind cluster in `kind`.

mod aws;
mod bluegreen;
mod canary;
mod chartci;
mod kind;
mod perf;
mod release;

use crate::harness::kmsctl;
use crate::testenv::unique;

/// The values helm holds for a release (`helm get values -o json`).
pub(super) async fn values(env: &crate::testenv::TestEnv, ns: &str, release: &str) -> serde_json::Value {
    let out = crate::testenv::run(env.helm().args(["get", "values", release, "-n", ns, "-o", "json"])).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("values of {release}: {e}: {out}"))
}

/// The releases in a namespace, sorted.
pub(super) async fn releases(env: &crate::testenv::TestEnv, ns: &str) -> Vec<String> {
    let out = crate::testenv::run(env.helm().args(["list", "-n", ns, "-q"])).await;
    let mut names: Vec<String> = out.lines().map(str::to_string).collect();
    names.sort();
    names
}

/// `kmsctl run playbooks/<playbook>` against the test cluster with this checkout's stdlib, JSON
/// events on stdout, artifacts under `art/`, and a 3-minute deadline.
pub(super) fn run_playbook(env: &crate::testenv::TestEnv, playbook: &str) -> crate::harness::Kmsctl {
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    crate::harness::kmsctl()
        .env("KUBECONFIG", &env.kubeconfig.display().to_string())
        .env("KMSCTL_STDLIB_DIR", &root.join("stdlib").display().to_string())
        .args(["run", &root.join("playbooks").join(playbook).display().to_string()])
        .args(["--output", "json", "--artifacts", "art", "--timeout", "3m"])
}

/// `kmsctl gate <action> <target>` against the test cluster (answers a run waiting at a gate).
pub(super) fn gate(env: &crate::testenv::TestEnv, action: &str, target: &str) -> crate::harness::Run {
    crate::harness::kmsctl()
        .env("KUBECONFIG", &env.kubeconfig.display().to_string())
        .args(["gate", action, target])
        .run()
}

/// How a background run ended, waited for off the test's runtime.
pub(super) async fn exited(run: crate::harness::Running) -> std::process::ExitStatus {
    let mut run = run;
    tokio::task::spawn_blocking(move || run.child.wait().expect("wait")).await.expect("join")
}

/// A weight-1 kwok Stage crash-looping the Pending pods of namespace `ns` that have `labels`
/// and match `more` (kwok match expressions); removed with the returned guard.
pub(super) async fn crash_loop(
    env: &crate::testenv::TestEnv,
    prefix: &str,
    ns: &str,
    labels: serde_json::Value,
    more: &[serde_json::Value],
) -> (String, crate::k8s::Cleanup) {
    let mut exprs = vec![
        serde_json::json!({"key": ".metadata.namespace", "operator": "In", "values": [ns]}),
        serde_json::json!({"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}),
        serde_json::json!({"key": ".status.phase", "operator": "In", "values": ["Pending"]}),
    ];
    exprs.extend(more.iter().cloned());
    crate::k8s::kwok(
        env,
        "Stage",
        prefix,
        serde_json::json!({
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {"matchLabels": labels, "matchExpressions": exprs},
            "weight": 1,
            "next": {"statusTemplate": crate::k8s::CRASH_LOOP_STATUS},
        }),
    )
    .await
}

fn root() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/..").to_string()
}

#[test]
fn deploy_help_lists_the_toolkit_flags() {
    let root = root();
    let r = kmsctl().args(["run", &format!("{root}/playbooks/deploy.rhai"), "--help"]).code(0).run();
    let canonical = std::fs::canonicalize(&root).expect("root").display().to_string();
    insta::assert_snapshot!(r.stdout.replace(&canonical, "[root]"));
}

#[test]
fn aws_perf_help_documents_every_parameter() {
    let root = root();
    let r = kmsctl().args(["run", &format!("{root}/playbooks/aws-perf.rhai"), "--help"]).code(0).run();
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
    assert!(r.stderr.contains("--deployment-type must be one of: threshold, centralized,"), "{}", r.stderr);
    assert!(r.stderr.contains("got 'treshold' (did you mean 'threshold'?)"), "{}", r.stderr);
    assert!(r.stderr.contains("nothing was run"), "{}", r.stderr);
}

/// No kind, no cluster: a run gets past its parameters and fails later, never with exit 2.
fn without_a_cluster(playbook: &str, args: &[&str]) -> crate::harness::Run {
    let root = root();
    kmsctl()
        .env("KUBECONFIG", "/nonexistent")
        .env("KMSCTL_KIND", "/nonexistent/kind")
        .env("KMSCTL_DOCKER", "/nonexistent/docker")
        .env("KMSCTL_STDLIB_DIR", &format!("{root}/stdlib"))
        .args(["run", &format!("{root}/{playbook}"), "--kms-repo", &format!("{root}/tests/kms-repo")])
        .args(args)
        .run()
}

/// The command lines of the KMS workflows, exactly as they write them, are accepted.
#[test]
fn the_workflows_command_lines_are_accepted() {
    for line in [
        "playbooks/deploy.rhai --target kind-ci --namespace kms-test-threshold --deployment-type threshold --collect-logs",
        "playbooks/deploy.rhai --target kind-ci --namespace kms-test-threshold --tag latest-dev --deployment-type threshold --num-parties 4 --block --enable-tls --enable-metrics",
        "playbooks/deploy.rhai --target kind-local --build",
        "playbooks/aws-perf.rhai --target aws-perf --namespace kms-ci --deployment-type threshold --core-tag v0.14.0 --client-tag v0.14.0 --num-parties 13 --kms-chart-version 1.9.1 --tkms-infra-version 0.3.2",
        "playbooks/deploy.rhai --target aws-perf --namespace kms-ci --deployment-type thresholdWithEnclave --core-tag a --client-tag b --num-parties 13 --kms-chart-version repository --tkms-infra-version 0.3.2",
        "playbooks/aws-ci.rhai --target aws-ci --namespace kms-ci-alice-812 --deployment-type thresholdWithEnclave --tag abc123 --num-parties 4",
    ] {
        let mut args: Vec<&str> = line.split(' ').collect();
        let playbook = args.remove(0);
        let r = without_a_cluster(playbook, &args);
        assert_ne!(r.code, 2, "{line}\n{}", r.stderr);
        assert!(!r.stderr.contains("nothing was run"), "{line}\n{}", r.stderr);
    }
}

/// Combinations that cannot work are refused before anything runs, pointing at the flag.
#[test]
fn impossible_combinations_are_refused_before_anything_runs() {
    let marker = tempfile::tempdir().unwrap();
    // A kind that records being called: nothing may reach it.
    let kind = marker.path().join("kind");
    std::fs::write(&kind, format!("#!/bin/sh\ntouch {}/called\nexit 1\n", marker.path().display())).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&kind, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for (line, want) in [
        ("--target kind-ci --deployment-type thresholdWithEnclave", "needs AWS Nitro enclaves"),
        ("--target kind-local --deployment-type centralizedWithEnclave", "needs AWS Nitro enclaves"),
        (
            "--target kind-ci --deployment-type centralized --num-parties 13",
            "a centralized deployment has exactly 1 party, not 13",
        ),
        (
            "--target aws-perf --deployment-type centralized --enable-tls",
            "on aws-perf, TLS is only valid for threshold deployment types",
        ),
        ("--target aws-ci --build", "--build builds images into a kind cluster"),
        ("--target aws-perf --enable-metrics", "--enable-metrics installs a Prometheus stack on kind only"),
        ("--target kind-ci --pcr0 abc", "--pcr0 is an enclave attestation value"),
        ("--target kind-ci --extra-values /nonexistent/x.yaml", "values file /nonexistent/x.yaml does not exist"),
        ("--target kind-ci --eks-cluster perf", "--eks-cluster is for the AWS targets, not kind-ci"),
        ("--target aws-ci --owner a:b", "--owner 'a:b' cannot be a label value"),
        ("--target kind-ci --tkms-infra-values x.yaml", "--tkms-infra-values is for the AWS targets"),
        ("--target aws-perf --tkms-infra-values /nonexistent/t.yaml", "values file /nonexistent/t.yaml does not exist"),
    ] {
        let args: Vec<&str> = line.split(' ').collect();
        let root = root();
        let r = kmsctl()
            .env("KUBECONFIG", "/nonexistent")
            .env("KMSCTL_KIND", &kind.display().to_string())
            .env("KMSCTL_STDLIB_DIR", &format!("{root}/stdlib"))
            .args(["run", &format!("{root}/playbooks/deploy.rhai")])
            .args(args)
            .code(2)
            .run();
        assert!(r.stderr.contains(want), "{line}: want {want:?}\n{}", r.stderr);
        assert!(r.stderr.contains("nothing was run"), "{line}\n{}", r.stderr);
    }
    assert!(!marker.path().join("called").exists(), "kind was called");
}

/// Refused inputs change nothing, on a real cluster too: with the test cluster's kubeconfig and
/// a namespace of its own (holding a ConfigMap), every refused command line exits 2 and the
/// namespace and every object in it keep their resource versions; no release, no new object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_inputs_leave_the_cluster_unchanged() {
    let env = crate::testenv::testenv!();
    let ns = env.namespace("refused").await;
    crate::testenv::run(env.kubectl().args(["create", "configmap", "kept", "--from-literal=a=1", "-n", &ns.name]))
        .await;
    let kinds = "configmaps,secrets,serviceaccounts,deployments,statefulsets,jobs,services,persistentvolumeclaims";
    let state = || async {
        let objects = crate::testenv::run(
            env.kubectl()
                .args(["get", kinds, "-n", &ns.name, "-o"])
                .arg(r#"jsonpath={range .items[*]}{.kind}/{.metadata.name}@{.metadata.resourceVersion}{"\n"}{end}"#),
        )
        .await;
        let own = crate::testenv::run(env.kubectl().args([
            "get",
            "namespace",
            &ns.name,
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ]))
        .await;
        let mut lines: Vec<String> = objects.lines().map(str::to_string).collect();
        lines.sort();
        (own, lines, releases(&env, &ns.name).await)
    };
    // The namespace's default ServiceAccount is made by a controller just after the namespace.
    crate::testenv::within(30, "the default ServiceAccount", async {
        while !state().await.1.iter().any(|l| l.starts_with("ServiceAccount/default@")) {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await;
    let before = state().await;
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    for line in [
        "--target aws-ci --deployment-type thresholdWithEnclave --num-parties 4 --bogus",
        "--target aws-perf --deployment-type centralized --num-parties 13",
        "--target aws-perf --deployment-type centralized --enable-tls",
        "--target aws-ci --num-parties many",
        "--target aws-ci --num-parties 101",
        "--target aws-ci --build",
        "--target aws-ci --owner a:b",
        "--target aws-perf --tkms-infra-values /nonexistent/t.yaml",
    ] {
        kmsctl()
            .env("KUBECONFIG", &env.kubeconfig.display().to_string())
            .env("KMSCTL_STDLIB_DIR", &format!("{root}/stdlib"))
            .args(["run", &format!("{root}/playbooks/deploy.rhai"), "--namespace", &ns.name])
            .args(line.split(' '))
            .code(2)
            .run();
    }
    assert_eq!(state().await, before, "(namespace, objects, releases) after the refused runs");
}

/// Network diagnostics before and after: the parties' interface counters are read inside their
/// pods (kwok's ClusterExec runs the command on this machine, so they are this machine's real
/// counters), the client pod is left out, and after-perf writes the deltas and the traffic summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_diagnostics_snapshot_counters_and_compute_the_deltas() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, PostParams};
    let env = crate::testenv::testenv!();
    let ns = env.namespace("netdiag").await;
    let workdir = tempfile::tempdir().unwrap();
    let (_, _exec) = crate::k8s::kwok(
        &env,
        "ClusterExec",
        "netdiag-exec",
        serde_json::json!({"selector": {"matchNamespaces": [ns.name]}, "execs": [{"local": {"workDir": workdir.path()}}]}),
    )
    .await;
    let pods = Api::<Pod>::namespaced(env.client.clone(), &ns.name);
    for name in ["kms-core-1-core-1", "kms-core-2-core-2", "kms-core-client-0"] {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"app": "kms-core"}},
            "spec": {"containers": [{"name": "kms-core", "image": "kms-core:test"}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.expect("create pod");
    }
    for name in ["kms-core-1-core-1", "kms-core-2-core-2", "kms-core-client-0"] {
        let running =
            kube::runtime::wait::await_condition(pods.clone(), name, kube::runtime::conditions::is_pod_running());
        tokio::time::timeout(std::time::Duration::from_secs(30), running).await.expect("pod running").expect("watch");
    }
    let root = root();
    let phase = |k: crate::harness::Kmsctl, phase: &str| {
        let mut k = k;
        for (key, v) in env.env_vars() {
            k = k.env(&key, &v.to_string_lossy());
        }
        k.env("KUBECONFIG", &env.kubeconfig.display().to_string())
            .args([
                "run",
                &format!("{root}/playbooks/network-diagnostics.rhai"),
                "--stdlib-dir",
                &format!("{root}/stdlib"),
            ])
            .args(["--namespace", &ns.name, "--phase", phase, "--dir", "diag", "--output", "json"])
            .code(0)
            .run()
    };
    let before = phase(kmsctl(), "before-perf");
    // The window is counted in whole seconds.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let after = phase(before.again(), "after-perf");
    let dir = after.path().join("diag");
    let counters = std::fs::read_to_string(dir.join("before-perf/pod-interface-counters.tsv")).unwrap();
    assert!(counters.contains("kms-core-1-core-1\teth0\trx_bytes\t"), "{counters}");
    assert!(counters.contains("kms-core-2-core-2\tlo\tmtu\t65536"), "{counters}");
    assert!(!counters.contains("kms-core-client-0"), "the client is not a party:\n{counters}");
    let pods_tsv = std::fs::read_to_string(dir.join("before-perf/pods.tsv")).unwrap();
    assert!(pods_tsv.contains("kms-core-client-0\tRunning"), "every app=kms-core pod is listed:\n{pods_tsv}");
    let delta = std::fs::read_to_string(dir.join("after-perf/pod-interface-counter-delta.tsv")).unwrap();
    let rx: Vec<i64> = delta
        .lines()
        .filter(|l| l.starts_with("kms-core-1-core-1\teth0\trx_bytes\t"))
        .map(|l| l.rsplit('\t').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(rx.len(), 1, "{delta}");
    assert!(rx[0] >= 0, "counters only grow: {delta}");
    let traffic = std::fs::read_to_string(dir.join("after-perf/traffic.tsv")).unwrap();
    assert!(traffic.starts_with("# eth0, over "), "{traffic}");
    assert_eq!(traffic.lines().filter(|l| l.starts_with("kms-core-")).count(), 2, "{traffic}");
    assert!(traffic.lines().any(|l| l.starts_with("total\t")), "{traffic}");
}

/// sample-cpu.rhai (sample_core_cpu.sh): the parties' usage from the metrics API (the test
/// environment's stand-in reads the pods' usage annotations) for --duration, then each pod's
/// mean and peak; without --duration until Ctrl-C, which ends it within two seconds with
/// every sample taken in the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_cpu_records_the_parties_usage_for_a_duration_or_until_ctrl_c() {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, PostParams};
    let env = crate::testenv::testenv!();
    let ns = env.namespace("sample-cpu").await;
    let pods = Api::<Pod>::namespaced(env.client.clone(), &ns.name);
    for (name, cpu) in [("kms-core-1-core-1", "4200m"), ("kms-core-2-core-2", "900m"), ("unrelated", "1")] {
        let app = if name == "unrelated" { "other" } else { "kms-core" };
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"app": app},
                "annotations": {"testenv.kmsctl/cpu-usage": cpu, "testenv.kmsctl/memory-usage": "3Gi"}},
            "spec": {"containers": [{"name": "kms-core", "image": "kms-core:test"}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.expect("create pod");
    }
    for name in ["kms-core-1-core-1", "kms-core-2-core-2"] {
        let running =
            kube::runtime::wait::await_condition(pods.clone(), name, kube::runtime::conditions::is_pod_running());
        tokio::time::timeout(std::time::Duration::from_secs(30), running).await.expect("pod running").expect("watch");
    }
    let root = root();
    let sample = |extra: &[&str]| {
        let k = kmsctl().env("KUBECONFIG", &env.kubeconfig.display().to_string()).args([
            "run",
            &format!("{root}/playbooks/sample-cpu.rhai"),
            "--stdlib-dir",
            &format!("{root}/stdlib"),
            "--namespace",
            &ns.name,
            "--interval",
            "250ms",
            "--output",
            "json",
            "--artifacts",
            "art",
        ]);
        k.args(extra)
    };
    let k = sample(&["--duration", "1s"]).code(0);
    let r = tokio::task::spawn_blocking(move || k.run()).await.unwrap();
    let ev = r.events();
    let samples = std::fs::read_to_string(r.path().join("art/core-cpu-samples.log")).expect("samples");
    let lines: Vec<&str> = samples.lines().collect();
    assert!(
        lines.len() >= 6 && lines.len().is_multiple_of(2),
        "two pods, a sample at once then every 250ms for 1s:\n{samples}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.ends_with(" kms-core-1-core-1 4200m 3072Mi") || l.ends_with(" kms-core-2-core-2 900m 3072Mi")),
        "{samples}"
    );
    for (pod, cpu) in [("kms-core-1-core-1", "4200m"), ("kms-core-2-core-2", "900m")] {
        assert_eq!(
            crate::k8s::logged(&ev, &format!("{pod}: ")),
            format!("CPU mean {cpu}, peak {cpu}; memory peak 3072Mi ({} samples)", lines.len() / 2)
        );
    }

    let mut live = crate::k8s::Live::start(sample(&[]));
    live.log("sampling until stopped").await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let t = std::time::Instant::now();
    live.signal("INT");
    let ended = live.end().await;
    assert!(t.elapsed() < std::time::Duration::from_secs(2), "exit took {:?}", t.elapsed());
    assert_eq!(ended.code, 130, "{}", ended.stderr);
    let samples = std::fs::read_to_string(ended.path().join("art/core-cpu-samples.log")).expect("samples");
    assert!(samples.lines().count() >= 4, "what was sampled before Ctrl-C is kept:\n{samples}");
    assert!(!samples.contains("unrelated"), "{samples}");
}

/// rolling-upgrade.rhai refuses, before anything runs, what the toolkit found out late or never:
/// no parties named, a centralized deployment, a PRSS phase the chart cannot do.
#[test]
fn a_rolling_upgrade_that_cannot_work_is_refused_before_anything_runs() {
    let root = root();
    for (line, want) in [
        ("--old-tag a --new-tag b", "--parties-to-upgrade (or --all-upgraded-parties) is required"),
        (
            "--old-tag a --new-tag b --parties-to-upgrade 1 --deployment-type centralized",
            "a rolling upgrade upgrades some parties",
        ),
        (
            "--old-tag a --new-tag b --parties-to-upgrade 1 --enable-prss-threshold",
            "the PRSS phase needs a kms-core chart that reads kmsCore.legacyPrssMask",
        ),
        ("--new-tag b --parties-to-upgrade 1", "--old-tag"),
    ] {
        let r = kmsctl()
            .env("KUBECONFIG", "/nonexistent")
            .env("KMSCTL_STDLIB_DIR", &format!("{root}/stdlib"))
            .args([
                "run",
                &format!("{root}/playbooks/rolling-upgrade.rhai"),
                "--kms-repo",
                &format!("{root}/tests/kms-repo"),
            ])
            .args(line.split(' '))
            .code(2)
            .run();
        assert!(r.stderr.contains(want), "{line}: want {want:?}\n{}", r.stderr);
        assert!(r.stderr.contains("nothing was run"), "{line}\n{}", r.stderr);
    }
}
