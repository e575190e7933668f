//! The `helm` module against the local cluster (issue #5): the real helm binary installs the
//! KMS-shaped test chart (`tests/charts/kms-core`), kmsctl waits on the release's objects with
//! its readiness engine, rolls failed upgrades back, reports failed hook Jobs, recovers releases
//! an interrupted run left pending, and never puts values on helm's command line.
//!
//! kwok stages scoped to each test's pods (the chart's `kmsCore.podLabels` and
//! `kmsInit.podLabels`) make party pods crash, hook Jobs fail, or hooks hang.

mod charts;
mod deps;

use std::path::{Path, PathBuf};

use kube::api::{Api, ListParams};
use kube::runtime::watcher;
use serde_json::Value;

use crate::harness::Kmsctl;
use crate::k8s::{
    CRASH_LOOP_STATUS, FAILED_STATUS, Live, READY_STATUS, error_of, finish, logged, playbook, pod_stage, run_finished,
};
use crate::testenv::{TestEnv, testenv, unique, within};

/// The test chart, absolute.
fn chart() -> String {
    crate::testenv::chart("kms-core").display().to_string()
}

/// A playbook with helm set up for the test cluster: helm v4 (or `helm3`) through
/// `KMSCTL_HELM`, helm's homes private to the test.
fn helm_playbook(env: &TestEnv, script: &str, vars: &[(&str, &str)]) -> Kmsctl {
    with_helm(playbook(env, script, vars), env, &env.dir.join("bin/helm"))
}

fn with_helm(mut k: Kmsctl, env: &TestEnv, helm: &Path) -> Kmsctl {
    for (key, v) in env.env_vars() {
        if key.starts_with("HELM_") {
            k = k.env(&key, &v.to_string_lossy());
        }
    }
    k.env("KMSCTL_HELM", &helm.display().to_string())
}

/// The state of a release straight from helm.
async fn helm_status(env: &TestEnv, ns: &str, release: &str) -> Option<Value> {
    let out = env.helm().args(["status", release, "-n", ns, "-o", "json"]).output().await.expect("helm status");
    out.status.success().then(|| serde_json::from_slice(&out.stdout).expect("status json"))
}

fn status_of(rel: &Value) -> &str {
    rel.pointer("/info/status").and_then(Value::as_str).unwrap_or("?")
}

const INSTALL: &str = r#"
    import "k8s" as k8s;
    import "helm" as helm;
    import "log" as log;
    let kc = k8s::connect();
    let r = helm::upgrade(kc, "@REL@", "@CHART@", #{
        namespace: "@NS@",
        values: #{ kmsPeers: #{ id: @ID@ }, kmsCore: #{ image: #{ tag: "@TAG@" }, podLabels: #{ "testenv.kmsctl/stage": "@STAGE@" } } },
        timeout: "60s",
        rollback_on_failure: @ROLLBACK@,
    });
    log::info(`release ${r.name} revision ${r.revision} ${r.status} chart ${r.chart} ${r.chart_version}`);
"#;

fn install<'a>(env: &TestEnv, ns: &'a str, rel: &'a str, tag: &'a str, stage: &'a str, rollback: &'a str) -> Kmsctl {
    let chart = chart();
    helm_playbook(
        env,
        INSTALL,
        &[
            ("REL", rel),
            ("CHART", &chart),
            ("NS", ns),
            ("ID", "3"),
            ("TAG", tag),
            ("STAGE", stage),
            ("ROLLBACK", rollback),
        ],
    )
}

#[tokio::test]
async fn install_upgrade_history_values_and_uninstall() {
    let env = testenv!();
    let ns = env.namespace("helm-basic").await;
    let rel = unique("party");
    let r = finish(install(&env, &ns.name, &rel, "v1", "none", "false")).await;
    r.code(0);
    assert_eq!(logged(&r.events(), "release "), format!("{rel} revision 1 deployed chart kms-core 0.1.0"));
    // The wait was kmsctl's own: a step named after the release, done once the pod was Ready.
    let ev = r.events();
    let wait = crate::k8s::step(&ev, &format!("wait for release {rel}"));
    assert_eq!(wait["outcome"], "ok");
    let pod = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(env.client.clone(), &ns.name)
        .get(&format!("{rel}-core-3"))
        .await
        .expect("party 3's pod exists after the upgrade returned");
    assert!(
        pod.status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    );

    let r = finish(install(&env, &ns.name, &rel, "v2", "none", "false")).await;
    r.code(0);
    assert_eq!(logged(&r.events(), "release "), format!("{rel} revision 2 deployed chart kms-core 0.1.0"));

    let chart = chart();
    let r = finish(helm_playbook(
        &env,
        r#"
        import "k8s" as k8s;
        import "helm" as helm;
        import "log" as log;
        let kc = k8s::connect();
        let h = helm::history(kc, "@REL@", #{ namespace: "@NS@" });
        log::info(`history ${h.map(|r| r.revision + ":" + r.status)}`);
        log::info(`tag ${helm::get_values(kc, "@REL@", #{ namespace: "@NS@" }).kmsCore.image.tag}`);
        log::info(`manifest has the StatefulSet: ${helm::get_manifest(kc, "@REL@", #{ namespace: "@NS@" }).contains("kind: StatefulSet")}`);
        log::info(`listed ${helm::list(kc, #{ namespace: "@NS@" }).map(|r| r.name)}`);
        log::info(`template ${helm::template("x", "@CHART@", #{ values: #{ kmsPeers: #{ id: 7 } } }).contains("start: 7")}`);
        log::info(`uninstalled ${helm::uninstall(kc, "@REL@", #{ namespace: "@NS@" })} ${helm::uninstall(kc, "@REL@", #{ namespace: "@NS@" })}`);
        log::info(`status after ${helm::status(kc, "@REL@", #{ namespace: "@NS@" })}`);
        "#,
        &[("REL", &rel), ("NS", &ns.name), ("CHART", &chart)],
    ))
    .await;
    r.code(0);
    let ev = r.events();
    assert_eq!(logged(&ev, "history "), r#"["1:superseded", "2:deployed"]"#);
    assert_eq!(logged(&ev, "tag "), "v2");
    assert_eq!(logged(&ev, "manifest has the StatefulSet: "), "true");
    assert_eq!(logged(&ev, "listed "), format!(r#"["{rel}"]"#));
    assert_eq!(logged(&ev, "template "), "true");
    assert_eq!(logged(&ev, "uninstalled "), "true false");
    assert_eq!(logged(&ev, "status after "), "");
}

#[tokio::test]
async fn a_failing_upgrade_is_rolled_back() {
    let env = testenv!();
    let ns = env.namespace("helm-rollback").await;
    let rel = unique("party");
    finish(install(&env, &ns.name, &rel, "v1", "none", "true")).await.code(0);
    // Revision 2's pods crash: kmsctl's wait fails fast and rolls back to revision 1.
    let (stage, _cleanup) = pod_stage(&env, "helm-crash", 0, CRASH_LOOP_STATUS).await;
    let r = finish(install(&env, &ns.name, &rel, "v2", &stage, "true")).await;
    r.code(1);
    let (kind, message) = error_of(&r.events());
    assert_eq!(kind, "failed");
    assert!(message.contains("CrashLoopBackOff"), "{message}");
    assert!(message.ends_with("(rolled back to revision 1)"), "{message}");
    let st = helm_status(&env, &ns.name, &rel).await.expect("release exists");
    assert_eq!((status_of(&st), st["version"].as_i64()), ("deployed", Some(3)));
    assert_eq!(st.pointer("/config/kmsCore/image/tag").and_then(Value::as_str), Some("v1"));
    // The failure report was written for the crashing pod.
    let report = crate::k8s::all_files(&r.path().join("art"))
        .into_iter()
        .find(|(p, _)| p.ends_with("summary.txt"))
        .map(|(_, text)| text)
        .expect("a failure report");
    assert!(report.contains("CrashLoopBackOff"), "{report}");
}

#[tokio::test]
async fn a_first_install_that_fails_is_uninstalled_when_rolling_back() {
    let env = testenv!();
    let ns = env.namespace("helm-first").await;
    let rel = unique("party");
    let (stage, _cleanup) = pod_stage(&env, "helm-crash1", 0, CRASH_LOOP_STATUS).await;
    let r = finish(install(&env, &ns.name, &rel, "v1", &stage, "true")).await;
    r.code(1);
    let (_, message) = error_of(&r.events());
    assert!(message.ends_with("(uninstalled (it was a first install))"), "{message}");
    assert!(helm_status(&env, &ns.name, &rel).await.is_none());
}

const INIT: &str = r#"
    import "k8s" as k8s;
    import "helm" as helm;
    let kc = k8s::connect();
    helm::upgrade(kc, "@REL@", "@CHART@", #{
        namespace: "@NS@",
        values: #{ kmsCore: #{ enabled: false }, kmsInit: #{ enabled: true, podLabels: #{ "testenv.kmsctl/stage": "@STAGE@" } } },
        timeout: "@TIMEOUT@",
    });
"#;

fn init<'a>(env: &TestEnv, ns: &'a str, rel: &'a str, stage: &'a str, timeout: &'a str) -> Kmsctl {
    let chart = chart();
    helm_playbook(env, INIT, &[("REL", rel), ("CHART", &chart), ("NS", ns), ("STAGE", stage), ("TIMEOUT", timeout)])
}

#[tokio::test]
async fn a_release_of_hooks_only_completes_when_its_job_does() {
    let env = testenv!();
    let ns = env.namespace("helm-hooks").await;
    let rel = unique("init");
    let r = finish(init(&env, &ns.name, &rel, "none", "60s")).await;
    r.code(0);
    let job = Api::<k8s_openapi::api::batch::v1::Job>::namespaced(env.client.clone(), &ns.name)
        .get(&format!("{rel}-threshold-init"))
        .await
        .expect("the hook Job ran");
    assert_eq!(job.status.and_then(|s| s.succeeded), Some(1));
}

#[tokio::test]
async fn a_failing_hook_job_gets_a_failure_report() {
    let env = testenv!();
    let ns = env.namespace("helm-hookfail").await;
    let rel = unique("init");
    let (stage, _cleanup) = pod_stage(&env, "hook-fail", 0, FAILED_STATUS).await;
    let r = finish(init(&env, &ns.name, &rel, &stage, "60s")).await;
    r.code(1);
    let (_, message) = error_of(&r.events());
    assert!(message.contains("post-install") && message.contains("failed"), "{message}");
    let report = crate::k8s::all_files(&r.path().join("art"))
        .into_iter()
        .find(|(p, _)| p.ends_with("summary.txt"))
        .map(|(_, text)| text)
        .expect("a failure report for the hook Job");
    assert!(report.contains(&format!("Job {}/{rel}-threshold-init", ns.name)), "{report}");
}

/// Wait until helm's release record says `status` (its Secret carries it as a label).
async fn release_record(env: &TestEnv, ns: &str, release: &str, status: &str) {
    use futures::StreamExt;
    let secrets = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(env.client.clone(), ns);
    let cfg = watcher::Config::default().labels(&format!("owner=helm,name={release},status={status}"));
    within(60, &format!("release {release} to be {status}"), async {
        let mut w = std::pin::pin!(watcher(secrets, cfg));
        while let Some(ev) = w.next().await {
            if let Ok(watcher::Event::Apply(_) | watcher::Event::InitApply(_)) = ev {
                return;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_release_left_pending_by_an_interrupted_run_is_recovered() {
    let env = testenv!();
    let ns = env.namespace("helm-pending").await;
    let rel = unique("init");
    // A hook that never completes keeps `helm install` busy; killing helm outright leaves the
    // release pending-install, as a CI runner killed mid-deploy would.
    let (hang, _cleanup) = pod_stage(&env, "hook-hang", 0, READY_STATUS).await;
    let values = tempfile::NamedTempFile::new().expect("values file");
    std::fs::write(
        values.path(),
        format!(r#"{{"kmsCore": {{"enabled": false}}, "kmsInit": {{"enabled": true, "podLabels": {{"testenv.kmsctl/stage": "{hang}"}}}}}}"#),
    )
    .expect("write values");
    let mut helm = env.helm();
    helm.args(["install", &rel, &chart(), "-n", &ns.name, "-f"]).arg(values.path()).args(["--timeout", "10m"]);
    let mut child = helm.kill_on_drop(true).spawn().expect("helm install");
    release_record(&env, &ns.name, &rel, "pending-install").await;
    child.start_kill().expect("kill helm");
    let _ = child.wait().await;
    assert_eq!(status_of(&helm_status(&env, &ns.name, &rel).await.expect("release")), "pending-install");

    let r = finish(init(&env, &ns.name, &rel, "none", "60s")).await;
    r.code(0);
    let warning = r
        .events()
        .iter()
        .find(|e| e["event"] == "log" && e["level"] == "warn")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .expect("a warning about the recovery");
    assert_eq!(
        warning,
        format!(
            "release {}/{rel} was left pending-install by an interrupted run and never deployed; uninstalled it",
            ns.name
        )
    );
    let st = helm_status(&env, &ns.name, &rel).await.expect("release");
    assert_eq!((status_of(&st), st["version"].as_i64()), ("deployed", Some(1)));
}

/// Regression (the toolkit's sync-secrets "orphan" cleanup, W11): a `helm uninstall --wait`
/// stopped mid-way (Ctrl-C, a CI timeout) leaves the release `uninstalling`, and helm then
/// refuses every upgrade ("has no deployed releases"). `helm::upgrade` finishes the uninstall
/// and installs afresh, with a warning.
#[tokio::test]
async fn a_release_left_uninstalling_by_an_interrupted_uninstall_is_installed_again() {
    let env = testenv!();
    let ns = env.namespace("helm-uninstalling").await;
    let rel = unique("held");
    let chart = tempfile::tempdir().expect("chart dir");
    std::fs::create_dir(chart.path().join("templates")).expect("templates");
    std::fs::write(chart.path().join("Chart.yaml"), "apiVersion: v2\nname: held\nversion: 0.1.0\n")
        .expect("Chart.yaml");
    // A finalizer nobody removes keeps `helm uninstall --wait` waiting for the ConfigMap to go.
    std::fs::write(
        chart.path().join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [testenv.kmsctl/hold]\ndata: {a: b}\n",
    )
    .expect("cm.yaml");
    let chart = chart.path().display().to_string();
    let install = |env: &TestEnv| {
        helm_playbook(
            env,
            r#"
            import "k8s" as k8s;
            import "helm" as helm;
            import "log" as log;
            let r = helm::upgrade(k8s::connect(), "@REL@", "@CHART@", #{ namespace: "@NS@", timeout: "60s" });
            log::info(`installed: ${r.status} ${r.revision}`);
            "#,
            &[("REL", &rel), ("CHART", &chart), ("NS", &ns.name)],
        )
    };
    finish(install(&env)).await.code(0);

    let mut helm = env.helm();
    helm.args(["uninstall", &rel, "-n", &ns.name, "--wait", "--timeout", "10m"]);
    let mut child = helm.kill_on_drop(true).spawn().expect("helm uninstall");
    release_record(&env, &ns.name, &rel, "uninstalling").await;
    let pid = child.id().expect("helm's pid").to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    let _ = child.wait().await;
    let cms = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(env.client.clone(), &ns.name);
    let unhold = serde_json::json!({"metadata": {"finalizers": null}});
    cms.patch("held", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&unhold)).await.expect("unhold");
    let refused = env.helm().args(["upgrade", "--install", &rel, &chart, "-n", &ns.name]).output().await.expect("helm");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("has no deployed releases"),
        "helm itself refuses the release: {refused:?}"
    );

    let r = finish(install(&env)).await;
    r.code(0);
    assert_eq!(logged(&r.events(), "installed: "), "deployed 1");
    let warnings: Vec<_> = r
        .events()
        .into_iter()
        .filter(|e| e["event"] == "log" && e["level"] == "warn")
        .map(|e| e["message"].clone())
        .collect();
    assert_eq!(
        warnings,
        [format!(
            "release {}/{rel} was left uninstalling by an interrupted uninstall; finished the uninstall",
            ns.name
        )]
    );
    let st = helm_status(&env, &ns.name, &rel).await.expect("release");
    assert_eq!((status_of(&st), st["version"].as_i64()), ("deployed", Some(1)));
    assert!(cms.get_opt("held").await.expect("get").is_some(), "the release's ConfigMap is installed again");
    cms.patch("held", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&unhold)).await.expect("unhold");
}

/// Regression: with `KUBECONFIG` a list of files (`a:b`), helm was given `--kubeconfig a:b`, a
/// file that does not exist; it now reads `$KUBECONFIG` itself, pinned to the same server.
#[tokio::test]
async fn a_kubeconfig_list_reaches_helm_as_a_list() {
    let env = testenv!();
    let ns = env.namespace("helm-kubeconfigs").await;
    let rel = unique("list");
    let empty = tempfile::NamedTempFile::new().expect("second kubeconfig");
    std::fs::write(empty.path(), "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
        .expect("write");
    let list = format!("{}:{}", env.kubeconfig.display(), empty.path().display());
    let r = finish(install(&env, &ns.name, &rel, "v1", "none", "false").env("KUBECONFIG", &list)).await;
    r.code(0);
    assert_eq!(status_of(&helm_status(&env, &ns.name, &rel).await.expect("release")), "deployed");
}

/// Live processes (not zombies) whose command line contains `needle`.
pub(crate) fn live_processes(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let p = e.path();
        let (Ok(cmd), Ok(stat)) = (std::fs::read(p.join("cmdline")), std::fs::read_to_string(p.join("stat"))) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let zombie = stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if cmd.contains(needle) && !zombie {
            out.push(cmd);
        }
    }
    out
}

/// kmsctl's values files left in `tmp` (`kmsctl-helm-*` directories).
fn values_dirs(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .expect("tmp")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("kmsctl-helm-"))
        .collect()
}

/// Ctrl-C in the middle of an upgrade: exit 130 within two seconds, helm stopped (it marks the
/// release failed, so nothing is left pending), no helm process and no values file left.
#[tokio::test]
async fn ctrl_c_during_an_upgrade_leaves_no_release_pending() {
    let env = testenv!();
    let ns = env.namespace("helm-ctrlc").await;
    let rel = unique("init");
    finish(init(&env, &ns.name, &rel, "none", "60s")).await.code(0);
    let (hang, _cleanup) = pod_stage(&env, "hook-hang2", 0, READY_STATUS).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let live = Live::start(init(&env, &ns.name, &rel, &hang, "10m").env("TMPDIR", &tmp.path().display().to_string()));
    release_record(&env, &ns.name, &rel, "pending-upgrade").await;
    assert_eq!(values_dirs(tmp.path()).len(), 1, "helm reads its values from a private file");
    let t = std::time::Instant::now();
    live.signal("INT");
    let ended = live.end().await;
    let took = t.elapsed();
    ended.code(130);
    assert!(took < std::time::Duration::from_secs(2), "exit took {took:?}");
    assert_eq!(live_processes(&rel), Vec::<String>::new(), "helm outlived kmsctl");
    assert_eq!(values_dirs(tmp.path()), Vec::<String>::new(), "values files left behind");
    let st = helm_status(&env, &ns.name, &rel).await.expect("release");
    assert!(!status_of(&st).starts_with("pending-"), "the release was left {}", status_of(&st));
}

/// Regression: after a cancelled upgrade the recovery of a release left pending ran
/// uncancellable, with a 300 s rollback: kmsctl exited without it, leaving the rollback's helm
/// running and the 0600 values files in TMPDIR. Here helm is killed outright (as a CI runner
/// would), so the release stays pending, and the rollback hangs ignoring SIGTERM: the recovery
/// is bounded, its helm killed, the files removed, and the next run recovers the release.
#[tokio::test]
async fn a_recovery_after_ctrl_c_is_bounded_and_leaves_no_helm_and_no_values_file() {
    let env = testenv!();
    let ns = env.namespace("helm-ctrlc-stuck").await;
    let rel = unique("init");
    finish(init(&env, &ns.name, &rel, "none", "60s")).await.code(0);
    let (hang, _cleanup) = pod_stage(&env, "hook-hang3", 0, READY_STATUS).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let wrapper = dir.path().join("helm");
    std::fs::write(
        &wrapper,
        format!(
            r#"#!/bin/sh
case "$1" in
upgrade)
  # In a session of its own helm never sees kmsctl's SIGTERM; killed outright it leaves the
  # release pending.
  setsid '{helm}' "$@" & pid=$!
  trap 'kill -9 $pid; exit 143' TERM
  wait $pid; exit $? ;;
rollback)
  trap '' TERM
  echo $$ > '{dir}/rollback.pid'
  sleep 1000 & echo $! > '{dir}/sleep.pid'
  wait ;;
esac
exec '{helm}' "$@"
"#,
            helm = env.dir.join("bin/helm").display(),
            dir = dir.path().display()
        ),
    )
    .expect("write wrapper");
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let tmp = tempfile::tempdir().expect("tmp");
    let k = with_helm(init(&env, &ns.name, &rel, &hang, "10m"), &env, &wrapper)
        .env("TMPDIR", &tmp.path().display().to_string());
    let live = Live::start(k);
    release_record(&env, &ns.name, &rel, "pending-upgrade").await;
    let t = std::time::Instant::now();
    live.signal("INT");
    let ended = live.end().await;
    let took = t.elapsed();
    ended.code(130);
    assert!(took < std::time::Duration::from_secs(2), "exit took {took:?}");
    let pid = |f: &str| {
        std::fs::read_to_string(dir.path().join(f)).unwrap_or_else(|e| panic!("{f}: {e}: no rollback was tried"))
    };
    for f in ["rollback.pid", "sleep.pid"] {
        let p: u32 = pid(f).trim().parse().expect("pid");
        assert!(!crate::testenv::alive(p), "the recovery's {f} process outlived kmsctl");
    }
    assert_eq!(live_processes(&rel), Vec::<String>::new(), "helm outlived kmsctl");
    assert_eq!(values_dirs(tmp.path()), Vec::<String>::new(), "values files left behind");
    assert_eq!(status_of(&helm_status(&env, &ns.name, &rel).await.expect("release")), "pending-upgrade");
    // The next run recovers it.
    finish(init(&env, &ns.name, &rel, "none", "60s")).await.code(0);
    assert_eq!(status_of(&helm_status(&env, &ns.name, &rel).await.expect("release")), "deployed");
}

/// A recording wrapper around the real helm in `dir`: logs every command line to the returned
/// log file, then runs helm. Returns (wrapper, log).
fn recording_helm(env: &TestEnv, dir: &Path) -> (PathBuf, PathBuf) {
    wrapped_helm(env, dir, "argv.log", r#"printf '%s\n' "$*""#)
}

/// The test environment's helm behind a wrapper that first appends the output of `record` (a
/// shell command) to `dir/<log>`; returns the wrapper and the log.
fn wrapped_helm(env: &TestEnv, dir: &Path, log: &str, record: &str) -> (PathBuf, PathBuf) {
    let log = dir.join(log);
    let wrapper = dir.join("helm");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\n{record} >> '{}'\nexec '{}' \"$@\"\n", log.display(), env.dir.join("bin/helm").display()),
    )
    .expect("write wrapper");
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    (wrapper, log)
}

/// Each helm process costs 0.1–0.4 CPU-s: 13 parties upgraded in parallel once ran
/// `helm version` 13 times and `helm status` + `helm history` per release. Now: one version,
/// and per release only the upgrade (the release records are read from the cluster).
#[tokio::test]
async fn parallel_upgrades_ask_helms_version_once_and_run_one_helm_per_release() {
    let env = testenv!();
    let ns = env.namespace("helm-count").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (wrapper, log) = recording_helm(&env, dir.path());
    let chart = chart();
    let k = playbook(
        &env,
        r#"
        import "k8s" as k8s;
        import "helm" as helm;
        let kc = k8s::connect();
        parallel_map([1, 2, 3], |i| helm::upgrade(kc, `party-${i}`, "@CHART@", #{
            namespace: "@NS@", values: #{ kmsPeers: #{ id: i } }, timeout: "60s" }));
        "#,
        &[("CHART", &chart), ("NS", &ns.name)],
    );
    finish(with_helm(k, &env, &wrapper)).await.code(0);
    let argv = std::fs::read_to_string(&log).expect("argv log");
    let count = |sub: &str| argv.lines().filter(|l| l.split(' ').next() == Some(sub)).count();
    assert_eq!((count("version"), count("upgrade")), (1, 3), "{argv}");
    assert_eq!(argv.lines().count(), 4, "{argv}");
    // First installs with helm 4 leave schema checks to the API server (see the next test).
    assert!(argv.lines().filter(|l| l.starts_with("upgrade")).all(|l| l.contains("--disable-openapi-validation")));
}

/// kmsctl skips helm 4's client-side OpenAPI check on first installs because server-side
/// apply checks the same: a field the schema does not declare must still fail the install.
#[tokio::test]
async fn a_first_install_with_an_undeclared_field_is_refused_by_the_api_server() {
    let env = testenv!();
    let ns = env.namespace("helm-schema").await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("templates")).expect("mkdir");
    std::fs::write(dir.path().join("Chart.yaml"), "apiVersion: v2\nname: typo\nversion: 0.1.0\n").expect("chart");
    std::fs::write(
        dir.path().join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: typo}\ndata: {a: b}\ndatta: {c: d}\n",
    )
    .expect("template");
    let chart = dir.path().display().to_string();
    let r = finish(helm_playbook(
        &env,
        r#"
        import "k8s" as k8s;
        import "helm" as helm;
        helm::upgrade(k8s::connect(), "typo", "@CHART@", #{ namespace: "@NS@", timeout: "60s" });
        "#,
        &[("CHART", &chart), ("NS", &ns.name)],
    ))
    .await;
    r.code(1);
    assert!(r.stderr.contains(".datta: field not declared in schema"), "{}", r.stderr);
}

#[tokio::test]
async fn values_and_secrets_never_reach_helms_command_line() {
    let env = testenv!();
    let ns = env.namespace("helm-argv").await;
    let rel = unique("party");
    let dir = tempfile::tempdir().expect("tempdir");
    let (wrapper, log) = recording_helm(&env, dir.path());
    let chart = chart();
    let k = playbook(
        &env,
        r#"
        import "k8s" as k8s;
        import "helm" as helm;
        import "env" as env;
        let kc = k8s::connect();
        helm::upgrade(kc, "@REL@", "@CHART@", #{
            namespace: "@NS@",
            values: #{ kmsPeers: #{ id: 2 }, kmsCore: #{ image: #{ tag: "visible-tag" } }, registryPassword: env::secret("REGISTRY_PASSWORD") },
        });
        "#,
        &[("REL", &rel), ("CHART", &chart), ("NS", &ns.name)],
    )
    .env("REGISTRY_PASSWORD", "hunter2-registry-secret");
    let r = finish(with_helm(k, &env, &wrapper)).await;
    r.code(0);
    let argv = std::fs::read_to_string(&log).expect("argv log");
    assert!(argv.lines().any(|l| l.starts_with(&format!("upgrade --install {rel} "))), "{argv}");
    for needle in ["hunter2-registry-secret", "visible-tag", "--set"] {
        assert!(!argv.contains(needle), "{needle} reached helm's argv:\n{argv}");
    }
    assert!(!r.stdout.contains("hunter2-registry-secret") && !r.stderr.contains("hunter2-registry-secret"));
    // The values did reach the release, through the 0600 file.
    let st = helm_status(&env, &ns.name, &rel).await.expect("release");
    assert_eq!(st.pointer("/config/registryPassword").and_then(Value::as_str), Some("hunter2-registry-secret"));
    assert_eq!(st.pointer("/config/kmsCore/image/tag").and_then(Value::as_str), Some("visible-tag"));
}

#[tokio::test]
async fn helm_3_speaks_its_own_dialect() {
    let env = testenv!();
    let ns = env.namespace("helm-v3").await;
    let rel = unique("party");
    let helm3: PathBuf =
        std::env::var_os("TESTENV_HELM3").map(PathBuf::from).unwrap_or_else(|| env.dir.join("bin/helm3"));
    let chart = chart();
    let k = playbook(
        &env,
        r#"
        import "k8s" as k8s;
        import "helm" as helm;
        import "log" as log;
        let kc = k8s::connect();
        log::info(`version ${helm::version()}`);
        helm::upgrade(kc, "@REL@", "@CHART@", #{ namespace: "@NS@", values: #{ kmsPeers: #{ id: 1, count: 2 } } });
        log::info(`listed ${helm::list(kc, #{ namespace: "@NS@" }).map(|r| r.name + "=" + r.status)}`);
        "#,
        &[("REL", &rel), ("CHART", &chart), ("NS", &ns.name)],
    );
    let r = finish(with_helm(k, &env, &helm3)).await;
    r.code(0);
    let ev = r.events();
    assert!(logged(&ev, "version ").starts_with("v3."), "{}", logged(&ev, "version "));
    assert_eq!(logged(&ev, "listed "), format!(r#"["{rel}=deployed"]"#));
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(env.client.clone(), &ns.name)
        .list(&ListParams::default())
        .await
        .expect("pods");
    let mut names: Vec<String> = pods.items.iter().filter_map(|p| p.metadata.name.clone()).collect();
    names.sort();
    assert_eq!(names, [format!("{rel}-core-1"), format!("{rel}-core-2")]);
    let _ = run_finished(&ev);
}

/// A chart repository on 127.0.0.1 (packaged charts and their index), served by Python's
/// http.server; stopped (by PID) on drop.
pub(crate) struct ChartRepo {
    pub(crate) url: String,
    server: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for ChartRepo {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

async fn chart_repo(env: &TestEnv) -> ChartRepo {
    serve_charts(env, &[PathBuf::from(chart())]).await
}

/// A chart repository serving `charts` (chart directories).
pub(crate) async fn serve_charts(env: &TestEnv, charts: &[PathBuf]) -> ChartRepo {
    let dir = tempfile::tempdir().expect("tempdir");
    for c in charts {
        let out = env.helm().args(["package"]).arg(c).arg("-d").arg(dir.path()).output().await.expect("helm package");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = env.helm().args(["version"]).output().await.expect("helm version");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
    let url = format!("http://127.0.0.1:{port}");
    let out = env
        .helm()
        .args(["repo", "index"])
        .arg(dir.path())
        .args(["--url", &url])
        .output()
        .await
        .expect("helm repo index");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let server = std::process::Command::new("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1", &port.to_string(), "--directory"])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 http.server");
    listening(port, "the chart repository to answer").await;
    ChartRepo { url, server, _dir: dir }
}

#[tokio::test]
async fn a_chart_from_a_repository_added_with_a_secret_password() {
    let env = testenv!();
    let ns = env.namespace("helm-repo").await;
    let repo = chart_repo(&env).await;
    let rel = unique("party");
    let name = unique("repo");
    let k = helm_playbook(
        &env,
        r#"
        import "k8s" as k8s;
        import "helm" as helm;
        import "env" as env;
        import "log" as log;
        helm::repo_add("@NAME@", "@URL@", #{ username: "ci", password: env::secret("REPO_PASSWORD") });
        helm::repo_update(["@NAME@"]);
        let kc = k8s::connect();
        let r = helm::upgrade(kc, "@REL@", "@NAME@/kms-core", #{ namespace: "@NS@", version: "0.1.0", values: #{ kmsPeers: #{ id: 5 } } });
        log::info(`installed ${r.chart} ${r.chart_version}`);
        "#,
        &[("NAME", &name), ("URL", &repo.url), ("REL", &rel), ("NS", &ns.name)],
    )
    .env("REPO_PASSWORD", "hunter2-repo-password");
    let r = finish(k).await;
    r.code(0);
    assert_eq!(logged(&r.events(), "installed "), "kms-core 0.1.0");
    assert!(!r.stdout.contains("hunter2-repo-password") && !r.stderr.contains("hunter2-repo-password"));
    let st = helm_status(&env, &ns.name, &rel).await.expect("release");
    assert_eq!(status_of(&st), "deployed");
}

/// A real OCI registry (go-containerregistry's `crane registry serve`) on 127.0.0.1, stopped by
/// PID on drop.
pub(crate) struct Registry {
    pub(crate) host: String,
    server: std::process::Child,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// Wait until something accepts connections on 127.0.0.1:`port`.
async fn listening(port: u16, what: &str) {
    within(30, what, async {
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
}

pub(crate) async fn registry(env: &TestEnv) -> Registry {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
    let host = format!("127.0.0.1:{port}");
    let server = std::process::Command::new(env.dir.join("bin/crane"))
        .args(["registry", "serve", "--address", &host])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("crane registry serve");
    listening(port, "the registry to answer").await;
    Registry { host, server }
}

#[tokio::test]
async fn an_oci_chart_with_a_version_after_a_registry_login() {
    let env = testenv!();
    let ns = env.namespace("helm-oci").await;
    let reg = registry(&env).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let out = env.helm().args(["package", &chart(), "-d"]).arg(dir.path()).output().await.expect("helm package");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = env
        .helm()
        .arg("push")
        .arg(dir.path().join("kms-core-0.1.0.tgz"))
        .args([&format!("oci://{}/charts", reg.host), "--plain-http"])
        .output()
        .await
        .expect("helm push");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rel = unique("party");
    let k = helm_playbook(
        &env,
        r#"
        import "k8s" as k8s;
        import "helm" as helm;
        import "env" as env;
        import "log" as log;
        helm::registry_login("@HOST@", #{ username: "ci", password: env::secret("REGISTRY_PASSWORD"), plain_http: true });
        let chart = "oci://@HOST@/charts/kms-core";
        log::info(`rendered ${helm::template("x", chart, #{ version: "0.1.0", plain_http: true }).contains("kind: StatefulSet")}`);
        let kc = k8s::connect();
        let r = helm::upgrade(kc, "@REL@", chart, #{ namespace: "@NS@", version: "0.1.0", plain_http: true, values: #{ kmsPeers: #{ id: 6 } } });
        log::info(`installed ${r.chart} ${r.chart_version} ${r.status}`);
        "#,
        &[("HOST", &reg.host), ("REL", &rel), ("NS", &ns.name)],
    )
    .env("REGISTRY_PASSWORD", "hunter2-oci-password");
    let r = finish(k).await;
    r.code(0);
    assert_eq!(logged(&r.events(), "rendered "), "true");
    assert_eq!(logged(&r.events(), "installed "), "kms-core 0.1.0 deployed");
    assert!(!r.stdout.contains("hunter2-oci-password") && !r.stderr.contains("hunter2-oci-password"));
}

/// Regression: helm read HELM_KUBEAPISERVER, HELM_KUBETOKEN, HELM_KUBECONTEXT and the other
/// HELM_KUBE* variables from the environment, so it could install somewhere other than the
/// cluster the k8s module connected to. They are stripped, and the connection is passed
/// explicitly: with all of them pointing at a wrong cluster, the release lands on the right one.
#[tokio::test]
async fn helm_targets_the_connected_cluster_whatever_helm_kube_variables_say() {
    let env = testenv!();
    let ns = env.namespace("helm-steer").await;
    let rel = unique("steer");
    let mut k = install(&env, &ns.name, &rel, "v1", "none", "false");
    for (key, v) in [
        ("HELM_KUBEAPISERVER", "https://127.0.0.1:1"),
        ("HELM_KUBETOKEN", "wrong-cluster-token"),
        ("HELM_KUBECONTEXT", "wrong-context"),
        ("HELM_KUBEASUSER", "system:admin"),
        ("HELM_KUBEINSECURE_SKIP_TLS_VERIFY", "true"),
        ("HELM_KUBECAFILE", "/nonexistent/ca.crt"),
        ("HELM_KUBETLS_SERVER_NAME", "wrong.example"),
    ] {
        k = k.env(key, v);
    }
    let r = finish(k).await;
    r.code(0);
    let st = helm_status(&env, &ns.name, &rel).await.expect("the release is on the connected cluster");
    assert_eq!(status_of(&st), "deployed");
}

/// helm runs with Go's collector off until 512 MiB (a third of its CPU in a short run), unless
/// the user chose GOGC or GOMEMLIMIT: then helm gets theirs.
#[tokio::test]
async fn helm_runs_without_gos_collector_unless_the_user_set_one() {
    let env = testenv!();
    let dir = tempfile::tempdir().expect("tempdir");
    let (wrapper, log) =
        wrapped_helm(&env, dir.path(), "gc.log", r#"printf '%s %s|%s\n' "$1" "${GOGC-unset}" "${GOMEMLIMIT-unset}""#);
    let script = r#"
        import "helm" as helm;
        import "log" as log;
        log::info(`rendered ${helm::template("x", "@CHART@", #{}).contains("kind: StatefulSet")}`);
    "#;
    for (set, want) in [(None, "template off|512MiB"), (Some("200"), "template 200|unset")] {
        let _ = std::fs::remove_file(&log);
        let mut k = with_helm(playbook(&env, script, &[("CHART", &chart())]), &env, &wrapper);
        k = k.env_remove("GOMEMLIMIT");
        k = match set {
            Some(v) => k.env("GOGC", v),
            None => k.env_remove("GOGC"),
        };
        let r = finish(k).await;
        r.code(0);
        assert_eq!(logged(&r.events(), "rendered "), "true");
        let lines = std::fs::read_to_string(&log).expect("gc log");
        assert!(lines.lines().any(|l| l == want), "GOGC={set:?}: want '{want}' in\n{lines}");
    }
}

/// `--timeout` used to give a run stuck in a helm upgrade 5 s after the deadline: it ends like
/// Ctrl-C now, within the documented two seconds of the deadline (exit 3), with no helm left.
#[tokio::test]
async fn the_run_deadline_during_a_helm_upgrade_ends_within_two_seconds_and_leaves_no_helm() {
    let env = testenv!();
    let ns = env.namespace("helm-deadline").await;
    let rel = unique("init");
    // The hook Job's pod never becomes ready: helm waits on it until the deadline.
    let (hang, _cleanup) = pod_stage(&env, "hook-hang4", 600_000, READY_STATUS).await;
    let k = init(&env, &ns.name, &rel, &hang, "10m").args(["--timeout", "3s"]);
    let t = std::time::Instant::now();
    let r = finish(k).await;
    let took = t.elapsed();
    r.code(3);
    assert!(
        took < std::time::Duration::from_secs(3 + 2 + 1),
        "exit took {took:?} (deadline 3 s, bound 2 s, start-up 1 s)"
    );
    assert_eq!(live_processes(&rel), Vec::<String>::new(), "helm outlived kmsctl");
}
