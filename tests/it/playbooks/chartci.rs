//! `playbooks/chart-ci.rhai` on the stand-in KMS checkout (tests/kms-repo, copied into a git
//! repository of its own so the release step has a base to compare with): lint with every ci/
//! values file, render every target × deployment type, install into the test cluster and wait,
//! and the release — a changed template without a version bump refused, a bumped one packaged,
//! pushed to a real OCI registry (crane) and installed from there.

use std::path::{Path, PathBuf};

use crate::harness::{Kmsctl, kmsctl};
use crate::helm::registry;
use crate::k8s::{error_of, finish, logged, logs};
use crate::testenv::{TestEnv, testenv, unique};

/// What the test cluster needs on top of the kind-ci values: no PersistentVolumeClaims (it has
/// no volume provisioner) and no pull secret (nothing creates one here).
const TESTENV_VALUES: &str = "imagePullSecrets: []\nkmsCore:\n  storage:\n    enabled: false\n";

fn root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).to_path_buf()
}

fn git(repo: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.email=ci@example.invalid", "-c", "user.name=ci", "-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A copy of the stand-in checkout in a git repository with one commit (`base`).
fn checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new("cp")
        .arg("-r")
        .arg(root().join("tests/kms-repo"))
        .arg(dir.path().join("kms"))
        .output()
        .expect("cp");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let repo = dir.path().join("kms");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "base"]);
    git(&repo, &["tag", "base"]);
    dir
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).expect("write");
}

/// `kmsctl run playbooks/chart-ci.rhai --kms-repo <repo> ...` against the test cluster.
fn chart_ci(env: &TestEnv, repo: &Path, args: &[&str]) -> Kmsctl {
    let root = root();
    let mut k = kmsctl().file("testenv-values.yaml", TESTENV_VALUES);
    for (key, v) in env.env_vars() {
        if key.starts_with("HELM_") {
            k = k.env(&key, &v.to_string_lossy());
        }
    }
    k.env("KUBECONFIG", &env.kubeconfig.display().to_string())
        .env("KMSCTL_HELM", &env.dir.join("bin/helm").display().to_string())
        .env("KMSCTL_STDLIB_DIR", &root.join("stdlib").display().to_string())
        .args(["run", &root.join("playbooks/chart-ci.rhai").display().to_string()])
        .args(["--kms-repo", &repo.display().to_string(), "--output", "json", "--artifacts", "art", "--timeout", "5m"])
        .args(args)
}

#[tokio::test]
async fn a_changed_template_without_a_version_bump_is_refused() {
    let env = testenv!();
    let dir = checkout();
    let repo = dir.path().join("kms");
    edit(&repo.join("charts/kms-core/templates/kms-core-service.yaml"), "\n", "\n# a change\n");
    let ns = unique("chart-ci-refused");
    let r = finish(chart_ci(
        &env,
        &repo,
        &["--steps", "release", "--base-ref", "base", "--registry", "oci://127.0.0.1:1/charts", "--namespace", &ns],
    ))
    .await;
    r.code(1);
    let ev = r.events();
    let (kind, message) = error_of(&ev);
    assert_eq!(kind, "conflict");
    insta::assert_snapshot!(message, @"charts/kms-core changed since base (charts/kms-core/templates/kms-core-service.yaml) but its version is still 1.9.1: a release would overwrite 1.9.1");
    let error = ev.iter().find(|e| e["event"] == "error").expect("error event");
    assert!(error.to_string().contains("bump version in charts/kms-core/Chart.yaml (e.g. to 1.9.2)"), "{error}");
    // Refused before anything was packaged, pushed or installed.
    assert!(!r.path().join("art/charts").exists(), "a chart was packaged");
    let namespaces = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(env.client.clone());
    assert!(namespaces.get_opt(&ns).await.expect("get namespace").is_none(), "something was installed");

    // A bump below the base version is refused too; a bump above it passes the check.
    edit(&repo.join("charts/kms-core/Chart.yaml"), "version: 1.9.1", "version: 1.9.0");
    let r = finish(chart_ci(
        &env,
        &repo,
        &["--steps", "release", "--base-ref", "base", "--registry", "oci://127.0.0.1:1/c"],
    ))
    .await;
    r.code(1);
    assert!(error_of(&r.events()).1.contains("its version 1.9.0 is not above 1.9.1"), "{:?}", error_of(&r.events()));
}

#[tokio::test]
async fn a_lint_error_fails_the_lint_step_with_its_file_and_line() {
    let env = testenv!();
    let dir = checkout();
    let repo = dir.path().join("kms");
    std::fs::write(
        repo.join("charts/kms-core/templates/broken.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndata:\n  a: {{ .Values.nothere.x }}\n",
    )
    .expect("write");
    let r = finish(chart_ci(&env, &repo, &["--steps", "lint"])).await;
    r.code(1);
    let ev = r.events();
    let file = repo.join("charts/kms-core/templates/broken.yaml").display().to_string();
    let errors: Vec<&serde_json::Value> = ev.iter().filter(|e| e["event"] == "log" && e["level"] == "error").collect();
    // Every lint (the chart's defaults and each ci/ values file) finds it: one line, at line 6.
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let line = errors[0]["message"].as_str().unwrap_or_default();
    assert!(line.starts_with(&format!("{file}:6: ")) && line.ends_with(" (with every values file)"), "{line}");
    assert_eq!(logged(&ev, "linted "), "20 times (chart defaults and 19 ci/ values files): 1 errors, 0 warnings");
    let (kind, message) = error_of(&ev);
    assert_eq!(kind, "failed");
    assert!(message.starts_with("helm lint failed with 20 of 20 values: "), "{message}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.path().join("art/chart-ci/lint.json")).expect("lint.json"))
            .expect("json");
    let findings = report["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{findings:#?}");
    let f = &findings[0];
    assert_eq!(
        (f["severity"].as_str(), f["chart_file"].as_str(), f["line"].as_i64(), f["column"].as_i64()),
        (Some("error"), Some("templates/broken.yaml"), Some(6), Some(15))
    );
    assert_eq!(f["values"].as_array().map(Vec::len), Some(20));
    assert_eq!(report["lints"].as_array().map(Vec::len), Some(20));

    // Under GitHub Actions the finding is an annotation on its line of the template.
    let r =
        finish(chart_ci(&env, &repo, &["--steps", "lint"]).env("GITHUB_ACTIONS", "true").args(["--output", "human"]))
            .await;
    r.code(1);
    let escaped = file.replace(':', "%3A").replace(',', "%2C");
    let annotation = r
        .stderr
        .lines()
        .find(|l| l.starts_with("::error file=") && !l.contains("title="))
        .unwrap_or_else(|| panic!("no annotation:\n{}", r.stderr));
    assert!(annotation.starts_with(&format!("::error file={escaped},line=6,col=15::{file}:6: ")), "{annotation}");
}

#[tokio::test]
async fn chart_ci_end_to_end_lints_renders_installs_and_releases_the_stand_in_chart() {
    let env = testenv!();
    let reg = registry(&env).await;
    let dir = checkout();
    let repo = dir.path().join("kms");
    edit(&repo.join("charts/kms-core/templates/kms-core-service.yaml"), "\n", "\n# a change\n");
    edit(&repo.join("charts/kms-core/Chart.yaml"), "version: 1.9.1", "version: 1.10.0");
    let ns = unique("chart-ci");
    let registry_url = format!("oci://{}/charts", reg.host);
    let r = finish(
        chart_ci(
            &env,
            &repo,
            &[
                "--steps",
                "lint,render,install,release",
                "--base-ref",
                "base",
                "--registry",
                &registry_url,
                "--registry-username",
                "ci",
                "--plain-http",
                "--namespace",
                &ns,
                "--install-parties",
                "2",
                "--install-values",
                "testenv-values.yaml",
            ],
        )
        .env("CHART_REGISTRY_PASSWORD", "hunter2-chart-registry"),
    )
    .await;
    r.code(0);
    let ev = r.events();
    assert_eq!(logged(&ev, "linted "), "20 times (chart defaults and 19 ci/ values files): 0 errors, 0 warnings");
    // kind-local, kind-ci: threshold and centralized; aws-ci, aws-perf: all four types.
    // Threshold deployments are 4 parties and the init release, centralized ones one release.
    assert_eq!(
        logged(&ev, "rendered ").split(" (").next(),
        Some("36 releases of 12 target × deployment type combinations")
    );
    // Rendered by the deploy playbook's own plan, one per combination, manifests included.
    let render = r.path().join("art/chart-ci/render");
    for (combo, release) in [("aws-perf-threshold", "kms-core-4"), ("kind-ci-centralized", "kms-core")] {
        let manifest = render.join(combo).join(format!("plan/helm-kms-test-{release}.yaml"));
        let text = std::fs::read_to_string(&manifest).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
        assert!(text.contains("kind: StatefulSet"), "{text}");
        // An install creates no test pods: the plan renders without them.
        assert!(!text.contains("helm.sh/hook: test"), "{text}");
    }
    let command = std::fs::read_to_string(render.join("aws-ci-thresholdWithEnclave/command.txt")).expect("command.txt");
    assert!(command.contains(" --plan ") && command.contains("--deployment-type thresholdWithEnclave"), "{command}");
    // Each install ran the chart's tests: one per party release (the init release has none).
    let tested: Vec<String> = logs(&ev).into_iter().filter(|m| m.starts_with("helm test: ")).collect();
    assert_eq!(tested, ["helm test: 2 tests of 3 releases passed", "helm test: 2 tests of 3 releases passed"]);
    let installed: Vec<String> = logs(&ev).into_iter().filter(|m| m.starts_with("installed ")).collect();
    assert_eq!(installed.len(), 2, "{installed:?}");
    let chart_dir = repo.join("charts/kms-core").display().to_string();
    assert_eq!(
        installed[0],
        format!(
            r#"installed ["kms-core-1 (kms-core 1.10.0)", "kms-core-2 (kms-core 1.10.0)", "kms-core-init (kms-core 1.10.0)"] in {ns} from {chart_dir}; all ready"#
        )
    );
    assert_eq!(
        installed[1],
        format!(
            r#"installed ["kms-core-1 (kms-core 1.10.0)", "kms-core-2 (kms-core 1.10.0)", "kms-core-init (kms-core 1.10.0)"] in {ns} from {registry_url}/kms-core; all ready"#
        )
    );
    assert_eq!(logged(&ev, "charts/kms-core 1.9.1 → 1.10.0: "), "2 files changed since base");
    assert!(logged(&ev, "pushed ").starts_with(&format!("{registry_url}/kms-core:1.10.0 (sha256:")));
    // Each install cleaned up after itself.
    let namespaces = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(env.client.clone());
    assert!(namespaces.get_opt(&ns).await.expect("get namespace").is_none(), "namespace {ns} left behind");
    // The registry holds the release, and the archive is an artifact.
    let shown = crate::testenv::run(env.helm().args([
        "show",
        "chart",
        &format!("{registry_url}/kms-core"),
        "--version",
        "1.10.0",
        "--plain-http",
    ]))
    .await;
    assert!(shown.contains("version: 1.10.0"), "{shown}");
    assert!(r.path().join("art/charts/kms-core-1.10.0.tgz").is_file());
    for text in [&r.stdout, &r.stderr] {
        assert!(!text.contains("hunter2-chart-registry"), "the registry password leaked:\n{text}");
    }
}

#[tokio::test]
async fn a_failing_chart_test_fails_the_install_step_with_the_pods_report_and_cleans_up() {
    let env = testenv!();
    let dir = checkout();
    let repo = dir.path().join("kms");
    let ns = unique("chart-ci-test-fails");
    // The test pods of this namespace exit 1 (a kubelet's status for a failed container).
    let (_stage, _cleanup) = crate::k8s::kwok(
        &env,
        "Stage",
        "chart-test-fails",
        serde_json::json!({
            "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
            "selector": {"matchExpressions": [
                {"key": ".metadata.namespace", "operator": "In", "values": [ns]},
                {"key": ".metadata.annotations[\"helm.sh/hook\"]", "operator": "In", "values": ["test"]},
                {"key": ".status.phase", "operator": "In", "values": ["Running"]},
            ]},
            "weight": 1,
            "next": {"statusTemplate": "{{ $now := Now }}\ncontainerStatuses:\n{{ range .spec.containers }}\n- name: {{ .name | Quote }}\n  image: {{ .image | Quote }}\n  ready: false\n  restartCount: 0\n  state:\n    terminated: {exitCode: 1, reason: Error, message: \"nc: connection refused\", startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}\n{{ end }}\nphase: Failed\n"},
        }),
    )
    .await;
    let r = finish(chart_ci(
        &env,
        &repo,
        &[
            "--steps",
            "install",
            "--namespace",
            &ns,
            "--install-type",
            "centralized",
            "--install-values",
            "testenv-values.yaml",
        ],
    ))
    .await;
    r.code(1);
    let ev = r.events();
    let (kind, message) = error_of(&ev);
    assert_eq!(kind, "failed", "{message}");
    assert!(
        message.ends_with(&format!(
            "helm test {ns}/kms-core: kms-core-core-test-connection failed: Pod {ns}/kms-core-core-test-connection: pod failed (Error in container connect, exit code 1)"
        )),
        "{message}"
    );
    // The failure report names the pod and why its container ended.
    let summary = r.path().join(format!("art/failures/pod-{ns}-kms-core-core-test-connection/summary.txt"));
    let report = std::fs::read_to_string(&summary).unwrap_or_else(|e| panic!("{}: {e}", summary.display()));
    assert!(report.contains("connect") && report.contains("exit code 1"), "{report}");
    // Cleaned up as after a pass: releases gone, the namespace it made deleted.
    let namespaces = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(env.client.clone());
    assert!(namespaces.get_opt(&ns).await.expect("get namespace").is_none(), "namespace {ns} left behind");
}

#[test]
fn chart_ci_help_documents_every_parameter() {
    let root = root();
    let r = kmsctl().args(["run", &root.join("playbooks/chart-ci.rhai").display().to_string(), "--help"]).code(0).run();
    let canonical = std::fs::canonicalize(&root).expect("root").display().to_string();
    insta::assert_snapshot!(r.stdout.replace(&canonical, "[root]"));
}

#[test]
fn chart_ci_refuses_an_unknown_step_and_a_release_without_a_registry() {
    let root = root();
    let playbook = root.join("playbooks/chart-ci.rhai").display().to_string();
    let repo = root.join("tests/kms-repo").display().to_string();
    let r = kmsctl()
        .env("KMSCTL_STDLIB_DIR", &root.join("stdlib").display().to_string())
        .args(["run", &playbook, "--kms-repo", &repo, "--steps", "lint,relase"])
        .code(2)
        .run();
    assert!(r.stderr.contains("unknown step 'relase'"), "{}", r.stderr);
    let r = kmsctl()
        .env("KMSCTL_STDLIB_DIR", &root.join("stdlib").display().to_string())
        .args(["run", &playbook, "--kms-repo", &repo, "--steps", "release"])
        .code(2)
        .run();
    assert!(r.stderr.contains("--registry oci://<registry>/<path> is"), "{}", r.stderr);
    let r = kmsctl()
        .env("KMSCTL_STDLIB_DIR", &root.join("stdlib").display().to_string())
        .args(["run", &playbook, "--kms-repo", "/nonexistent"])
        .code(2)
        .run();
    assert!(r.stderr.contains("/nonexistent/charts/kms-core is not a chart (no Chart.yaml)"), "{}", r.stderr);
}

/// The bump check's SemVer order, and its answers without a cluster or a registry: a chart
/// unchanged since the base has nothing to release; a chart the base does not have is new.
#[test]
fn the_bump_check_orders_versions_and_knows_an_unchanged_or_new_chart() {
    let root = root();
    let dir = checkout();
    let repo = dir.path().join("kms");
    let r = kmsctl()
        .file(
            "p.rhai",
            &r#"
            import "std/kms/chartci" as chartci;
            import "log" as log;
            let cases = [["1.9.1", "1.9.2"], ["1.10.0", "1.9.9"], ["1.0.0-rc.1", "1.0.0"], ["v1.2.3", "1.2.3"], ["2.0.0+build.5", "2.0.0"], ["1.0.0-alpha", "1.0.0-beta"]];
            log::info(`order ${cases.map(|c| chartci::compare_versions(c[0], c[1]))}`);
            let b = chartci::bump_check(param::repo, "charts/kms-core", "base");
            log::info(`unchanged ${b.changed} ${b.version} ${b.base_version}`);
            try { chartci::bump_check(param::repo, "charts/kms-core", "no-such-ref"); } catch (e) { log::info(`bad ref ${e.kind} ${e.param}`); }
            try { chartci::compare_versions("1.2", "1.2.0"); } catch (e) { log::info(`not semver ${e.message}`); }
            "#
            .replace("param::repo", &format!("{:?}", repo.display().to_string())),
        )
        .env("KMSCTL_STDLIB_DIR", &root.join("stdlib").display().to_string())
        .args(["run", "p.rhai", "--output", "json"])
        .code(0)
        .run();
    let ev = r.events();
    assert_eq!(logged(&ev, "order "), "[-1, 1, -1, 0, 0, -1]");
    assert_eq!(logged(&ev, "unchanged "), "[] 1.9.1 1.9.1");
    assert_eq!(logged(&ev, "bad ref "), "usage base_ref");
    assert_eq!(logged(&ev, "not semver "), "chart version '1.2' is not SemVer (MAJOR.MINOR.PATCH)");

    // `release` on an unchanged chart: nothing to release, no registry contacted.
    let r = kmsctl()
        .env("KMSCTL_STDLIB_DIR", &root.join("stdlib").display().to_string())
        .args(["run", &root.join("playbooks/chart-ci.rhai").display().to_string(), "--output", "json"])
        .args(["--kms-repo", &repo.display().to_string(), "--steps", "release", "--base-ref", "base"])
        .args(["--registry", "oci://127.0.0.1:1/charts"])
        .code(0)
        .run();
    assert_eq!(
        logged(&r.events(), "charts/kms-core has not changed since base: "),
        "nothing to release (1.9.1 is already what base has)"
    );
}
