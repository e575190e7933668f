//! Server-side apply of manifests, in an order that works: Namespaces and CRDs first (then
//! wait until the CRDs are Established and refresh discovery), then everything else in Helm's
//! install order, kinds of the same rank concurrently.

use crate::client::Cluster;
use crate::error::K8sError;
use crate::json::{ObjRef, str_at};
use crate::readiness::{self, Target, WaitOptions};
use futures::future::try_join_all;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::Scope;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// The label kmsctl puts on everything it applies.
pub(crate) const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "kmsctl");

/// How to apply.
#[derive(Clone, Debug)]
pub(crate) struct ApplyOptions {
    /// Namespace for namespaced objects that name none (default: the context's).
    pub(crate) namespace: Option<String>,
    /// Server-side apply field manager.
    pub(crate) field_manager: String,
    /// Take ownership of fields other managers own.
    pub(crate) force: bool,
    /// Labels added to every object (ownership); [`MANAGED_BY`] is always added.
    pub(crate) labels: BTreeMap<String, String>,
    /// Server-side dry run: validate and compute the result, change nothing.
    pub(crate) dry_run: bool,
    /// How long to wait for CRDs to become Established.
    pub(crate) crd_timeout: Duration,
    /// Add [`MANAGED_BY`] (false for what another tool owns: a Helm release's objects).
    pub(crate) mark_managed: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            namespace: None,
            field_manager: "kmsctl".into(),
            force: true,
            labels: BTreeMap::new(),
            dry_run: false,
            crd_timeout: Duration::from_secs(60),
            mark_managed: true,
        }
    }
}

/// Helm's install order; unknown kinds (custom resources) go last.
const ORDER: &[&str] = &[
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

fn rank(kind: &str) -> usize {
    ORDER.iter().position(|k| *k == kind).unwrap_or(ORDER.len())
}

fn is_first(obj: &Value) -> bool {
    matches!(str_at(obj, &["kind"]), Some("Namespace" | "CustomResourceDefinition"))
}

/// Check documents before touching the cluster: every problem, with its document number.
pub(crate) fn validate(docs: &[Value]) -> Result<(), K8sError> {
    let mut problems = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        let n = i + 1;
        if !d.is_object() {
            problems.push(format!("document {n} is not a map"));
            continue;
        }
        for (path, what) in
            [(&["apiVersion"][..], "apiVersion"), (&["kind"][..], "kind"), (&["metadata", "name"][..], "metadata.name")]
        {
            if str_at(d, path).is_none_or(str::is_empty) {
                let kind = str_at(d, &["kind"]).unwrap_or("?");
                problems.push(format!("document {n} ({kind}) has no {what}"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(K8sError::Usage(format!("invalid manifests: {}", problems.join("; "))))
    }
}

/// Apply `docs`; returns the objects as the server stored them, in input order.
pub(crate) async fn apply(cluster: &Cluster, docs: Vec<Value>, opts: &ApplyOptions) -> Result<Vec<Value>, K8sError> {
    validate(&docs)?;
    let mut out: Vec<Option<Value>> = vec![None; docs.len()];
    let (first, rest): (Vec<usize>, Vec<usize>) = (0..docs.len()).partition(|i| is_first(&docs[*i]));
    for i in &first {
        out[*i] = Some(apply_one(cluster, &docs[*i], opts).await?);
    }
    let crds: Vec<Target> = first
        .iter()
        .filter(|i| str_at(&docs[**i], &["kind"]) == Some("CustomResourceDefinition"))
        .map(|i| Target::Object(ObjRef::of(out[*i].as_ref().expect("applied"))))
        .collect();
    if !crds.is_empty() && !opts.dry_run {
        let wait = WaitOptions {
            timeout: opts.crd_timeout,
            what: Some("CRDs to be established".into()),
            ..Default::default()
        };
        readiness::wait(cluster, &crds, &wait, &mut |_| {}).await.map_err(|f| f.into_error())?;
        cluster.invalidate_discovery();
    }
    let mut by_rank: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in rest {
        by_rank.entry(rank(str_at(&docs[i], &["kind"]).unwrap_or_default())).or_default().push(i);
    }
    for group in by_rank.values() {
        let applied = try_join_all(group.iter().map(|i| apply_one(cluster, &docs[*i], opts))).await?;
        for (i, v) in group.iter().zip(applied) {
            out[*i] = Some(v);
        }
    }
    Ok(out.into_iter().map(|v| v.expect("every document applied")).collect())
}

async fn apply_one(cluster: &Cluster, doc: &Value, opts: &ApplyOptions) -> Result<Value, K8sError> {
    let mut obj: DynamicObject =
        serde_json::from_value(doc.clone()).map_err(|e| K8sError::Usage(format!("{}: {e}", ObjRef::of(doc))))?;
    let api_version = str_at(doc, &["apiVersion"]).unwrap_or_default();
    let kind = str_at(doc, &["kind"]).unwrap_or_default();
    let (ar, caps) = cluster.resolve(api_version, kind).await?;
    let labels = obj.metadata.labels.get_or_insert_with(Default::default);
    for (k, v) in &opts.labels {
        labels.insert(k.clone(), v.clone());
    }
    if opts.mark_managed {
        labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
    }
    if labels.is_empty() {
        obj.metadata.labels = None;
    }
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Namespaced => {
            let ns = obj
                .metadata
                .namespace
                .clone()
                .or_else(|| opts.namespace.clone())
                .unwrap_or_else(|| cluster.default_namespace().to_string());
            obj.metadata.namespace = Some(ns.clone());
            Api::namespaced_with(cluster.client().clone(), &ns, &ar)
        }
        Scope::Cluster => {
            obj.metadata.namespace = None;
            Api::all_with(cluster.client().clone(), &ar)
        }
    };
    let mut params = PatchParams::apply(&opts.field_manager);
    params.force = opts.force;
    params.dry_run = opts.dry_run;
    let name = obj.metadata.name.clone().unwrap_or_default();
    let what = ObjRef::of(&serde_json::to_value(&obj).unwrap_or_default()).to_string();
    let applied = api
        .patch(&name, &params, &Patch::Apply(&obj))
        .await
        .map_err(|e| K8sError::from_kube(&format!("apply {what}"), e))?;
    serde_json::to_value(applied).map_err(|e| K8sError::Usage(e.to_string()))
}

/// Kinds that are never namespaced, for plans that cannot ask the cluster.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "StorageClass",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "CSIDriver",
    "VolumeAttachment",
];

/// Whether `kind` is one of the well-known cluster-scoped kinds (for plans that cannot ask).
pub fn is_cluster_scoped(kind: &str) -> bool {
    CLUSTER_SCOPED.contains(&kind)
}

/// `--plan`: `docs` as [`apply`] would send them — validated, labelled, namespaced (the
/// cluster says which kinds are namespaced when it can be asked; otherwise the well-known
/// cluster-scoped kinds are not) — in the order it would apply them. Nothing is sent.
pub(crate) async fn planned(cluster: &Cluster, docs: Vec<Value>, opts: &ApplyOptions) -> Result<Vec<Value>, K8sError> {
    validate(&docs)?;
    let mut out = Vec::with_capacity(docs.len());
    for mut doc in docs {
        let kind = str_at(&doc, &["kind"]).unwrap_or_default().to_string();
        let namespaced = if cluster.is_offline() {
            !CLUSTER_SCOPED.contains(&kind.as_str())
        } else {
            let api_version = str_at(&doc, &["apiVersion"]).unwrap_or_default().to_string();
            match cluster.resolve(&api_version, &kind).await {
                Ok((_, caps)) => matches!(caps.scope, Scope::Namespaced),
                // A kind whose CRD the plan would install first.
                Err(K8sError::NotFound(_)) => !CLUSTER_SCOPED.contains(&kind.as_str()),
                Err(e) => return Err(e),
            }
        };
        let meta = doc.as_object_mut().expect("validated").entry("metadata").or_insert_with(|| serde_json::json!({}));
        let meta = meta.as_object_mut().expect("validated");
        if namespaced {
            if meta.get("namespace").and_then(Value::as_str).is_none() {
                let ns = opts.namespace.clone().unwrap_or_else(|| cluster.default_namespace().to_string());
                meta.insert("namespace".into(), ns.into());
            }
        } else {
            meta.remove("namespace");
        }
        let labels = meta.entry("labels").or_insert_with(|| serde_json::json!({}));
        if let Some(labels) = labels.as_object_mut() {
            for (k, v) in &opts.labels {
                labels.insert(k.clone(), v.clone().into());
            }
            labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
        }
        out.push(doc);
    }
    out.sort_by_key(|d| {
        let kind = str_at(d, &["kind"]).unwrap_or_default();
        (!is_first(d), if is_first(d) { 0 } else { rank(kind) })
    });
    Ok(out)
}

/// Parse a multi-document YAML (or JSON) text into objects; empty documents are skipped, and
/// `kind: List` documents are expanded.
///
/// # Errors
///
/// [`K8sError::Usage`] with the parser's message for text that is not YAML.
pub fn parse_manifests(text: &str) -> Result<Vec<Value>, K8sError> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(text).map_err(|e| K8sError::Usage(format!("invalid YAML: {e}")))?;
    let mut out = Vec::new();
    for d in docs.into_iter().filter(|d| !d.is_null()) {
        match (str_at(&d, &["kind"]), d.get("items").and_then(Value::as_array)) {
            (Some(k), Some(items)) if k.ends_with("List") => out.extend(items.iter().cloned()),
            _ => out.push(d),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn invalid_documents_are_all_reported_before_anything_is_applied() {
        let docs = vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok"}}),
            json!({"kind": "Pod"}),
            json!(3),
        ];
        let e = validate(&docs).unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid manifests: document 2 (Pod) has no apiVersion; document 2 (Pod) has no metadata.name; document 3 is not a map"
        );
    }

    #[test]
    fn manifests_parse_with_lists_and_empty_documents() {
        let docs = parse_manifests(
            "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n---\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: b}\n",
        )
        .unwrap();
        assert_eq!(docs.iter().map(|d| d["metadata"]["name"].as_str().unwrap()).collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn helm_install_order_with_custom_resources_last() {
        let mut kinds = vec!["Deployment", "Widget", "Service", "ConfigMap", "Job", "ServiceAccount"];
        kinds.sort_by_key(|k| rank(k));
        assert_eq!(kinds, ["ServiceAccount", "ConfigMap", "Service", "Deployment", "Job", "Widget"]);
    }
}
