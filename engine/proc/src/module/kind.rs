//! `kind`: local Kubernetes clusters in containers, through the kind CLI.

use super::{Opts, R, exec, strings, wire};
use crate::kind::{self, Config, EnsureOptions};
use kmsctl_host::HostCtx;
use kmsctl_host::usage_err;
use kmsctl_host::value::{Reveal, to_json};
use kmsctl_host::{BuiltModule, ModuleBuilder, NativeModule};
use rhai::{Array, Dynamic, Map};

/// The `kind` native module.
pub struct Kind;

fn config(ctx: &HostCtx, v: &Dynamic) -> R<Config> {
    if v.is_map() {
        let json = to_json(v, Reveal::Expose).map_err(|e| usage_err(format!("kind::ensure_cluster: config: {e}")))?;
        return kind::render_config(&json).map(Config::Yaml).map_err(super::err);
    }
    if v.is_string() {
        let s = v.to_string();
        // Several lines are YAML text; one line is a file path.
        return Ok(if s.contains('\n') { Config::Yaml(s) } else { Config::File(ctx.resolve_path(&s)) });
    }
    Err(usage_err(format!(
        "kind::ensure_cluster: config must be a map, YAML text or a file path, got {}",
        v.type_name()
    )))
}

// The options each function accepts.
const ENSURE_OPTS: &[&str] = &["config", "recreate", "image", "wait"];
const LOAD_OPTS: &[&str] = &["nodes"];

fn ensure(ctx: &HostCtx, name: &str, opts: &Map) -> R<Map> {
    let o = Opts::new(opts, "kind::ensure_cluster", ENSURE_OPTS)?;
    let eo = EnsureOptions {
        config: o.get("config").map(|v| config(ctx, v)).transpose()?,
        recreate: o.bool("recreate", false)?,
        image: o.str("image")?,
        wait: o.duration("wait")?,
    };
    let (created, recreated) = if ctx.mode().is_plan() {
        // As if it did not exist, or was recreated: the plan cannot ask kind.
        let what = if eo.recreate { "deleted if it exists, then created" } else { "created unless it exists" };
        ctx.record(
            kmsctl_host::PlannedOp::new("kind ensure_cluster", format!("{name} (context kind-{name})")).note(what),
        );
        (!eo.recreate, eo.recreate)
    } else {
        let t = wire(ctx, kind::tool());
        let n = name.to_string();
        let done = exec(ctx, async move { kind::ensure_cluster(&t, &n, &eo).await })?;
        (done.created, done.recreated)
    };
    let mut m = Map::new();
    m.insert("name".into(), name.into());
    m.insert("context".into(), format!("kind-{name}").into());
    m.insert("created".into(), created.into());
    m.insert("recreated".into(), recreated.into());
    Ok(m)
}

fn load(ctx: &HostCtx, cluster: &str, images: &Dynamic, opts: &Map) -> R<()> {
    let o = Opts::new(opts, "kind::load_image", LOAD_OPTS)?;
    let images = strings(images).map_err(|e| usage_err(format!("kind::load_image: image: {e}")))?;
    let nodes = o.strings("nodes")?;
    let t = wire(ctx, kind::tool());
    let c = cluster.to_string();
    exec(ctx, async move { kind::load_image(&t, &c, &images, &nodes).await })
}

impl NativeModule for Kind {
    fn name(&self) -> &'static str {
        "kind"
    }
    fn build(&self, ctx: &HostCtx) -> BuiltModule {
        let mut b = ModuleBuilder::new(
            ctx,
            self.name(),
            "kind clusters through the kind CLI (`kind` on PATH, or the binary named by KMSCTL_KIND).\n\
             The cluster's kube context is `kind-<name>`. Output lines go to the debug log.",
        );
        let c = ctx.clone();
        b.func("clusters", &["array"], "The names of the existing kind clusters.", move || -> R<Array> {
            // A plan that does not read the world sees none.
            if c.mode().is_offline() {
                return Ok(Array::new());
            }
            let t = wire(&c, kind::tool());
            let names = exec(&c, async move { kind::clusters(&t).await })?;
            Ok(names.into_iter().map(Dynamic::from).collect())
        })
        .reads();
        let c = ctx.clone();
        b.func(
            "ensure_cluster",
            &["name: string", "map"],
            "Create cluster `name` unless it exists; returns #{name, context, created, recreated}.",
            move |name: &str| ensure(&c, name, &Map::new()),
        )
        .plans();
        let c = ctx.clone();
        b.func(
            "ensure_cluster",
            &["name: string", "options: map", "map"],
            "Create cluster `name` unless it exists. Options: config (a map, rendered to a private temp\n\
             file, `kind: Cluster` and `apiVersion` filled in; YAML text; or a file path), recreate (delete\n\
             and create it when it exists), image (node image), wait (for the control plane, e.g. \"60s\").\n\
             Returns #{name, context, created, recreated}.",
            move |name: &str, o: Map| ensure(&c, name, &o),
        )
        .options(ENSURE_OPTS)
        .plans();
        let c = ctx.clone();
        b.func(
            "delete_cluster",
            &["name: string", "bool"],
            "Delete cluster `name` if it exists; returns whether it existed.",
            move |name: &str| -> R<bool> {
                if c.mode().is_plan() {
                    c.record(kmsctl_host::PlannedOp::new("kind delete_cluster", name).note("deleted if it exists"));
                    // As `clusters` sees it: none offline.
                    return Ok(false);
                }
                let t = wire(&c, kind::tool());
                let n = name.to_string();
                exec(&c, async move { kind::delete_cluster(&t, &n).await })
            },
        )
        .plans();
        let c = ctx.clone();
        b.func(
            "load_image",
            &["cluster: string", "image: any", "()"],
            "Load a local docker image (or an array of them) into every node of the cluster.",
            move |cluster: &str, image: Dynamic| load(&c, cluster, &image, &Map::new()),
        )
        .mutates();
        let c = ctx.clone();
        b.func(
            "load_image",
            &["cluster: string", "image: any", "options: map", "()"],
            "Load local docker image(s) into the cluster. Options: nodes (a node name or an array, e.g.\n\
             \"kms-test-worker\"; default all nodes).",
            move |cluster: &str, image: Dynamic, o: Map| load(&c, cluster, &image, &o),
        )
        .options(LOAD_OPTS)
        .mutates();
        b.build()
    }
}
