//! The Rhai adapter: `import "k8s" as k8s;`, then `let kc = k8s::connect();` and methods on
//! the cluster handle. Argument conversion and documentation only; the work is in the other
//! modules of this crate.

use crate::apply::{self, ApplyOptions};
use crate::client::{Cluster, ConnectOptions};
use crate::error::K8sError;
use crate::exec;
use crate::logs::{self, LogOptions};
use crate::object::{ObjRef, str_at};
use crate::objects::{self, PatchKind, Selector};
use crate::portforward::{self, ForwardSpec, ForwardTarget};
use crate::readiness::rules::{Assessment, Health, RuleOptions};
use crate::readiness::{self, Target, WaitOptions};
use crate::report;
use kmsctl_host::HostCtx;
use kmsctl_host::Opts;
use kmsctl_host::value::{Reveal, from_json, to_json};
use kmsctl_host::{BuiltModule, ModuleBuilder, NativeModule};
use kmsctl_host::{to_rhai, usage_err};
use rhai::{Array, Dynamic, EvalAltResult, FnPtr, INT, Map, NativeCallContext};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use kmsctl_host::ScriptResult as R;

/// The `k8s` native module.
pub struct K8s;

/// A connected cluster, as scripts hold it.
#[derive(Clone)]
pub struct ClusterHandle {
    cluster: Cluster,
    ctx: HostCtx,
}

impl ClusterHandle {
    /// A handle for a cluster connected elsewhere (EKS).
    pub fn new(cluster: Cluster, ctx: HostCtx) -> Self {
        Self { cluster, ctx }
    }

    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }
}

/// A running port-forward, as scripts hold it.
#[derive(Clone)]
pub struct PortForwardHandle {
    local: std::net::SocketAddr,
    description: String,
    stop: CancellationToken,
    cleanup: kmsctl_host::CleanupId,
    ctx: HostCtx,
}

fn err(e: K8sError) -> Box<EvalAltResult> {
    to_rhai(&e)
}

/// Objects to scripts: Secret data stays secret.
fn to_script(ctx: &HostCtx, mut v: Value) -> Dynamic {
    use base64::Engine as _;
    if str_at(&v, &["kind"]) == Some("Secret") {
        let mut secrets = Map::new();
        if let Some(data) = v.get_mut("data").and_then(Value::as_object_mut) {
            for (k, val) in std::mem::take(data) {
                let enc = val.as_str().unwrap_or_default().to_string();
                if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(&enc) {
                    ctx.secret(String::from_utf8_lossy(&raw).into_owned());
                }
                secrets.insert(k.into(), Dynamic::from(ctx.secret(enc)));
            }
        }
        let mut d = from_json(v);
        if let Some(mut m) = d.write_lock::<Map>() {
            m.insert("data".into(), Dynamic::from_map(secrets));
        }
        return d;
    }
    from_json(v)
}

fn manifests(v: &Dynamic) -> R<Vec<Value>> {
    if v.is_string() {
        return apply::parse_manifests(&v.to_string()).map_err(err);
    }
    if v.is_array() {
        let mut out = Vec::new();
        for item in v.read_lock::<Array>().expect("array").iter() {
            out.extend(manifests(item)?);
        }
        return Ok(out);
    }
    if v.is_map() {
        return Ok(vec![to_json(v, Reveal::Expose).map_err(usage_err)?]);
    }
    Err(usage_err(format!("expected YAML text, an object map or an array of them, got {}", v.type_name())))
}

/// A label value kubernetes accepts: 63 characters of alphanumerics, `-`, `_`, `.`.
fn label_value(s: &str) -> String {
    let v: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '-' }).take(63).collect();
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}

impl ClusterHandle {
    fn apply_docs(&self, docs: Vec<Value>, opts: &Map, func: &'static str) -> R<Array> {
        let o =
            Opts::new(opts, func, &["namespace", "labels", "field_manager", "force", "dry_run", "wait", "timeout"])?;
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
        let cluster = self.cluster.clone();
        let applied = self.ctx.block_on(async move { apply::apply(&cluster, docs, &ao).await })?;
        self.ctx.log(kmsctl_host::Level::Debug, format!("applied {} object(s)", applied.len()));
        if o.bool("wait", false)? {
            let targets: Vec<Target> = applied.iter().map(|v| Target::Object(ObjRef::of(v))).collect();
            let wo = WaitOptions {
                timeout: o.duration("timeout")?.unwrap_or(Duration::from_secs(300)),
                ..Default::default()
            };
            self.wait_targets(targets, wo, None, true)?;
        }
        Ok(applied.into_iter().map(|v| to_script(&self.ctx, v)).collect())
    }

    fn selector(&self, kind: &str, opts: &Map, func: &'static str, extra: &[&str]) -> R<Selector> {
        let mut allowed = vec!["namespace", "api_version"];
        allowed.extend_from_slice(extra);
        let o = Opts::new(opts, func, &allowed)?;
        Ok(Selector {
            api_version: o.str("api_version")?,
            kind: kind.to_string(),
            namespace: o.str("namespace")?,
            labels: if extra.contains(&"selector") { o.str("selector")? } else { None },
            fields: if extra.contains(&"fields") { o.str("fields")? } else { None },
        })
    }

    /// Turn script values into wait targets, filling in apiVersion and namespace.
    fn targets(&self, v: &Dynamic) -> R<Vec<Target>> {
        let items: Vec<Dynamic> =
            if v.is_array() { v.read_lock::<Array>().expect("array").clone() } else { vec![v.clone()] };
        let mut json = Vec::new();
        for item in items {
            if !item.is_map() {
                return Err(usage_err(format!(
                    "k8s wait: a target is an object, #{{kind, name}} or #{{kind, selector}}, got {}",
                    item.type_name()
                )));
            }
            json.push(to_json(&item, Reveal::Mask).map_err(usage_err)?);
        }
        self.targets_json(&json, None)
    }

    /// Targets from objects or references given as JSON; `default_namespace` applies to
    /// namespaced kinds that name none (a Helm release's namespace).
    fn targets_json(&self, items: &[Value], default_namespace: Option<&str>) -> R<Vec<Target>> {
        let mut out = Vec::new();
        for json in items {
            let kind = str_at(json, &["kind"])
                .map(str::to_string)
                .ok_or_else(|| usage_err("k8s wait: a target needs a kind"))?;
            let api_version = str_at(json, &["apiVersion"]).or(str_at(json, &["api_version"])).map(str::to_string);
            let namespace = str_at(json, &["metadata", "namespace"])
                .or(str_at(json, &["namespace"]))
                .or(default_namespace)
                .map(str::to_string);
            let sel = Selector { api_version, kind: kind.clone(), namespace, ..Default::default() };
            let cluster = self.cluster.clone();
            let (api_version, namespace) = self.ctx.block_on(async move {
                let (_, ar, namespaced) = objects::api_for(&cluster, &sel).await?;
                let ns = if namespaced {
                    Some(sel.namespace.unwrap_or_else(|| cluster.default_namespace().to_string()))
                } else {
                    None
                };
                Ok::<_, K8sError>((ar.api_version, ns))
            })?;
            if let Some(selector) = str_at(json, &["selector"]) {
                let min = json.get("min").and_then(Value::as_u64).unwrap_or(1) as usize;
                out.push(Target::Selector { api_version, kind, namespace, selector: selector.to_string(), min });
            } else {
                let name = str_at(json, &["metadata", "name"])
                    .or(str_at(json, &["name"]))
                    .ok_or_else(|| usage_err(format!("k8s wait: the {kind} target has no name (or selector)")))?;
                out.push(Target::Object(ObjRef { api_version, kind, namespace, name: name.to_string() }));
            }
        }
        Ok(out)
    }

    /// Wait until `objects` (JSON manifests or references) are ready, as a step with live
    /// progress and a failure report: what `helm::upgrade` uses for a release's objects.
    pub fn wait_values(&self, objects: &[Value], default_namespace: Option<&str>, wo: WaitOptions) -> R<Vec<Value>> {
        let targets = self.targets_json(objects, default_namespace)?;
        self.wait_targets(targets, wo, None, true)
    }

    /// Wait as a step with live progress; on failure write the failure report.
    pub fn wait_targets(
        &self,
        targets: Vec<Target>,
        wo: WaitOptions,
        predicate: Option<(&NativeCallContext, &FnPtr)>,
        report: bool,
    ) -> R<Vec<Value>> {
        let what = wo.what.clone().unwrap_or_else(|| match targets.as_slice() {
            [one] => one.to_string(),
            many => format!("{} objects", many.len()),
        });
        let step = self.ctx.open_step(&format!("wait for {what}"));
        let cluster = self.cluster.clone();
        let mut pred_fn = predicate.map(|(ncc, fp)| {
            move |obj: &Value| -> Result<Option<Assessment>, String> {
                let r: Dynamic = fp
                    .call_within_context(ncc, (from_json(obj.clone()),))
                    .map_err(|e| kmsctl_host::short_message(&e))?;
                Ok(Some(predicate_result(&r)))
            }
        });
        let st = step.clone();
        let result = self.ctx.block_on(async {
            let mut progress = |p: &readiness::Progress| st.progress(p.summary(3));
            let pred: Option<&mut readiness::Predicate<'_>> =
                pred_fn.as_mut().map(|f| f as &mut readiness::Predicate<'_>);
            match readiness::wait_with(&cluster, &targets, &wo, pred, &mut progress).await {
                Ok(v) => Ok(Ok(v)),
                Err(f) => {
                    // The failure report: collected while the cluster state is fresh.
                    let written = match (&f.blocking, report) {
                        (Some(b), true) => {
                            let r = report::collect(cluster.client(), b, &f.reason).await;
                            Some(r)
                        }
                        _ => None,
                    };
                    Ok::<_, K8sError>(Err((f, written)))
                }
            }
        });
        let r = match result {
            Ok(Ok(objs)) => Ok(objs),
            Ok(Err((failure, rep))) => {
                let mut e = failure.into_error();
                if let Some(rep) = rep {
                    for line in rep.summary().lines() {
                        self.ctx.log(kmsctl_host::Level::Error, line.to_string());
                    }
                    let written = self
                        .ctx
                        .artifacts_dir()
                        .and_then(|d| rep.write(&d.join("failures")))
                        .and_then(|dir| scrub_dir(&self.ctx, &dir).map(|_| dir));
                    match written {
                        Ok(dir) => {
                            if let K8sError::Failed { details, .. } | K8sError::Timeout { details, .. } = &mut e {
                                details.insert("report".into(), dir.display().to_string().into());
                            }
                            self.ctx.log(kmsctl_host::Level::Error, format!("failure report: {}", dir.display()));
                        }
                        Err(io) => {
                            self.ctx.log(kmsctl_host::Level::Warn, format!("could not write the failure report: {io}"))
                        }
                    }
                }
                Err(err(e))
            }
            Err(e) => Err(e),
        };
        step.finish(&r);
        r
    }
}

/// Logs and events in a failure report may quote secret values: scrub every file written.
fn scrub_dir(ctx: &HostCtx, dir: &std::path::Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            scrub_dir(ctx, &path)?;
        } else if let Ok(text) = std::fs::read_to_string(&path)
            && let std::borrow::Cow::Owned(clean) = ctx.redactor().redact(&text)
        {
            std::fs::write(&path, clean)?;
        }
    }
    Ok(())
}

/// A predicate returns `true`/`false`, or `#{ ready, failed, message }`.
fn predicate_result(r: &Dynamic) -> Assessment {
    if let Ok(b) = r.as_bool() {
        return if b {
            Assessment { health: Health::Ready, message: "predicate holds".into() }
        } else {
            Assessment { health: Health::Progressing, message: "waiting for the predicate".into() }
        };
    }
    if let Some(m) = r.read_lock::<Map>() {
        let flag = |k: &str| m.get(k).and_then(|v| v.as_bool().ok()).unwrap_or(false);
        let message = m.get("message").map(kmsctl_host::value::display).unwrap_or_default();
        let health = if flag("failed") {
            Health::Failed
        } else if flag("ready") {
            Health::Ready
        } else {
            Health::Progressing
        };
        return Assessment { health, message };
    }
    Assessment { health: Health::Progressing, message: "waiting for the predicate".into() }
}

fn wait_options(opts: &Map) -> R<(WaitOptions, bool)> {
    let o = Opts::new(
        opts,
        "wait",
        &["timeout", "per_object_timeout", "fail_fast", "what", "predicate", "unschedulable_grace", "report"],
    )?;
    let mut rules = RuleOptions::default();
    if let Some(g) = o.duration("unschedulable_grace")? {
        rules.unschedulable_grace = g;
    }
    Ok((
        WaitOptions {
            timeout: o.duration("timeout")?.unwrap_or(Duration::from_secs(300)),
            per_object_timeout: o.duration("per_object_timeout")?,
            fail_fast: o.bool("fail_fast", true)?,
            rules,
            what: o.str("what")?,
        },
        o.bool("report", true)?,
    ))
}

impl NativeModule for K8s {
    fn name(&self) -> &'static str {
        "k8s"
    }
    fn build(&self, ctx: &HostCtx) -> BuiltModule {
        let mut b = ModuleBuilder::new(
            "Kubernetes. `let kc = k8s::connect();` then `kc.apply(...)`, `kc.wait(...)`, `kc.get(...)`...\n\
             Waits watch the API server (no polling) and write a failure report when they fail.",
        );
        b.ty::<ClusterHandle>("Cluster");
        b.ty::<PortForwardHandle>("PortForward");
        let cache: Arc<Mutex<HashMap<ConnectOptions, Cluster>>> = Arc::default();

        let connect = {
            let (ctx, cache) = (ctx.clone(), cache.clone());
            move |opts: &Map| -> R<ClusterHandle> {
                let o = Opts::new(opts, "k8s::connect", &["context", "kubeconfig"])?;
                let co = ConnectOptions {
                    kubeconfig: o.str("kubeconfig")?.map(|p| ctx.resolve_path(&p)),
                    context: o.str("context")?.or_else(|| ctx.settings().context.clone()),
                };
                if let Some(c) = cache.lock().expect("cache").get(&co) {
                    return Ok(ClusterHandle { cluster: c.clone(), ctx: ctx.clone() });
                }
                let co2 = co.clone();
                let cluster = ctx.block_on(async move { Cluster::connect(&co2).await })?;
                cache.lock().expect("cache").insert(co, cluster.clone());
                Ok(ClusterHandle { cluster, ctx: ctx.clone() })
            }
        };
        let c2 = connect.clone();
        b.func("connect", &["Cluster"], "Connect with the kubeconfig's current context, or --context.", move || {
            c2(&Map::new())
        });
        b.func(
            "connect",
            &["options: map", "Cluster"],
            "Connect: `#{ context: \"kind-kms\", kubeconfig: \"path\" }` (both optional).",
            move |o: Map| connect(&o),
        );

        b.method("context", &["cluster: Cluster", "string"], "The context name.", |c: &mut ClusterHandle| {
            c.cluster.context().to_string()
        });
        b.method("server", &["cluster: Cluster", "string"], "The API server URL.", |c: &mut ClusterHandle| {
            c.cluster.server().to_string()
        });
        b.method(
            "default_namespace",
            &["cluster: Cluster", "string"],
            "The context's default namespace.",
            |c: &mut ClusterHandle| c.cluster.default_namespace().to_string(),
        );
        b.method(
            "require_context",
            &["cluster: Cluster", "patterns: array", "()"],
            "Refuse to go on unless the context matches a pattern (`*`, `?`): `kc.require_context([\"kind-*\"])`.",
            |c: &mut ClusterHandle, p: Dynamic| -> R<()> {
                let patterns: Vec<String> = match p.clone().into_array() {
                    Ok(a) => a.iter().map(|x| x.to_string()).collect(),
                    Err(_) => vec![p.to_string()],
                };
                c.cluster.require_context(&patterns).map_err(err)
            },
        );

        b.method(
            "apply",
            &["cluster: Cluster", "manifests: any", "options: map", "array"],
            "Server-side apply YAML text, an object map, or an array of them. Namespaces and CRDs go first\n\
             (CRDs are waited for), then the rest in Helm's order. Options: namespace, labels,\n\
             field_manager (\"kmsctl\"), force (true), dry_run, wait (wait until ready), timeout.\n\
             Returns the objects as stored.",
            |c: &mut ClusterHandle, m: Dynamic, o: Map| c.apply_docs(manifests(&m)?, &o, "apply"),
        );
        b.method(
            "apply",
            &["cluster: Cluster", "manifests: any", "array"],
            "Server-side apply with default options.",
            |c: &mut ClusterHandle, m: Dynamic| c.apply_docs(manifests(&m)?, &Map::new(), "apply"),
        );
        b.method(
            "apply_file",
            &["cluster: Cluster", "path: string", "options: map", "array"],
            "Apply a YAML file (or every .yaml/.yml/.json file of a directory), relative to the playbook.",
            |c: &mut ClusterHandle, p: &str, o: Map| -> R<Array> {
                let docs = read_manifests(&c.ctx.resolve_path(p))?;
                c.apply_docs(docs, &o, "apply_file")
            },
        );
        b.method(
            "apply_file",
            &["cluster: Cluster", "path: string", "array"],
            "Apply a YAML file or directory.",
            |c: &mut ClusterHandle, p: &str| -> R<Array> {
                let docs = read_manifests(&c.ctx.resolve_path(p))?;
                c.apply_docs(docs, &Map::new(), "apply_file")
            },
        );

        b.method(
            "get",
            &["cluster: Cluster", "kind: string", "name: string", "options: map", "any"],
            "The object, or `()` when it does not exist. Options: namespace, api_version.",
            |c: &mut ClusterHandle, kind: &str, name: &str, o: Map| -> R<Dynamic> {
                let sel = c.selector(kind, &o, "get", &[])?;
                let (cluster, name2) = (c.cluster.clone(), name.to_string());
                let v = c.ctx.block_on(async move { objects::get(&cluster, &sel, &name2).await })?;
                Ok(v.map(|v| to_script(&c.ctx, v)).unwrap_or(Dynamic::UNIT))
            },
        );
        b.method(
            "get",
            &["cluster: Cluster", "kind: string", "name: string", "any"],
            "The object in the default namespace, or `()`.",
            |c: &mut ClusterHandle, kind: &str, name: &str| -> R<Dynamic> {
                let sel = Selector { kind: kind.into(), ..Default::default() };
                let (cluster, name2) = (c.cluster.clone(), name.to_string());
                let v = c.ctx.block_on(async move { objects::get(&cluster, &sel, &name2).await })?;
                Ok(v.map(|v| to_script(&c.ctx, v)).unwrap_or(Dynamic::UNIT))
            },
        );
        b.method(
            "list",
            &["cluster: Cluster", "kind: string", "options: map", "array"],
            "Objects of a kind. Options: namespace, selector (labels), fields, api_version.",
            |c: &mut ClusterHandle, kind: &str, o: Map| -> R<Array> {
                let sel = c.selector(kind, &o, "list", &["selector", "fields"])?;
                let cluster = c.cluster.clone();
                let v = c.ctx.block_on(async move { objects::list(&cluster, &sel).await })?;
                Ok(v.into_iter().map(|v| to_script(&c.ctx, v)).collect())
            },
        );
        b.method(
            "patch",
            &["cluster: Cluster", "kind: string", "name: string", "patch: any", "options: map", "map"],
            "Patch an object. Options: namespace, api_version, type (\"merge\" (default), \"strategic\", \"json\").",
            |c: &mut ClusterHandle, kind: &str, name: &str, body: Dynamic, o: Map| -> R<Dynamic> {
                let ty = Opts::new(&o, "patch", &["namespace", "api_version", "type"])?.str("type")?;
                let mut o2 = o.clone();
                o2.remove("type");
                let sel = c.selector(kind, &o2, "patch", &[])?;
                let pk = match ty.as_deref() {
                    None | Some("merge") => PatchKind::Merge,
                    Some("strategic") => PatchKind::Strategic,
                    Some("json") => PatchKind::Json,
                    Some(other) => {
                        return Err(usage_err(format!("patch: type must be merge, strategic or json, got '{other}'")));
                    }
                };
                let body = to_json(&body, Reveal::Expose).map_err(usage_err)?;
                let (cluster, name2) = (c.cluster.clone(), name.to_string());
                let v =
                    c.ctx.block_on(async move { objects::patch(&cluster, &sel, &name2, body, pk, "kmsctl").await })?;
                Ok(to_script(&c.ctx, v))
            },
        );
        b.method(
            "delete",
            &["cluster: Cluster", "kind: string", "name: string", "options: map", "bool"],
            "Delete an object; true if it existed. Options: namespace, api_version, wait (true: until gone),\n\
             timeout (\"2m\"). A timed-out wait names the finalizers holding the object.",
            |c: &mut ClusterHandle, kind: &str, name: &str, o: Map| -> R<bool> {
                let oo = Opts::new(&o, "delete", &["namespace", "api_version", "wait", "timeout"])?;
                let wait = if oo.bool("wait", true)? {
                    Some(oo.duration("timeout")?.unwrap_or(Duration::from_secs(120)))
                } else {
                    None
                };
                let mut o2 = o.clone();
                o2.remove("wait");
                o2.remove("timeout");
                let sel = c.selector(kind, &o2, "delete", &[])?;
                let (cluster, name2) = (c.cluster.clone(), name.to_string());
                c.ctx.block_on(async move { objects::delete(&cluster, &sel, &name2, wait).await })
            },
        );
        b.method(
            "ensure_namespace",
            &["cluster: Cluster", "name: string", "options: map", "map"],
            "Create the namespace if missing. Options: labels.",
            |c: &mut ClusterHandle, name: &str, o: Map| -> R<Dynamic> {
                let labels = Opts::new(&o, "ensure_namespace", &["labels"])?.str_map("labels")?;
                let (cluster, name2) = (c.cluster.clone(), name.to_string());
                let v = c.ctx.block_on(async move { objects::ensure_namespace(&cluster, &name2, &labels).await })?;
                Ok(to_script(&c.ctx, v))
            },
        );
        b.method(
            "ensure_namespace",
            &["cluster: Cluster", "name: string", "map"],
            "Create the namespace if missing.",
            |c: &mut ClusterHandle, name: &str| -> R<Dynamic> {
                let (cluster, name2) = (c.cluster.clone(), name.to_string());
                let v = c
                    .ctx
                    .block_on(async move { objects::ensure_namespace(&cluster, &name2, &BTreeMap::new()).await })?;
                Ok(to_script(&c.ctx, v))
            },
        );
        b.method(
            "recreate_namespace",
            &["cluster: Cluster", "name: string", "options: map", "map"],
            "Delete the namespace (waiting until gone), then create it. Options: labels, timeout (\"2m\").",
            |c: &mut ClusterHandle, name: &str, o: Map| -> R<Dynamic> {
                let oo = Opts::new(&o, "recreate_namespace", &["labels", "timeout"])?;
                let (labels, timeout) =
                    (oo.str_map("labels")?, oo.duration("timeout")?.unwrap_or(Duration::from_secs(120)));
                let (cluster, name2) = (c.cluster.clone(), name.to_string());
                let v = c
                    .ctx
                    .block_on(async move { objects::recreate_namespace(&cluster, &name2, &labels, timeout).await })?;
                Ok(to_script(&c.ctx, v))
            },
        );
        b.method(
            "recreate_namespace",
            &["cluster: Cluster", "name: string", "map"],
            "Delete the namespace (waiting up to 2m until gone), then create it.",
            |c: &mut ClusterHandle, name: &str| -> R<Dynamic> {
                let (cluster, name2) = (c.cluster.clone(), name.to_string());
                let v = c.ctx.block_on(async move {
                    objects::recreate_namespace(&cluster, &name2, &BTreeMap::new(), Duration::from_secs(120)).await
                })?;
                Ok(to_script(&c.ctx, v))
            },
        );
        for (fname, kind) in [("secret", "Secret"), ("config_map", "ConfigMap")] {
            b.method(
                fname,
                &["cluster: Cluster", "namespace: string", "name: string", "data: map", "options: map", "map"],
                "Create or update a Secret/ConfigMap from a map of values (strings or secrets). Options:\n\
                 labels, type (Secrets; default Opaque), files (a map of key → file path, read relative to the playbook).",
                move |c: &mut ClusterHandle, ns: &str, name: &str, data: Map, o: Map| data_object(c, kind, ns, name, &data, &o),
            );
            b.method(
                fname,
                &["cluster: Cluster", "namespace: string", "name: string", "data: map", "map"],
                "Create or update a Secret/ConfigMap from a map of values.",
                move |c: &mut ClusterHandle, ns: &str, name: &str, data: Map| {
                    data_object(c, kind, ns, name, &data, &Map::new())
                },
            );
        }
        b.method(
            "logs",
            &["cluster: Cluster", "pod: string", "options: map", "string"],
            "A container's logs. Options: namespace, container, previous, tail (lines), since (duration).",
            |c: &mut ClusterHandle, pod: &str, o: Map| -> R<String> {
                let oo = Opts::new(&o, "logs", &["namespace", "container", "previous", "tail", "since"])?;
                let ns = oo.str("namespace")?.unwrap_or_else(|| c.cluster.default_namespace().to_string());
                let lo = LogOptions {
                    container: oo.str("container")?,
                    previous: oo.bool("previous", false)?,
                    tail: oo.int("tail")?,
                    since_seconds: oo.duration("since")?.map(|d| d.as_secs() as i64),
                };
                let (cluster, pod2) = (c.cluster.clone(), pod.to_string());
                c.ctx.block_on(async move { logs::logs(&cluster, &ns, &pod2, &lo).await })
            },
        );
        b.method(
            "collect_logs",
            &["cluster: Cluster", "options: map", "array"],
            "Write the logs of every container of matching pods to files: `#{ namespace, selector, dir,\n\
             container, previous, tail }`; dir is relative to the artifacts directory (default \"logs\").\n\
             Returns #{pod, container, previous, path, error} per file.",
            |c: &mut ClusterHandle, o: Map| -> R<Array> {
                let oo =
                    Opts::new(&o, "collect_logs", &["namespace", "selector", "dir", "container", "previous", "tail"])?;
                let ns = oo.str("namespace")?.unwrap_or_else(|| c.cluster.default_namespace().to_string());
                let selector = oo.str("selector")?;
                let base = c.ctx.artifacts_dir().map_err(|e| usage_err(e.to_string()))?;
                let dir = base.join(oo.str("dir")?.unwrap_or_else(|| "logs".into()));
                let lo = LogOptions {
                    container: oo.str("container")?,
                    previous: oo.bool("previous", false)?,
                    tail: oo.int("tail")?,
                    since_seconds: None,
                };
                let cluster = c.cluster.clone();
                let files = c
                    .ctx
                    .block_on(async move { logs::collect(&cluster, &ns, selector.as_deref(), &dir, &lo).await })?;
                Ok(files.into_iter().map(|f| from_json(serde_json::to_value(f).unwrap_or_default())).collect())
            },
        );
        b.method(
            "events",
            &["cluster: Cluster", "kind: string", "name: string", "options: map", "array"],
            "Recent events of an object, oldest first: #{time, type, reason, message, count}. Options: namespace.",
            |c: &mut ClusterHandle, kind: &str, name: &str, o: Map| -> R<Array> {
                let ns = Opts::new(&o, "events", &["namespace"])?
                    .str("namespace")?
                    .unwrap_or_else(|| c.cluster.default_namespace().to_string());
                let (cluster, kind2, name2) = (c.cluster.clone(), kind.to_string(), name.to_string());
                let (v, notes) = c.ctx.block_on(async move {
                    let mut notes = Vec::new();
                    let v = report::events_of(cluster.client(), &ns, &[(kind2, name2)], &mut notes).await;
                    Ok::<_, K8sError>((v, notes))
                })?;
                if let Some(n) = notes.first() {
                    return Err(err(K8sError::Unreachable(n.clone())));
                }
                Ok(v.into_iter().map(|e| from_json(serde_json::to_value(e).unwrap_or_default())).collect())
            },
        );
        b.method(
            "exec",
            &["cluster: Cluster", "pod: string", "command: array", "options: map", "map"],
            "Run a command (no shell) in a pod: `kc.exec(pod, [\"ls\", \"/\"], #{ namespace, container, stdin })`.\n\
             Returns #{code, stdout, stderr}; a non-zero code is not an error.",
            |c: &mut ClusterHandle, pod: &str, cmd: Array, o: Map| -> R<Map> {
                let oo = Opts::new(&o, "exec", &["namespace", "container", "stdin"])?;
                let ns = oo.str("namespace")?.unwrap_or_else(|| c.cluster.default_namespace().to_string());
                let container = oo.str("container")?;
                let stdin = oo
                    .get("stdin")
                    .map(|s| to_json(s, Reveal::Expose).map(|v| v.as_str().unwrap_or_default().to_string()))
                    .transpose()
                    .map_err(usage_err)?;
                let command: Vec<String> = cmd.iter().map(kmsctl_host::value::display).collect();
                let (cluster, pod2) = (c.cluster.clone(), pod.to_string());
                let out = c.ctx.block_on(async move {
                    exec::exec(
                        &cluster,
                        &ns,
                        &pod2,
                        container.as_deref(),
                        &command,
                        stdin.as_deref().map(str::as_bytes),
                    )
                    .await
                })?;
                let mut m = Map::new();
                m.insert("code".into(), (out.code as INT).into());
                m.insert("stdout".into(), out.stdout.into());
                m.insert("stderr".into(), out.stderr.into());
                Ok(m)
            },
        );
        b.method(
            "port_forward",
            &["cluster: Cluster", "target: string", "options: map", "PortForward"],
            "Forward 127.0.0.1:local_port to a pod or service port: `kc.port_forward(\"svc/kms-core\", #{ namespace,\n\
             port: 50100, local_port: 50100 })` (local_port 0 picks a free one). Checked before it returns,\n\
             re-resolved per connection (survives pod restarts), stopped when the run ends.",
            |c: &mut ClusterHandle, target: &str, o: Map| -> R<PortForwardHandle> {
                let oo = Opts::new(&o, "port_forward", &["namespace", "port", "local_port"])?;
                let port = oo.int("port")?.ok_or_else(|| usage_err("port_forward: port is required"))?;
                let to_port = |p: i64, what: &str| {
                    u16::try_from(p).map_err(|_| usage_err(format!("port_forward: {what} {p} is not a port")))
                };
                let spec = ForwardSpec {
                    namespace: oo.str("namespace")?.unwrap_or_else(|| c.cluster.default_namespace().to_string()),
                    target: ForwardTarget::parse(target),
                    remote_port: to_port(port, "port")?,
                    local_port: to_port(oo.int("local_port")?.unwrap_or(0), "local_port")?,
                };
                let cluster = c.cluster.clone();
                let fwd = c.ctx.block_on(async move { portforward::start(&cluster, spec).await })?;
                let stop = fwd.stopper();
                let s2 = stop.clone();
                let cleanup = c.ctx.on_cleanup(format!("port-forward {}", fwd.description), move || {
                    Box::pin(async move { s2.cancel() })
                });
                c.ctx.log(kmsctl_host::Level::Info, format!("port-forward {}", fwd.description));
                Ok(PortForwardHandle {
                    local: fwd.local,
                    description: fwd.description,
                    stop,
                    cleanup,
                    ctx: c.ctx.clone(),
                })
            },
        );
        b.method("local_port", &["forward: PortForward", "int"], "The local port.", |f: &mut PortForwardHandle| {
            f.local.port() as INT
        });
        b.method("address", &["forward: PortForward", "string"], "`127.0.0.1:<port>`.", |f: &mut PortForwardHandle| {
            f.local.to_string()
        });
        b.method("stop", &["forward: PortForward", "()"], "Stop the forward now.", |f: &mut PortForwardHandle| {
            f.stop.cancel();
            f.ctx.remove_cleanup(f.cleanup);
        });
        b.method("to_string", &["forward: PortForward", "string"], "", |f: &mut PortForwardHandle| {
            format!("port-forward {}", f.description)
        });
        b.method("to_string", &["cluster: Cluster", "string"], "", |c: &mut ClusterHandle| {
            format!("cluster {} ({})", c.cluster.context(), c.cluster.server())
        });

        b.method(
            "wait",
            &["cluster: Cluster", "targets: any", "options: map", "array"],
            "Wait until objects are ready, watching them. Targets: objects (e.g. what apply returned),\n\
             #{kind, name, namespace}, or #{kind, namespace, selector, min}. Options: timeout (\"5m\"),\n\
             per_object_timeout, fail_fast (true), what (for messages), unschedulable_grace (\"30s\"),\n\
             report (true: write a failure report), predicate (|obj| -> bool or #{ready, failed, message};\n\
             replaces the built-in rules; must not call k8s functions). Returns the ready objects.\n\
             Throws `timeout` or `failed` with the blocking object and the report path.",
            |ncc: NativeCallContext, c: &mut ClusterHandle, t: Dynamic, o: Map| -> R<Array> {
                let predicate = o.get("predicate").and_then(|p| p.clone().try_cast::<FnPtr>());
                if o.get("predicate").is_some_and(|p| !p.is_unit()) && predicate.is_none() {
                    return Err(usage_err(
                        "wait: predicate must be a closure like |obj| obj.status.phase == \"Bound\"",
                    ));
                }
                let (wo, report) = wait_options(&o)?;
                let targets = c.targets(&t)?;
                let objs = c.wait_targets(targets, wo, predicate.as_ref().map(|p| (&ncc, p)), report)?;
                Ok(objs.into_iter().map(|v| to_script(&c.ctx, v)).collect())
            },
        );
        b.method(
            "wait",
            &["cluster: Cluster", "targets: any", "array"],
            "Wait until objects are ready (5m).",
            |c: &mut ClusterHandle, t: Dynamic| -> R<Array> {
                let targets = c.targets(&t)?;
                let objs = c.wait_targets(targets, WaitOptions::default(), None, true)?;
                Ok(objs.into_iter().map(|v| to_script(&c.ctx, v)).collect())
            },
        );
        b.build()
    }
}

fn data_object(c: &mut ClusterHandle, kind: &'static str, ns: &str, name: &str, data: &Map, o: &Map) -> R<Dynamic> {
    let oo = Opts::new(o, if kind == "Secret" { "secret" } else { "config_map" }, &["labels", "type", "files"])?;
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in data {
        let s = to_json(v, Reveal::Expose).map_err(usage_err)?;
        values.insert(k.to_string(), s.as_str().map(str::to_string).unwrap_or_else(|| s.to_string()));
    }
    if let Some(files) = oo.get("files").and_then(|f| f.read_lock::<Map>().map(|m| m.clone())) {
        for (k, p) in files {
            let path = c.ctx.resolve_path(&p.to_string());
            let text = std::fs::read_to_string(&path).map_err(|e| usage_err(format!("{}: {e}", path.display())))?;
            if kind == "Secret" {
                c.ctx.secret(text.clone());
            }
            values.insert(k.to_string(), text);
        }
    }
    let doc = objects::data_object(kind, ns, name, &values, oo.str("type")?.as_deref());
    let mut opts = Map::new();
    if let Some(l) = o.get("labels") {
        opts.insert("labels".into(), l.clone());
    }
    let mut applied = c.apply_docs(vec![doc], &opts, "apply")?;
    Ok(applied.remove(0))
}

fn read_manifests(path: &std::path::Path) -> R<Vec<Value>> {
    let read = |p: &std::path::Path| -> R<Vec<Value>> {
        let text =
            std::fs::read_to_string(p).map_err(|e| to_rhai(&K8sError::Usage(format!("{}: {e}", p.display()))))?;
        apply::parse_manifests(&text).map_err(|e| to_rhai(&K8sError::Usage(format!("{}: {e}", p.display()))))
    };
    if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| usage_err(format!("{}: {e}", path.display())))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "json"))
            .collect();
        files.sort();
        let mut out = Vec::new();
        for f in files {
            out.extend(read(&f)?);
        }
        return Ok(out);
    }
    read(path)
}
