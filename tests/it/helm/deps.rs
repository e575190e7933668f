//! Umbrella charts (issue #16, dependencies): `helm::upgrade` and `helm::template` build a
//! local chart's missing or stale dependencies themselves, in a private copy of the chart
//! (the chart directory is never written), once per chart per run however many releases use
//! it; `helm::dependency_build` / `dependency_update` fill the chart's own `charts/` when a
//! playbook asks; a dependency that cannot be built is named with its source.
//!
//! The fixture is `tests/charts/umbrella` (`file://../coordinator`, `values-staging.yaml`).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use super::{helm_playbook, recording_helm, with_helm};
use crate::k8s::{error_of, finish, logged, logs, playbook};
use crate::testenv::{testenv, unique};

fn umbrella() -> PathBuf {
    crate::testenv::chart("umbrella")
}

/// `umbrella` and `coordinator` side by side in a fresh directory, to change or build in place.
fn copy_charts(dir: &Path) -> PathBuf {
    for name in ["umbrella", "coordinator"] {
        let out = std::process::Command::new("cp")
            .arg("-r")
            .arg(crate::testenv::chart(name))
            .arg(dir.join(name))
            .output()
            .expect("cp");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    dir.join("umbrella")
}

/// How many helm command lines of the wrapper's log start with `sub`.
fn count(log: &Path, sub: &str) -> usize {
    let argv = std::fs::read_to_string(log).unwrap_or_default();
    argv.lines().filter(|l| l.split(' ').next() == Some(sub)).count()
}

/// The directory the run's temporary files go to, empty again when the run ended.
fn private_tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn leftovers(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp).expect("tmp").flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()
}

#[tokio::test]
async fn an_umbrella_chart_deploys_without_a_manual_dependency_build() {
    let env = testenv!();
    let ns = env.namespace("helm-umbrella").await;
    let rel = unique("umbrella");
    let chart = umbrella();
    assert!(!chart.join("charts").exists(), "the fixture ships without charts/");
    let tmp = private_tmp();
    let k = helm_playbook(
        &env,
        r#"
        import "k8s" as k8s;
        import "helm" as helm;
        import "log" as log;
        let kc = k8s::connect();
        let r = helm::upgrade(kc, "@REL@", "@CHART@", #{
            namespace: "@NS@", values_files: ["@CHART@/values-staging.yaml"], timeout: "60s" });
        log::info(`release ${r.name} ${r.status} chart ${r.chart} ${r.chart_version}`);
        "#,
        &[("REL", &rel), ("NS", &ns.name), ("CHART", &chart.display().to_string())],
    )
    .env("TMPDIR", &tmp.path().display().to_string());
    let r = finish(k).await;
    r.code(0);
    let ev = r.events();
    assert_eq!(logged(&ev, "release "), format!("{rel} deployed chart umbrella 0.1.0"));
    let built = logs(&ev).into_iter().filter(|m| m.starts_with("chart umbrella: ")).collect::<Vec<_>>();
    assert_eq!(built.len(), 1, "{built:?}");
    assert!(
        built[0].contains("coordinator 0.1.0 is missing from charts/") && built[0].contains("private copy"),
        "{built:?}"
    );
    let cms = Api::<ConfigMap>::namespaced(env.client.clone(), &ns.name);
    let coord = cms.get(&format!("{rel}-coordinator")).await.expect("the subchart's ConfigMap");
    let data = coord.data.unwrap_or_default();
    assert_eq!((data["mode"].as_str(), data["replicas"].as_str()), ("staging", "2"));
    let own = cms.get(&format!("{rel}-umbrella")).await.expect("the umbrella's ConfigMap");
    assert_eq!(own.data.unwrap_or_default()["environment"], "staging");
    // The user's chart is untouched, and the private copy is gone with the run.
    assert!(!chart.join("charts").exists(), "kmsctl wrote charts/ into the chart directory");
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
}

#[tokio::test]
async fn parallel_releases_of_one_umbrella_chart_build_its_dependencies_once() {
    let env = testenv!();
    let ns = env.namespace("helm-umbrella-par").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (wrapper, log) = recording_helm(&env, dir.path());
    let chart = umbrella().display().to_string();
    let k = playbook(
        &env,
        r#"
        import "k8s" as k8s;
        import "helm" as helm;
        import "log" as log;
        let kc = k8s::connect();
        let rs = parallel_map([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], |i| helm::upgrade(kc, `umbrella-${i}`, "@CHART@", #{
            namespace: "@NS@", values: #{ coordinator: #{ replicas: i } }, timeout: "60s" }));
        log::info(`statuses ${rs.map(|r| r.status)}`);
        "#,
        &[("CHART", &chart), ("NS", &ns.name)],
    );
    let r = finish(with_helm(k, &env, &wrapper)).await;
    r.code(0);
    assert_eq!(logged(&r.events(), "statuses "), format!("{:?}", ["deployed"; 13]));
    let argv = std::fs::read_to_string(&log).expect("argv log");
    assert_eq!((count(&log, "dependency"), count(&log, "upgrade")), (1, 13), "{argv}");
    assert!(argv.lines().any(|l| l.starts_with("dependency build ") && l.contains("--skip-refresh")), "{argv}");
    let cms = Api::<ConfigMap>::namespaced(env.client.clone(), &ns.name);
    for i in 1..=13 {
        let cm = cms.get(&format!("umbrella-{i}-coordinator")).await.expect("each release's subchart");
        assert_eq!(cm.data.unwrap_or_default()["replicas"], i.to_string());
    }
}

const TEMPLATE: &str = r#"
    import "helm" as helm;
    import "log" as log;
    try {
        let out = helm::template("x", "@CHART@", #{ values_files: ["@CHART@/values-staging.yaml"] });
        log::info(`rendered coordinator ${out.contains("name: x-coordinator") && out.contains("mode: \"staging\"")}`);
    } catch (e) {
        log::info(`failed ${e.kind} ${e.dependency} ${e.source}`);
        throw e;
    }
"#;

/// `helm::template` needs no cluster: no kubeconfig at all.
#[tokio::test]
async fn template_renders_an_umbrella_chart_with_no_cluster() {
    let env = testenv!();
    let dir = tempfile::tempdir().expect("tempdir");
    let (wrapper, log) = recording_helm(&env, dir.path());
    let k = with_helm(playbook(&env, TEMPLATE, &[("CHART", &umbrella().display().to_string())]), &env, &wrapper)
        .env("KUBECONFIG", "/nonexistent/kubeconfig");
    let r = finish(k).await;
    r.code(0);
    assert_eq!(logged(&r.events(), "rendered coordinator "), "true");
    assert_eq!(count(&log, "dependency"), 1);
}

#[tokio::test]
async fn a_missing_file_dependency_fails_with_its_name_and_source() {
    let env = testenv!();
    let dir = tempfile::tempdir().expect("tempdir");
    let chart = copy_charts(dir.path());
    let yaml = std::fs::read_to_string(chart.join("Chart.yaml")).expect("Chart.yaml");
    std::fs::write(
        chart.join("Chart.yaml"),
        format!("{yaml}  - name: gateway\n    version: 0.3.0\n    repository: file://../gateway\n"),
    )
    .expect("write Chart.yaml");
    let (wrapper, log) = recording_helm(&env, dir.path());
    let k = with_helm(playbook(&env, TEMPLATE, &[("CHART", &chart.display().to_string())]), &env, &wrapper);
    let r = finish(k).await;
    r.code(1);
    let ev = r.events();
    assert_eq!(logged(&ev, "failed "), "not_found gateway file://../gateway");
    let (kind, message) = error_of(&ev);
    assert_eq!(kind, "not_found");
    assert!(message.contains("chart umbrella: dependency gateway from file://../gateway:"), "{message}");
    assert!(message.contains(&format!("{} does not exist", dir.path().join("gateway").display())), "{message}");
    // Refused before helm ran: no dependency build, no render.
    assert_eq!((count(&log, "dependency"), count(&log, "template")), (0, 0));
}

/// helm's own failure is named too: a repository source helm cannot reach.
#[tokio::test]
async fn a_dependency_helm_cannot_fetch_is_named_with_its_source() {
    let env = testenv!();
    let dir = tempfile::tempdir().expect("tempdir");
    let chart = copy_charts(dir.path());
    let yaml = std::fs::read_to_string(chart.join("Chart.yaml")).expect("Chart.yaml");
    std::fs::write(
        chart.join("Chart.yaml"),
        format!("{yaml}  - name: gateway\n    version: 0.3.0\n    repository: oci://127.0.0.1:1/charts\n"),
    )
    .expect("write Chart.yaml");
    let r = finish(with_helm(
        playbook(&env, TEMPLATE, &[("CHART", &chart.display().to_string())]),
        &env,
        &env.dir.join("bin/helm"),
    ))
    .await;
    r.code(1);
    let ev = r.events();
    let (kind, message) = error_of(&ev);
    assert_eq!(kind, "failed", "{message}");
    assert!(message.contains("chart umbrella: dependency gateway from oci://127.0.0.1:1/charts:"), "{message}");
    assert!(message.contains("helm dependency update failed"), "{message}");
    assert!(!chart.join("charts").exists(), "the chart directory is untouched");
}

/// The explicit forms work in the chart directory itself; afterwards the chart is fresh (no
/// build), and a change to a `file://` source makes it stale again (one build).
#[tokio::test]
async fn dependency_update_and_build_fill_the_charts_own_directory_and_staleness_follows_the_source() {
    let env = testenv!();
    let dir = tempfile::tempdir().expect("tempdir");
    let chart = copy_charts(dir.path());
    std::fs::remove_file(chart.join("Chart.lock")).expect("no lock");
    let k = helm_playbook(
        &env,
        r#"
        import "helm" as helm;
        import "log" as log;
        log::info(`updated ${helm::dependency_update("@CHART@").map(|d| `${d.name} ${d.version} ${d.repository}`)}`);
        log::info(`built ${helm::dependency_build("@CHART@", #{ skip_refresh: true }).map(|d| d.name)}`);
        "#,
        &[("CHART", &chart.display().to_string())],
    );
    let r = finish(k).await;
    r.code(0);
    let ev = r.events();
    assert_eq!(logged(&ev, "updated "), r#"["coordinator 0.1.0 file://../coordinator"]"#);
    assert_eq!(logged(&ev, "built "), r#"["coordinator"]"#);
    assert!(chart.join("Chart.lock").exists() && chart.join("charts/coordinator-0.1.0.tgz").exists());

    let (wrapper, log) = recording_helm(&env, dir.path());
    let render = || with_helm(playbook(&env, TEMPLATE, &[("CHART", &chart.display().to_string())]), &env, &wrapper);
    finish(render()).await.code(0);
    assert_eq!(count(&log, "dependency"), 0, "fresh: charts/ matches Chart.lock");

    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(dir.path().join("coordinator/values.yaml"), "mode: changed\nreplicas: 1\n").expect("edit source");
    let r = finish(render()).await;
    r.code(0);
    assert_eq!(count(&log, "dependency"), 1, "stale: the file:// source changed");
    assert!(logs(&r.events()).iter().any(|m| m.contains("coordinator changed in file://../coordinator")));
}

/// A repository source (a chart repository on 127.0.0.1, never added with `repo_add`): no
/// Chart.lock, so kmsctl runs `helm dependency update` in the private copy.
#[tokio::test]
async fn a_repository_dependency_is_fetched_into_the_private_copy() {
    let env = testenv!();
    let repo = super::serve_charts(&env, &[crate::testenv::chart("coordinator")]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let chart = copy_charts(dir.path());
    std::fs::remove_file(chart.join("Chart.lock")).expect("no lock");
    let yaml = std::fs::read_to_string(chart.join("Chart.yaml")).expect("Chart.yaml");
    std::fs::write(chart.join("Chart.yaml"), yaml.replace("file://../coordinator", &repo.url)).expect("Chart.yaml");
    let (wrapper, log) = recording_helm(&env, dir.path());
    let r =
        finish(with_helm(playbook(&env, TEMPLATE, &[("CHART", &chart.display().to_string())]), &env, &wrapper)).await;
    r.code(0);
    assert_eq!(logged(&r.events(), "rendered coordinator "), "true");
    let argv = std::fs::read_to_string(&log).expect("argv log");
    assert!(argv.lines().any(|l| l.starts_with("dependency update ")), "{argv}");
    assert!(!chart.join("charts").exists() && !chart.join("Chart.lock").exists(), "the chart directory is untouched");
}

/// helm 3 builds the dependencies the same way (`dependency build --skip-refresh` exists there).
#[tokio::test]
async fn helm_3_builds_an_umbrella_charts_dependencies_too() {
    let env = testenv!();
    let helm3: PathBuf =
        std::env::var_os("TESTENV_HELM3").map(PathBuf::from).unwrap_or_else(|| env.dir.join("bin/helm3"));
    let k = with_helm(playbook(&env, TEMPLATE, &[("CHART", &umbrella().display().to_string())]), &env, &helm3);
    let r = finish(k).await;
    r.code(0);
    assert_eq!(logged(&r.events(), "rendered coordinator "), "true");
}
