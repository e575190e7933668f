//! Chart CI primitives (issue #16): `helm::lint` returns helm's findings as data with the file
//! and line they point at, `helm::package_chart` → `helm::push` → `helm::upgrade` from the pushed
//! `oci://` reference round-trips through a real OCI registry (crane) with the password on
//! stdin only, and an umbrella chart whose dependency lives in that registry builds and deploys.

use std::path::Path;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use super::{helm_playbook, recording_helm, registry, with_helm};
use crate::k8s::{finish, logged, logs, playbook};
use crate::testenv::{testenv, unique};

/// A template that fails to render at line 6, column 15 (a nil map read).
const BROKEN: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\ndata:\n  a: {{ .Values.nothere.x }}\n";

#[tokio::test]
async fn a_lint_error_is_reported_with_its_file_and_line() {
    let env = testenv!();
    let k = helm_playbook(
        &env,
        r#"
        import "helm" as helm;
        import "log" as log;
        let r = helm::lint("chart", #{});
        log::info(`passed ${r.passed} errors ${r.errors}`);
        for f in r.findings {
            if f.severity == "error" { log::info(`finding ${f.file}:${f.line}:${f.column} (${f.chart_file}) ${f.message.contains("nil pointer")}`); }
        }
        let v = helm::lint("clean", #{ values_files: ["bad-values.yaml"] });
        log::info(`values ${v.passed} ${v.findings.filter(|f| f.severity == "error").map(|f| `${f.file}:${f.line}`)}`);
        let c = helm::lint("clean", #{ strict: true, values: #{ kmsPeers: #{ id: 2 } } });
        log::info(`clean ${c.passed} ${c.errors} ${c.warnings} ${c.findings.map(|f| f.severity)}`);
        try { helm::lint("nowhere", #{}); } catch (e) { log::info(`missing ${e.kind}`); }
        // (a literal with the typo is refused before the run: kmsctl check's option keys)
        let typo = #{ stric: true };
        try { helm::lint("clean", typo); } catch (e) { log::info(`typo ${e.kind}`); }
        "#,
        &[],
    )
    .tree("chart", &crate::testenv::chart("kms-core"))
    .tree("clean", &crate::testenv::chart("kms-core"))
    .file("chart/templates/broken.yaml", BROKEN)
    .file("bad-values.yaml", "kmsPeers: [\n");
    let r = finish(k).await;
    r.code(0);
    let ev = r.events();
    assert_eq!(logged(&ev, "passed "), "false errors 1");
    assert_eq!(logged(&ev, "finding "), "chart/templates/broken.yaml:6:15 (templates/broken.yaml) true");
    assert_eq!(logged(&ev, "values "), r#"false ["bad-values.yaml:1"]"#);
    assert_eq!(logged(&ev, "clean "), r#"true 0 0 ["info"]"#);
    assert_eq!(logged(&ev, "missing "), "usage");
    assert_eq!(logged(&ev, "typo "), "usage");
}

const ROUND_TRIP: &str = r#"
    import "k8s" as k8s;
    import "helm" as helm;
    import "env" as env;
    import "log" as log;
    let tgz = helm::package_chart("@CHART@", #{ version: "0.2.0", app_version: "9.9.9", dest: "out" });
    log::info(`packaged ${tgz}`);
    let p = helm::push(tgz, "oci://@HOST@/charts", #{ username: "ci", password: env::secret("REGISTRY_PASSWORD"), plain_http: true });
    log::info(`pushed ${p.chart} ${p.version} ${p.reference} ${p.digest.starts_with("sha256:")}`);
    let kc = k8s::connect();
    let r = helm::upgrade(kc, "@REL@", p.chart, #{ namespace: "@NS@", version: p.version, plain_http: true, values: #{ kmsPeers: #{ id: 4 } }, timeout: "60s" });
    log::info(`installed ${r.chart} ${r.chart_version} ${r.app_version} ${r.status}`);
"#;

#[tokio::test]
async fn package_push_and_install_from_the_pushed_oci_reference() {
    let env = testenv!();
    let ns = env.namespace("helm-push").await;
    let reg = registry(&env).await;
    let rel = unique("pushed");
    let dir = tempfile::tempdir().expect("tempdir");
    let (wrapper, log) = recording_helm(&env, dir.path());
    let chart = crate::testenv::chart("kms-core").display().to_string();
    let k = playbook(&env, ROUND_TRIP, &[("CHART", &chart), ("HOST", &reg.host), ("REL", &rel), ("NS", &ns.name)])
        .env("REGISTRY_PASSWORD", "hunter2-push-password");
    let r = finish(with_helm(k, &env, &wrapper)).await;
    r.code(0);
    let ev = r.events();
    let tgz = r.path().join("out/kms-core-0.2.0.tgz");
    assert_eq!(logged(&ev, "packaged "), tgz.display().to_string());
    assert!(tgz.is_file());
    let host = &reg.host;
    assert_eq!(
        logged(&ev, "pushed "),
        format!("oci://{host}/charts/kms-core 0.2.0 oci://{host}/charts/kms-core:0.2.0 true")
    );
    assert_eq!(logged(&ev, "installed "), "kms-core 0.2.0 9.9.9 deployed");
    // The password went to `helm registry login` on stdin: never argv, never the output.
    let argv = std::fs::read_to_string(&log).expect("argv log");
    assert!(
        argv.lines().any(|l| l.starts_with(&format!("registry login {host} --username ci --password-stdin"))),
        "{argv}"
    );
    for text in [&argv, &r.stdout, &r.stderr] {
        assert!(!text.contains("hunter2-push-password"), "the password leaked:\n{text}");
    }
    // The registry holds it: helm itself pulls it back.
    let out = env
        .helm()
        .args(["show", "chart", &format!("oci://{host}/charts/kms-core"), "--version", "0.2.0", "--plain-http"])
        .output()
        .await
        .expect("helm show chart");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("appVersion: 9.9.9"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn bad_package_and_push_arguments_are_refused_before_helm_runs() {
    let env = testenv!();
    let dir = tempfile::tempdir().expect("tempdir");
    let (wrapper, log) = recording_helm(&env, dir.path());
    let chart = crate::testenv::chart("kms-core").display().to_string();
    let k = playbook(
        &env,
        r#"
        import "helm" as helm;
        import "log" as log;
        try { helm::package_chart("@CHART@", #{ version: "1.2" }); } catch (e) { log::info(`version ${e.kind}: ${e.message}`); }
        try { helm::package_chart("no-chart-here"); } catch (e) { log::info(`chart ${e.kind}`); }
        try { helm::push("missing.tgz", "oci://127.0.0.1:1/charts"); } catch (e) { log::info(`archive ${e.kind}`); }
        let tgz = helm::package_chart("@CHART@", #{ dest: "out" });
        try { helm::push(tgz, "https://127.0.0.1:1/charts"); } catch (e) { log::info(`remote ${e.kind}: ${e.message}`); }
        try { helm::push(tgz, "oci://127.0.0.1:1/charts", #{ username: "ci" }); } catch (e) { log::info(`login ${e.kind}`); }
        "#,
        &[("CHART", &chart)],
    );
    let r = finish(with_helm(k, &env, &wrapper)).await;
    r.code(0);
    let ev = r.events();
    let version = logged(&ev, "version ");
    assert!(version.starts_with("usage: ") && version.contains("'1.2' is not a SemVer version"), "{version}");
    assert_eq!(logged(&ev, "chart "), "usage");
    assert_eq!(logged(&ev, "archive "), "not_found");
    let remote = logged(&ev, "remote ");
    assert!(remote.starts_with("usage: ") && remote.contains("not an OCI location"), "{remote}");
    assert_eq!(logged(&ev, "login "), "usage");
    // helm ran only for the one good package (and its version).
    let argv = std::fs::read_to_string(&log).expect("argv log");
    let subs: Vec<&str> = argv.lines().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(subs, ["version", "package"], "{argv}");
}

/// An umbrella chart whose subchart is an `oci://` dependency in the local registry: no
/// Chart.lock, so kmsctl runs `helm dependency update --plain-http` in the private copy.
#[tokio::test]
async fn an_oci_dependency_is_built_from_the_registry() {
    let env = testenv!();
    let ns = env.namespace("helm-oci-dep").await;
    let reg = registry(&env).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let out = env
        .helm()
        .arg("package")
        .arg(crate::testenv::chart("coordinator"))
        .arg("-d")
        .arg(dir.path())
        .output()
        .await
        .expect("helm package");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = env
        .helm()
        .arg("push")
        .arg(dir.path().join("coordinator-0.1.0.tgz"))
        .args([&format!("oci://{}/charts", reg.host), "--plain-http"])
        .output()
        .await
        .expect("helm push");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let chart = dir.path().join("umbrella");
    copy(&crate::testenv::chart("umbrella"), &chart);
    std::fs::remove_file(chart.join("Chart.lock")).expect("no lock");
    let yaml = std::fs::read_to_string(chart.join("Chart.yaml")).expect("Chart.yaml");
    let oci = format!("oci://{}/charts", reg.host);
    std::fs::write(chart.join("Chart.yaml"), yaml.replace("file://../coordinator", &oci)).expect("Chart.yaml");
    let rel = unique("umbrella-oci");
    let r = finish(helm_playbook(
        &env,
        r#"
        import "k8s" as k8s;
        import "helm" as helm;
        import "log" as log;
        let r = helm::upgrade(k8s::connect(), "@REL@", "@CHART@", #{
            namespace: "@NS@", values_files: ["@CHART@/values-staging.yaml"], plain_http: true, timeout: "60s" });
        log::info(`release ${r.status} chart ${r.chart}`);
        "#,
        &[("REL", &rel), ("NS", &ns.name), ("CHART", &chart.display().to_string())],
    ))
    .await;
    r.code(0);
    let ev = r.events();
    assert_eq!(logged(&ev, "release "), "deployed chart umbrella");
    assert!(logs(&ev).iter().any(|m| m.starts_with("chart umbrella: there is no Chart.lock")), "{:?}", logs(&ev));
    let cm = Api::<ConfigMap>::namespaced(env.client.clone(), &ns.name)
        .get(&format!("{rel}-coordinator"))
        .await
        .expect("the OCI subchart's ConfigMap");
    assert_eq!(cm.data.unwrap_or_default()["mode"], "staging");
    assert!(!chart.join("charts").exists() && !chart.join("Chart.lock").exists(), "the chart directory is untouched");
}

fn copy(from: &Path, to: &Path) {
    let out = std::process::Command::new("cp").arg("-r").arg(from).arg(to).output().expect("cp");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
