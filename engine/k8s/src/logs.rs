//! Pod logs: one container's text, or every container of a set of pods written to files.

use crate::client::Cluster;
use crate::error::K8sError;
use crate::json::{at, str_at};
use k8s_openapi::api::core::v1::Pod;
use kmsctl_host::Redactor;
use kube::api::{Api, ListParams, LogParams};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Which logs.
#[derive(Clone, Debug, Default)]
pub(crate) struct LogOptions {
    /// Container (default: the pod's default container, see [`container_or_default`]).
    pub(crate) container: Option<String>,
    /// The previous (crashed) container's logs.
    pub(crate) previous: bool,
    /// Only the last N lines.
    pub(crate) tail: Option<i64>,
    /// Only lines newer than this many seconds.
    pub(crate) since_seconds: Option<i64>,
}

/// One container's logs.
pub(crate) async fn logs(cluster: &Cluster, namespace: &str, pod: &str, opts: &LogOptions) -> Result<String, K8sError> {
    let api: Api<Pod> = Api::namespaced(cluster.client().clone(), namespace);
    let container = container_or_default(&api, namespace, pod, opts.container.as_deref()).await?;
    let lp = LogParams {
        container,
        previous: opts.previous,
        tail_lines: opts.tail,
        since_seconds: opts.since_seconds,
        ..Default::default()
    };
    api.logs(pod, &lp).await.map_err(|e| K8sError::from_kube(&format!("logs of pod {namespace}/{pod}"), e))
}

/// The container to use: the one asked for, else the pod's default as kubectl picks it (the
/// `kubectl.kubernetes.io/default-container` annotation, else the first container). The API
/// server itself refuses logs and exec without a container name when a pod has several.
pub(crate) async fn container_or_default(
    api: &Api<Pod>,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
) -> Result<Option<String>, K8sError> {
    if let Some(c) = container {
        return Ok(Some(c.to_string()));
    }
    let p = api.get(pod).await.map_err(|e| K8sError::from_kube(&format!("get pod {namespace}/{pod}"), e))?;
    let annotated = p.metadata.annotations.as_ref().and_then(|a| a.get("kubectl.kubernetes.io/default-container"));
    let first = p.spec.as_ref().and_then(|s| s.containers.first()).map(|c| &c.name);
    Ok(annotated.or(first).cloned())
}

/// A log file written by [`collect`].
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct LogFile {
    /// Pod.
    pub(crate) pod: String,
    /// Container.
    pub(crate) container: String,
    /// Previous container's logs.
    pub(crate) previous: bool,
    /// Where they were written.
    pub(crate) path: PathBuf,
    /// Why the logs could not be fetched (the file then holds this note).
    pub(crate) error: Option<String>,
}

/// Write the logs of every container of the pods matching `selector` (all pods when `None`)
/// to `dir/<pod>.<container>.log` (and `.previous.log` for restarted containers). A pod whose
/// logs cannot be read gets a file saying why, so a CI artifact never silently lacks a party.
/// Secrets are scrubbed before anything is written.
pub(crate) async fn collect(
    cluster: &Cluster,
    namespace: &str,
    selector: Option<&str>,
    dir: &Path,
    opts: &LogOptions,
    redactor: &Redactor,
) -> Result<Vec<LogFile>, K8sError> {
    let api: Api<Pod> = Api::namespaced(cluster.client().clone(), namespace);
    let lp = ListParams { label_selector: selector.map(str::to_string), ..Default::default() };
    let pods = api.list(&lp).await.map_err(|e| K8sError::from_kube(&format!("list pods in {namespace}"), e))?;
    std::fs::create_dir_all(dir).map_err(|e| K8sError::Usage(format!("{}: {e}", dir.display())))?;
    let mut out = Vec::new();
    for pod in pods.items {
        let v = serde_json::to_value(&pod).unwrap_or_default();
        let name = str_at(&v, &["metadata", "name"]).unwrap_or_default().to_string();
        for (container, restarts) in containers(&v) {
            if opts.container.as_ref().is_some_and(|c| *c != container) {
                continue;
            }
            let mut variants = vec![false];
            if restarts > 0 || opts.previous {
                variants.push(true);
            }
            for previous in variants {
                let o = LogOptions { container: Some(container.clone()), previous, ..opts.clone() };
                let suffix = if previous { ".previous.log" } else { ".log" };
                let path = dir.join(format!("{name}.{container}{suffix}"));
                let (text, error) = match logs(cluster, namespace, &name, &o).await {
                    Ok(t) => (t, None),
                    Err(e) => (format!("# logs unavailable: {e}\n"), Some(e.to_string())),
                };
                std::fs::write(&path, redactor.redact(&text).as_bytes())
                    .map_err(|e| K8sError::Usage(format!("{}: {e}", path.display())))?;
                out.push(LogFile { pod: name.clone(), container: container.clone(), previous, path, error });
            }
        }
    }
    Ok(out)
}

/// Containers of a pod (init containers first) with their restart counts.
fn containers(pod: &Value) -> Vec<(String, i64)> {
    let restarts = |list: &str, name: &str| -> i64 {
        at(pod, &["status", list])
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|c| c.get("name").and_then(Value::as_str) == Some(name)))
            .and_then(|c| c.get("restartCount").and_then(Value::as_i64))
            .unwrap_or(0)
    };
    let mut out = Vec::new();
    for (spec, status) in [("initContainers", "initContainerStatuses"), ("containers", "containerStatuses")] {
        for c in at(pod, &["spec", spec]).and_then(Value::as_array).into_iter().flatten() {
            if let Some(n) = c.get("name").and_then(Value::as_str) {
                out.push((n.to_string(), restarts(status, n)));
            }
        }
    }
    out
}
