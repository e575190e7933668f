//! `docker`: images through the docker CLI: build, pull, labels, enclave PCRs, tag checks.

use super::{Opts, R, TextOpts, exec, wire};
use crate::docker::{self, BuildOptions, PCR_LABELS};
use crate::run::Text;
use kmsctl_host::usage_err;
use kmsctl_host::{BuiltModule, ModuleBuilder, NativeModule};
use kmsctl_host::{HostCtx, duration};
use rhai::{Array, Dynamic, Map};
use std::time::{Duration, Instant};

/// The `docker` native module.
pub struct Docker;

const F_BUILD: &str = "docker::build";

// The options each function accepts.
const BUILD_OPTS: &[&str] = &[
    "context",
    "dockerfile",
    "tags",
    "build_args",
    "secrets",
    "labels",
    "target",
    "platform",
    "load",
    "push",
    "no_cache",
    "buildx",
];
const PCRS_OPTS: &[&str] = &["pull", "platform"];
const PULL_OPTS: &[&str] = &["platform"];
const EXISTS_OPTS: &[&str] = &["attempts", "interval"];

fn build(ctx: &HostCtx, opts: &Map) -> R<Map> {
    let o = Opts::new(opts, F_BUILD, BUILD_OPTS)?;
    let context = o.str("context")?.unwrap_or_else(|| ".".into());
    let mut build_args = Vec::new();
    for (k, v) in o.text_map("build_args")? {
        build_args.push((k.clone(), v.ok_or_else(|| usage_err(format!("{F_BUILD}: build_args.{k} is ()")))?));
    }
    let mut secrets = Vec::new();
    for (k, v) in o.text_map("secrets")? {
        match v {
            Some(Text::Secret(s)) => secrets.push((k, s)),
            _ => {
                return Err(usage_err(format!(
                    "{F_BUILD}: secrets.{k} must be a secret (env::secret, a secret parameter)"
                )));
            }
        }
    }
    let mut labels = Vec::new();
    for (k, v) in o.text_map("labels")? {
        match v {
            Some(Text::Plain(s)) => labels.push((k, s)),
            _ => return Err(usage_err(format!("{F_BUILD}: labels.{k} must be a string (labels are public)"))),
        }
    }
    let bo = BuildOptions {
        // Paths resolve against the playbook, like every path in a playbook.
        context: if context.contains("://") { context } else { ctx.resolve_path(&context).display().to_string() },
        dockerfile: o.str("dockerfile")?.map(|f| ctx.resolve_path(&f).display().to_string()),
        tags: o.strings("tags")?,
        build_args,
        secrets,
        labels,
        target: o.str("target")?,
        platform: o.str("platform")?,
        load: o.bool("load", false)?,
        push: o.bool("push", false)?,
        no_cache: o.bool("no_cache", false)?,
        buildx: o.bool("buildx", true)?,
    };
    let tags: Array = bo.tags.iter().cloned().map(Dynamic::from).collect();
    let t = wire(ctx, docker::tool());
    let start = Instant::now();
    exec(ctx, async move { docker::build(&t, &bo, None).await })?;
    let mut m = Map::new();
    m.insert("tags".into(), tags.into());
    m.insert("duration".into(), duration::format(start.elapsed()).into());
    Ok(m)
}

/// Registries and the local image store are not asked in a plan without `--against-cluster`.
fn offline(ctx: &HostCtx, func: &str, image: &str) -> R<()> {
    if !ctx.mode().is_offline() {
        return Ok(());
    }
    let message = format!("{func}: {image} is not inspected in a plan (--against-cluster reads it)");
    Err(kmsctl_host::to_rhai(&kmsctl_host::Failure::new(kmsctl_host::ErrorKind::Unavailable, message)))
}

fn labels(ctx: &HostCtx, image: &str) -> R<Map> {
    offline(ctx, "docker::image_labels", image)?;
    let t = wire(ctx, docker::tool());
    let i = image.to_string();
    let labels = exec(ctx, async move { docker::image_labels(&t, &i).await })?;
    Ok(labels.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
}

fn pcrs(ctx: &HostCtx, image: &str, opts: &Map) -> R<Map> {
    let o = Opts::new(opts, "docker::pcrs", PCRS_OPTS)?;
    let (pull, platform) = (o.bool("pull", false)?, o.str("platform")?);
    if ctx.mode().is_offline() {
        // A plan without the images: placeholders, so that the plan still shows where they go.
        ctx.log(
            kmsctl_host::Level::Info,
            format!("docker::pcrs: {image} is not inspected in a plan: placeholder PCRs"),
        );
        let mut m = Map::new();
        for i in 0..3 {
            m.insert(format!("pcr{i}").into(), format!("<pcr{i} of {image}>").into());
        }
        return Ok(m);
    }
    let t = wire(ctx, docker::tool());
    let i = image.to_string();
    let values = exec(ctx, async move {
        if pull {
            docker::pull(&t, &i, platform.as_deref()).await?;
        }
        let labels = docker::image_labels(&t, &i).await?;
        docker::pcrs_from_labels(&labels, &i)
    })?;
    let mut m = Map::new();
    for (i, v) in values.into_iter().enumerate() {
        m.insert(format!("pcr{i}").into(), v.into());
    }
    Ok(m)
}

fn pull(ctx: &HostCtx, image: &str, opts: &Map) -> R<()> {
    let o = Opts::new(opts, "docker::pull", PULL_OPTS)?;
    let platform = o.str("platform")?;
    let t = wire(ctx, docker::tool());
    let i = image.to_string();
    exec(ctx, async move { docker::pull(&t, &i, platform.as_deref()).await })
}

fn exists(ctx: &HostCtx, image: &str, opts: &Map) -> R<bool> {
    let o = Opts::new(opts, "docker::image_exists", EXISTS_OPTS)?;
    let attempts = match o.int("attempts")? {
        None => 12,
        Some(n) => u32::try_from(n)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| usage_err("docker::image_exists: attempts must be an integer >= 1"))?,
    };
    let interval = o.duration("interval")?.unwrap_or(Duration::from_secs(5));
    if ctx.mode().is_offline() {
        let note = "assumed to exist: registries are not asked without --against-cluster";
        ctx.record(kmsctl_host::PlannedOp::new("docker image_exists", image).note(note));
        return Ok(true);
    }
    let t = wire(ctx, docker::tool());
    let i = image.to_string();
    exec(ctx, async move { docker::image_exists(&t, &i, attempts, interval).await })
}

impl NativeModule for Docker {
    fn name(&self) -> &'static str {
        "docker"
    }
    fn build(&self, ctx: &HostCtx) -> BuiltModule {
        let mut b = ModuleBuilder::new(
            ctx,
            self.name(),
            "docker images through the docker CLI (`docker` on PATH, or the binary named by KMSCTL_DOCKER).\n\
             Output lines go to the debug log. Secret values never reach docker's command line.",
        );
        let c = ctx.clone();
        b.func(
            "build",
            &["options: map", "map"],
            "Build an image (`docker buildx build`). Options: context (\".\"), dockerfile, tags (string or\n\
             array), build_args (#{NAME: value}; a secret value is passed as `--build-arg NAME` with the\n\
             value in docker's environment, but build args can end up in the image history, so prefer\n\
             secrets), secrets (#{id: secret} for `RUN --mount=type=secret,id=...`), labels, target,\n\
             platform, load, push, no_cache, buildx (true; false runs `docker build`).\n\
             Returns #{tags, duration}.",
            move |o: Map| build(&c, &o),
        )
        .options(BUILD_OPTS)
        .mutates();
        let c = ctx.clone();
        b.func(
            "image_labels",
            &["image: string", "map"],
            "The labels of a local image (a missing label reads as `()`); `not_found` when the image is\n\
             not local.",
            move |image: &str| labels(&c, image),
        )
        .reads();
        let c = ctx.clone();
        b.func(
            "pcrs",
            &["image: string", "map"],
            &format!(
                "The enclave PCRs of a local image, #{{pcr0, pcr1, pcr2}}, from its labels {}.\n\
                 A missing or empty label throws `not_found` naming it.",
                PCR_LABELS.join(", ")
            ),
            move |image: &str| pcrs(&c, image, &Map::new()),
        )
        .reads();
        let c = ctx.clone();
        b.func(
            "pcrs",
            &["image: string", "options: map", "map"],
            "The enclave PCRs of an image. Options: pull (pull it first), platform (for the pull).",
            move |image: &str, o: Map| pcrs(&c, image, &o),
        )
        .options(PCRS_OPTS)
        .reads();
        let c = ctx.clone();
        b.func("pull", &["image: string", "()"], "Pull an image.", move |image: &str| pull(&c, image, &Map::new()))
            .mutates();
        let c = ctx.clone();
        b.func(
            "pull",
            &["image: string", "options: map", "()"],
            "Pull an image. Options: platform.",
            move |image: &str, o: Map| pull(&c, image, &o),
        )
        .options(PULL_OPTS)
        .mutates();
        let c = ctx.clone();
        b.func(
            "image_exists",
            &["image: string", "bool"],
            "Does the registry have this image tag? `docker manifest inspect`, 12 attempts 5s apart.",
            move |image: &str| exists(&c, image, &Map::new()),
        )
        .reads();
        let c = ctx.clone();
        b.func(
            "image_exists",
            &["image: string", "options: map", "bool"],
            "Does the registry have this image tag? Options: attempts (12), interval (\"5s\"). Returns false\n\
             once the attempts are used up; cancellable.",
            move |image: &str, o: Map| exists(&c, image, &o),
        )
        .options(EXISTS_OPTS)
        .reads();
        b.build()
    }
}
