//! Readiness rules: is an object ready, still progressing, or failed — decided from its JSON
//! alone (no I/O), so the waiter can re-assess on every watch event and tests need no cluster.
//!
//! The baseline is kstatus (sigs.k8s.io/cli-utils `pkg/kstatus`), with its known gaps closed:
//! a running Job is not done, a LoadBalancer Service needs an address, a CRD whose names were
//! rejected has failed, and crashing pods fail their workload fast ([`pod_blocker`]). One file
//! per kind family: [`workloads`], [`pods`], [`core_v1`] (Services, PVCs), [`custom`] (CRDs and
//! custom resources).

mod core_v1;
mod custom;
mod pods;
mod workloads;

use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use crate::json::{api_group, condition, int_at, is_terminating, str_at};

pub use pods::pod_blocker;

/// The verdict on one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Health {
    /// Done: the object is what was asked for.
    Ready,
    /// Not yet; keep waiting.
    Progressing,
    /// It will not get there without a change: stop waiting.
    Failed,
}

/// A verdict with a short human reason, e.g. "2 of 4 replicas ready".
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Assessment {
    /// The verdict.
    pub health: Health,
    /// Why, in a few words.
    pub message: String,
}

impl Assessment {
    /// A [`Health::Ready`] assessment.
    pub fn ready(message: impl Into<String>) -> Self {
        Self { health: Health::Ready, message: message.into() }
    }
    /// A [`Health::Progressing`] assessment.
    pub fn progressing(message: impl Into<String>) -> Self {
        Self { health: Health::Progressing, message: message.into() }
    }
    /// A [`Health::Failed`] assessment.
    pub fn failed(message: impl Into<String>) -> Self {
        Self { health: Health::Failed, message: message.into() }
    }
}

/// Tunables of the rules (the script's `unschedulable_grace`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleOptions {
    /// How long a pod may stay unschedulable before it counts as failed (default 30s):
    /// long enough for a cluster autoscaler to react to a scale-up, short enough to fail fast.
    pub unschedulable_grace: Duration,
}

impl Default for RuleOptions {
    fn default() -> Self {
        Self { unschedulable_grace: Duration::from_secs(30) }
    }
}

/// Core and built-in kinds that are done as soon as they exist.
const EXIST_KINDS: &[(&str, &str)] = &[
    ("", "ConfigMap"),
    ("", "Secret"),
    ("", "ServiceAccount"),
    ("", "Namespace"),
    ("", "Endpoints"),
    ("", "LimitRange"),
    ("", "ResourceQuota"),
    ("", "PersistentVolume"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("batch", "CronJob"),
    ("policy", "PodDisruptionBudget"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("networking.k8s.io", "Ingress"),
    ("networking.k8s.io", "IngressClass"),
    ("discovery.k8s.io", "EndpointSlice"),
    ("storage.k8s.io", "StorageClass"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
    ("apiregistration.k8s.io", "APIService"),
];

/// The API group of an object (`""` for core/v1).
fn group(obj: &Value) -> &str {
    api_group(str_at(obj, &["apiVersion"]).unwrap_or_default())
}

fn kind(obj: &Value) -> &str {
    str_at(obj, &["kind"]).unwrap_or_default()
}

/// A non-negative count at a path, 0 when absent (status omits zero counts).
fn count(obj: &Value, path: &[&str]) -> i64 {
    int_at(obj, path).unwrap_or(0)
}

/// `spec.replicas`, which the API server defaults to 1.
fn spec_replicas(obj: &Value) -> i64 {
    int_at(obj, &["spec", "replicas"]).unwrap_or(1)
}

fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A condition's `reason: message` (either may be missing).
fn cond_text(c: &Value) -> String {
    let reason = c.get("reason").and_then(Value::as_str).unwrap_or_default();
    let message = c.get("message").and_then(Value::as_str).unwrap_or_default();
    match (reason.is_empty(), message.is_empty()) {
        (false, false) => format!("{reason}: {message}"),
        (false, true) => reason.to_string(),
        (true, false) => message.to_string(),
        (true, true) => String::new(),
    }
}

fn cond_reason<'a>(obj: &'a Value, ty: &str) -> Option<&'a str> {
    condition(obj, ty).and_then(|c| c.get("reason")).and_then(Value::as_str)
}

fn timestamp(v: Option<&Value>) -> Option<Timestamp> {
    v.and_then(Value::as_str).and_then(|s| s.parse().ok())
}

/// Progressing when the controller has not yet seen the latest spec: a status written for an
/// older generation says nothing about the current one.
fn stale_generation(obj: &Value) -> Option<Assessment> {
    let generation = int_at(obj, &["metadata", "generation"])?;
    let observed = int_at(obj, &["status", "observedGeneration"])?;
    (observed < generation).then(|| {
        Assessment::progressing(format!(
            "waiting for the controller to observe generation {generation} (status is for {observed})"
        ))
    })
}

/// Like [`stale_generation`], but a missing status also means "not observed yet".
fn unobserved(obj: &Value) -> Option<Assessment> {
    if int_at(obj, &["status", "observedGeneration"]).is_none() {
        return Some(Assessment::progressing("waiting for the controller to observe it"));
    }
    stale_generation(obj)
}

/// Assess an object: dispatches on its API group and kind; unknown kinds get the generic
/// condition rules (kstatus conventions plus Crossplane's `Synced`). `now` decides the
/// time-based rules (the unschedulable grace).
pub fn assess(obj: &Value, now: Timestamp, opts: &RuleOptions) -> Assessment {
    if is_terminating(obj) {
        return Assessment::progressing("terminating");
    }
    match (group(obj), kind(obj)) {
        ("apps", "Deployment") => workloads::deployment(obj),
        ("apps", "StatefulSet") => workloads::statefulset(obj),
        ("apps", "DaemonSet") => workloads::daemonset(obj),
        ("apps", "ReplicaSet") | ("", "ReplicationController") => workloads::replicaset(obj),
        ("batch", "Job") => workloads::job(obj),
        ("", "Pod") => pods::pod(obj, now, opts),
        ("", "PersistentVolumeClaim") => core_v1::pvc(obj),
        ("", "Service") => core_v1::service(obj),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => custom::crd(obj),
        ("argoproj.io", "Workflow") => custom::workflow(obj),
        (g, k) if EXIST_KINDS.contains(&(g, k)) => Assessment::ready("exists"),
        _ => custom::generic(obj),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) const NOW: &str = "2026-01-01T12:00:00Z";

    pub(crate) fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    /// Table runner: every case is (name, object, health, message).
    pub(crate) fn check(cases: &[(&str, Value, Health, &str)]) {
        let opts = RuleOptions::default();
        let mut bad = Vec::new();
        for (name, obj, health, message) in cases {
            let got = assess(obj, now(), &opts);
            if got.health != *health || got.message != *message {
                bad.push(format!("{name}: want {health:?} {message:?}, got {:?} {:?}", got.health, got.message));
            }
        }
        assert!(bad.is_empty(), "\n{}", bad.join("\n"));
    }

    #[test]
    fn exists_kinds_and_deletion() {
        let obj = |av: &str, kind: &str| json!({"apiVersion": av, "kind": kind, "metadata": {"name": "x"}});
        let mut cases = vec![];
        for (av, kind) in [
            ("v1", "ConfigMap"),
            ("v1", "Secret"),
            ("v1", "ServiceAccount"),
            ("v1", "Namespace"),
            ("rbac.authorization.k8s.io/v1", "Role"),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
            ("batch/v1", "CronJob"),
            ("policy/v1", "PodDisruptionBudget"),
            ("networking.k8s.io/v1", "Ingress"),
        ] {
            cases.push((kind, obj(av, kind), Health::Ready, "exists"));
        }
        // Kind names alone do not decide: a Deployment of another group gets the generic rules.
        cases.push((
            "foreign Deployment",
            json!({"apiVersion": "example.com/v1", "kind": "Deployment",
            "metadata": {"name": "x"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
            Health::Progressing,
            "not ready",
        ));
        let mut gone = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": 0}, "status": {"observedGeneration": 2}});
        gone["metadata"]["deletionTimestamp"] = json!(NOW);
        cases.push(("terminating", gone, Health::Progressing, "terminating"));
        check(&cases);
    }

    #[test]
    fn options_default_and_serialize() {
        assert_eq!(RuleOptions::default().unschedulable_grace, Duration::from_secs(30));
        let a = Assessment::failed("x");
        assert_eq!(serde_json::to_value(&a).unwrap(), json!({"health": "Failed", "message": "x"}));
    }
}
