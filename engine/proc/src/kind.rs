//! kind clusters through the kind CLI: list, ensure (create, or recreate), delete, load images.
//! The toolkit's steps 3 and 5 and its kind teardown, idempotent.

use crate::error::ProcError;
use crate::tool::{Tool, positional};
use kmsctl_host::Level;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The variable naming another kind binary.
pub(crate) const ENV: &str = "KMSCTL_KIND";

/// The kind CLI (`kind` on PATH unless `KMSCTL_KIND` is set).
pub(crate) fn tool() -> Tool {
    Tool::new("kind", ENV)
}

/// kind's rule for cluster names (it also names containers and the `kind-<name>` context).
pub(crate) fn validate_name(name: &str) -> Result<(), ProcError> {
    let ok = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(ProcError::Usage(format!(
            "'{name}' is not a valid kind cluster name (lowercase letters, digits, '-' and '.')"
        )))
    }
}

/// Cluster names from `kind get clusters` (which says "No kind clusters found." on stderr).
pub(crate) fn parse_clusters(stdout: &str) -> Vec<String> {
    stdout.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// The clusters that exist.
pub(crate) async fn clusters(t: &Tool) -> Result<Vec<String>, ProcError> {
    Ok(parse_clusters(&t.ok(vec!["get".into(), "clusters".into()]).await?.stdout))
}

/// A cluster configuration.
#[derive(Clone, Debug)]
pub(crate) enum Config {
    /// YAML text, written to a private temp file for kind.
    Yaml(String),
    /// An existing file.
    File(PathBuf),
}

/// Render a config map as YAML, filling in `kind: Cluster` and the v1alpha4 `apiVersion` when
/// the map leaves them out.
pub(crate) fn render_config(v: &Value) -> Result<String, ProcError> {
    let Value::Object(m) = v else {
        return Err(ProcError::Usage("a kind config must be a map".into()));
    };
    let mut m = m.clone();
    m.entry("kind").or_insert_with(|| "Cluster".into());
    m.entry("apiVersion").or_insert_with(|| "kind.x-k8s.io/v1alpha4".into());
    serde_saphyr::to_string(&Value::Object(m)).map_err(|e| ProcError::Usage(format!("kind config: {e}")))
}

/// How to ensure a cluster.
#[derive(Clone, Debug, Default)]
pub(crate) struct EnsureOptions {
    /// The cluster config.
    pub config: Option<Config>,
    /// Delete and create it again when it exists (the toolkit's `--cleanup`).
    pub recreate: bool,
    /// The node image (`--image`).
    pub image: Option<String>,
    /// How long kind waits for the control plane (`--wait`).
    pub wait: Option<Duration>,
}

/// What [`ensure_cluster`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ensured {
    /// A cluster was created.
    pub created: bool,
    /// An existing cluster was deleted first.
    pub recreated: bool,
}

/// Arguments of `kind create cluster`.
pub(crate) fn create_args(
    name: &str,
    config: Option<&Path>,
    image: Option<&str>,
    wait: Option<Duration>,
) -> Vec<String> {
    let mut a: Vec<String> = vec!["create".into(), "cluster".into(), "--name".into(), name.into()];
    if let Some(c) = config {
        a.extend(["--config".into(), c.display().to_string()]);
    }
    if let Some(i) = image {
        a.extend(["--image".into(), i.into()]);
    }
    if let Some(w) = wait {
        a.extend(["--wait".into(), format!("{}s", w.as_secs().max(1))]);
    }
    a
}

/// Make sure cluster `name` exists and its context `kind-<name>` is the kubeconfig's current
/// one: create it when missing (kind sets the context); with `recreate`, delete it first.
pub(crate) async fn ensure_cluster(t: &Tool, name: &str, o: &EnsureOptions) -> Result<Ensured, ProcError> {
    validate_name(name)?;
    if let Some(i) = &o.image {
        positional("the node image", i)?;
    }
    if let Some(Config::File(p)) = &o.config
        && !p.is_file()
    {
        return Err(ProcError::Usage(format!("kind config file {} does not exist", p.display())));
    }
    let exists = clusters(t).await?.iter().any(|c| c == name);
    if exists && !o.recreate {
        // As the toolkit's `kubectl config use-context kind-<name>`: the context exists in the
        // kubeconfig (it may have been edited since) and is the current one.
        t.note(Level::Debug, format!("kind cluster '{name}' exists; exporting its kubeconfig"));
        t.ok(vec!["export".into(), "kubeconfig".into(), "--name".into(), name.into()]).await?;
        return Ok(Ensured { created: false, recreated: false });
    }
    if exists {
        t.note(Level::Info, format!("deleting kind cluster '{name}' to recreate it"));
        t.ok(delete_args(name)).await?;
    }
    // The temp file lives until kind has read it; it is private (0600) as configs may hold
    // registry credentials.
    let temp = match &o.config {
        Some(Config::Yaml(text)) => Some(write_temp(text)?),
        _ => None,
    };
    let path = match (&o.config, &temp) {
        (Some(Config::File(p)), _) => Some(p.as_path()),
        (_, Some(f)) => Some(f.path()),
        _ => None,
    };
    t.note(Level::Info, format!("creating kind cluster '{name}'"));
    t.ok(create_args(name, path, o.image.as_deref(), o.wait)).await?;
    Ok(Ensured { created: true, recreated: exists })
}

fn write_temp(text: &str) -> Result<tempfile::NamedTempFile, ProcError> {
    let io = |e: std::io::Error| ProcError::Io(format!("cannot write the kind config: {e}"));
    let mut f = tempfile::Builder::new().prefix("kmsctl-kind-").suffix(".yaml").tempfile().map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.flush().map_err(io)?;
    Ok(f)
}

fn delete_args(name: &str) -> Vec<String> {
    vec!["delete".into(), "cluster".into(), "--name".into(), name.into()]
}

/// Delete cluster `name` if it exists; true when it did.
pub(crate) async fn delete_cluster(t: &Tool, name: &str) -> Result<bool, ProcError> {
    validate_name(name)?;
    if !clusters(t).await?.iter().any(|c| c == name) {
        t.note(Level::Debug, format!("kind cluster '{name}' does not exist"));
        return Ok(false);
    }
    t.note(Level::Info, format!("deleting kind cluster '{name}'"));
    t.ok(delete_args(name)).await?;
    Ok(true)
}

/// Arguments of `kind load docker-image`.
pub(crate) fn load_args(cluster: &str, images: &[String], nodes: &[String]) -> Vec<String> {
    let mut a: Vec<String> = vec!["load".into(), "docker-image".into()];
    a.extend(images.iter().cloned());
    a.extend(["--name".into(), cluster.into()]);
    if !nodes.is_empty() {
        a.extend(["--nodes".into(), nodes.join(",")]);
    }
    a
}

/// Load local docker images into the cluster's nodes (all, or `nodes`).
pub(crate) async fn load_image(t: &Tool, cluster: &str, images: &[String], nodes: &[String]) -> Result<(), ProcError> {
    validate_name(cluster)?;
    if images.is_empty() {
        return Err(ProcError::Usage("no image to load".into()));
    }
    for i in images {
        positional("the image", i)?;
    }
    for n in nodes {
        positional("the node", n)?;
    }
    t.note(Level::Info, format!("loading {} into kind cluster '{cluster}'", images.join(", ")));
    t.ok(load_args(cluster, images, nodes)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_toolkit_command_lines() {
        assert_eq!(
            create_args("kms-test", Some(Path::new("c.yaml")), None, Some(Duration::from_secs(60))).join(" "),
            "create cluster --name kms-test --config c.yaml --wait 60s"
        );
        assert_eq!(
            load_args("kms-test", &["core:dev".into()], &["kms-test-worker".into()]).join(" "),
            "load docker-image core:dev --name kms-test --nodes kms-test-worker"
        );
        assert_eq!(load_args("c", &["a".into(), "b".into()], &[]).join(" "), "load docker-image a b --name c");
    }

    #[test]
    fn renders_a_config_map_with_defaults() {
        let v = serde_json::json!({"nodes": [{"role": "control-plane"}, {"role": "worker"}]});
        let y = render_config(&v).unwrap();
        assert!(y.contains("kind: Cluster") && y.contains("apiVersion: kind.x-k8s.io/v1alpha4"), "{y}");
        assert!(y.contains("role: control-plane") && y.contains("role: worker"), "{y}");
        let back: Value = serde_saphyr::from_str(&y).unwrap();
        assert_eq!(back["nodes"][1]["role"], "worker");
        let own =
            render_config(&serde_json::json!({"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha3"})).unwrap();
        assert!(own.contains("v1alpha3"), "a given apiVersion is kept: {own}");
        assert!(render_config(&serde_json::json!(["x"])).is_err());
    }

    #[test]
    fn parses_cluster_lists_and_checks_names() {
        assert_eq!(parse_clusters("kind\nkms-test\n\n"), vec!["kind", "kms-test"]);
        assert!(parse_clusters("").is_empty());
        assert!(validate_name("kms-test-threshold").is_ok());
        for bad in ["", "-x", "Kms", "a b", "a/b"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn temp_configs_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let f = write_temp("kind: Cluster\n").unwrap();
        assert_eq!(std::fs::metadata(f.path()).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(f.path()).unwrap(), "kind: Cluster\n");
    }
}
