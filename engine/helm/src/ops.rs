//! Helm operations as plain async Rust: upgrade (install or upgrade), uninstall, rollback,
//! status, history, list, template, repositories, manifests and values — and the recovery of a
//! release an interrupted run left `pending-install`, `pending-upgrade`, `pending-rollback` or
//! `uninstalling`.

use crate::cli::{HelmCli, Output, failed};
use crate::error::HelmError;
use crate::release;
use kmsctl_host::CancelScope;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// Which cluster helm talks to (the same one kmsctl's k8s module is connected to).
#[derive(Clone, Default)]
pub(crate) struct Kube {
    /// `--kubeconfig` (default helm's own: `$KUBECONFIG` or `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// `--kube-context`.
    pub context: Option<String>,
    /// `--kube-apiserver`: the server the k8s module connected to, pinned.
    pub server: Option<String>,
    /// A client for the same cluster: release records are then read from it instead of
    /// running `helm history` (see [`revisions`]).
    pub client: Option<kube::Client>,
}

impl Kube {
    fn args(&self, out: &mut Vec<String>) {
        if let Some(k) = &self.kubeconfig {
            out.extend(["--kubeconfig".into(), k.display().to_string()]);
        }
        if let Some(c) = &self.context {
            out.extend(["--kube-context".into(), c.clone()]);
        }
        if let Some(server) = &self.server {
            out.extend(["--kube-apiserver".into(), server.clone()]);
        }
    }
}

/// How long the recovery after a cancelled upgrade may take: with helm's grace after SIGTERM
/// it must fit in the 1.5 s a stopped run's script gets.
const RECOVER_WHEN_CANCELLED: Duration = Duration::from_millis(600);

fn s(x: &str) -> String {
    x.to_string()
}

/// A Go duration for helm's `--timeout`.
fn go_duration(d: Duration) -> String {
    format!("{}s", d.as_secs().max(1))
}

/// What to install or upgrade.
#[derive(Clone, Debug)]
pub(crate) struct UpgradeSpec {
    /// Release name.
    pub release: String,
    /// A chart directory or archive, `repo/name`, or `oci://...`.
    pub chart: String,
    /// Release namespace.
    pub namespace: String,
    /// Chart version constraint.
    pub version: Option<String>,
    /// Values files, in order (later wins).
    pub values_files: Vec<PathBuf>,
    /// Create the namespace if missing.
    pub create_namespace: bool,
    /// Timeout for helm's own operations (hooks).
    pub timeout: Duration,
    /// Revisions kept.
    pub history_max: u32,
    /// Reuse the last release's values and merge the new ones in.
    pub reuse_values: bool,
    /// Don't install CRDs from the chart's crds/ directory.
    pub skip_crds: bool,
    /// A description for the revision.
    pub description: Option<String>,
    /// Talk plain HTTP to an OCI registry (a local one).
    pub plain_http: bool,
}

/// Status of a release, or `None` when it does not exist.
pub(crate) async fn status(
    cli: &HelmCli,
    kube: &Kube,
    release: &str,
    namespace: &str,
    scope: &CancelScope,
) -> Result<Option<Value>, HelmError> {
    let mut args = vec![s("status"), s(release), s("-n"), s(namespace), s("-o"), s("json")];
    kube.args(&mut args);
    let out = cli.run(&args, None, scope).await?;
    if out.code != 0 {
        if out.stderr.contains("not found") {
            return Ok(None);
        }
        return Err(failed(&args, &out));
    }
    serde_json::from_str(&out.stdout)
        .map(Some)
        .map_err(|source| HelmError::Output { what: "helm status".into(), source })
}

/// Revisions of a release (oldest first); empty when it does not exist.
pub(crate) async fn history(
    cli: &HelmCli,
    kube: &Kube,
    release: &str,
    namespace: &str,
    scope: &CancelScope,
) -> Result<Vec<Value>, HelmError> {
    let mut args = vec![s("history"), s(release), s("-n"), s(namespace), s("-o"), s("json"), s("--max"), s("256")];
    kube.args(&mut args);
    let out = cli.run(&args, None, scope).await?;
    if out.code != 0 {
        if out.stderr.contains("not found") {
            return Ok(Vec::new());
        }
        return Err(failed(&args, &out));
    }
    serde_json::from_str(&out.stdout).map_err(|source| HelmError::Output { what: "helm history".into(), source })
}

/// The revisions of a release as `[{revision, status}]`, oldest first; empty when it does not
/// exist. Read from helm's release records (Secrets labelled `owner=helm`) when there is a
/// client and helm stores releases in Secrets, else from `helm history`: a helm process costs
/// ~0.1 CPU-s, and a 13-party deploy checks 14 releases at once.
pub(crate) async fn revisions(
    cli: &HelmCli,
    kube: &Kube,
    release: &str,
    namespace: &str,
    scope: &CancelScope,
) -> Result<Vec<Value>, HelmError> {
    let driver = std::env::var("HELM_DRIVER").unwrap_or_default();
    match &kube.client {
        Some(client) if matches!(driver.as_str(), "" | "secret" | "secrets") => {
            let api: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(client.clone(), namespace);
            let lp = kube::api::ListParams::default().labels(&format!("owner=helm,name={release}"));
            let what = || format!("helm's release records of {namespace}/{release}");
            // An API server restarting (the outages an upgrade is tried again after) refuses
            // connections or answers 5xx for a while: read again once it answers.
            let mut waited = false;
            let list = loop {
                let read = tokio::select! {
                    l = api.list_metadata(&lp) => l,
                    _ = scope.cancelled() => return Err(HelmError::Cancelled),
                };
                match read {
                    Ok(list) => break list,
                    Err(e) if is_outage(&e) && !waited => {
                        reachable(kube, scope).await?;
                        waited = true;
                    }
                    Err(source) => return Err(HelmError::Cluster { what: what(), source }),
                }
            };
            Ok(release::records_of(list.items.iter().map(|m| m.metadata.labels.clone().unwrap_or_default())))
        }
        _ => history(cli, kube, release, namespace, scope).await,
    }
}

/// A connection refused or reset, or a server error: what an API server restart looks like.
fn is_outage(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code >= 500 || s.code == 429,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// If the release is stuck `pending-*` or `uninstalling`, put it back in a state helm can
/// upgrade: roll back to the last deployed revision, uninstall a release that never deployed,
/// finish an interrupted uninstall. Returns what was
/// done, for the log.
pub(crate) async fn recover_pending(
    cli: &HelmCli,
    kube: &Kube,
    release: &str,
    namespace: &str,
    scope: &CancelScope,
) -> Result<Option<String>, HelmError> {
    let revisions = revisions(cli, kube, release, namespace, scope).await?;
    recover_pending_from(cli, kube, release, namespace, &revisions, scope).await
}

/// [`recover_pending`] given the release's history. A release whose latest revision is
/// `pending-*` is rolled back (or uninstalled if it never deployed); one left `uninstalling`
/// (a `helm uninstall` killed mid-way: helm refuses to upgrade it, "has no deployed
/// releases") has its uninstall finished, so the upgrade installs it afresh.
async fn recover_pending_from(
    cli: &HelmCli,
    kube: &Kube,
    release: &str,
    namespace: &str,
    revisions: &[Value],
    scope: &CancelScope,
) -> Result<Option<String>, HelmError> {
    let Some(state) = release::latest_status(revisions).filter(|s| release::is_stuck(s)) else { return Ok(None) };
    if state == release::UNINSTALLING {
        uninstall(cli, kube, release, namespace, None, scope).await?;
        return Ok(Some(format!(
            "release {namespace}/{release} was left uninstalling by an interrupted uninstall; finished the uninstall"
        )));
    }
    match release::last_deployed(revisions) {
        Some(rev) => {
            rollback(cli, kube, release, namespace, rev, Duration::from_secs(300), scope).await?;
            Ok(Some(format!(
                "release {namespace}/{release} was left {state} by an interrupted run; rolled it back to revision {rev}"
            )))
        }
        None => {
            uninstall(cli, kube, release, namespace, None, scope).await?;
            Ok(Some(format!(
                "release {namespace}/{release} was left {state} by an interrupted run and never deployed; uninstalled it"
            )))
        }
    }
}

/// What [`upgrade`] did.
#[derive(Debug)]
pub(crate) struct Upgraded {
    /// The release, as `helm upgrade -o json` prints it.
    pub release: Value,
    /// The revision deployed before this upgrade (what a rollback goes back to); `None` for a
    /// first install.
    pub previous: Option<i64>,
    /// How a release left pending was recovered first, for the log.
    pub recovered: Option<String>,
    /// The attempts that failed on transient cluster errors before this one worked, for the log.
    pub retried: Vec<String>,
}

/// `helm upgrade --install`, without helm's own wait (kmsctl waits on the objects). Helm still
/// runs and waits for hooks. A release left pending is recovered first; one read of the
/// release's [`revisions`] serves the pending check and the rollback target. An upgrade that
/// fails on a transient cluster error (the API server restarting, a connection reset: see
/// [`release::is_transient`]) is tried again, up to [`ATTEMPTS`] times, once the API server
/// answers.
pub(crate) async fn upgrade(
    cli: &HelmCli,
    kube: &Kube,
    spec: &UpgradeSpec,
    scope: &CancelScope,
) -> Result<Upgraded, HelmError> {
    let mut history = revisions(cli, kube, &spec.release, &spec.namespace, scope).await?;
    let previous = release::last_deployed(&history);
    let latest_before = release::latest_revision(&history);
    let recovered = recover_pending_from(cli, kube, &spec.release, &spec.namespace, &history, scope).await?;
    let mut retried = Vec::new();
    for attempt in 1..=ATTEMPTS {
        let args = upgrade_args(cli, kube, spec, history.is_empty());
        let out = cli.run(&args, None, scope).await?;
        if out.cancelled {
            // helm stopped on SIGTERM marks the release failed; if it still says pending, recover
            // now so a re-run does not find it locked. Bounded, as the run is ending: dropped, the
            // recovery's helm is killed, and a release still pending is the next run's to recover.
            let scope = CancelScope::root();
            let recover = recover_pending(cli, kube, &spec.release, &spec.namespace, &scope);
            let _ = tokio::time::timeout(RECOVER_WHEN_CANCELLED, recover).await;
            return Err(HelmError::Failed {
                command: format!("upgrade {}", spec.release),
                code: out.code,
                stderr: "cancelled".into(),
            });
        }
        if out.code == 0 {
            let rel = parse_json(&out)?;
            // When the API server goes away just as helm writes the final record, helm logs
            // "failed to record the release" and exits 0: the release stays pending-* (locked
            // for every later upgrade). Recovered and tried again, as after a failed attempt.
            let after = revisions(cli, kube, &spec.release, &spec.namespace, scope).await?;
            match release::latest_status(&after).filter(|s| release::is_pending(s)) {
                Some(stuck) if attempt < ATTEMPTS => {
                    retried.push(format!(
                        "helm upgrade of {}/{} succeeded but its release record stayed {stuck} (the cluster went away as helm recorded it); recovering and trying again ({}/{ATTEMPTS})",
                        spec.namespace,
                        spec.release,
                        attempt + 1
                    ));
                    reachable(kube, scope).await?;
                    recover_pending_from(cli, kube, &spec.release, &spec.namespace, &after, scope).await?;
                    history = revisions(cli, kube, &spec.release, &spec.namespace, scope).await?;
                    continue;
                }
                _ => return Ok(Upgraded { release: rel, previous, recovered, retried }),
            }
        }
        let Some(cause) = release::is_transient(&out.stderr).filter(|_| attempt < ATTEMPTS) else {
            return Err(failed(&args, &out));
        };
        retried.push(format!(
            "helm upgrade of {}/{} failed on a transient cluster error ({cause}); once the cluster answers, trying again ({}/{ATTEMPTS}) unless it went through",
            spec.namespace,
            spec.release,
            attempt + 1
        ));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(u64::from(attempt))) => {}
            _ = scope.cancelled() => return Err(HelmError::Cancelled),
        }
        reachable(kube, scope).await?;
        history = revisions(cli, kube, &spec.release, &spec.namespace, scope).await?;
        // The connection may have been cut after helm had recorded the new revision: it went
        // through, and another attempt would only add a revision.
        let went_through =
            release::latest_revision(&history) > latest_before && release::latest_status(&history) == Some("deployed");
        if went_through && let Some(rel) = settled_status(cli, kube, spec, scope).await? {
            retried.push(format!(
                "helm upgrade of {}/{}: it had gone through; not repeated",
                spec.namespace, spec.release
            ));
            return Ok(Upgraded { release: rel, previous, recovered, retried });
        }
        // The failed attempt may have left the release pending (helm killed by the outage).
        recover_pending_from(cli, kube, &spec.release, &spec.namespace, &history, scope).await?;
    }
    unreachable!("the last attempt returns")
}

/// The release as `helm status` shows it once the API server settles after an outage (a few
/// tries); `None` if it will not say, and the upgrade is then tried again.
async fn settled_status(
    cli: &HelmCli,
    kube: &Kube,
    spec: &UpgradeSpec,
    scope: &CancelScope,
) -> Result<Option<Value>, HelmError> {
    for _ in 0..3 {
        match status(cli, kube, &spec.release, &spec.namespace, scope).await {
            Ok(Some(rel)) => return Ok(Some(rel)),
            Err(HelmError::Cancelled) => return Err(HelmError::Cancelled),
            Ok(None) | Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = scope.cancelled() => return Err(HelmError::Cancelled),
        }
    }
    Ok(None)
}

/// How many times an upgrade is tried when it fails on transient cluster errors.
pub(crate) const ATTEMPTS: u32 = 3;

/// Wait (up to a minute) until the API server answers again; then helm may go on.
async fn reachable(kube: &Kube, scope: &CancelScope) -> Result<(), HelmError> {
    let Some(client) = &kube.client else { return Ok(()) };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        if client.apiserver_version().await.is_ok() {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = scope.cancelled() => return Err(HelmError::Cancelled),
        }
    }
    Ok(())
}

/// The arguments of `helm upgrade --install` for `spec` (`first`: no release yet).
fn upgrade_args(cli: &HelmCli, kube: &Kube, spec: &UpgradeSpec, first: bool) -> Vec<String> {
    let mut args =
        vec![s("upgrade"), s("--install"), spec.release.clone(), spec.chart.clone(), s("-n"), spec.namespace.clone()];
    if spec.create_namespace {
        args.push(s("--create-namespace"));
    }
    if let Some(v) = &spec.version {
        args.extend([s("--version"), v.clone()]);
    }
    for f in &spec.values_files {
        args.extend([s("-f"), f.display().to_string()]);
    }
    if spec.reuse_values {
        args.push(s("--reuse-values"));
    }
    if spec.skip_crds {
        args.push(s("--skip-crds"));
    }
    if let Some(d) = &spec.description {
        args.extend([s("--description"), d.clone()]);
    }
    if spec.plain_http {
        args.push(s("--plain-http"));
    }
    // Helm 4 installs with server-side apply, where the API server refuses any field its schema
    // does not declare: helm's own OpenAPI check (a schema download and parse per process,
    // ~0.1 CPU-s) adds nothing. Upgrades keep it: they may still be client-side (`auto`
    // follows the release's first install, which may have been helm 3).
    if cli.major >= 4 && first {
        args.push(s("--disable-openapi-validation"));
    }
    args.extend([
        s("--timeout"),
        go_duration(spec.timeout),
        s("--history-max"),
        spec.history_max.to_string(),
        s("-o"),
        s("json"),
    ]);
    kube.args(&mut args);
    args
}

fn parse_json(out: &Output) -> Result<Value, HelmError> {
    // helm may print warnings before the JSON document.
    let start = out.stdout.find('{').unwrap_or(0);
    serde_json::from_str(&out.stdout[start..])
        .map_err(|source| HelmError::Output { what: out.stdout.chars().take(200).collect(), source })
}

/// Roll back to `revision` (0: the previous one).
pub(crate) async fn rollback(
    cli: &HelmCli,
    kube: &Kube,
    release: &str,
    namespace: &str,
    revision: i64,
    timeout: Duration,
    scope: &CancelScope,
) -> Result<(), HelmError> {
    let mut args = vec![
        s("rollback"),
        s(release),
        revision.to_string(),
        s("-n"),
        s(namespace),
        s("--timeout"),
        go_duration(timeout),
    ];
    kube.args(&mut args);
    cli.ok(&args, None, scope).await.map(|_| ())
}

/// Uninstall; with `wait`, helm waits until the resources are gone. Returns whether the release
/// existed.
pub(crate) async fn uninstall(
    cli: &HelmCli,
    kube: &Kube,
    release: &str,
    namespace: &str,
    wait: Option<Duration>,
    scope: &CancelScope,
) -> Result<bool, HelmError> {
    let mut args = vec![s("uninstall"), s(release), s("-n"), s(namespace)];
    if let Some(t) = wait {
        args.extend([s("--wait"), s("--timeout"), go_duration(t)]);
    }
    kube.args(&mut args);
    let out = cli.run(&args, None, scope).await?;
    if out.code != 0 {
        if out.stderr.contains("not found") {
            return Ok(false);
        }
        return Err(failed(&args, &out));
    }
    Ok(true)
}

/// Releases in a namespace (or all), in every status: deployed, failed, pending, ...
pub(crate) async fn list(
    cli: &HelmCli,
    kube: &Kube,
    namespace: Option<&str>,
    scope: &CancelScope,
) -> Result<Vec<Value>, HelmError> {
    let mut args = vec![s("list"), s("-o"), s("json"), s("--max"), s("0")];
    if cli.major == 3 {
        args.push(s("--all"));
    }
    match namespace {
        Some(ns) => args.extend([s("-n"), s(ns)]),
        None => args.push(s("--all-namespaces")),
    }
    kube.args(&mut args);
    let out = cli.ok(&args, None, scope).await?;
    let start = out.stdout.find('[').unwrap_or(0);
    serde_json::from_str(&out.stdout[start..]).map_err(|source| HelmError::Output { what: "helm list".into(), source })
}

/// What to render without a cluster.
#[derive(Clone, Debug)]
pub(crate) struct TemplateSpec {
    /// Release name used in the templates.
    pub release: String,
    /// Chart reference.
    pub chart: String,
    /// Namespace used in the templates.
    pub namespace: String,
    /// Chart version constraint.
    pub version: Option<String>,
    /// Values files, in order.
    pub values_files: Vec<PathBuf>,
    /// Plain HTTP to an OCI registry.
    pub plain_http: bool,
    /// Leave out the chart's test hooks (`helm test` pods): an install never creates them.
    pub skip_tests: bool,
}

/// Render a chart without a cluster.
pub(crate) async fn template(cli: &HelmCli, spec: &TemplateSpec, scope: &CancelScope) -> Result<String, HelmError> {
    let mut args = vec![s("template"), spec.release.clone(), spec.chart.clone(), s("-n"), spec.namespace.clone()];
    if spec.plain_http {
        args.push(s("--plain-http"));
    }
    if spec.skip_tests {
        args.push(s("--skip-tests"));
    }
    if let Some(v) = &spec.version {
        args.extend([s("--version"), v.clone()]);
    }
    for f in &spec.values_files {
        args.extend([s("-f"), f.display().to_string()]);
    }
    cli.ok(&args, None, scope).await.map(|o| o.stdout)
}

/// `helm test`: run the release's test hooks and wait until they end. Returns whether they all
/// passed (a failing test is not an error here: the caller reads the release's hooks to say
/// which); helm's other failures (no such release, the cluster) are errors.
pub(crate) async fn test(
    cli: &HelmCli,
    kube: &Kube,
    release: &str,
    namespace: &str,
    timeout: Duration,
    scope: &CancelScope,
) -> Result<bool, HelmError> {
    let mut args = vec![s("test"), s(release), s("-n"), s(namespace), s("--timeout"), go_duration(timeout)];
    kube.args(&mut args);
    let out = cli.run(&args, None, scope).await?;
    if out.code == 0 || out.cancelled {
        return Ok(true);
    }
    // helm 3: "Error: pod <name> failed"; helm 4: "Error: 1 error occurred: * pod <name> failed".
    if out.stderr.lines().any(|l| l.contains("pod ") && l.trim_end().ends_with(" failed")) {
        return Ok(false);
    }
    Err(failed(&args, &out))
}

/// `helm get manifest`.
pub(crate) async fn get_manifest(
    cli: &HelmCli,
    kube: &Kube,
    release: &str,
    namespace: &str,
    revision: Option<i64>,
    scope: &CancelScope,
) -> Result<String, HelmError> {
    let mut args = vec![s("get"), s("manifest"), s(release), s("-n"), s(namespace)];
    if let Some(r) = revision {
        args.extend([s("--revision"), r.to_string()]);
    }
    kube.args(&mut args);
    cli.ok(&args, None, scope).await.map(|o| o.stdout)
}

/// `helm get values` (user-supplied, or `all` computed values).
pub(crate) async fn get_values(
    cli: &HelmCli,
    kube: &Kube,
    release: &str,
    namespace: &str,
    revision: Option<i64>,
    all: bool,
    scope: &CancelScope,
) -> Result<Value, HelmError> {
    let mut args = vec![s("get"), s("values"), s(release), s("-n"), s(namespace), s("-o"), s("json")];
    if let Some(r) = revision {
        args.extend([s("--revision"), r.to_string()]);
    }
    if all {
        args.push(s("--all"));
    }
    kube.args(&mut args);
    let out = cli.ok(&args, None, scope).await?;
    let v: Value = serde_json::from_str(out.stdout.trim())
        .map_err(|source| HelmError::Output { what: "helm get values".into(), source })?;
    Ok(if v.is_null() { Value::Object(Default::default()) } else { v })
}

/// `helm repo add` (a password goes through stdin), then nothing else.
pub(crate) async fn repo_add(
    cli: &HelmCli,
    name: &str,
    url: &str,
    username: Option<&str>,
    password: Option<&str>,
    scope: &CancelScope,
) -> Result<(), HelmError> {
    let mut args = vec![s("repo"), s("add"), s(name), s(url), s("--force-update")];
    if let Some(u) = username {
        args.extend([s("--username"), s(u)]);
    }
    if password.is_some() {
        args.push(s("--password-stdin"));
    }
    cli.ok(&args, password, scope).await.map(|_| ())
}

/// `helm repo update [names]`.
pub(crate) async fn repo_update(cli: &HelmCli, names: &[String], scope: &CancelScope) -> Result<(), HelmError> {
    let mut args = vec![s("repo"), s("update")];
    args.extend(names.iter().cloned());
    cli.ok(&args, None, scope).await.map(|_| ())
}

/// `helm registry login` for OCI charts; the password goes through stdin.
pub(crate) async fn registry_login(
    cli: &HelmCli,
    host: &str,
    username: &str,
    password: &str,
    plain_http: bool,
    scope: &CancelScope,
) -> Result<(), HelmError> {
    let mut args = vec![s("registry"), s("login"), s(host), s("--username"), s(username), s("--password-stdin")];
    if plain_http {
        args.push(s("--plain-http"));
    }
    cli.ok(&args, Some(password), scope).await.map(|_| ())
}

/// `helm dependency build` (or `update`) of a chart directory. The caller reads the output:
/// a failure is named after the dependency that failed (see `module`).
pub(crate) async fn dependency(
    cli: &HelmCli,
    chart: &std::path::Path,
    update: bool,
    skip_refresh: bool,
    plain_http: bool,
    scope: &CancelScope,
) -> Result<(Vec<String>, Output), HelmError> {
    let mut args = vec![s("dependency"), s(if update { "update" } else { "build" }), chart.display().to_string()];
    if skip_refresh {
        args.push(s("--skip-refresh"));
    }
    if plain_http {
        args.push(s("--plain-http"));
    }
    let out = cli.run(&args, None, scope).await?;
    Ok((args, out))
}

/// What to lint.
#[derive(Clone, Debug)]
pub(crate) struct LintSpec {
    /// The chart directory (or archive) helm lints.
    pub chart: String,
    /// The chart's name, to read template locations in helm's messages.
    pub name: String,
    /// Values files, in order.
    pub values_files: Vec<PathBuf>,
    /// Warnings fail the lint too.
    pub strict: bool,
    /// Lint the subcharts as well.
    pub with_subcharts: bool,
    /// The Kubernetes version templates see (`.Capabilities.KubeVersion`).
    pub kube_version: Option<String>,
}

/// What `helm lint` found, and whether it passed.
#[derive(Debug)]
pub(crate) struct Linted {
    /// helm said the chart passed (exit code 0).
    pub passed: bool,
    /// Every finding, in helm's order.
    pub findings: Vec<crate::lint::Finding>,
}

/// `helm lint`: a failing lint is a result, not an error; only a helm that fails without saying
/// why (no finding that explains it) is an error.
pub(crate) async fn lint(cli: &HelmCli, spec: &LintSpec, scope: &CancelScope) -> Result<Linted, HelmError> {
    let mut args = vec![s("lint"), spec.chart.clone()];
    for f in &spec.values_files {
        args.extend([s("-f"), f.display().to_string()]);
    }
    if spec.strict {
        args.push(s("--strict"));
    }
    if spec.with_subcharts {
        args.push(s("--with-subcharts"));
    }
    if let Some(v) = &spec.kube_version {
        args.extend([s("--kube-version"), v.clone()]);
    }
    let out = cli.run(&args, None, scope).await?;
    if out.cancelled {
        return Err(HelmError::Cancelled);
    }
    let findings = crate::lint::parse(&spec.name, &out.stdout, &out.stderr);
    let failing = |f: &crate::lint::Finding| {
        f.severity == crate::lint::Severity::Error || (spec.strict && f.severity == crate::lint::Severity::Warning)
    };
    if out.code != 0 && !findings.iter().any(failing) {
        return Err(failed(&args, &out));
    }
    Ok(Linted { passed: out.code == 0, findings })
}

/// `helm package` of a chart directory into `dest`; returns the archive's path.
pub(crate) async fn package(
    cli: &HelmCli,
    chart: &std::path::Path,
    dest: &std::path::Path,
    version: Option<&str>,
    app_version: Option<&str>,
    scope: &CancelScope,
) -> Result<PathBuf, HelmError> {
    let mut args = vec![s("package"), chart.display().to_string(), s("-d"), dest.display().to_string()];
    if let Some(v) = version {
        args.extend([s("--version"), s(v)]);
    }
    if let Some(v) = app_version {
        args.extend([s("--app-version"), s(v)]);
    }
    let out = cli.ok(&args, None, scope).await?;
    if out.cancelled {
        return Err(HelmError::Cancelled);
    }
    let saved = out.stdout.lines().find_map(|l| l.split_once("saved it to: ").map(|(_, p)| p.trim().to_string()));
    saved.map(PathBuf::from).ok_or_else(|| HelmError::Failed {
        command: "package".into(),
        code: out.code,
        stderr: format!("helm did not say where it saved the chart: {}", out.stdout.trim()),
    })
}

/// Where [`push`] put a chart.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Pushed {
    /// `127.0.0.1:5000/charts/kms-core:1.9.2`, as helm says it.
    pub reference: String,
    /// `sha256:...`.
    pub digest: String,
}

/// `helm push` of an archive to an `oci://` location (log in first with [`registry_login`]).
pub(crate) async fn push(
    cli: &HelmCli,
    archive: &std::path::Path,
    remote: &str,
    plain_http: bool,
    scope: &CancelScope,
) -> Result<Pushed, HelmError> {
    let mut args = vec![s("push"), archive.display().to_string(), s(remote)];
    if plain_http {
        args.push(s("--plain-http"));
    }
    let out = cli.ok(&args, None, scope).await?;
    if out.cancelled {
        return Err(HelmError::Cancelled);
    }
    // helm 4 says it on stdout, helm 3 on stderr.
    let text = format!("{}\n{}", out.stdout, out.stderr);
    parse_pushed(&text).ok_or_else(|| HelmError::Failed {
        command: "push".into(),
        code: out.code,
        stderr: format!("helm did not say what it pushed: {}", text.trim()),
    })
}

/// `Pushed: <ref>` and `Digest: <digest>` lines.
pub(crate) fn parse_pushed(text: &str) -> Option<Pushed> {
    let field = |name: &str| text.lines().find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()));
    Some(Pushed { reference: field("Pushed:")?, digest: field("Digest:")? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_helm_3_and_4_say_after_a_push() {
        let text = "Pushed: 127.0.0.1:25999/charts/kms-core:1.9.2\nDigest: sha256:4b0b44d2\n";
        assert_eq!(
            parse_pushed(text),
            Some(Pushed {
                reference: "127.0.0.1:25999/charts/kms-core:1.9.2".into(),
                digest: "sha256:4b0b44d2".into()
            })
        );
        assert_eq!(parse_pushed("Error: unexpected status from HEAD request"), None);
    }
}
