//! Images through the docker CLI: build (buildx, build args), pull, labels (the enclave PCRs),
//! and "does this tag exist yet" with retries. Secret build values reach docker through its
//! environment, never its command line.

use crate::error::ProcError;
use crate::run::Text;
use crate::tool::{Tool, positional};
use kmsctl_host::Level;
use kmsctl_host::Secret;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// The variable naming another docker binary.
pub(crate) const ENV: &str = "KMSCTL_DOCKER";

/// The labels of an enclave image that carry its PCR0..2 (hex SHA-384 measurements).
pub(crate) const PCR_LABELS: [&str; 3] = ["zama.kms.eif_pcr0", "zama.kms.eif_pcr1", "zama.kms.eif_pcr2"];

/// The docker CLI (`docker` on PATH unless `KMSCTL_DOCKER` is set).
pub(crate) fn tool() -> Tool {
    Tool::new("docker", ENV)
}

/// What to build.
#[derive(Clone, Debug, Default)]
pub(crate) struct BuildOptions {
    /// The build context (a directory or URL).
    pub context: String,
    /// The Dockerfile (`--file`).
    pub dockerfile: Option<String>,
    /// Image tags (`--tag`).
    pub tags: Vec<String>,
    /// Build args; secret values go through the environment (`--build-arg NAME`).
    pub build_args: Vec<(String, Text)>,
    /// BuildKit secrets (`--secret id=<id>,env=<var>`), the safe way to hand a build a secret.
    pub secrets: Vec<(String, Secret)>,
    /// Image labels (`--label`).
    pub labels: Vec<(String, String)>,
    /// The stage to build (`--target`).
    pub target: Option<String>,
    /// Target platform(s) (`--platform`).
    pub platform: Option<String>,
    /// Load the result into the local image store (`--load`).
    pub load: bool,
    /// Push the result (`--push`).
    pub push: bool,
    /// Do not use the cache (`--no-cache`).
    pub no_cache: bool,
    /// `docker buildx build` (true) or `docker build`.
    pub buildx: bool,
}

/// A command line and the environment it needs.
#[derive(Clone, Debug)]
pub(crate) struct Invocation {
    /// Arguments after the program.
    pub args: Vec<String>,
    /// Variables for the child (secret values).
    pub env: Vec<(String, Text)>,
}

fn env_name(name: &str) -> bool {
    name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The `docker [buildx] build` command for `o`.
pub(crate) fn build_invocation(o: &BuildOptions) -> Result<Invocation, ProcError> {
    positional("the build context", &o.context)?;
    let mut args: Vec<String> = if o.buildx { vec!["buildx".into(), "build".into()] } else { vec!["build".into()] };
    let mut env = Vec::new();
    if let Some(f) = &o.dockerfile {
        args.extend(["--file".into(), f.clone()]);
    }
    for t in &o.tags {
        positional("the tag", t)?;
        args.extend(["--tag".into(), t.clone()]);
    }
    for (name, value) in &o.build_args {
        if !env_name(name) {
            return Err(ProcError::Usage(format!("build arg '{name}' is not a valid name (letters, digits, '_')")));
        }
        match value {
            Text::Plain(v) => args.extend(["--build-arg".into(), format!("{name}={v}")]),
            // Without `=VALUE` docker takes the value from its own environment.
            Text::Secret(_) => {
                args.extend(["--build-arg".into(), name.clone()]);
                env.push((name.clone(), value.clone()));
            }
        }
    }
    for (i, (id, value)) in o.secrets.iter().enumerate() {
        if id.is_empty() || id.contains([',', '=']) {
            return Err(ProcError::Usage(format!("build secret id '{id}' must be non-empty without ',' or '='")));
        }
        let var = format!("KMSCTL_BUILD_SECRET_{i}");
        args.extend(["--secret".into(), format!("id={id},env={var}")]);
        env.push((var, Text::Secret(value.clone())));
    }
    for (k, v) in &o.labels {
        args.extend(["--label".into(), format!("{k}={v}")]);
    }
    if let Some(t) = &o.target {
        args.extend(["--target".into(), t.clone()]);
    }
    if let Some(p) = &o.platform {
        args.extend(["--platform".into(), p.clone()]);
    }
    if o.load {
        args.push("--load".into());
    }
    if o.push {
        args.push("--push".into());
    }
    if o.no_cache {
        args.push("--no-cache".into());
    }
    args.push(o.context.clone());
    Ok(Invocation { args, env })
}

/// Build an image.
pub(crate) async fn build(t: &Tool, o: &BuildOptions, cwd: Option<std::path::PathBuf>) -> Result<(), ProcError> {
    let inv = build_invocation(o)?;
    let mut spec = t.spec(inv.args);
    spec.env = inv.env.into_iter().map(|(k, v)| (k, Some(v))).collect();
    spec.cwd = cwd;
    let what = if o.tags.is_empty() { o.context.clone() } else { o.tags.join(", ") };
    t.note(Level::Info, format!("building {what}"));
    t.run(spec).await?.check()?;
    Ok(())
}

/// The labels from `docker image inspect` output (an array of one image).
pub(crate) fn parse_labels(json: &str, image: &str) -> Result<BTreeMap<String, String>, ProcError> {
    let v: Value = serde_json::from_str(json)
        .map_err(|e| ProcError::Parse(format!("docker image inspect {image}: unexpected output: {e}")))?;
    let first = v
        .as_array()
        .and_then(|a| a.first())
        .ok_or_else(|| ProcError::Missing(format!("image {image} not found locally")))?;
    let labels = match first.pointer("/Config/Labels") {
        Some(Value::Object(m)) => m,
        // Docker prints `"Labels": null` for an image without labels.
        _ => return Ok(BTreeMap::new()),
    };
    Ok(labels
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
        .collect())
}

/// The labels of a local image.
pub(crate) async fn image_labels(t: &Tool, image: &str) -> Result<BTreeMap<String, String>, ProcError> {
    positional("the image", image)?;
    let out = t.run(t.spec(vec!["image".into(), "inspect".into(), image.into()])).await?;
    if !out.success() && out.stderr.to_lowercase().contains("no such") {
        return Err(ProcError::Missing(format!(
            "image {image} not found locally; pull it first (docker::pull, or #{{pull: true}} for docker::pcrs)"
        )));
    }
    parse_labels(&out.check()?.stdout, image)
}

/// PCR0..2 from an enclave image's labels. A missing, empty or "null" label is an error naming
/// it: the toolkit once deployed the string "null" as a PCR.
pub(crate) fn pcrs_from_labels(labels: &BTreeMap<String, String>, image: &str) -> Result<[String; 3], ProcError> {
    let get = |label: &str| {
        labels
            .get(label)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty() && *v != "null")
            .map(str::to_string)
            .ok_or_else(|| ProcError::Missing(format!("image {image} has no label {label} (is it an enclave image?)")))
    };
    Ok([get(PCR_LABELS[0])?, get(PCR_LABELS[1])?, get(PCR_LABELS[2])?])
}

/// Pull an image.
pub(crate) async fn pull(t: &Tool, image: &str, platform: Option<&str>) -> Result<(), ProcError> {
    positional("the image", image)?;
    let mut args: Vec<String> = vec!["pull".into()];
    if let Some(p) = platform {
        args.extend(["--platform".into(), p.into()]);
    }
    args.push(image.into());
    t.note(Level::Info, format!("pulling {image}"));
    t.ok(args).await?;
    Ok(())
}

/// Does the registry have this image (tag)? `docker manifest inspect`, tried `attempts` times
/// `interval` apart (a tag pushed by a parallel job may take a while to appear).
pub(crate) async fn image_exists(t: &Tool, image: &str, attempts: u32, interval: Duration) -> Result<bool, ProcError> {
    positional("the image", image)?;
    let attempts = attempts.max(1);
    for n in 1..=attempts {
        let out = t.run(t.spec(vec!["manifest".into(), "inspect".into(), image.into()])).await?;
        if out.success() {
            return Ok(true);
        }
        let why = out.tail.last().cloned().unwrap_or_else(|| format!("exit code {}", out.code));
        if n < attempts {
            t.note(
                Level::Info,
                format!(
                    "image {image} not found (attempt {n}/{attempts}: {why}); retrying in {}",
                    kmsctl_host::duration::format(interval)
                ),
            );
            t.sleep(interval).await?;
        } else {
            t.note(Level::Warn, format!("image {image} not found after {attempts} attempts: {why}"));
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> BuildOptions {
        BuildOptions {
            context: ".".into(),
            dockerfile: Some("docker/core/service/Dockerfile".into()),
            tags: vec!["core-service:latest-dev".into()],
            build_args: vec![("RUST_IMAGE_VERSION".into(), Text::Plain("1.94".into()))],
            load: true,
            buildx: true,
            ..Default::default()
        }
    }

    #[test]
    fn builds_the_toolkit_command_line() {
        let inv = build_invocation(&opts()).unwrap();
        assert_eq!(
            inv.args.join(" "),
            "buildx build --file docker/core/service/Dockerfile --tag core-service:latest-dev \
             --build-arg RUST_IMAGE_VERSION=1.94 --load ."
        );
        assert!(inv.env.is_empty());
    }

    #[test]
    fn secret_build_values_go_through_the_environment() {
        let mut o = opts();
        o.build_args.push(("NPM_TOKEN".into(), Text::Secret(Secret::new("tok-123456"))));
        o.secrets.push(("gh".into(), Secret::new("ghp-abcdef")));
        o.buildx = false;
        let inv = build_invocation(&o).unwrap();
        let line = inv.args.join(" ");
        assert!(!line.contains("tok-123456") && !line.contains("ghp-abcdef"), "{line}");
        assert!(line.starts_with("build --file"), "{line}");
        assert!(line.contains("--build-arg NPM_TOKEN --secret id=gh,env=KMSCTL_BUILD_SECRET_0 --load ."), "{line}");
        let env: Vec<(&str, &str)> = inv.env.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        assert_eq!(env, vec![("NPM_TOKEN", "tok-123456"), ("KMSCTL_BUILD_SECRET_0", "ghp-abcdef")]);
    }

    #[test]
    fn refuses_bad_names_and_option_like_values() {
        let mut o = opts();
        o.build_args = vec![("BAD=NAME".into(), Text::Plain("x".into()))];
        assert!(build_invocation(&o).is_err());
        let mut o = opts();
        o.tags = vec!["--push".into()];
        assert!(build_invocation(&o).is_err());
    }

    #[test]
    fn parses_labels_and_pcrs() {
        let json = r#"[{"Id":"sha256:1","Config":{"Labels":{"zama.kms.eif_pcr0":"aa","zama.kms.eif_pcr1":"bb","zama.kms.eif_pcr2":"cc","n":3}}}]"#;
        let labels = parse_labels(json, "img").unwrap();
        assert_eq!(labels["n"], "3");
        assert_eq!(pcrs_from_labels(&labels, "img").unwrap(), ["aa", "bb", "cc"]);
        let none = parse_labels(r#"[{"Config":{"Labels":null}}]"#, "img").unwrap();
        assert!(none.is_empty());
        let e = pcrs_from_labels(&none, "img").unwrap_err();
        assert_eq!(e.to_string(), "image img has no label zama.kms.eif_pcr0 (is it an enclave image?)");
        let mut null = labels.clone();
        null.insert(PCR_LABELS[2].into(), "null".into());
        assert!(pcrs_from_labels(&null, "img").unwrap_err().to_string().contains("zama.kms.eif_pcr2"));
        assert!(matches!(parse_labels("[]", "img"), Err(ProcError::Missing(_))));
        assert!(matches!(parse_labels("oops", "img"), Err(ProcError::Parse(_))));
    }
}
