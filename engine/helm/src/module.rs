//! The Rhai adapter: `import "helm" as helm;` then `helm::upgrade(kc, "kms-core-1", chart, #{...})`.

use crate::cli::HelmCli;
use crate::deps::{self, Dependency, Verdict};
use crate::error::HelmError;
use crate::lint::Severity;
use crate::ops::{self, Kube, UpgradeSpec};
use crate::release;
use crate::values::ValuesFiles;
use kmsctl_host::value::{Reveal, from_json, to_json};
use kmsctl_host::{BuiltModule, ModuleBuilder, NativeModule};
use kmsctl_host::{CleanupId, HostCtx, Opts};
use kmsctl_host::{Level, Outcome, StepKind};
use kmsctl_host::{to_rhai, usage_err};
use kmsctl_k8s::ClusterHandle;
use kmsctl_k8s::WaitOptions;
use rhai::{Array, Dynamic, EvalAltResult, INT, Map};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kmsctl_host::ScriptResult as R;

/// The `helm` native module.
pub struct Helm;

/// Helm is detected once per run, on first use.
#[derive(Clone)]
struct State {
    ctx: HostCtx,
    /// Detected once: parallel tasks wait for the first one's `helm version` (13 parties
    /// would otherwise run 13).
    cli: Arc<Mutex<Option<HelmCli>>>,
    /// Local charts whose dependencies this run checked: one slot per chart directory, held
    /// while its dependencies are checked and built, so 13 parallel releases of one umbrella
    /// chart build it once and the others use the result (the chart to give helm, or the error).
    charts: Arc<Mutex<HashMap<PathBuf, Slot>>>,
    /// The run's private directory for chart copies, removed when the run ends.
    private: Arc<Mutex<Option<PathBuf>>>,
    /// Copies made so far: each goes to a directory of its own under `private`.
    copies: Arc<std::sync::atomic::AtomicUsize>,
}

/// What a chart's dependency check gave: the chart directory helm gets (the user's, or the
/// private copy its dependencies were built in), or the error.
type Slot = Arc<Mutex<Option<R<PathBuf>>>>;

// The options each function accepts.
const DEPENDENCY_OPTS: &[&str] = &["skip_refresh", "plain_http"];
const UPGRADE_OPTS: &[&str] = &[
    "namespace",
    "version",
    "values",
    "values_files",
    "create_namespace",
    "timeout",
    "wait",
    "rollback_on_failure",
    "history_max",
    "reuse_values",
    "skip_crds",
    "description",
    "plain_http",
];
const ROLLBACK_OPTS: &[&str] = &["namespace", "wait", "timeout"];
const TEST_OPTS: &[&str] = &["namespace", "timeout"];
const LINT_OPTS: &[&str] = &["values", "values_files", "strict", "with_subcharts", "kube_version", "plain_http"];
const PACKAGE_OPTS: &[&str] = &["version", "app_version", "dest", "plain_http"];
const PUSH_OPTS: &[&str] = &["username", "password", "plain_http"];
const UNINSTALL_OPTS: &[&str] = &["namespace", "wait", "timeout"];
const STATUS_OPTS: &[&str] = &["namespace"];
const HISTORY_OPTS: &[&str] = &["namespace"];
const LIST_OPTS: &[&str] = &["namespace", "all_namespaces"];
const TEMPLATE_OPTS: &[&str] = &["namespace", "version", "values", "values_files", "plain_http", "skip_tests"];
const GET_MANIFEST_OPTS: &[&str] = &["namespace", "revision"];
const GET_VALUES_OPTS: &[&str] = &["namespace", "revision", "all"];
const RECOVER_OPTS: &[&str] = &["namespace"];
const REPO_ADD_OPTS: &[&str] = &["username", "password"];
const REGISTRY_LOGIN_OPTS: &[&str] = &["username", "password", "plain_http"];

/// The same result again for another task: a script error is a map, copied.
fn again(r: &R<PathBuf>) -> Option<R<PathBuf>> {
    match r {
        Ok(p) => Some(Ok(p.clone())),
        Err(e) => match e.as_ref() {
            EvalAltResult::ErrorRuntime(v, pos) => Some(Err(Box::new(EvalAltResult::ErrorRuntime(v.clone(), *pos)))),
            _ => None,
        },
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    fn cli(&self) -> R<HelmCli> {
        let mut cli = self.cli.lock().unwrap_or_else(|e| e.into_inner());
        if cli.is_none() {
            *cli = Some(HelmCli { run: Some(self.ctx.clone()), ..self.ctx.block_on(HelmCli::detect())? });
        }
        Ok(cli.clone().expect("detected"))
    }

    fn slot(&self, dir: &Path) -> Slot {
        lock(&self.charts).entry(dir.to_path_buf()).or_default().clone()
    }

    /// The chart to give helm for `chart`: a local chart directory whose dependencies are
    /// missing or stale is copied into the run's private directory and its dependencies built
    /// there, once per chart per run; anything else is given as it is.
    fn chart(&self, chart: &str, plain_http: bool) -> R<String> {
        let given = chart_ref(&self.ctx, chart);
        let path = Path::new(&given);
        if !path.is_dir() {
            return Ok(given);
        }
        let dir = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let slot = self.slot(&dir);
        let mut done = lock(&slot);
        if let Some(r) = done.as_ref().and_then(again) {
            return r.map(|p| p.display().to_string());
        }
        let r = self.prepare(&self.cli()?, &dir, plain_http);
        // A stopped run's termination is not an answer for the next task.
        if !matches!(&r, Err(e) if kmsctl_host::is_terminated(e)) {
            *done = again(&r);
        }
        r.map(|p| p.display().to_string())
    }

    /// Check `dir`'s dependencies; if they must be built, build them in a private copy.
    fn prepare(&self, cli: &HelmCli, dir: &Path, plain_http: bool) -> R<PathBuf> {
        let Some(chart) = deps::inspect(dir).map_err(|e| to_rhai(&HelmError::Usage(e)))? else {
            return Ok(dir.to_path_buf());
        };
        let (update, why) = match chart.verdict() {
            Verdict::Fresh => return Ok(dir.to_path_buf()),
            Verdict::Build(why) => (false, why),
            Verdict::Update(why) => (true, why),
        };
        check_sources(&chart.name, &chart.deps, dir).map_err(|e| to_rhai(&e))?;
        let root = self.private_root().map_err(|e| to_rhai(&e))?;
        let n = self.copies.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let copy = deps::private_copy(dir, &chart.deps, &root.join(n.to_string())).map_err(|source| {
            to_rhai(&HelmError::Io { what: format!("cannot copy the chart {}", dir.display()), source })
        })?;
        self.ctx.log(
            Level::Info,
            format!(
                "chart {}: {why}; building its dependencies in a private copy (helm dependency {}), {} is left as it is",
                chart.name,
                if update { "update" } else { "build" },
                dir.display()
            ),
        );
        self.build(cli, &chart.name, &chart.deps, &copy, update, !has_remote(&chart.deps), plain_http)?;
        Ok(copy)
    }

    /// `helm dependency build|update` in `dir`; a build refused for an out-of-sync lock is
    /// retried as an update. Failures name the dependency and its source.
    #[allow(clippy::too_many_arguments)]
    fn build(
        &self,
        cli: &HelmCli,
        name: &str,
        dependencies: &[Dependency],
        dir: &Path,
        update: bool,
        skip_refresh: bool,
        plain_http: bool,
    ) -> R<()> {
        let (cli, d) = (cli.clone(), dir.to_path_buf());
        let (args, out) = self.ctx.block_on_graceful(move |scope| async move {
            let (args, out) = ops::dependency(&cli, &d, update, skip_refresh, plain_http, &scope).await?;
            if !update && out.code != 0 && !out.cancelled && out.stderr.contains("out of sync") {
                return ops::dependency(&cli, &d, true, skip_refresh, plain_http, &scope).await;
            }
            Ok::<_, HelmError>((args, out))
        })?;
        if out.code != 0 && !out.cancelled {
            return Err(to_rhai(&dependency_failed(name, dependencies, &args, &out)));
        }
        Ok(())
    }

    /// The run's private directory for chart copies (made on first use, removed at the end).
    fn private_root(&self) -> Result<PathBuf, HelmError> {
        let mut root = lock(&self.private);
        if let Some(r) = root.as_ref() {
            return Ok(r.clone());
        }
        let dir = tempfile::Builder::new()
            .prefix("kmsctl-helm-charts-")
            .tempdir()
            .map_err(|source| HelmError::Io { what: "cannot make a private directory for charts".into(), source })?
            .keep();
        let d = dir.clone();
        self.ctx.on_cleanup("helm chart copies", move || {
            Box::pin(async move {
                let _ = std::fs::remove_dir_all(d);
            })
        });
        *root = Some(dir.clone());
        Ok(dir)
    }
}

/// Every `file://` source must be a chart directory named as its dependency.
fn check_sources(chart: &str, dependencies: &[Dependency], dir: &Path) -> Result<(), HelmError> {
    for d in dependencies {
        if let Some(reason) = deps::check_file_source(d, dir) {
            return Err(HelmError::Dependency {
                chart: chart.to_string(),
                dependency: d.name.clone(),
                from: d.repository.clone(),
                reason,
                missing: true,
            });
        }
    }
    Ok(())
}

/// Any dependency that is not `file://` (a repository or OCI source: helm refreshes repositories).
fn has_remote(dependencies: &[Dependency]) -> bool {
    dependencies.iter().any(|d| !d.repository.starts_with("file://"))
}

/// helm's dependency build failed: name the dependencies its stderr mentions (all if none).
fn dependency_failed(chart: &str, dependencies: &[Dependency], args: &[String], out: &crate::cli::Output) -> HelmError {
    // `helm dependency build` (not the private copy's path: the message names the chart).
    let command = args.iter().take(2).map(String::as_str).collect::<Vec<_>>().join(" ");
    let reason = match crate::cli::failed(args, out) {
        HelmError::Failed { code, stderr, .. } => format!("helm {command} failed (exit code {code}): {stderr}"),
        e => e.to_string(),
    };
    let mentioned = |d: &&Dependency| {
        let src = d.repository.trim_start_matches("file://").trim_start_matches("oci://");
        out.stderr.contains(&d.name) || (!src.is_empty() && out.stderr.contains(src))
    };
    let mut named: Vec<&Dependency> = dependencies.iter().filter(mentioned).collect();
    if named.is_empty() {
        named = dependencies.iter().collect();
    }
    HelmError::Dependency {
        chart: chart.to_string(),
        dependency: named.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", "),
        from: named.iter().map(|d| d.repository.as_str()).collect::<Vec<_>>().join(", "),
        reason,
        missing: false,
    }
}

/// `helm::dependency_build` / `dependency_update`: in the chart directory itself, as helm does
/// (the playbook asked for it), under the chart's slot; later upgrades check the chart again.
fn dependency_in_place(st: &State, chart: &str, opts: &Map, update: bool) -> R<Array> {
    let what = if update { "helm::dependency_update" } else { "helm::dependency_build" };
    let o = Opts::new(opts, what, DEPENDENCY_OPTS)?;
    let path = st.ctx.resolve_path(chart);
    let dir =
        std::fs::canonicalize(&path).map_err(|_| o.usage(format!("{} is not a chart directory", path.display())))?;
    let inspected = deps::inspect(&dir)
        .map_err(|e| to_rhai(&HelmError::Usage(e)))?
        .ok_or_else(|| o.usage(format!("{} is not a chart directory (no Chart.yaml)", dir.display())))?;
    let slot = st.slot(&dir);
    let mut done = lock(&slot);
    *done = None;
    check_sources(&inspected.name, &inspected.deps, &dir).map_err(|e| to_rhai(&e))?;
    let skip_refresh = o.bool("skip_refresh", !has_remote(&inspected.deps))?;
    st.build(&st.cli()?, &inspected.name, &inspected.deps, &dir, update, skip_refresh, o.bool("plain_http", false)?)?;
    let after = deps::inspect(&dir).map_err(|e| to_rhai(&HelmError::Usage(e)))?;
    let locked = after.and_then(|c| c.lock).unwrap_or_default();
    Ok(locked
        .into_iter()
        .map(|d| {
            let mut m = Map::new();
            m.insert("name".into(), d.name.into());
            m.insert("version".into(), d.version.into());
            m.insert("repository".into(), d.repository.into());
            Dynamic::from_map(m)
        })
        .collect())
}

/// `values`: a map or an array of maps (later wins), secrets exposed into the files.
fn values(o: &Opts) -> R<Vec<Value>> {
    match o.get("values") {
        None => Ok(Vec::new()),
        Some(v) if v.is_array() => v
            .clone()
            .into_array()
            .unwrap_or_default()
            .iter()
            .map(|m| to_json(m, Reveal::Expose).map_err(usage_err))
            .collect(),
        Some(v) => Ok(vec![to_json(v, Reveal::Expose).map_err(usage_err)?]),
    }
}

/// Files that must exist, relative to the playbook.
fn paths(o: &Opts, k: &str, ctx: &HostCtx) -> R<Vec<PathBuf>> {
    o.strings(k)?
        .iter()
        .map(|p| {
            let path = ctx.resolve_path(p);
            if path.exists() { Ok(path) } else { Err(o.usage(format!("{k}: {} does not exist", path.display()))) }
        })
        .collect()
}

fn kube_of(kc: &ClusterHandle) -> Kube {
    Kube {
        kubeconfig: kc.cluster().kubeconfig().map(PathBuf::from),
        context: Some(kc.cluster().context().to_string()),
        server: Some(kc.cluster().server().to_string()),
        client: Some(kc.cluster().client().clone()),
    }
}

fn namespace(o: &Opts, kc: &ClusterHandle) -> R<String> {
    Ok(o.str("namespace")?.unwrap_or_else(|| kc.cluster().default_namespace().to_string()))
}

/// A local chart path resolves against the playbook; `repo/name` and `oci://` pass through.
fn chart_ref(ctx: &HostCtx, chart: &str) -> String {
    if chart.starts_with("oci://") || chart.contains("://") {
        return chart.to_string();
    }
    let local = ctx.resolve_path(chart);
    if local.exists() { local.display().to_string() } else { chart.to_string() }
}

/// Values files that the run's cleanup removes too: a run stopped while helm reads them exits
/// without unwinding the script thread that holds them.
struct RunValues {
    files: ValuesFiles,
    ctx: HostCtx,
    cleanup: CleanupId,
}

impl RunValues {
    fn write(ctx: &HostCtx, maps: &[Value]) -> R<Self> {
        let files = ValuesFiles::write(maps).map_err(|e| to_rhai(&e))?;
        let dir = files.dir().to_path_buf();
        let cleanup = ctx.on_cleanup("helm values files", move || {
            Box::pin(async move {
                let _ = std::fs::remove_dir_all(dir);
            })
        });
        Ok(Self { files, ctx: ctx.clone(), cleanup })
    }
}

impl Drop for RunValues {
    fn drop(&mut self) {
        self.ctx.remove_cleanup(self.cleanup);
    }
}

impl std::ops::Deref for RunValues {
    type Target = ValuesFiles;
    fn deref(&self) -> &ValuesFiles {
        &self.files
    }
}

fn release_info(rel: &Value) -> Map {
    let mut m = Map::new();
    let get = |p: &str| rel.pointer(p).cloned().unwrap_or(Value::Null);
    m.insert("name".into(), from_json(get("/name")));
    m.insert("namespace".into(), from_json(get("/namespace")));
    m.insert("revision".into(), (release::revision_of(rel) as INT).into());
    m.insert("status".into(), release::status_of(rel).to_string().into());
    m.insert("chart".into(), from_json(get("/chart/metadata/name")));
    m.insert("chart_version".into(), from_json(get("/chart/metadata/version")));
    m.insert("app_version".into(), from_json(get("/chart/metadata/appVersion")));
    m
}

fn upgrade(st: &State, kc: &ClusterHandle, name: &str, chart: &str, opts: &Map) -> R<Map> {
    let o = Opts::new(opts, "helm::upgrade", UPGRADE_OPTS)?;
    let ctx = &st.ctx;
    let cli = st.cli()?;
    let ns = namespace(&o, kc)?;
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(600));
    let files = RunValues::write(ctx, &values(&o)?)?;
    let mut values_files = paths(&o, "values_files", ctx)?;
    values_files.extend(files.paths.iter().cloned());
    let spec = UpgradeSpec {
        release: name.to_string(),
        chart: st.chart(chart, o.bool("plain_http", false)?)?,
        namespace: ns.clone(),
        version: o.str("version")?,
        values_files,
        create_namespace: o.bool("create_namespace", true)?,
        timeout,
        history_max: o.int("history_max")?.unwrap_or(10).clamp(0, 10_000) as u32,
        reuse_values: o.bool("reuse_values", false)?,
        skip_crds: o.bool("skip_crds", false)?,
        description: o.str("description")?,
        plain_http: o.bool("plain_http", false)?,
    };
    if ctx.mode().is_plan() {
        return plan_upgrade(st, kc, &spec, files);
    }
    let kube = kube_of(kc);
    let started = ctx.events().elapsed();
    let up = {
        let (cli2, kube2, spec) = (cli.clone(), kube.clone(), spec.clone());
        let r = ctx.block_on_graceful(move |scope| async move { ops::upgrade(&cli2, &kube2, &spec, &scope).await });
        // The run report's timeline: the helm process as a phase of the calling step.
        let took = ctx.events().elapsed().saturating_sub(started);
        let outcome = match &r {
            Ok(_) => Outcome::Ok,
            Err(e) if kmsctl_host::is_terminated(e) => Outcome::Cancelled,
            Err(_) => Outcome::Failed,
        };
        ctx.phase(format!("helm upgrade {name}"), StepKind::Helm, ms(started), ms(took), outcome);
        match r {
            Ok(r) => r,
            Err(e) => {
                // A failed hook Job gets the same failure report as a failed wait.
                if !kmsctl_host::is_terminated(&e) {
                    report_failed_hooks(st, kc, &cli, &kube, name, &ns);
                }
                return Err(e);
            }
        }
    };
    let (rel, previous, recovered) = (up.release, up.previous, up.recovered);
    hook_phases(ctx, &rel, ms(started));
    drop(files);
    for r in recovered.iter().chain(&up.retried) {
        ctx.log(Level::Warn, r.clone());
    }
    let mut info = release_info(&rel);
    let objects = release::manifest_objects(&rel).map_err(|e| to_rhai(&HelmError::Manifest(e)))?;
    if o.bool("wait", true)? && !objects.is_empty() {
        let wo = WaitOptions { timeout, what: Some(format!("release {name}")), ..Default::default() };
        if let Err(e) = kc.wait_values(&objects, Some(&ns), wo) {
            if kmsctl_host::is_terminated(&e) || !o.bool("rollback_on_failure", false)? {
                return Err(e);
            }
            let what = roll_back(st, &cli, &kube, name, &ns, previous)?;
            ctx.log(Level::Warn, format!("release {ns}/{name}: {what}"));
            return Err(annotate(e, &what));
        }
    }
    if let Some(r) = recovered {
        info.insert("recovered".into(), r.into());
    }
    Ok(info)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The hooks this upgrade ran, as phases of the calling step (a hook that ran for an earlier
/// revision started before this upgrade did and is left out).
fn hook_phases(ctx: &HostCtx, rel: &Value, since_ms: u64) {
    for h in release::hook_runs(rel) {
        let (Ok(start), Ok(end)) = (h.started_at.parse::<jiff::Timestamp>(), h.completed_at.parse::<jiff::Timestamp>())
        else {
            continue;
        };
        let (start, end) = (ctx.events().ms_since_start(start), ctx.events().ms_since_start(end));
        if start + 1000 < since_ms {
            continue;
        }
        let outcome = if h.phase == "Failed" { Outcome::Failed } else { Outcome::Ok };
        ctx.phase(format!("hook {}", h.what), StepKind::Hook, start, end.saturating_sub(start), outcome);
    }
}

/// `--plan`: render the release with `helm template` and exactly the values files the upgrade
/// would get, and record its objects (the manifest under the artifacts directory). A chart
/// that cannot be fetched without the network (a repository or OCI chart) is recorded
/// unrendered, with the reason; a local chart that does not render fails as the upgrade would.
///
/// Inside a `parallel` group the render is started here and finished when the group's tasks
/// have run ([`kmsctl_host::HostCtx::defer`]): 13 parties render at once, not one by one.
fn plan_upgrade(st: &State, kc: &ClusterHandle, spec: &UpgradeSpec, files: RunValues) -> R<Map> {
    let t = ops::TemplateSpec {
        release: spec.release.clone(),
        chart: spec.chart.clone(),
        namespace: spec.namespace.clone(),
        version: spec.version.clone(),
        values_files: spec.values_files.clone(),
        plain_http: spec.plain_http,
        skip_tests: true,
    };
    let cli = st.cli()?;
    let chart = match &spec.version {
        Some(v) => format!("{} {v}", display_chart(&spec.chart)),
        None => display_chart(&spec.chart),
    };
    let target = format!("release {}/{} ({chart})", spec.namespace, spec.release);
    let seq = kc.reserve_rendered("helm upgrade", target.clone());
    let scope = st.ctx.scope();
    let task_scope = scope.clone();
    // The values files live until the render ends.
    let render = st.ctx.runtime().spawn(async move {
        let out = ops::template(&cli, &t, &task_scope).await;
        drop(files);
        out
    });
    let (ctx, kc) = (st.ctx.clone(), kc.clone());
    let (namespace, release, local) = (spec.namespace.clone(), spec.release.clone(), Path::new(&spec.chart).is_dir());
    st.ctx.defer(Box::new(move || {
        let rendered = ctx.block_on(async move {
            render.await.map_err(|e| HelmError::Unavailable(format!("the render of the release stopped: {e}")))
        })?;
        if scope.is_cancelled() {
            return Err(kmsctl_host::terminated(&scope));
        }
        let (objects, note) = match rendered {
            Ok(text) => {
                let mut objects = kmsctl_k8s::parse_manifests(&text).map_err(|e| to_rhai(&e))?;
                for o in &mut objects {
                    let kind = o.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
                    if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut)
                        && !kmsctl_k8s::is_cluster_scoped(&kind)
                        && !meta.contains_key("namespace")
                    {
                        meta.insert("namespace".into(), namespace.clone().into());
                    }
                }
                (objects, None)
            }
            Err(e) => {
                let e = to_rhai(&e);
                if kmsctl_host::is_terminated(&e) || local {
                    return Err(e);
                }
                (Vec::new(), Some(format!("not rendered: {}", kmsctl_host::short_message(&e))))
            }
        };
        let file = format!("helm-{namespace}-{release}");
        kc.record_rendered_at(seq, "helm upgrade", target, &file, &objects, note)
    }))?;
    let mut m = Map::new();
    m.insert("name".into(), spec.release.clone().into());
    m.insert("namespace".into(), spec.namespace.clone().into());
    m.insert("revision".into(), (0 as INT).into());
    m.insert("status".into(), "planned".into());
    m.insert("chart".into(), spec.chart.clone().into());
    m.insert("chart_version".into(), spec.version.clone().map(Dynamic::from).unwrap_or(Dynamic::UNIT));
    m.insert("app_version".into(), Dynamic::UNIT);
    Ok(m)
}

/// A chart as the plan shows it: a local chart relative to the working directory when it is
/// under it (so plans do not depend on where the checkout is), else as given.
fn display_chart(chart: &str) -> String {
    let base = std::env::current_dir().and_then(std::fs::canonicalize).unwrap_or_default();
    let path = std::fs::canonicalize(chart).unwrap_or_else(|_| PathBuf::from(chart));
    match path.strip_prefix(&base) {
        Ok(rel) if Path::new(chart).is_dir() => rel.display().to_string(),
        _ => chart.to_string(),
    }
}

/// Undo a failed upgrade: back to the previous deployed revision, or uninstall a first install.
fn roll_back(st: &State, cli: &HelmCli, kube: &Kube, name: &str, ns: &str, previous: Option<i64>) -> R<String> {
    let (cli, kube, name, ns) = (cli.clone(), kube.clone(), name.to_string(), ns.to_string());
    st.ctx.block_on_graceful(move |scope| async move {
        match previous {
            Some(rev) => {
                ops::rollback(&cli, &kube, &name, &ns, rev, Duration::from_secs(300), &scope).await?;
                Ok::<_, HelmError>(format!("rolled back to revision {rev}"))
            }
            None => {
                ops::uninstall(&cli, &kube, &name, &ns, None, &scope).await?;
                Ok("uninstalled (it was a first install)".to_string())
            }
        }
    })
}

/// Add "(rolled back to revision 3)" to a script error's message.
fn annotate(mut e: Box<EvalAltResult>, what: &str) -> Box<EvalAltResult> {
    if let EvalAltResult::ErrorRuntime(v, _) = e.as_mut()
        && let Some(mut m) = v.write_lock::<Map>()
    {
        let msg = m.get("message").map(kmsctl_host::value::display).unwrap_or_default();
        m.insert("message".into(), format!("{msg} ({what})").into());
        m.insert("rolled_back".into(), what.to_string().into());
    }
    e
}

fn report_failed_hooks(st: &State, kc: &ClusterHandle, cli: &HelmCli, kube: &Kube, name: &str, ns: &str) {
    let (cli2, kube2, name2, ns2) = (cli.clone(), kube.clone(), name.to_string(), ns.to_string());
    let Ok(Some(rel)) =
        st.ctx.block_on_graceful(move |scope| async move { ops::status(&cli2, &kube2, &name2, &ns2, &scope).await })
    else {
        return;
    };
    let hooks = release::failed_hook_jobs(&rel);
    if hooks.is_empty() {
        return;
    }
    // The Job has failed: the wait fails at once and writes the report.
    let wo = WaitOptions {
        timeout: Duration::from_secs(20),
        what: Some(format!("the hooks of release {name}")),
        ..Default::default()
    };
    let _ = kc.wait_values(&hooks, Some(ns), wo);
}

/// `helm::rollback`: back to `rev` (0: the previous one), then wait on the release's objects.
fn rollback(s: &State, kc: &ClusterHandle, name: &str, rev: INT, o: &Map) -> R<Map> {
    let oo = Opts::new(o, "helm::rollback", ROLLBACK_OPTS)?;
    let (kube, ns) = kube_and_ns(kc, &oo)?;
    let timeout = oo.duration("timeout")?.unwrap_or(Duration::from_secs(600));
    let (cli, name2, ns2, kube2) = (s.cli()?, name.to_string(), ns.clone(), kube.clone());
    let rel = s.ctx.block_on_graceful(move |scope| async move {
        ops::rollback(&cli, &kube2, &name2, &ns2, rev, timeout, &scope).await?;
        ops::status(&cli, &kube2, &name2, &ns2, &scope).await
    })?;
    let rel = rel.ok_or_else(|| to_rhai(&HelmError::NotFound(format!("release {ns}/{name} not found"))))?;
    if oo.bool("wait", true)? {
        let objects = release::manifest_objects(&rel).map_err(|e| to_rhai(&HelmError::Manifest(e)))?;
        let wo = WaitOptions { timeout, what: Some(format!("release {name}")), ..Default::default() };
        kc.wait_values(&objects, Some(&ns), wo)?;
    }
    Ok(release_info(&rel))
}

/// `helm::test`: run the release's test hooks. A failed test fails with its pod's failure report
/// (the wait on a failed pod fails at once and writes it), named in the message.
fn test(s: &State, kc: &ClusterHandle, name: &str, o: &Map) -> R<Map> {
    let oo = Opts::new(o, "helm::test", TEST_OPTS)?;
    let (kube, ns) = kube_and_ns(kc, &oo)?;
    let timeout = oo.duration("timeout")?.unwrap_or(Duration::from_secs(300));
    if s.ctx.mode().is_plan() {
        // Recorded; as if its tests passed (a plan's waits succeed at once), none known.
        s.ctx.record(kmsctl_host::PlannedOp::new("helm test", format!("{ns}/{name}")).note("its test pods run"));
        let mut m = Map::new();
        m.insert("name".into(), name.into());
        m.insert("namespace".into(), ns.into());
        m.insert("passed".into(), true.into());
        m.insert("tests".into(), Array::new().into());
        return Ok(m);
    }
    let (cli, name2, ns2) = (s.cli()?, name.to_string(), ns.clone());
    let (passed, rel) = s.ctx.block_on_graceful(move |scope| async move {
        let passed = ops::test(&cli, &kube, &name2, &ns2, timeout, &scope).await?;
        Ok::<_, HelmError>((passed, ops::status(&cli, &kube, &name2, &ns2, &scope).await?))
    })?;
    let rel = rel.ok_or_else(|| to_rhai(&HelmError::NotFound(format!("release {ns}/{name} not found"))))?;
    let tests = release::test_hooks(&rel);
    if !passed {
        let failed: Vec<&Value> = tests.iter().filter(|t| t["phase"] == "Failed").collect();
        let names: Vec<&str> = failed.iter().filter_map(|t| t["name"].as_str()).collect();
        let what = format!("helm test {ns}/{name}: {} failed", names.join(", "));
        let objects: Vec<Value> = failed
            .iter()
            .map(|t| serde_json::json!({"apiVersion": "v1", "kind": t["kind"], "metadata": {"name": t["name"]}}))
            .collect();
        let wo = WaitOptions { timeout: Duration::from_secs(20), what: Some(what.clone()), ..Default::default() };
        let err = match kc.wait_values(&objects, Some(&ns), wo) {
            Err(e) => e,
            Ok(_) => to_rhai(&HelmError::Failed { command: "test".into(), code: 1, stderr: what.clone() }),
        };
        return Err(prefix(err, &what));
    }
    let mut m = Map::new();
    m.insert("name".into(), name.into());
    m.insert("namespace".into(), ns.into());
    m.insert("passed".into(), true.into());
    m.insert("tests".into(), tests.into_iter().map(from_json).collect::<Array>().into());
    Ok(m)
}

/// `what: ` before an error's message (a wait's report keeps its own text after it).
fn prefix(mut e: Box<EvalAltResult>, what: &str) -> Box<EvalAltResult> {
    if let EvalAltResult::ErrorRuntime(v, _) = e.as_mut()
        && let Some(mut m) = v.write_lock::<Map>()
    {
        let msg = m.get("message").map(kmsctl_host::value::display).unwrap_or_default();
        m.insert("message".into(), format!("{what}: {msg}").into());
    }
    e
}

/// A local chart directory (relative to the playbook) and its name; anything else is a usage
/// error of `what`.
fn local_chart(st: &State, chart: &str, o: &Opts) -> R<(PathBuf, String)> {
    let path = st.ctx.resolve_path(chart);
    let dir = std::fs::canonicalize(&path)
        .ok()
        .filter(|d| d.join("Chart.yaml").is_file())
        .ok_or_else(|| o.usage(format!("{} is not a chart directory (no Chart.yaml)", path.display())))?;
    let name = deps::inspect(&dir).map_err(|e| to_rhai(&HelmError::Usage(e)))?.map(|c| c.name).unwrap_or_default();
    Ok((dir, name))
}

/// A file a finding names, for a CI annotation: relative to the working directory when it is
/// under it (GitHub Actions runs in the checkout), else absolute.
fn annotation_path(file: &Path) -> String {
    let cwd = std::env::current_dir().ok().and_then(|c| std::fs::canonicalize(c).ok());
    let file = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    match cwd.as_deref().and_then(|c| file.strip_prefix(c).ok()) {
        Some(rel) => rel.display().to_string(),
        None => file.display().to_string(),
    }
}

/// `helm::lint`: helm's findings as data, with the files they name.
fn lint(st: &State, chart: &str, opts: &Map) -> R<Map> {
    let o = Opts::new(opts, "helm::lint", LINT_OPTS)?;
    let (dir, name) = local_chart(st, chart, &o)?;
    let files = RunValues::write(&st.ctx, &values(&o)?)?;
    let mut values_files = paths(&o, "values_files", &st.ctx)?;
    values_files.extend(files.paths.iter().cloned());
    // Absolute, so that a values file helm cannot parse is told from a file of the chart.
    let values_files = values_files.into_iter().map(|f| std::fs::canonicalize(&f).unwrap_or(f)).collect();
    let spec = ops::LintSpec {
        // An umbrella chart is linted with its dependencies built (in the private copy).
        chart: st.chart(&dir.display().to_string(), o.bool("plain_http", false)?)?,
        name,
        values_files,
        strict: o.bool("strict", false)?,
        with_subcharts: o.bool("with_subcharts", false)?,
        kube_version: o.str("kube_version")?,
    };
    let cli = st.cli()?;
    let linted = st.ctx.block_on_graceful(move |scope| async move { ops::lint(&cli, &spec, &scope).await })?;
    let private: Vec<PathBuf> = files.paths.iter().map(|f| std::fs::canonicalize(f).unwrap_or(f.clone())).collect();
    drop(files);
    let count = |s: Severity| linted.findings.iter().filter(|f| f.severity == s).count() as INT;
    let mut m = Map::new();
    m.insert("passed".into(), linted.passed.into());
    m.insert("chart".into(), dir.display().to_string().into());
    m.insert("errors".into(), count(Severity::Error).into());
    m.insert("warnings".into(), count(Severity::Warning).into());
    let findings: Array = linted
        .findings
        .iter()
        .map(|f| {
            let mut x = Map::new();
            x.insert("severity".into(), f.severity.as_str().into());
            let (file, chart_file) = match f.file.as_deref() {
                // A values file given with values_files: its own path. (One of kmsctl's private
                // values files is named as "values" instead: its path means nothing to a user.)
                Some(p) if Path::new(p).is_absolute() => {
                    let is_private = private.iter().any(|v| v.as_path() == Path::new(p));
                    (
                        Dynamic::from(if is_private { "values".to_string() } else { annotation_path(Path::new(p)) }),
                        Dynamic::UNIT,
                    )
                }
                Some(rel) => (annotation_path(&dir.join(rel)).into(), rel.to_string().into()),
                None => (Dynamic::UNIT, Dynamic::UNIT),
            };
            x.insert("file".into(), file);
            x.insert("chart_file".into(), chart_file);
            x.insert("line".into(), f.line.map(|l| Dynamic::from(l as INT)).unwrap_or(Dynamic::UNIT));
            x.insert("column".into(), f.column.map(|c| Dynamic::from(c as INT)).unwrap_or(Dynamic::UNIT));
            x.insert("message".into(), f.message.clone().into());
            Dynamic::from_map(x)
        })
        .collect();
    m.insert("findings".into(), findings.into());
    Ok(m)
}

/// `helm::package_chart` (`package` is a reserved word in Rhai): the archive of a local chart (dependencies built), into `dest`.
fn package_chart(st: &State, chart: &str, opts: &Map) -> R<String> {
    let o = Opts::new(opts, "helm::package", PACKAGE_OPTS)?;
    let (dir, _) = local_chart(st, chart, &o)?;
    let version = o.str("version")?;
    if let Some(v) = version.as_deref().filter(|v| !deps::is_exact_version(v)) {
        return Err(o.usage(format!("version '{v}' is not a SemVer version (MAJOR.MINOR.PATCH, e.g. 1.9.2)")));
    }
    let dest =
        match o.str("dest")? {
            Some(d) => st.ctx.resolve_path(&d),
            None => st.ctx.artifacts_dir().map(|a| a.join("charts")).map_err(|source| {
                to_rhai(&HelmError::Io { what: "cannot make the artifacts directory".into(), source })
            })?,
        };
    std::fs::create_dir_all(&dest)
        .map_err(|source| to_rhai(&HelmError::Io { what: format!("cannot make {}", dest.display()), source }))?;
    // Absolute: helm says where it saved the archive in the terms it was given.
    let dest = std::fs::canonicalize(&dest).unwrap_or(dest);
    let built = PathBuf::from(st.chart(&dir.display().to_string(), o.bool("plain_http", false)?)?);
    let (cli, app_version) = (st.cli()?, o.str("app_version")?);
    let out = st.ctx.block_on_graceful(move |scope| async move {
        ops::package(&cli, &built, &dest, version.as_deref(), app_version.as_deref(), &scope).await
    })?;
    Ok(out.display().to_string())
}

/// `helm::push`: an archive to `oci://...`, after a registry login when credentials are given.
fn push(st: &State, archive: &str, remote: &str, opts: &Map) -> R<Map> {
    let o = Opts::new(opts, "helm::push", PUSH_OPTS)?;
    let file = st.ctx.resolve_path(archive);
    if !file.is_file() {
        return Err(to_rhai(&HelmError::NotFound(format!("helm::push: no chart archive at {}", file.display()))));
    }
    let Some(location) = remote.strip_prefix("oci://").filter(|l| !l.is_empty() && !l.starts_with('/')) else {
        return Err(o.usage(format!("'{remote}' is not an OCI location: give oci://<registry>/<path>")));
    };
    let host = location.split('/').next().unwrap_or(location).to_string();
    let (user, password, plain_http) = (o.str("username")?, o.exposed("password")?, o.bool("plain_http", false)?);
    if user.is_some() != password.is_some() {
        return Err(o.usage("username and password go together: give both, or neither (already logged in)"));
    }
    let (cli, remote2) = (st.cli()?, remote.trim_end_matches('/').to_string());
    let pushed = st.ctx.block_on_graceful(move |scope| async move {
        if let (Some(u), Some(p)) = (user, password) {
            ops::registry_login(&cli, &host, &u, &p, plain_http, &scope).await?;
        }
        ops::push(&cli, &file, &remote2, plain_http, &scope).await
    })?;
    // `host/charts/kms-core:1.9.2`: the tag is after the last `:` of the last segment.
    let (repo, version) = match pushed.reference.rsplit_once(':') {
        Some((r, v)) if !v.contains('/') => (r.to_string(), v.to_string()),
        _ => (pushed.reference.clone(), String::new()),
    };
    let mut m = Map::new();
    m.insert("chart".into(), format!("oci://{repo}").into());
    m.insert("version".into(), version.into());
    m.insert("reference".into(), format!("oci://{}", pushed.reference).into());
    m.insert("digest".into(), pushed.digest.into());
    Ok(m)
}

fn kube_and_ns(kc: &ClusterHandle, o: &Opts) -> R<(Kube, String)> {
    Ok((kube_of(kc), namespace(o, kc)?))
}

impl NativeModule for Helm {
    fn name(&self) -> &'static str {
        "helm"
    }
    fn build(&self, ctx: &HostCtx) -> BuiltModule {
        let st = State {
            ctx: ctx.clone(),
            cli: Arc::default(),
            charts: Arc::default(),
            private: Arc::default(),
            copies: Arc::default(),
        };
        let mut b = ModuleBuilder::new(
            ctx,
            self.name(),
            "Helm releases through the real helm binary (3 or 4, detected once; $KMSCTL_HELM overrides).\n\
             Values are written to 0600 files, never argv. kmsctl waits on the release's objects itself.",
        );
        let s = st.clone();
        b.func("version", &["string"], "The helm version in use, e.g. \"v4.3.1\".", move || -> R<String> {
            Ok(s.cli()?.version)
        })
        .reads();
        let s = st.clone();
        b.func(
            "upgrade",
            &["cluster: Cluster", "release: string", "chart: string", "options: map", "map"],
            "Install or upgrade a release and wait until its objects are ready (kmsctl's readiness engine,\n\
             with a failure report). The chart is a local path (relative to the playbook), repo/name or\n\
             oci://...; a release left pending by an interrupted run is recovered first. Options:\n\
             namespace, version, values (map or array of maps), values_files, create_namespace (true),\n\
             timeout (\"10m\"), wait (true), rollback_on_failure (false), history_max (10), reuse_values,\n\
             skip_crds, description, plain_http (an OCI registry without TLS). Returns #{name, namespace, revision, status, chart, chart_version,\n\
             app_version, recovered?}.",
            move |kc: ClusterHandle, name: &str, chart: &str, o: Map| upgrade(&s, &kc, name, chart, &o),
        ).options(UPGRADE_OPTS).plans();
        let s = st.clone();
        b.func(
            "upgrade",
            &["cluster: Cluster", "release: string", "chart: string", "map"],
            "Install or upgrade with default options.",
            move |kc: ClusterHandle, name: &str, chart: &str| upgrade(&s, &kc, name, chart, &Map::new()),
        )
        .plans();
        let s = st.clone();
        b.func(
            "uninstall",
            &["cluster: Cluster", "release: string", "options: map", "bool"],
            "Uninstall a release; true if it existed. Options: namespace, wait (true), timeout (\"5m\").",
            move |kc: ClusterHandle, name: &str, o: Map| -> R<bool> {
                let oo = Opts::new(&o, "helm::uninstall", UNINSTALL_OPTS)?;
                let (kube, ns) = kube_and_ns(&kc, &oo)?;
                let wait = if oo.bool("wait", true)? {
                    Some(oo.duration("timeout")?.unwrap_or(Duration::from_secs(300)))
                } else {
                    None
                };
                let (cli, name) = (s.cli()?, name.to_string());
                s.ctx.block_on_graceful(move |scope| async move {
                    ops::uninstall(&cli, &kube, &name, &ns, wait, &scope).await
                })
            },
        )
        .options(UNINSTALL_OPTS)
        .mutates();
        let s = st.clone();
        b.func(
            "rollback",
            &["cluster: Cluster", "release: string", "revision: int", "options: map", "map"],
            "Roll back to a revision (0: the previous one) and wait until ready. Options: namespace, wait (true), timeout.",
            move |kc: ClusterHandle, name: &str, rev: INT, o: Map| -> R<Map> { rollback(&s, &kc, name, rev, &o) },
        ).options(ROLLBACK_OPTS).mutates();
        let s = st.clone();
        b.func(
            "rollback",
            &["cluster: Cluster", "release: string", "revision: int", "map"],
            "Roll back to a revision (0: the previous one) with default options.",
            move |kc: ClusterHandle, name: &str, rev: INT| -> R<Map> { rollback(&s, &kc, name, rev, &Map::new()) },
        )
        .mutates();
        let s = st.clone();
        b.func(
            "test",
            &["cluster: Cluster", "release: string", "options: map", "map"],
            "Run the release's tests (`helm test`: its `helm.sh/hook: test` pods) and wait until they end:\n\
             #{name, namespace, passed, tests: [#{name, kind, phase, started_at, completed_at}]}. A failed\n\
             test fails with its pod's failure report. Options: namespace, timeout (\"5m\").",
            move |kc: ClusterHandle, name: &str, o: Map| -> R<Map> { test(&s, &kc, name, &o) },
        )
        .options(TEST_OPTS)
        .plans();
        let s = st.clone();
        b.func(
            "test",
            &["cluster: Cluster", "release: string", "map"],
            "Run the release's tests with default options.",
            move |kc: ClusterHandle, name: &str| -> R<Map> { test(&s, &kc, name, &Map::new()) },
        )
        .plans();
        let s = st.clone();
        b.func(
            "status",
            &["cluster: Cluster", "release: string", "options: map", "any"],
            "The release (#{name, namespace, revision, status, ...}), or `()` if it does not exist. Options: namespace.",
            move |kc: ClusterHandle, name: &str, o: Map| -> R<Dynamic> {
                let oo = Opts::new(&o, "helm::status", STATUS_OPTS)?;
                let (kube, ns) = kube_and_ns(&kc, &oo)?;
                if kc.cluster().is_offline() {
                    return Ok(Dynamic::UNIT);
                }
                let (cli, name) = (s.cli()?, name.to_string());
                let rel = s.ctx.block_on_graceful(move |scope| async move { ops::status(&cli, &kube, &name, &ns, &scope).await })?;
                Ok(rel.map(|r| Dynamic::from_map(release_info(&r))).unwrap_or(Dynamic::UNIT))
            },
        ).options(STATUS_OPTS).reads();
        let s = st.clone();
        b.func(
            "history",
            &["cluster: Cluster", "release: string", "options: map", "array"],
            "Revisions, oldest first: #{revision, status, chart, app_version, description, updated}. Options: namespace.",
            move |kc: ClusterHandle, name: &str, o: Map| -> R<Array> {
                let oo = Opts::new(&o, "helm::history", HISTORY_OPTS)?;
                let (kube, ns) = kube_and_ns(&kc, &oo)?;
                if kc.cluster().is_offline() {
                    return Ok(Array::new());
                }
                let (cli, name) = (s.cli()?, name.to_string());
                let h = s.ctx.block_on_graceful(move |scope| async move { ops::history(&cli, &kube, &name, &ns, &scope).await })?;
                Ok(h.into_iter().map(from_json).collect())
            },
        ).options(HISTORY_OPTS).reads();
        let s = st.clone();
        b.func(
            "list",
            &["cluster: Cluster", "options: map", "array"],
            "Releases in every status (deployed, failed, pending-*, ...). Options: namespace, all_namespaces.",
            move |kc: ClusterHandle, o: Map| -> R<Array> {
                let oo = Opts::new(&o, "helm::list", LIST_OPTS)?;
                let kube = kube_of(&kc);
                let ns = if oo.bool("all_namespaces", false)? { None } else { Some(namespace(&oo, &kc)?) };
                if kc.cluster().is_offline() {
                    return Ok(Array::new());
                }
                let cli = s.cli()?;
                let l = s.ctx.block_on_graceful(move |scope| async move {
                    ops::list(&cli, &kube, ns.as_deref(), &scope).await
                })?;
                Ok(l.into_iter().map(from_json).collect())
            },
        )
        .options(LIST_OPTS)
        .reads();
        let s = st.clone();
        b.func(
            "template",
            &["release: string", "chart: string", "options: map", "string"],
            "Render a chart without a cluster. Options: namespace (\"default\"), version, values, values_files,\n\
             skip_tests (false: the chart's `helm test` pods are rendered too, as helm does).",
            move |name: &str, chart: &str, o: Map| -> R<String> {
                let oo = Opts::new(&o, "helm::template", TEMPLATE_OPTS)?;
                let files = RunValues::write(&s.ctx, &values(&oo)?)?;
                let mut values_files = paths(&oo, "values_files", &s.ctx)?;
                values_files.extend(files.paths.iter().cloned());
                let spec = ops::TemplateSpec {
                    release: name.to_string(),
                    chart: s.chart(chart, oo.bool("plain_http", false)?)?,
                    namespace: oo.str("namespace")?.unwrap_or_else(|| "default".into()),
                    version: oo.str("version")?,
                    values_files,
                    plain_http: oo.bool("plain_http", false)?,
                    skip_tests: oo.bool("skip_tests", false)?,
                };
                let cli = s.cli()?;
                let out = s.ctx.block_on_graceful(move |scope| async move { ops::template(&cli, &spec, &scope).await });
                drop(files);
                out
            },
        )
        .options(TEMPLATE_OPTS)
        .reads();
        let s = st.clone();
        b.func(
            "get_manifest",
            &["cluster: Cluster", "release: string", "options: map", "string"],
            "The rendered manifest of a release. Options: namespace, revision.",
            move |kc: ClusterHandle, name: &str, o: Map| -> R<String> {
                if kc.cluster().is_offline() {
                    return Err(to_rhai(&HelmError::NotFound(format!(
                        "release {name} not found (--plan: an empty cluster)"
                    ))));
                }
                let oo = Opts::new(&o, "helm::get_manifest", GET_MANIFEST_OPTS)?;
                let (kube, ns) = kube_and_ns(&kc, &oo)?;
                let (cli, name, rev) = (s.cli()?, name.to_string(), oo.int("revision")?);
                s.ctx.block_on_graceful(move |scope| async move {
                    ops::get_manifest(&cli, &kube, &name, &ns, rev, &scope).await
                })
            },
        )
        .options(GET_MANIFEST_OPTS)
        .reads();
        let s = st.clone();
        b.func(
            "get_values",
            &["cluster: Cluster", "release: string", "options: map", "map"],
            "The values of a release. Options: namespace, revision, all (computed values, not only user-supplied).",
            move |kc: ClusterHandle, name: &str, o: Map| -> R<Dynamic> {
                if kc.cluster().is_offline() {
                    return Err(to_rhai(&HelmError::NotFound(format!(
                        "release {name} not found (--plan: an empty cluster)"
                    ))));
                }
                let oo = Opts::new(&o, "helm::get_values", GET_VALUES_OPTS)?;
                let (kube, ns) = kube_and_ns(&kc, &oo)?;
                let (cli, name, rev, all) = (s.cli()?, name.to_string(), oo.int("revision")?, oo.bool("all", false)?);
                let v = s.ctx.block_on_graceful(move |scope| async move {
                    ops::get_values(&cli, &kube, &name, &ns, rev, all, &scope).await
                })?;
                Ok(from_json(v))
            },
        )
        .options(GET_VALUES_OPTS)
        .reads();
        let s = st.clone();
        b.func(
            "recover",
            &["cluster: Cluster", "release: string", "options: map", "any"],
            "If the release is stuck pending-*, roll it back (or uninstall a never-deployed one); if it was left\n\
             uninstalling, finish the uninstall. Returns what was done or `()`. `upgrade` does this itself. Options: namespace.",
            move |kc: ClusterHandle, name: &str, o: Map| -> R<Dynamic> {
                let oo = Opts::new(&o, "helm::recover", RECOVER_OPTS)?;
                let (kube, ns) = kube_and_ns(&kc, &oo)?;
                let (cli, name) = (s.cli()?, name.to_string());
                let r = s.ctx.block_on_graceful(move |scope| async move {
                    ops::recover_pending(&cli, &kube, &name, &ns, &scope).await
                })?;
                Ok(r.map(Dynamic::from).unwrap_or(Dynamic::UNIT))
            },
        ).options(RECOVER_OPTS)
        .mutates();
        let s = st.clone();
        b.func(
            "repo_add",
            &["name: string", "url: string", "options: map", "()"],
            "Add (or update) a chart repository. Options: username, password (a secret; passed on stdin).",
            move |name: &str, url: &str, o: Map| -> R<()> {
                let oo = Opts::new(&o, "helm::repo_add", REPO_ADD_OPTS)?;
                let password = oo.exposed("password")?;
                let (cli, name, url, user) = (s.cli()?, name.to_string(), url.to_string(), oo.str("username")?);
                s.ctx.block_on_graceful(move |scope| async move {
                    ops::repo_add(&cli, &name, &url, user.as_deref(), password.as_deref(), &scope).await
                })
            },
        )
        .options(REPO_ADD_OPTS)
        .mutates();
        let s = st.clone();
        b.func(
            "registry_login",
            &["host: string", "options: map", "()"],
            "Log in to an OCI registry for oci:// charts. Options: username, password (a secret; passed on\n\
             stdin), plain_http.",
            move |host: &str, o: Map| -> R<()> {
                let oo = Opts::new(&o, "helm::registry_login", REGISTRY_LOGIN_OPTS)?;
                let user = oo.str("username")?.ok_or_else(|| oo.usage("username is required"))?;
                let password = oo.exposed("password")?.ok_or_else(|| oo.usage("password is required"))?;
                let (cli, host, plain_http) = (s.cli()?, host.to_string(), oo.bool("plain_http", false)?);
                s.ctx.block_on_graceful(move |scope| async move {
                    ops::registry_login(&cli, &host, &user, &password, plain_http, &scope).await
                })
            },
        )
        .options(REGISTRY_LOGIN_OPTS)
        .mutates();
        for (name, update, doc) in [
            (
                "dependency_build",
                false,
                "Build a local chart's dependencies in its own charts/ directory, as `helm dependency build`\n\
                 does (from Chart.lock; without one, as `dependency_update`). `upgrade` and `template` build\n\
                 missing or stale dependencies themselves, in a private copy of the chart: call this only\n\
                 to fill the chart's own charts/. Options: skip_refresh (true when every source is file://),\n\
                 plain_http. Returns the locked dependencies: [#{name, version, repository}].",
            ),
            (
                "dependency_update",
                true,
                "Resolve a local chart's dependencies again, write its Chart.lock and fill its charts/, as\n\
                 `helm dependency update` does. Options: skip_refresh, plain_http. Returns the locked\n\
                 dependencies: [#{name, version, repository}].",
            ),
        ] {
            let s = st.clone();
            b.func(name, &["chart: string", "options: map", "array"], doc, move |chart: &str, o: Map| {
                dependency_in_place(&s, chart, &o, update)
            })
            .options(DEPENDENCY_OPTS)
            .mutates();
            let s = st.clone();
            b.func(name, &["chart: string", "array"], "The same with default options.", move |chart: &str| {
                dependency_in_place(&s, chart, &Map::new(), update)
            })
            .mutates();
        }
        let s = st.clone();
        b.func(
            "lint",
            &["chart: string", "options: map", "map"],
            "Lint a local chart with `helm lint` (its dependencies built first, as for upgrade) and return\n\
             what helm found as data: #{passed, chart, errors, warnings, findings: [#{severity (\"error\",\n\
             \"warning\", \"info\"), file, chart_file, line, column, message}]}. `file` is relative to the\n\
             working directory when under it (for CI annotations), `line`/`column` are () when helm gives\n\
             none. A failing lint is a result, not an error. Options: values, values_files, strict\n\
             (warnings fail too), with_subcharts, kube_version, plain_http.",
            move |chart: &str, o: Map| lint(&s, chart, &o),
        )
        .options(LINT_OPTS)
        .reads();
        let s = st.clone();
        b.func("lint", &["chart: string", "map"], "Lint with default options.", move |chart: &str| {
            lint(&s, chart, &Map::new())
        })
        .reads();
        let s = st.clone();
        b.func(
            "package_chart",
            &["chart: string", "options: map", "string"],
            "Package a local chart (dependencies built first; `package` is a reserved word in Rhai) into a .tgz and return its path. Options:\n\
             version, app_version (override Chart.yaml's), dest (a directory relative to the playbook;\n\
             default <artifacts>/charts), plain_http.",
            move |chart: &str, o: Map| package_chart(&s, chart, &o),
        ).options(PACKAGE_OPTS)
        // A local build into the artifacts dir: a plan packages too, so its push has an archive.
        .reads();
        let s = st.clone();
        b.func("package_chart", &["chart: string", "string"], "Package with default options.", move |chart: &str| {
            package_chart(&s, chart, &Map::new())
        })
        .reads();
        let s = st.clone();
        b.func(
            "push",
            &["archive: string", "remote: string", "options: map", "map"],
            "Push a chart archive to an OCI location (\"oci://host/charts\"), logging in first when\n\
             username and password (a secret, passed on stdin) are given. Returns #{chart (the oci://\n\
             reference to install), version, reference, digest}. Options: username, password, plain_http.",
            move |archive: &str, remote: &str, o: Map| push(&s, archive, remote, &o),
        )
        .options(PUSH_OPTS)
        .mutates();
        let s = st.clone();
        b.func(
            "push",
            &["archive: string", "remote: string", "map"],
            "Push with default options (already logged in, or a registry without login).",
            move |archive: &str, remote: &str| push(&s, archive, remote, &Map::new()),
        )
        .mutates();
        let s = st.clone();
        b.func(
            "repo_update",
            &["names: array", "()"],
            "Update chart repositories (all when empty).",
            move |names: Array| -> R<()> {
                let names: Vec<String> = names.iter().map(kmsctl_host::value::display).collect();
                let cli = s.cli()?;
                s.ctx.block_on_graceful(move |scope| async move { ops::repo_update(&cli, &names, &scope).await })
            },
        )
        .mutates();
        b.build()
    }
}

#[cfg(test)]
mod tests;
