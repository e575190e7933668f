//! Manual gates: `kmsctl gate promote|abort NAMESPACE/NAME` answers a release that waits for a
//! person by annotating what it watches: the gate ConfigMap `kmsctl-gate-NAME` a run made for
//! its wait (a release, a blue/green keep window), or else the Deployment NAME (a canary's
//! `--manual-gate`). Plain async
//! Rust; the binary's `gate` command is a thin wrapper, and `kubectl annotate` does the same.

use crate::client::{Cluster, ConnectOptions};
use crate::error::K8sError;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};

/// The annotation a waiting release watches: `promote …` or `abort …`.
pub const GATE_ANNOTATION: &str = "kmsctl.io/gate";

/// The prefix of a release's gate ConfigMap, `kmsctl-gate-<release>`.
pub const GATE_CONFIGMAP_PREFIX: &str = "kmsctl-gate-";

/// What a person decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateAction {
    /// Go on: promote.
    Promote,
    /// Stop: roll back.
    Abort,
}

impl GateAction {
    /// `promote` or `abort`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Promote => "promote",
            Self::Abort => "abort",
        }
    }
}

/// Answer the gate of `target` (`NAMESPACE/NAME`, or `NAME` in the context's namespace): the
/// ConfigMap `kmsctl-gate-NAME` while a run waits on it, else the Deployment NAME (a canary
/// watches its own), with `action`, signed `by`. Returns
/// what was annotated and the annotation.
///
/// # Errors
/// A target that is not `NAMESPACE/NAME` (usage), neither object (not found), or the cluster's
/// refusal.
pub async fn answer_gate(
    connect: &ConnectOptions,
    target: &str,
    action: GateAction,
    by: &str,
) -> Result<(String, String), K8sError> {
    let (ns, name) = match target.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => (Some(ns), name),
        None if !target.is_empty() => (None, target),
        _ => return Err(K8sError::Usage(format!("'{target}' is not NAMESPACE/NAME"))),
    };
    let cluster = Cluster::connect(connect).await?;
    let ns = ns.map(str::to_string).unwrap_or_else(|| cluster.default_namespace().to_string());
    let value = format!("{} by {by} at {}", action.as_str(), jiff::Timestamp::now());
    let patch = serde_json::json!({ "metadata": { "annotations": { GATE_ANNOTATION: value } } });
    let client = cluster.client().clone();
    let pp = PatchParams::default();
    // A gate ConfigMap exists only while something waits on it: it comes first.
    let cm = format!("{GATE_CONFIGMAP_PREFIX}{name}");
    let what = format!("ConfigMap {ns}/{cm}");
    let maps = Api::<ConfigMap>::namespaced(client.clone(), &ns);
    if maps.get_opt(&cm).await.map_err(|e| K8sError::from_kube(&what, e))?.is_some() {
        maps.patch(&cm, &pp, &Patch::Merge(&patch)).await.map_err(|e| K8sError::from_kube(&what, e))?;
        return Ok((what, value));
    }
    let deployments = Api::<Deployment>::namespaced(client, &ns);
    let what = format!("Deployment {ns}/{name}");
    if deployments.get_opt(name).await.map_err(|e| K8sError::from_kube(&what, e))?.is_none() {
        return Err(K8sError::NotFound(format!(
            "nothing waits at a gate for {ns}/{name}: no ConfigMap {cm} and no Deployment {name} in {ns}"
        )));
    }
    deployments.patch(name, &pp, &Patch::Merge(&patch)).await.map_err(|e| K8sError::from_kube(&what, e))?;
    Ok((what, value))
}
