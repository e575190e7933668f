//! The Rhai adapter: `import "k8s" as k8s;`, then `let kc = k8s::connect();` and methods on
//! the cluster handle. Argument conversion, registration and documentation only; the work is
//! in the rest of the crate, which knows nothing of Rhai.

mod plan;
mod values;
mod wait;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kmsctl_host::value::{Reveal, display, from_json, to_json};
use kmsctl_host::{BuiltModule, CleanupId, HostCtx, Level, ModuleBuilder, NativeModule, Opts, to_rhai, usage_err};
use rhai::{Array, Dynamic, EvalAltResult, FnPtr, INT, Map, NativeCallContext};
use tokio_util::sync::CancellationToken;

use self::values::{data_object, label_value, manifests, read_manifests, to_script, to_script_all};
use crate::apply::{self, ApplyOptions};
use crate::client::{Cluster, ConnectOptions};
use crate::error::K8sError;
use crate::exec;
use crate::follow::{FollowSpec, FollowSummary, Follower};
use crate::json::ObjRef;
use crate::logs::{self, LogOptions};
use crate::metrics::{self, Sampler, SamplerSpec, Summary};
use crate::objects::{self, PatchKind, Query};
use crate::portforward::{self, ForwardSpec, ForwardTarget};
use crate::readiness::{Target, WaitOptions};
use crate::report;

/// What every native function returns.
use kmsctl_host::ScriptResult as R;

/// The `k8s` native module (`import "k8s" as k8s;`), for the host's module list.
pub struct K8s;

/// A connected cluster, as scripts hold it (`let kc = k8s::connect();`). Other modules take it
/// as an argument (`helm::upgrade(kc, ..)`) and `aws::eks_connect` returns one.
#[derive(Clone)]
pub struct ClusterHandle {
    cluster: Cluster,
    ctx: HostCtx,
}

impl ClusterHandle {
    /// A handle on a cluster connected by other means (EKS), for the run of `ctx`.
    pub fn new(cluster: Cluster, ctx: HostCtx) -> Self {
        Self { cluster, ctx }
    }

    /// The cluster, for modules that work on it directly (helm reads its kubeconfig, context
    /// and client).
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The namespace option, else the context's default namespace.
    fn namespace(&self, o: &Opts) -> R<String> {
        Ok(o.str("namespace")?.unwrap_or_else(|| self.cluster.default_namespace().to_string()))
    }

    /// Server-side apply, labelled with the playbook; with `wait`, until ready.
    fn apply_docs(&self, docs: Vec<serde_json::Value>, opts: &Map, func: &'static str) -> R<Array> {
        let o = Opts::new(opts, func, APPLY_OPTS)?;
        let mut labels = o.str_map("labels")?;
        let playbook = label_value(&self.ctx.settings().playbook);
        if !playbook.is_empty() {
            labels.entry("kmsctl.io/playbook".into()).or_insert(playbook);
        }
        let ao = ApplyOptions {
            namespace: o.str("namespace")?,
            field_manager: o.str("field_manager")?.unwrap_or_else(|| "kmsctl".into()),
            force: o.bool("force", true)?,
            labels,
            dry_run: o.bool("dry_run", false)?,
            ..Default::default()
        };
        if self.planning() {
            return self.plan_apply(docs, &ao, func);
        }
        let applied = self.ctx.block_on(apply::apply(&self.cluster, docs, &ao))?;
        self.ctx.log(Level::Debug, format!("applied {} object(s)", applied.len()));
        if o.bool("wait", false)? {
            let targets: Vec<Target> = applied.iter().map(|v| Target::Object(ObjRef::of(v))).collect();
            let wo = WaitOptions {
                timeout: o.duration("timeout")?.unwrap_or(Duration::from_secs(300)),
                ..Default::default()
            };
            self.wait_targets(targets, wo, None, true)?;
        }
        Ok(to_script_all(&self.ctx, applied))
    }

    /// Which objects of `kind`: options namespace and api_version, and for `kc.list` selector
    /// and fields; `allowed` are all the function's options, checked here.
    fn query(&self, kind: &str, opts: &Map, func: &'static str, allowed: &[&str]) -> R<Query> {
        let o = Opts::new(opts, func, allowed)?;
        let listed = |k: &str| if allowed.contains(&k) { o.str(k) } else { Ok(None) };
        Ok(Query {
            api_version: o.str("api_version")?,
            kind: kind.to_string(),
            namespace: o.str("namespace")?,
            labels: listed("selector")?,
            fields: listed("fields")?,
        })
    }
}

/// A running port-forward, as scripts hold it.
#[derive(Clone)]
pub(crate) struct PortForwardHandle {
    local: std::net::SocketAddr,
    description: String,
    stop: CancellationToken,
    /// `None` for a planned forward, which never ran.
    cleanup: Option<CleanupId>,
    ctx: HostCtx,
}

/// What a background task of the run (the usage sampler, a log follower) gives its handle.
pub(crate) trait BackgroundTask: Send + 'static {
    /// What it reports when stopped.
    type Summary: Clone + Default + Send + 'static;
    /// A token that stops it (the run's cleanup cancels it).
    fn stopper(&self) -> CancellationToken;
    /// Stop and report.
    fn finish(self) -> impl std::future::Future<Output = Self::Summary> + Send;
}

impl BackgroundTask for Sampler {
    type Summary = Summary;
    fn stopper(&self) -> CancellationToken {
        Sampler::stopper(self)
    }
    fn finish(self) -> impl std::future::Future<Output = Summary> + Send {
        self.stop()
    }
}

impl BackgroundTask for Follower {
    type Summary = FollowSummary;
    fn stopper(&self) -> CancellationToken {
        Follower::stopper(self)
    }
    fn finish(self) -> impl std::future::Future<Output = FollowSummary> + Send {
        self.stop()
    }
}

/// A background task as scripts hold it: running until `.stop()` or the run's end (its
/// cleanup hook); stopping again, or at once from another task, returns the same summary.
pub(crate) struct Background<T: BackgroundTask> {
    state: Arc<Mutex<TaskState<T>>>,
    file: String,
    cleanup: Option<CleanupId>,
    ctx: HostCtx,
}

/// The task while it runs (`None` once stopped, or if it never started) and its summary.
type TaskState<T> = (Option<T>, Option<<T as BackgroundTask>::Summary>);

impl<T: BackgroundTask> Clone for Background<T> {
    fn clone(&self) -> Self {
        Self { state: self.state.clone(), file: self.file.clone(), cleanup: self.cleanup, ctx: self.ctx.clone() }
    }
}

impl<T: BackgroundTask> Background<T> {
    /// `task`, stopped by the run's cleanup (hook `name`) unless stopped first.
    fn start(ctx: &HostCtx, name: String, task: T, file: String) -> Self {
        let stop = task.stopper();
        let cleanup = ctx.on_cleanup(name, move || Box::pin(async move { stop.cancel() }));
        Self { state: Arc::new(Mutex::new((Some(task), None))), file, cleanup: Some(cleanup), ctx: ctx.clone() }
    }

    /// A task that never started (an offline plan has nothing to read): its summary is empty.
    fn never_started(ctx: &HostCtx, file: String) -> Self {
        Self { state: Arc::new(Mutex::new((None, Some(T::Summary::default())))), file, cleanup: None, ctx: ctx.clone() }
    }

    /// Stop (once) and return the summary. The lock is held throughout, so a second `.stop()`
    /// waits for the first and gets its summary.
    fn stop(&self) -> R<T::Summary> {
        let mut state = self.state.lock().expect("background task");
        if let Some(task) = state.0.take() {
            // Cancelled before the wait, so a cancelled wait still stops it.
            task.stopper().cancel();
            if let Some(c) = self.cleanup {
                self.ctx.remove_cleanup(c);
            }
            state.1 = Some(self.ctx.block_on(async move { Ok::<_, K8sError>(task.finish().await) })?);
        }
        Ok(state.1.clone().unwrap_or_default())
    }
}

/// The usage sampler, as scripts hold it.
pub(crate) type SamplerHandle = Background<Sampler>;
/// Pods' logs followed in the background, as scripts hold it.
pub(crate) type FollowerHandle = Background<Follower>;

/// A sampler's summary for scripts.
fn summary_map(file: &str, s: &Summary) -> Map {
    let mut pods = Map::new();
    for (name, p) in &s.pods {
        let mut m = Map::new();
        m.insert("samples".into(), (p.samples as INT).into());
        m.insert("cpu_max_millicores".into(), (p.cpu_max_millis as INT).into());
        m.insert("cpu_mean_millicores".into(), (p.cpu_sum_millis / p.samples.max(1) as i64).into());
        m.insert("memory_max_bytes".into(), (p.memory_max_bytes as INT).into());
        pods.insert(name.as_str().into(), m.into());
    }
    let mut m = Map::new();
    m.insert("file".into(), file.into());
    m.insert("rounds".into(), (s.rounds as INT).into());
    m.insert("failed_rounds".into(), (s.failed_rounds as INT).into());
    m.insert("last_error".into(), s.last_error.clone().map(Dynamic::from).unwrap_or(Dynamic::UNIT));
    m.insert("pods".into(), pods.into());
    m
}

/// A context guard that cannot be checked in an offline plan (no kubeconfig names the
/// context): recorded, so the plan says what the run will check.
fn unknown_context(patterns: &[String]) -> kmsctl_host::PlannedOp {
    kmsctl_host::PlannedOp::new("k8s require_context", patterns.join(", "))
        .note("the context is not known without the cluster: checked when the playbook runs")
}

fn err(e: K8sError) -> Box<EvalAltResult> {
    to_rhai(&e)
}

/// A type's name in the signatures scripts and `kmsctl check` see.
trait ScriptType {
    const NAME: &'static str;
}

macro_rules! script_types {
    ($($t:ty => $name:literal),* $(,)?) => { $(impl ScriptType for $t { const NAME: &'static str = $name; })* };
}
script_types!(
    &mut ClusterHandle => "Cluster", &mut PortForwardHandle => "PortForward", ClusterHandle => "Cluster",
    PortForwardHandle => "PortForward", &mut SamplerHandle => "Sampler", SamplerHandle => "Sampler",
    &mut FollowerHandle => "LogFollower", FollowerHandle => "LogFollower", &str => "string", String => "string", Map => "map", Array => "array",
    Dynamic => "any", bool => "bool", INT => "int", () => "()",
    // Not a script argument: Rhai passes the calling context.
    NativeCallContext<'_> => "",
);

/// `["kc: Cluster", "name: string", .., "map"]`: parameters and return type, as
/// [`ModuleBuilder`] documents them.
fn signature(params: &[(&str, &str)], ret: &str) -> Vec<String> {
    params.iter().filter(|(_, t)| !t.is_empty()).map(|(n, t)| format!("{n}: {t}")).chain([ret.to_string()]).collect()
}

/// Registers a native function (`b.func`) or method (`b.method`) from one closure-like body
/// returning `R<T>`. A trailing `[options: KEYS]` after the parameters registers both documented
/// forms, with the options map (accepting KEYS) and without it (the body then sees `#{}`), so
/// the short form cannot drift from the long one; `options = KEYS` after the effect declares
/// the keys of a required options parameter.
macro_rules! register {
    ($b:ident.$reg:ident($name:expr, $doc:expr, $effect:ident) || [$opts:ident: $keys:expr] -> $ret:ty $body:block) => {{
        let f = Arc::new(move |$opts: &Map| -> R<$ret> { $body });
        let g = f.clone();
        let ret = <$ret as ScriptType>::NAME;
        $b.$reg($name, &strs(&signature(&[("options", "map")], ret)), $doc, move |o: Map| f(&o)).options($keys).$effect();
        $b.$reg($name, &strs(&signature(&[], ret)), $doc, move || g(&Map::new())).$effect();
    }};
    ($b:ident.$reg:ident($name:expr, $doc:expr, $effect:ident) |$($arg:ident: $ty:ty),*| [$opts:ident: $keys:expr] -> $ret:ty $body:block) => {{
        let f = Arc::new(move |$($arg: $ty,)* $opts: &Map| -> R<$ret> { $body });
        let g = f.clone();
        let params = [$((stringify!($arg), <$ty as ScriptType>::NAME)),*];
        let ret = <$ret as ScriptType>::NAME;
        let mut long = params.to_vec();
        long.push(("options", "map"));
        $b.$reg($name, &strs(&signature(&long, ret)), $doc, move |$($arg: $ty,)* o: Map| f($($arg,)* &o)).options($keys).$effect();
        $b.$reg($name, &strs(&signature(&params, ret)), $doc, move |$($arg: $ty),*| g($($arg,)* &Map::new())).$effect();
    }};
    ($b:ident.$reg:ident($name:expr, $doc:expr, $effect:ident, options = $keys:expr) |$($arg:ident: $ty:ty),*| -> $ret:ty $body:block) => {{
        let params = [$((stringify!($arg), <$ty as ScriptType>::NAME)),*];
        $b.$reg($name, &strs(&signature(&params, <$ret as ScriptType>::NAME)), $doc,
            move |$($arg: $ty),*| -> R<$ret> { $body }).options($keys).$effect();
    }};
    ($b:ident.$reg:ident($name:expr, $doc:expr, $effect:ident) |$($arg:ident: $ty:ty),*| -> $ret:ty $body:block) => {{
        let params = [$((stringify!($arg), <$ty as ScriptType>::NAME)),*];
        $b.$reg($name, &strs(&signature(&params, <$ret as ScriptType>::NAME)), $doc,
            move |$($arg: $ty),*| -> R<$ret> { $body }).$effect();
    }};
}

// The options each function accepts (its body checks them, the docs and `kmsctl check` list them).
const CONNECT_OPTS: &[&str] = &["context", "kubeconfig", "require_context"];
const APPLY_OPTS: &[&str] = &["namespace", "labels", "field_manager", "force", "dry_run", "wait", "timeout"];
const GET_OPTS: &[&str] = &["namespace", "api_version"];
const LIST_OPTS: &[&str] = &["namespace", "api_version", "selector", "fields"];
const PATCH_OPTS: &[&str] = &["namespace", "api_version", "type"];
const DELETE_OPTS: &[&str] = &["namespace", "api_version", "wait", "timeout"];
const ENSURE_NAMESPACE_OPTS: &[&str] = &["labels"];
const RECREATE_NAMESPACE_OPTS: &[&str] = &["labels", "timeout", "force"];
const LOGS_OPTS: &[&str] = &["namespace", "container", "previous", "tail", "since"];
const COLLECT_LOGS_OPTS: &[&str] = &["namespace", "selector", "dir", "container", "previous", "tail"];
const EVENTS_OPTS: &[&str] = &["namespace"];
const EXEC_OPTS: &[&str] = &["namespace", "container", "stdin"];
const PORT_FORWARD_OPTS: &[&str] = &["namespace", "port", "local_port"];
const TOP_PODS_OPTS: &[&str] = &["namespace", "selector"];
const SAMPLE_USAGE_OPTS: &[&str] = &["namespace", "selector", "interval", "file"];
const FOLLOW_LOGS_OPTS: &[&str] = &["namespace", "selector", "container", "prefix_annotation", "file", "echo"];

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

impl NativeModule for K8s {
    fn name(&self) -> &'static str {
        "k8s"
    }

    fn build(&self, ctx: &HostCtx) -> BuiltModule {
        let mut b = ModuleBuilder::new(
            ctx,
            self.name(),
            "Kubernetes. `let kc = k8s::connect();` then `kc.apply(...)`, `kc.wait(...)`, `kc.get(...)`...\n\
             Waits watch the API server (no polling) and write a failure report when they fail.",
        );
        b.ty::<ClusterHandle>("Cluster");
        b.ty::<PortForwardHandle>("PortForward");
        b.ty::<SamplerHandle>("Sampler");
        b.ty::<FollowerHandle>("LogFollower");

        let cache: Arc<Mutex<HashMap<ConnectOptions, Cluster>>> = Arc::default();
        let ctx = ctx.clone();
        register!(b.func(
            "connect",
            "Connect with the kubeconfig's current context, or --context. Options: `#{ context: \"kind-kms\",\n\
             kubeconfig: \"path\", require_context: [\"kind-*\"] }` (all optional; the path is relative to the\n\
             playbook; require_context refuses any other context before a request is made)."
        , plans) || [options: CONNECT_OPTS] -> ClusterHandle {
            let o = Opts::new(options, "k8s::connect", CONNECT_OPTS)?;
            let co = ConnectOptions {
                kubeconfig: o.str("kubeconfig")?.map(|p| ctx.resolve_path(&p)),
                context: o.str("context")?.or_else(|| ctx.settings().context.clone()),
                require_context: o.strings("require_context")?,
            };
            let cached = cache.lock().expect("cache").get(&co).cloned();
            let cluster = match cached {
                Some(c) => c,
                None => {
                    let c = if ctx.mode().is_offline() {
                        ctx.block_on(async { Cluster::offline(&co) })?
                    } else {
                        ctx.block_on(Cluster::connect(&co))?
                    };
                    if !co.require_context.is_empty() && c.guard_to_record(&co.require_context) {
                        ctx.record(unknown_context(&co.require_context));
                    }
                    cache.lock().expect("cache").insert(co, c.clone());
                    c
                }
            };
            Ok(ClusterHandle { cluster, ctx: ctx.clone() })
        });

        register!(b.method("context", "The context's name.", reads) |kc: &mut ClusterHandle| -> String {
            Ok(kc.cluster.context().to_string())
        });
        register!(b.method("server", "The API server's URL.", reads) |kc: &mut ClusterHandle| -> String {
            Ok(kc.cluster.server().to_string())
        });
        register!(b.method("default_namespace", "The context's default namespace.", reads) |kc: &mut ClusterHandle| -> String {
            Ok(kc.cluster.default_namespace().to_string())
        });
        register!(b.method(
            "require_context",
            "Refuse to go on unless the context matches a pattern (`*`, `?`): `kc.require_context([\"kind-*\"])`."
        , reads) |kc: &mut ClusterHandle, patterns: Dynamic| -> () {
            let patterns: Vec<String> = match patterns.clone().into_array() {
                Ok(a) => a.iter().map(|x| x.to_string()).collect(),
                Err(_) => vec![patterns.to_string()],
            };
            if kc.cluster.guard_to_record(&patterns) {
                kc.ctx.record(unknown_context(&patterns));
            }
            kc.cluster.require_context(&patterns).map_err(err)
        });

        register!(b.method(
            "apply",
            "Server-side apply YAML text, an object map, or an array of them. Namespaces and CRDs go first\n\
             (CRDs are waited for), then the rest in Helm's order. Options: namespace, labels,\n\
             field_manager (\"kmsctl\"), force (true), dry_run, wait (wait until ready), timeout.\n\
             Returns the objects as stored."
        , plans) |kc: &mut ClusterHandle, manifest: Dynamic| [options: APPLY_OPTS] -> Array {
            kc.apply_docs(manifests(&manifest)?, options, "apply")
        });
        register!(b.method(
            "apply_file",
            "Apply a YAML file (or every .yaml/.yml/.json file of a directory), relative to the playbook.\n\
             Options as for apply."
        , plans) |kc: &mut ClusterHandle, path: &str| [options: APPLY_OPTS] -> Array {
            let docs = read_manifests(&kc.ctx.resolve_path(path))?;
            kc.apply_docs(docs, options, "apply_file")
        });

        register!(b.method("get", "The object, or `()` when it does not exist. Options: namespace, api_version.", reads)
            |kc: &mut ClusterHandle, kind: &str, name: &str| [options: GET_OPTS] -> Dynamic {
            let q = kc.query(kind, options, "get", GET_OPTS)?;
            if kc.offline() {
                return Ok(Dynamic::UNIT);
            }
            let v = kc.ctx.block_on(objects::get(&kc.cluster, &q, name))?;
            Ok(v.map(|v| to_script(&kc.ctx, v)).unwrap_or(Dynamic::UNIT))
        });
        register!(b.method("list", "Objects of a kind. Options: namespace, selector (labels), fields, api_version.", reads)
            |kc: &mut ClusterHandle, kind: &str| [options: LIST_OPTS] -> Array {
            let q = kc.query(kind, options, "list", LIST_OPTS)?;
            if kc.offline() {
                return Ok(Array::new());
            }
            Ok(to_script_all(&kc.ctx, kc.ctx.block_on(objects::list(&kc.cluster, &q))?))
        });
        register!(b.method(
            "patch",
            "Patch an object; returns it. Options: namespace, api_version, type (\"merge\" (default),\n\
             \"strategic\", \"json\")."
        , plans) |kc: &mut ClusterHandle, kind: &str, name: &str, patch: Dynamic| [options: PATCH_OPTS] -> Dynamic {
            let q = kc.query(kind, options, "patch", PATCH_OPTS)?;
            let pk = match Opts::new(options, "patch", PATCH_OPTS)?.str("type")?.as_deref() {
                None | Some("merge") => PatchKind::Merge,
                Some("strategic") => PatchKind::Strategic,
                Some("json") => PatchKind::Json,
                Some(other) => {
                    return Err(usage_err(format!("patch: type must be merge, strategic or json, got '{other}'")));
                }
            };
            let body = to_json(&patch, Reveal::Expose).map_err(usage_err)?;
            if kc.planning() {
                let ns = kc.namespace(&Opts::new(options, "patch", PATCH_OPTS)?)?;
                let shown = to_json(&patch, Reveal::Mask).map_err(usage_err)?;
                kc.record_one("k8s patch", kind, Some(&ns), name, Some(format!("{} patch {shown}", match pk {
                    PatchKind::Merge => "merge",
                    PatchKind::Strategic => "strategic",
                    PatchKind::Json => "json",
                })))?;
                let mut obj = body;
                if let Some(m) = obj.as_object_mut() {
                    m.insert("kind".into(), kind.into());
                    m.insert("metadata".into(), serde_json::json!({ "name": name, "namespace": ns }));
                }
                return Ok(from_json(obj));
            }
            let v = kc.ctx.block_on(objects::patch(&kc.cluster, &q, name, body, pk, "kmsctl"))?;
            Ok(to_script(&kc.ctx, v))
        });
        register!(b.method(
            "delete",
            "Delete an object; true if it existed. Options: namespace, api_version, wait (true: until gone),\n\
             timeout (\"2m\"). A timed-out wait names the finalizers holding the object."
        , plans) |kc: &mut ClusterHandle, kind: &str, name: &str| [options: DELETE_OPTS] -> bool {
            let q = kc.query(kind, options, "delete", DELETE_OPTS)?;
            let o = Opts::new(options, "delete", DELETE_OPTS)?;
            let wait = match o.bool("wait", true)? {
                true => Some(o.duration("timeout")?.unwrap_or(Duration::from_secs(120))),
                false => None,
            };
            if kc.planning() {
                let exists = kc.exists(&q, name)?;
                let ns = if kind == "Namespace" { None } else { Some(kc.namespace(&o)?) };
                let note = (exists == Some(false)).then(|| "not there: nothing to delete".to_string());
                kc.record_one("k8s delete", kind, ns.as_deref(), name, note)?;
                return Ok(exists.unwrap_or(false));
            }
            kc.ctx.block_on(objects::delete(&kc.cluster, &q, name, wait))
        });
        register!(b.method("ensure_namespace", "Create the namespace if missing; returns it. Options: labels.", plans)
            |kc: &mut ClusterHandle, name: &str| [options: ENSURE_NAMESPACE_OPTS] -> Dynamic {
            let labels = Opts::new(options, "ensure_namespace", ENSURE_NAMESPACE_OPTS)?.str_map("labels")?;
            if kc.planning() {
                let q = crate::objects::Query { kind: "Namespace".into(), ..Default::default() };
                let note = (kc.exists(&q, name)? == Some(true)).then(|| "exists: labels only".to_string());
                let ns = kc.planned_namespace(name, &labels);
                kc.record_objects("k8s ensure_namespace", &format!("namespace-{name}"), std::slice::from_ref(&ns), &ApplyOptions::default(), note)?;
                return Ok(to_script(&kc.ctx, ns));
            }
            let v = kc.ctx.block_on(objects::ensure_namespace(&kc.cluster, name, &labels))?;
            Ok(to_script(&kc.ctx, v))
        });
        register!(b.method(
            "recreate_namespace",
            "Delete the namespace (waiting until gone), then create it. Refuses a namespace kmsctl did not\n\
             create (labelled app.kubernetes.io/managed-by=kmsctl) unless force. Options: labels, timeout\n\
             (\"2m\"), force."
        , plans) |kc: &mut ClusterHandle, name: &str| [options: RECREATE_NAMESPACE_OPTS] -> Dynamic {
            let o = Opts::new(options, "recreate_namespace", RECREATE_NAMESPACE_OPTS)?;
            let (labels, timeout) = (o.str_map("labels")?, o.duration("timeout")?.unwrap_or(Duration::from_secs(120)));
            let force = o.bool("force", false)?;
            if kc.planning() {
                let ns = kc.planned_namespace(name, &labels);
                let note = format!("deleted (and waited for, up to {}) then created", kmsctl_host::duration::format(timeout));
                kc.record_objects("k8s recreate_namespace", &format!("namespace-{name}"), std::slice::from_ref(&ns), &ApplyOptions::default(), Some(note))?;
                return Ok(to_script(&kc.ctx, ns));
            }
            let v = kc.ctx.block_on(objects::recreate_namespace(&kc.cluster, name, &labels, timeout, force))?;
            Ok(to_script(&kc.ctx, v))
        });
        for (fname, kind) in [("secret", "Secret"), ("config_map", "ConfigMap")] {
            register!(b.method(
                fname,
                "Create or update a Secret/ConfigMap from a map of values (strings or secrets). Options:\n\
                 labels, type (Secrets; default Opaque), files (a map of key → file path, read relative to\n\
                 the playbook)."
            , plans) |kc: &mut ClusterHandle, namespace: &str, name: &str, data: Map| [options: values::DATA_OBJECT_OPTS] -> Dynamic {
                data_object(kc, kind, namespace, name, &data, options)
            });
        }

        register!(b.method(
            "logs",
            "A container's logs. Options: namespace, container, previous, tail (lines), since (duration)."
        , reads) |kc: &mut ClusterHandle, pod: &str| [options: LOGS_OPTS] -> String {
            let o = Opts::new(options, "logs", LOGS_OPTS)?;
            let lo = LogOptions {
                container: o.str("container")?,
                previous: o.bool("previous", false)?,
                tail: o.int("tail")?,
                since_seconds: o.duration("since")?.map(|d| d.as_secs() as i64),
            };
            if kc.offline() {
                return Ok(String::new());
            }
            kc.ctx.block_on(logs::logs(&kc.cluster, &kc.namespace(&o)?, pod, &lo))
        });
        register!(b.method(
            "collect_logs",
            "Write the logs of every container of matching pods to files: `#{ namespace, selector, dir,\n\
             container, previous, tail }`; dir is relative to the artifacts directory (default \"logs\").\n\
             Returns #{pod, container, previous, path, error} per file."
        , reads, options = COLLECT_LOGS_OPTS) |kc: &mut ClusterHandle, options: Map| -> Array {
            let o = Opts::new(&options, "collect_logs", COLLECT_LOGS_OPTS)?;
            let dir = o.str("dir")?.unwrap_or_else(|| "logs".into());
            let dir = kc.ctx.artifact_path(&dir).map_err(|e| o.usage(format!("dir: {e}")))?;
            let lo = LogOptions {
                container: o.str("container")?,
                previous: o.bool("previous", false)?,
                tail: o.int("tail")?,
                since_seconds: None,
            };
            let selector = o.str("selector")?;
            let ns = kc.namespace(&o)?;
            if kc.offline() {
                return Ok(Array::new());
            }
            let files = kc.ctx.block_on(logs::collect(&kc.cluster, &ns, selector.as_deref(), &dir, &lo, kc.ctx.redactor()))?;
            Ok(files.into_iter().map(|f| from_json(serde_json::to_value(f).unwrap_or_default())).collect())
        });
        register!(b.method(
            "events",
            "Recent events of an object, oldest first: #{time, type, reason, object, message, count}.\n\
             Options: namespace."
        , reads) |kc: &mut ClusterHandle, kind: &str, name: &str| [options: EVENTS_OPTS] -> Array {
            let ns = kc.namespace(&Opts::new(options, "events", EVENTS_OPTS)?)?;
            if kc.offline() {
                return Ok(Array::new());
            }
            let events = kc.ctx.block_on(report::events_of(kc.cluster.client(), &ns, kind, name))?;
            Ok(events.into_iter().map(|e| from_json(serde_json::to_value(e).unwrap_or_default())).collect())
        });
        register!(b.method(
            "exec",
            "Run a command (no shell) in a pod: `kc.exec(pod, [\"ls\", \"/\"], #{ namespace, container, stdin })`.\n\
             Returns #{code, stdout, stderr}; a non-zero code is not an error."
        , plans) |kc: &mut ClusterHandle, pod: &str, command: Array| [options: EXEC_OPTS] -> Map {
            let o = Opts::new(options, "exec", EXEC_OPTS)?;
            let container = o.str("container")?;
            let stdin = o.exposed("stdin")?;
            let command: Vec<String> = command.iter().map(display).collect();
            let ns = kc.namespace(&o)?;
            if kc.planning() {
                kc.record_one("k8s exec", "Pod", Some(&ns), pod, Some(format!("runs {}", command.join(" "))))?;
                let mut m = Map::new();
                m.insert("code".into(), (0 as INT).into());
                m.insert("stdout".into(), String::new().into());
                m.insert("stderr".into(), String::new().into());
                return Ok(m);
            }
            let stdin = stdin.as_deref().map(str::as_bytes);
            let out = kc.ctx.block_on(exec::exec(&kc.cluster, &ns, pod, container.as_deref(), &command, stdin))?;
            let mut m = Map::new();
            m.insert("code".into(), (out.code as INT).into());
            m.insert("stdout".into(), out.stdout.into());
            m.insert("stderr".into(), out.stderr.into());
            Ok(m)
        });
        register!(b.method(
            "port_forward",
            "Forward 127.0.0.1:local_port to a pod or service port: `kc.port_forward(\"svc/kms-core\", #{ namespace,\n\
             port: 50100, local_port: 50100 })` (local_port 0 picks a free one). Checked before it returns,\n\
             re-resolved per connection (survives pod restarts), stopped when the run ends."
        , plans, options = PORT_FORWARD_OPTS) |kc: &mut ClusterHandle, target: &str, options: Map| -> PortForwardHandle {
            let o = Opts::new(&options, "port_forward", PORT_FORWARD_OPTS)?;
            let port = o.int("port")?.ok_or_else(|| usage_err("port_forward: port is required"))?;
            let to_port = |p: i64, what: &str| {
                u16::try_from(p).map_err(|_| usage_err(format!("port_forward: {what} {p} is not a port")))
            };
            let spec = ForwardSpec {
                namespace: kc.namespace(&o)?,
                target: ForwardTarget::parse(target),
                remote_port: to_port(port, "port")?,
                local_port: to_port(o.int("local_port")?.unwrap_or(0), "local_port")?,
            };
            if kc.planning() {
                let local = std::net::SocketAddr::from(([127, 0, 0, 1], spec.local_port));
                let description = format!("{local} → {}/{target}:{}", spec.namespace, spec.remote_port);
                kc.ctx.record(kmsctl_host::PlannedOp::new("k8s port_forward", description.clone()));
                let stop = CancellationToken::new();
                return Ok(PortForwardHandle { local, description, stop, cleanup: None, ctx: kc.ctx.clone() });
            }
            let fwd = kc.ctx.block_on(portforward::start(&kc.cluster, spec))?;
            let stop = fwd.stopper();
            let on_cleanup = stop.clone();
            let cleanup = kc.ctx.on_cleanup(format!("port-forward {}", fwd.description), move || {
                Box::pin(async move { on_cleanup.cancel() })
            });
            kc.ctx.log(Level::Info, format!("port-forward {}", fwd.description));
            Ok(PortForwardHandle {
                local: fwd.local,
                description: fwd.description,
                stop,
                cleanup: Some(cleanup),
                ctx: kc.ctx.clone(),
            })
        });
        register!(b.method("local_port", "The forward's local port.", reads) |forward: &mut PortForwardHandle| -> INT {
            Ok(forward.local.port() as INT)
        });
        register!(b.method("address", "The forward's local address, `127.0.0.1:<port>`.", reads)
            |forward: &mut PortForwardHandle| -> String {
            Ok(forward.local.to_string())
        });
        register!(b.method("stop", "Stop the forward now (it also stops when the run ends).", reads)
            |forward: &mut PortForwardHandle| -> () {
            forward.stop.cancel();
            if let Some(c) = forward.cleanup {
                forward.ctx.remove_cleanup(c);
            }
            Ok(())
        });
        register!(b.method("to_string", "`port-forward 127.0.0.1:<port> → <namespace>/<target>:<port>`.", reads)
            |forward: &mut PortForwardHandle| -> String {
            Ok(format!("port-forward {}", forward.description))
        });
        register!(b.method("to_string", "`cluster <context> (<server>)`.", reads) |kc: &mut ClusterHandle| -> String {
            Ok(format!("cluster {} ({})", kc.cluster.context(), kc.cluster.server()))
        });

        register!(b.method(
            "top_pods",
            "The pods' CPU and memory now, from the metrics API (what `kubectl top pod` shows): `#{ namespace,\n\
             selector }`. Returns [#{pod, timestamp, cpu_millicores, memory_bytes, containers: [#{name,\n\
             cpu_millicores, memory_bytes}]}], by pod name. Throws `not_found` when the cluster serves no\n\
             metrics API (no metrics-server).",
            reads
        ) |kc: &mut ClusterHandle| [options: TOP_PODS_OPTS] -> Array {
            let o = Opts::new(options, "top_pods", TOP_PODS_OPTS)?;
            let ns = kc.namespace(&o)?;
            let selector = o.str("selector")?;
            let usage = kc.ctx.block_on(metrics::pod_usage(&kc.cluster, &ns, selector.as_deref()))?;
            let entry = |name: &str, cpu: i64, mem: i64| {
                let mut m = Map::new();
                m.insert("cpu_millicores".into(), (cpu as INT).into());
                m.insert("memory_bytes".into(), (mem as INT).into());
                (name.to_string(), m)
            };
            Ok(usage
                .iter()
                .map(|u| {
                    let (pod, mut m) = entry(&u.pod, u.cpu_millis(), u.memory_bytes());
                    m.insert("pod".into(), pod.into());
                    m.insert("timestamp".into(), u.timestamp.clone().into());
                    let containers: Array = u
                        .containers
                        .iter()
                        .map(|c| {
                            let (name, mut cm) = entry(&c.name, c.cpu_millis, c.memory_bytes);
                            cm.insert("name".into(), name.into());
                            cm.into()
                        })
                        .collect();
                    m.insert("containers".into(), containers.into());
                    m.into()
                })
                .collect())
        });
        register!(b.method(
            "sample_usage",
            "Sample the pods' CPU and memory in the background (the perf runs' CPU sampler): `#{ namespace,\n\
             selector, interval (\"10s\"), file (\"core-cpu-samples.log\", under the artifacts directory) }`.\n\
             Samples at once, then every interval, a line per pod: `<utc> <pod> <cpu>m <memory>Mi`; a round\n\
             the metrics API fails is a line `<utc> error: ...` and sampling goes on. Stops with `.stop()`\n\
             or when the run ends.",
            reads
        ) |kc: &mut ClusterHandle| [options: SAMPLE_USAGE_OPTS] -> SamplerHandle {
            let o = Opts::new(options, "sample_usage", SAMPLE_USAGE_OPTS)?;
            let interval = o.duration("interval")?.unwrap_or(Duration::from_secs(10));
            if interval < Duration::from_millis(100) {
                return Err(o.usage("interval: at least 100ms"));
            }
            let file = o.str("file")?.unwrap_or_else(|| "core-cpu-samples.log".into());
            let path = kc.ctx.artifact_path(&file).map_err(|e| o.usage(format!("file: {e}")))?;
            let spec = SamplerSpec { namespace: kc.namespace(&o)?, selector: o.str("selector")?, interval, file: path };
            let what = format!("{}{}", spec.namespace, spec.selector.as_ref().map(|s| format!(" ({s})")).unwrap_or_default());
            if kc.cluster.is_offline() {
                return Ok(SamplerHandle::never_started(&kc.ctx, file));
            }
            let sampler = Sampler::start(kc.cluster.clone(), spec, kc.ctx.runtime()).map_err(err)?;
            kc.ctx.log(Level::Info, format!("sampling CPU and memory of {what} every {} into {file}", crate::format_duration(interval)));
            Ok(SamplerHandle::start(&kc.ctx, format!("usage sampler of {what}"), sampler, file))
        });
        register!(b.method(
            "stop",
            "Stop sampling; returns #{file, rounds, failed_rounds, last_error, pods: #{<pod>: #{samples,\n\
             cpu_max_millicores, cpu_mean_millicores, memory_max_bytes}}}. Stopping again returns the same.",
            reads
        ) |sampler: &mut SamplerHandle| -> Map {
            let summary = sampler.stop()?;
            Ok(summary_map(&sampler.file, &summary))
        });
        register!(b.method("to_string", "`usage sampler → <file>`.", reads) |sampler: &mut SamplerHandle| -> String {
            Ok(format!("usage sampler → {}", sampler.file))
        });

        register!(b.method(
            "follow_logs",
            "Follow the logs of the pods matching a selector as they start, in the background (`argo logs -f`):\n\
             `#{ namespace, selector (required), container, prefix_annotation (e.g.\n\
             \"workflows.argoproj.io/node-name\"; default the pod name), file (\"logs/follow.log\", under the\n\
             artifacts directory), echo (true: each line also in the run's log) }`. Lines are `<prefix>: <line>`,\n\
             secrets scrubbed. Stops with `.stop()` (→ #{file, pods, lines}) or when the run ends.",
            reads, options = FOLLOW_LOGS_OPTS
        ) |kc: &mut ClusterHandle, options: Map| -> FollowerHandle {
            let o = Opts::new(&options, "follow_logs", FOLLOW_LOGS_OPTS)?;
            let selector = o.str("selector")?.ok_or_else(|| o.usage("selector is required"))?;
            let file = o.str("file")?.unwrap_or_else(|| "logs/follow.log".into());
            let path = kc.ctx.artifact_path(&file).map_err(|e| o.usage(format!("file: {e}")))?;
            let spec = FollowSpec {
                namespace: kc.namespace(&o)?,
                selector,
                container: o.str("container")?,
                prefix_annotation: o.str("prefix_annotation")?,
                file: path,
            };
            let sink: Option<crate::follow::LineSink> = if o.bool("echo", true)? {
                let ctx = kc.ctx.clone();
                Some(Arc::new(move |line: &str| ctx.log(Level::Info, line.to_string())))
            } else {
                None
            };
            let what = format!("{} ({})", spec.namespace, spec.selector);
            if kc.cluster.is_offline() {
                return Ok(FollowerHandle::never_started(&kc.ctx, file));
            }
            let f = Follower::start(kc.cluster.clone(), spec, kc.ctx.redactor().clone(), sink, kc.ctx.runtime()).map_err(err)?;
            Ok(FollowerHandle::start(&kc.ctx, format!("log follower of {what}"), f, file))
        });
        register!(b.method("stop", "Stop following; returns #{file, pods, lines}. Stopping again returns the same.", reads)
            |follower: &mut FollowerHandle| -> Map {
            let s = follower.stop()?;
            let mut m = Map::new();
            m.insert("file".into(), follower.file.clone().into());
            m.insert("pods".into(), (s.pods as INT).into());
            m.insert("lines".into(), (s.lines as INT).into());
            Ok(m)
        });

        register!(b.method(
            "wait",
            "Wait until objects are ready, watching them. Targets: objects (e.g. what apply returned),\n\
             #{kind, name, namespace}, or #{kind, namespace, selector, min}. Options: timeout (\"5m\"),\n\
             per_object_timeout (each object's, from when the wait first sees it), fail_fast (true), what\n\
             (for messages), unschedulable_grace (\"30s\"), report (true: write a failure report), predicate\n\
             (|obj| -> bool or #{ready, failed, message}; replaces the built-in rules; must not call k8s\n\
             functions). Returns the ready objects. Throws `timeout` or `failed` with the blocking object\n\
             and the report path."
        , reads) |ncc: NativeCallContext, kc: &mut ClusterHandle, targets: Dynamic| [options: wait::WAIT_OPTS] -> Array {
            let predicate = options.get("predicate").and_then(|p| p.clone().try_cast::<FnPtr>());
            if options.get("predicate").is_some_and(|p| !p.is_unit()) && predicate.is_none() {
                return Err(usage_err("wait: predicate must be a closure like |obj| obj.status.phase == \"Bound\""));
            }
            let (wo, report) = wait::wait_options(options)?;
            if kc.planning() {
                return Ok(kc.plan_wait(&targets));
            }
            let targets = kc.targets(&targets)?;
            let objs = kc.wait_targets(targets, wo, predicate.as_ref().map(|p| (&ncc, p)), report)?;
            Ok(to_script_all(&kc.ctx, objs))
        });
        b.build()
    }
}

#[cfg(test)]
mod tests;
