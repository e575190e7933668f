//! Objects by kind and name: get, list, patch, delete (and wait until gone), namespaces,
//! Secrets and ConfigMaps.

use crate::apply::{self, ApplyOptions, MANAGED_BY};
use crate::client::Cluster;
use crate::error::{Details, K8sError};
use crate::json::{at, str_at};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::{ApiResource, Scope};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// Which objects a call is about: a kind (with its apiVersion, or found by discovery), a
/// namespace, and for lists label and field selectors.
#[derive(Clone, Debug, Default)]
pub(crate) struct Query {
    /// `apps/v1`; found by discovery when empty.
    pub api_version: Option<String>,
    /// Kind, e.g. `StatefulSet`.
    pub kind: String,
    /// Namespace (default: the context's, for namespaced kinds).
    pub namespace: Option<String>,
    /// Label selector (list only).
    pub labels: Option<String>,
    /// Field selector (list only).
    pub fields: Option<String>,
}

/// Well-known kinds, so common calls need no discovery round trip.
fn well_known(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Pod"
        | "Service"
        | "ConfigMap"
        | "Secret"
        | "Namespace"
        | "ServiceAccount"
        | "PersistentVolumeClaim"
        | "PersistentVolume"
        | "Event"
        | "Node"
        | "Endpoints" => "v1",
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => "apps/v1",
        "Job" | "CronJob" => "batch/v1",
        "CustomResourceDefinition" => "apiextensions.k8s.io/v1",
        "Role" | "RoleBinding" | "ClusterRole" | "ClusterRoleBinding" => "rbac.authorization.k8s.io/v1",
        "Ingress" | "NetworkPolicy" => "networking.k8s.io/v1",
        _ => return None,
    })
}

/// The API for a kind in a namespace, and the kind's scope.
pub(crate) async fn api_for(cluster: &Cluster, q: &Query) -> Result<(Api<DynamicObject>, ApiResource, bool), K8sError> {
    let (ar, caps) = match (&q.api_version, well_known(&q.kind)) {
        (Some(v), _) => cluster.resolve(v, &q.kind).await?,
        (None, Some(v)) => cluster.resolve(v, &q.kind).await?,
        (None, None) => resolve_kind(cluster, &q.kind).await?,
    };
    let namespaced = caps.scope == Scope::Namespaced;
    let api = if namespaced {
        let ns = q.namespace.clone().unwrap_or_else(|| cluster.default_namespace().to_string());
        Api::namespaced_with(cluster.client().clone(), &ns, &ar)
    } else {
        Api::all_with(cluster.client().clone(), &ar)
    };
    Ok((api, ar, namespaced))
}

async fn resolve_kind(
    cluster: &Cluster,
    kind: &str,
) -> Result<(ApiResource, kube::discovery::ApiCapabilities), K8sError> {
    for attempt in 0..2 {
        let d = cluster.refresh_discovery().await?;
        for group in d.groups() {
            if let Some(found) = group.recommended_kind(kind) {
                return Ok(found);
            }
        }
        if attempt == 0 {
            cluster.invalidate_discovery();
        }
    }
    Err(K8sError::NotFound(format!(
        "the cluster serves no kind named {kind} (pass api_version if it is a custom resource)"
    )))
}

fn with_type(v: DynamicObject, ar: &ApiResource) -> Value {
    let mut v = serde_json::to_value(v).unwrap_or_default();
    if v.get("kind").and_then(Value::as_str).is_none_or(str::is_empty) {
        v["kind"] = Value::String(ar.kind.clone());
        v["apiVersion"] = Value::String(ar.api_version.clone());
    }
    v
}

/// The object, or `None` when it does not exist.
pub(crate) async fn get(cluster: &Cluster, q: &Query, name: &str) -> Result<Option<Value>, K8sError> {
    let (api, ar, _) = api_for(cluster, q).await?;
    api.get_opt(name)
        .await
        .map(|o| o.map(|o| with_type(o, &ar)))
        .map_err(|e| K8sError::from_kube(&format!("get {} {name}", q.kind), e))
}

/// Every object of a kind matching the selectors.
pub(crate) async fn list(cluster: &Cluster, q: &Query) -> Result<Vec<Value>, K8sError> {
    let (api, ar, _) = api_for(cluster, q).await?;
    let lp = ListParams { label_selector: q.labels.clone(), field_selector: q.fields.clone(), ..Default::default() };
    let list = api.list(&lp).await.map_err(|e| K8sError::from_kube(&format!("list {}", q.kind), e))?;
    Ok(list.items.into_iter().map(|o| with_type(o, &ar)).collect())
}

/// How to patch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatchKind {
    /// JSON merge patch (RFC 7386).
    Merge,
    /// Strategic merge patch (built-in kinds only).
    Strategic,
    /// JSON patch (RFC 6902), an array of operations.
    Json,
}

/// Patch an object; returns it as stored.
pub(crate) async fn patch(
    cluster: &Cluster,
    q: &Query,
    name: &str,
    body: Value,
    kind: PatchKind,
    manager: &str,
) -> Result<Value, K8sError> {
    let (api, ar, _) = api_for(cluster, q).await?;
    let pp = PatchParams { field_manager: Some(manager.to_string()), ..Default::default() };
    let what = format!("patch {} {name}", q.kind);
    let r = match kind {
        PatchKind::Merge => api.patch(name, &pp, &Patch::Merge(&body)).await,
        PatchKind::Strategic => api.patch(name, &pp, &Patch::Strategic(&body)).await,
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(body)
                .map_err(|e| K8sError::Usage(format!("{what}: a JSON patch is an array of operations: {e}")))?;
            api.patch(name, &pp, &Patch::<()>::Json(ops)).await
        }
    };
    r.map(|o| with_type(o, &ar)).map_err(|e| K8sError::from_kube(&what, e))
}

/// Delete an object. With `wait`, wait until it is gone; on timeout the error names the
/// finalizers that hold it. Returns whether it existed.
pub(crate) async fn delete(cluster: &Cluster, q: &Query, name: &str, wait: Option<Duration>) -> Result<bool, K8sError> {
    let (api, ar, _) = api_for(cluster, q).await?;
    let what = format!("{} {name}", q.kind);
    let existing = match api.get_opt(name).await.map_err(|e| K8sError::from_kube(&format!("get {what}"), e))? {
        Some(o) => o,
        None => return Ok(false),
    };
    let uid = existing.metadata.uid.clone().unwrap_or_default();
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(true),
        Err(e) => return Err(K8sError::from_kube(&format!("delete {what}"), e)),
    }
    let Some(limit) = wait else { return Ok(true) };
    match tokio::time::timeout(limit, await_condition(api.clone(), name, conditions::is_deleted(&uid))).await {
        Ok(Ok(_)) => Ok(true),
        Ok(Err(e)) => Err(K8sError::Unreachable(format!("waiting for {what} to be deleted: {e}"))),
        Err(_) => {
            let now = api.get_opt(name).await.ok().flatten().map(|o| with_type(o, &ar));
            let finalizers: Vec<String> = now
                .as_ref()
                .and_then(|o| at(o, &["metadata", "finalizers"]))
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default();
            let why = if finalizers.is_empty() {
                String::new()
            } else {
                format!("; blocked by finalizers: {}", finalizers.join(", "))
            };
            let extra = match now.as_ref().map(namespace_conditions) {
                Some(c) if !c.is_empty() => format!("; {c}"),
                _ => String::new(),
            };
            Err(K8sError::Timeout {
                message: format!("{what} still exists after {}{why}{extra}", crate::format_duration(limit)),
                details: Details { finalizers: Some(finalizers), ..Default::default() },
            })
        }
    }
}

/// A namespace stuck in Terminating says why in its conditions.
fn namespace_conditions(o: &Value) -> String {
    at(o, &["status", "conditions"])
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
                .filter_map(|c| c.get("message").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

/// Create the namespace (with labels) if missing; returns it. An existing namespace is left as
/// it is, but for `labels` it lacks, which are added. (Not a server-side apply: that would
/// remove the labels an earlier apply by kmsctl set and this call does not repeat.)
pub(crate) async fn ensure_namespace(
    cluster: &Cluster,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Result<Value, K8sError> {
    let q = Query { kind: "Namespace".into(), ..Default::default() };
    if let Some(existing) = get(cluster, &q, name).await? {
        let current = at(&existing, &["metadata", "labels"]).and_then(Value::as_object);
        if labels.iter().all(|(k, v)| current.and_then(|c| c.get(k)).and_then(Value::as_str) == Some(v.as_str())) {
            return Ok(existing);
        }
        let body = json!({ "metadata": { "labels": labels } });
        return patch(cluster, &q, name, body, PatchKind::Merge, "kmsctl").await;
    }
    let doc = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name, "labels": labels } });
    let opts = ApplyOptions { labels: labels.clone(), ..Default::default() };
    Ok(apply::apply(cluster, vec![doc], &opts).await?.remove(0))
}

/// Delete the namespace if it exists, wait until it is gone, create it again. Only a namespace
/// kmsctl created (labelled [`MANAGED_BY`]) is deleted, unless `force`: a typo must not wipe
/// someone else's namespace.
pub(crate) async fn recreate_namespace(
    cluster: &Cluster,
    name: &str,
    labels: &BTreeMap<String, String>,
    timeout: Duration,
    force: bool,
) -> Result<Value, K8sError> {
    let q = Query { kind: "Namespace".into(), ..Default::default() };
    if let Some(existing) = get(cluster, &q, name).await?
        && !force
        && str_at(&existing, &["metadata", "labels", MANAGED_BY.0]) != Some(MANAGED_BY.1)
    {
        return Err(K8sError::Conflict(format!(
            "namespace {name} was not created by kmsctl (no label {}={}): refusing to delete it; \
             pass #{{ force: true }} to recreate it anyway",
            MANAGED_BY.0, MANAGED_BY.1
        )));
    }
    delete(cluster, &q, name, Some(timeout)).await?;
    ensure_namespace(cluster, name, labels).await
}

/// A Secret or ConfigMap document from string values (Secret values are base64-encoded into
/// `data`, so nothing secret sits in plain `stringData` of the applied intent).
pub(crate) fn data_object(
    kind: &str,
    namespace: &str,
    name: &str,
    data: &BTreeMap<String, String>,
    secret_type: Option<&str>,
) -> Value {
    use base64::Engine as _;
    let encode = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut doc = json!({ "apiVersion": "v1", "kind": kind, "metadata": { "name": name, "namespace": namespace } });
    if kind == "Secret" {
        doc["data"] = data.iter().map(|(k, v)| (k.clone(), Value::String(encode(v.as_bytes())))).collect();
        doc["type"] = Value::String(secret_type.unwrap_or("Opaque").to_string());
    } else {
        doc["data"] = data.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    }
    doc
}
