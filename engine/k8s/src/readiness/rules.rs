//! Readiness rules: is an object ready, still progressing, or failed — decided from its JSON
//! alone (no I/O), so the waiter can re-assess on every watch event and tests need no cluster.
//!
//! The baseline is kstatus (sigs.k8s.io/cli-utils `pkg/kstatus`), with its known gaps closed:
//! a running Job is not done, a LoadBalancer Service needs an address, a CRD whose names were
//! rejected has failed, and crashing pods fail their workload fast ([`pod_blocker`]).

use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use crate::object::{at, condition, condition_is, int_at, str_at};

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

/// Tunables of the rules.
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

/// Container waiting reasons that will not resolve by waiting.
const FATAL_WAITING: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "InvalidImageName",
    "RunContainerError",
];

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
    let av = str_at(obj, &["apiVersion"]).unwrap_or_default();
    av.rsplit_once('/').map_or("", |(g, _)| g)
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
/// condition rules (kstatus conventions plus Crossplane's `Synced`).
pub fn assess(obj: &Value, now: Timestamp, opts: &RuleOptions) -> Assessment {
    if at(obj, &["metadata", "deletionTimestamp"]).is_some_and(|v| !v.is_null()) {
        return Assessment::progressing("terminating");
    }
    let g = group(obj);
    match (g, kind(obj)) {
        ("apps", "Deployment") => deployment(obj),
        ("apps", "StatefulSet") => statefulset(obj),
        ("apps", "DaemonSet") => daemonset(obj),
        ("apps", "ReplicaSet") | ("", "ReplicationController") => replicaset(obj),
        ("", "Pod") => pod(obj, now, opts),
        ("batch", "Job") => job(obj),
        ("", "PersistentVolumeClaim") => pvc(obj),
        ("", "Service") => service(obj),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(obj),
        (g, k) if EXIST_KINDS.contains(&(g, k)) => Assessment::ready("exists"),
        _ => generic(obj),
    }
}

fn deployment(obj: &Value) -> Assessment {
    if let Some(a) = unobserved(obj) {
        return a;
    }
    if cond_reason(obj, "Progressing") == Some("ProgressDeadlineExceeded") {
        let c = condition(obj, "Progressing").map(cond_text).unwrap_or_default();
        return Assessment::failed(c);
    }
    if at(obj, &["spec", "paused"]).and_then(Value::as_bool) == Some(true) {
        return Assessment::progressing("paused");
    }
    let want = spec_replicas(obj);
    let total = count(obj, &["status", "replicas"]);
    let updated = count(obj, &["status", "updatedReplicas"]);
    let available = count(obj, &["status", "availableReplicas"]);
    let ready = count(obj, &["status", "readyReplicas"]);
    let failure = condition(obj, "ReplicaFailure")
        .filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
        .map(|c| format!(" ({})", cond_text(c)))
        .unwrap_or_default();
    if updated < want {
        return Assessment::progressing(format!("{updated} of {want} replicas updated{failure}"));
    }
    if total > updated {
        let old = total - updated;
        return Assessment::progressing(format!("{} pending termination", plural(old, "old replica", "old replicas")));
    }
    if available < updated {
        return Assessment::progressing(format!("{available} of {updated} updated replicas available{failure}"));
    }
    if ready < want {
        return Assessment::progressing(format!("{ready} of {want} replicas ready"));
    }
    if want == 0 {
        return Assessment::ready("scaled to 0");
    }
    Assessment::ready(format!("{ready} of {want} replicas ready"))
}

/// Pods a StatefulSet rollout must update. The controller counts the partition from
/// `spec.ordinals.start`, not from ordinal 0 (pods are indexed `ordinal - start`, and indexes
/// `>= partition` are updated; kubernetes/kubernetes#128529, still so in 1.36), so this is
/// `replicas - partition` whatever the start ordinal.
fn statefulset_to_update(replicas: i64, partition: i64) -> i64 {
    (replicas - partition.max(0)).clamp(0, replicas)
}

fn statefulset(obj: &Value) -> Assessment {
    if let Some(a) = unobserved(obj) {
        return a;
    }
    let want = spec_replicas(obj);
    let total = count(obj, &["status", "replicas"]);
    let ready = count(obj, &["status", "readyReplicas"]);
    let updated = count(obj, &["status", "updatedReplicas"]);
    if total < want {
        return Assessment::progressing(format!("{total} of {want} replicas created"));
    }
    if total > want {
        return Assessment::progressing(format!("{} pending termination", plural(total - want, "replica", "replicas")));
    }
    if ready < want {
        return Assessment::progressing(format!("{ready} of {want} replicas ready"));
    }
    // availableReplicas is absent on old API servers; when present it honours minReadySeconds.
    if let Some(available) = int_at(obj, &["status", "availableReplicas"])
        && available < want
    {
        return Assessment::progressing(format!("{available} of {want} replicas available"));
    }
    let strategy = str_at(obj, &["spec", "updateStrategy", "type"]).unwrap_or("RollingUpdate");
    if strategy == "OnDelete" {
        // The controller never replaces pods by itself: ready is all we can wait for.
        return Assessment::ready(format!("{ready} of {want} replicas ready (OnDelete)"));
    }
    let start = int_at(obj, &["spec", "ordinals", "start"]).unwrap_or(0);
    let partition = int_at(obj, &["spec", "updateStrategy", "rollingUpdate", "partition"]).unwrap_or(0);
    if partition > 0 {
        // A partitioned rollout never makes currentRevision == updateRevision.
        let must = statefulset_to_update(want, partition);
        let scope = format!("partition {partition}: ordinals {} and up", start + partition);
        if updated < must {
            return Assessment::progressing(format!("{updated} of {must} replicas updated ({scope})"));
        }
        return Assessment::ready(format!("{ready} of {want} replicas ready, {must} updated ({scope})"));
    }
    if updated < want {
        return Assessment::progressing(format!("{updated} of {want} replicas updated"));
    }
    let current = str_at(obj, &["status", "currentRevision"]);
    let update = str_at(obj, &["status", "updateRevision"]);
    if current != update {
        return Assessment::progressing(format!("waiting for revision {} to become current", update.unwrap_or("?")));
    }
    if want == 0 {
        return Assessment::ready("scaled to 0");
    }
    Assessment::ready(format!("{ready} of {want} replicas ready"))
}

fn daemonset(obj: &Value) -> Assessment {
    if let Some(a) = unobserved(obj) {
        return a;
    }
    let Some(desired) = int_at(obj, &["status", "desiredNumberScheduled"]) else {
        return Assessment::progressing("waiting for the controller to schedule pods");
    };
    let scheduled = count(obj, &["status", "currentNumberScheduled"]);
    let updated = count(obj, &["status", "updatedNumberScheduled"]);
    let available = count(obj, &["status", "numberAvailable"]);
    let ready = count(obj, &["status", "numberReady"]);
    if scheduled < desired {
        return Assessment::progressing(format!("{scheduled} of {desired} pods scheduled"));
    }
    let on_delete = str_at(obj, &["spec", "updateStrategy", "type"]) == Some("OnDelete");
    if !on_delete && updated < desired {
        return Assessment::progressing(format!("{updated} of {desired} pods updated"));
    }
    if ready < desired {
        return Assessment::progressing(format!("{ready} of {desired} pods ready"));
    }
    if available < desired {
        return Assessment::progressing(format!("{available} of {desired} pods available"));
    }
    Assessment::ready(format!("{ready} of {desired} pods ready"))
}

fn replicaset(obj: &Value) -> Assessment {
    if let Some(a) = stale_generation(obj) {
        return a;
    }
    let want = spec_replicas(obj);
    let available = count(obj, &["status", "availableReplicas"]);
    let ready = count(obj, &["status", "readyReplicas"]);
    if available < want {
        let failure = condition(obj, "ReplicaFailure")
            .filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
            .map(|c| format!(" ({})", cond_text(c)))
            .unwrap_or_default();
        return Assessment::progressing(format!("{available} of {want} replicas available{failure}"));
    }
    if want == 0 {
        return Assessment::ready("scaled to 0");
    }
    Assessment::ready(format!("{} of {want} replicas ready", ready.max(available)))
}

fn pod(obj: &Value, now: Timestamp, opts: &RuleOptions) -> Assessment {
    match str_at(obj, &["status", "phase"]) {
        Some("Succeeded") => return Assessment::ready("completed"),
        Some("Failed") => {
            // Terminal for the pod itself, whoever owns it.
            return Assessment::failed(pod_failed_message(obj));
        }
        _ => {}
    }
    if condition_is(obj, "Ready", "True") {
        return Assessment::ready("ready");
    }
    if let Some(why) = pod_blocker(obj, now, opts) {
        return Assessment::failed(why);
    }
    if condition_is(obj, "PodScheduled", "False") {
        let why = condition(obj, "PodScheduled").map(cond_text).unwrap_or_default();
        return Assessment::progressing(if why.is_empty() {
            "not scheduled yet".to_string()
        } else {
            format!("not scheduled yet: {why}")
        });
    }
    let mut waiting = Vec::new();
    for (init, c) in container_statuses(obj) {
        if c.get("ready").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        // A finished init container is done, not "not ready".
        if init && at(c, &["state", "terminated", "exitCode"]).and_then(Value::as_i64) == Some(0) {
            continue;
        }
        let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
        let state = at(c, &["state", "waiting", "reason"])
            .and_then(Value::as_str)
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        waiting.push(format!("{}{name}{state}", if init { "init " } else { "" }));
    }
    if waiting.is_empty() {
        let phase = str_at(obj, &["status", "phase"]).unwrap_or("Pending");
        return Assessment::progressing(format!("{} (not ready)", phase.to_lowercase()));
    }
    Assessment::progressing(format!("containers not ready: {}", waiting.join(", ")))
}

fn pod_failed_message(obj: &Value) -> String {
    let reason = str_at(obj, &["status", "reason"]);
    let message = str_at(obj, &["status", "message"]);
    let mut s = String::from("pod failed");
    if let Some(r) = reason {
        s.push_str(&format!(": {r}"));
    }
    if let Some(m) = message {
        s.push_str(&format!(": {m}"));
    }
    // Name the first container that exited non-zero: the reason people look for.
    for (init, c) in container_statuses(obj) {
        if let Some(t) = at(c, &["state", "terminated"])
            && let Some(code) = t.get("exitCode").and_then(Value::as_i64)
            && code != 0
        {
            let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
            let why = t.get("reason").and_then(Value::as_str).unwrap_or("terminated");
            s.push_str(&format!(" ({why} in {}container {name}, exit code {code})", if init { "init " } else { "" }));
            break;
        }
    }
    s
}

/// Init containers first (they run first), then the app containers; `true` marks init ones.
fn container_statuses(pod: &Value) -> impl Iterator<Item = (bool, &Value)> {
    let list = |key: &str| at(pod, &["status", key]).and_then(Value::as_array).into_iter().flatten();
    list("initContainerStatuses").map(|c| (true, c)).chain(list("containerStatuses").map(|c| (false, c)))
}

/// Is the pod controlled by a controller that replaces or accounts for failed pods?
fn has_controller(pod: &Value) -> bool {
    at(pod, &["metadata", "ownerReferences"])
        .and_then(Value::as_array)
        .is_some_and(|refs| refs.iter().any(|r| r.get("controller").and_then(Value::as_bool) == Some(true)))
}

/// A pod state that will not resolve by waiting, so the workload that owns the pod should
/// fail now instead of at its timeout: a container waiting in one of CrashLoopBackOff,
/// ImagePullBackOff, ErrImagePull, CreateContainerConfigError, CreateContainerError,
/// InvalidImageName, RunContainerError (init containers too); phase Failed of a pod without a
/// controller (controllers replace failed pods, e.g. evicted ones, and a Job's backoffLimit
/// decides for its pods); or PodScheduled=False/Unschedulable for longer than
/// [`RuleOptions::unschedulable_grace`].
pub fn pod_blocker(pod: &Value, now: Timestamp, opts: &RuleOptions) -> Option<String> {
    if at(pod, &["metadata", "deletionTimestamp"]).is_some_and(|v| !v.is_null()) {
        return None; // already going away; its replacement is what counts
    }
    for (init, c) in container_statuses(pod) {
        let Some(reason) = at(c, &["state", "waiting", "reason"]).and_then(Value::as_str) else {
            continue;
        };
        if !FATAL_WAITING.contains(&reason) {
            continue;
        }
        let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
        let which = if init { "init container" } else { "container" };
        let restarts = c.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        let mut details = Vec::new();
        if let Some(code) = at(c, &["lastState", "terminated", "exitCode"]).and_then(Value::as_i64) {
            details.push(format!("exit code {code}"));
        }
        if restarts > 0 {
            details.push(plural(restarts, "restart", "restarts"));
        }
        let mut s = format!("{reason} in {which} {name}");
        if !details.is_empty() {
            s.push_str(&format!(" ({})", details.join(", ")));
        }
        // Pull and config errors carry the useful part (image name, missing key) in the message.
        if reason != "CrashLoopBackOff"
            && let Some(m) = at(c, &["state", "waiting", "message"]).and_then(Value::as_str)
            && !m.is_empty()
        {
            s.push_str(&format!(": {}", truncate(m, 200)));
        }
        return Some(s);
    }
    if str_at(pod, &["status", "phase"]) == Some("Failed") && !has_controller(pod) {
        return Some(pod_failed_message(pod));
    }
    if let Some(c) = condition(pod, "PodScheduled")
        && c.get("status").and_then(Value::as_str) == Some("False")
        && c.get("reason").and_then(Value::as_str) == Some("Unschedulable")
    {
        let since = timestamp(c.get("lastTransitionTime"))
            .or_else(|| timestamp(at(pod, &["metadata", "creationTimestamp"])))?;
        let waited = now.duration_since(since);
        let grace = jiff::SignedDuration::try_from(opts.unschedulable_grace).unwrap_or(jiff::SignedDuration::MAX);
        if waited > grace {
            let msg = c.get("message").and_then(Value::as_str).unwrap_or_default();
            let mut s = format!("unschedulable for {}s", waited.as_secs());
            if !msg.is_empty() {
                s.push_str(&format!(": {}", truncate(msg, 300)));
            }
            return Some(s);
        }
    }
    None
}

fn truncate(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max).collect();
    t.push('…');
    t
}

fn job(obj: &Value) -> Assessment {
    // FailureTarget (1.31+) is set as soon as the Job is doomed, before its pods are gone.
    for ty in ["Failed", "FailureTarget"] {
        if let Some(c) = condition(obj, ty)
            && c.get("status").and_then(Value::as_str) == Some("True")
        {
            let why = cond_text(c);
            return Assessment::failed(if why.is_empty() { "job failed".to_string() } else { why });
        }
    }
    let active = count(obj, &["status", "active"]);
    let succeeded = count(obj, &["status", "succeeded"]);
    let failed = count(obj, &["status", "failed"]);
    if condition_is(obj, "Complete", "True") {
        return Assessment::ready(format!("completed ({succeeded} succeeded)"));
    }
    if at(obj, &["spec", "suspend"]).and_then(Value::as_bool) == Some(true) {
        return Assessment::progressing("suspended");
    }
    Assessment::progressing(format!("{active} active, {succeeded} succeeded, {failed} failed"))
}

fn pvc(obj: &Value) -> Assessment {
    match str_at(obj, &["status", "phase"]) {
        Some("Bound") => Assessment::ready("bound"),
        Some("Lost") => Assessment::failed("lost its volume"),
        Some(p) => Assessment::progressing(p.to_lowercase()),
        None => Assessment::progressing("pending"),
    }
}

fn service(obj: &Value) -> Assessment {
    if str_at(obj, &["spec", "type"]) != Some("LoadBalancer") {
        return Assessment::ready("exists");
    }
    let ingress = at(obj, &["status", "loadBalancer", "ingress"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("hostname").or_else(|| i.get("ip")).and_then(Value::as_str).filter(|s| !s.is_empty()))
        .next();
    if let Some(addr) = ingress {
        return Assessment::ready(format!("address {addr}"));
    }
    let external =
        at(obj, &["spec", "externalIPs"]).and_then(Value::as_array).and_then(|a| a.first()).and_then(Value::as_str);
    if let Some(ip) = external {
        return Assessment::ready(format!("external IP {ip}"));
    }
    Assessment::progressing("waiting for a load balancer address")
}

fn crd(obj: &Value) -> Assessment {
    if let Some(c) = condition(obj, "NamesAccepted")
        && c.get("status").and_then(Value::as_str) == Some("False")
    {
        return Assessment::failed(format!("names not accepted: {}", cond_text(c)));
    }
    if condition_is(obj, "Established", "True") {
        return Assessment::ready("established");
    }
    Assessment::progressing("not established yet")
}

/// kstatus conventions for any other kind.
fn generic(obj: &Value) -> Assessment {
    if let Some(a) = stale_generation(obj) {
        return a;
    }
    let generation = int_at(obj, &["metadata", "generation"]);
    let ready_gen = condition(obj, "Ready").and_then(|c| c.get("observedGeneration")).and_then(Value::as_i64);
    if let (Some(g), Some(o)) = (generation, ready_gen)
        && o < g
    {
        return Assessment::progressing(format!(
            "waiting for the controller to observe generation {g} (Ready is for {o})"
        ));
    }
    let with_text = |prefix: &str, c: &Value| {
        let t = cond_text(c);
        if t.is_empty() { prefix.to_string() } else { format!("{prefix}: {t}") }
    };
    let is_true = |ty: &str| condition(obj, ty).filter(|c| c.get("status").and_then(Value::as_str) == Some("True"));
    if let Some(c) = is_true("Stalled") {
        return Assessment::failed(with_text("stalled", c));
    }
    // Reconciling wins over a Ready=True left over from the previous reconcile.
    if let Some(c) = is_true("Reconciling") {
        return Assessment::progressing(with_text("reconciling", c));
    }
    // Crossplane: Synced=False is a (retried) reconcile error.
    if let Some(c) = condition(obj, "Synced")
        && c.get("status").and_then(Value::as_str) == Some("False")
    {
        return Assessment::progressing(with_text("not synced", c));
    }
    if let Some(c) = condition(obj, "Ready") {
        return match c.get("status").and_then(Value::as_str) {
            Some("True") => {
                let m = c.get("message").and_then(Value::as_str).filter(|m| !m.is_empty());
                Assessment::ready(m.map_or_else(|| "ready".to_string(), |m| truncate(m, 200)))
            }
            _ => Assessment::progressing(with_text("not ready", c)),
        };
    }
    let has_conditions = at(obj, &["status", "conditions"]).and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    Assessment::ready(if has_conditions { "exists (no Ready condition)" } else { "exists" })
}

/// Is this a kind whose readiness depends on the pods it runs (Deployment, StatefulSet,
/// DaemonSet, ReplicaSet, ReplicationController, Job)?
pub fn is_workload(obj: &Value) -> bool {
    matches!(
        (group(obj), kind(obj)),
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
            | ("batch", "Job")
            | ("", "ReplicationController")
    )
}

/// The label selector of a workload's pods, in the API's string syntax
/// (`a=b,c in (x,y),!d`), from `spec.selector` (`matchLabels` and `matchExpressions`; a
/// ReplicationController's plain map). `None` for other kinds and for empty or invalid
/// selectors (an empty selector would match every pod in the namespace).
pub fn pod_selector(workload: &Value) -> Option<String> {
    if !is_workload(workload) {
        return None;
    }
    let sel = at(workload, &["spec", "selector"]);
    let mut parts = Vec::new();
    if kind(workload) == "ReplicationController" {
        let map = sel.or_else(|| at(workload, &["spec", "template", "metadata", "labels"]))?;
        labels_into(map, &mut parts)?;
    } else if let Some(sel) = sel {
        if let Some(m) = sel.get("matchLabels") {
            labels_into(m, &mut parts)?;
        }
        for e in sel.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
            let key = e.get("key").and_then(Value::as_str)?;
            let values: Vec<&str> =
                e.get("values").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
            parts.push(match e.get("operator").and_then(Value::as_str)? {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_string(),
                "DoesNotExist" => format!("!{key}"),
                _ => return None,
            });
        }
    } else {
        // Not yet defaulted by the API server: the template's labels are what it will use.
        labels_into(at(workload, &["spec", "template", "metadata", "labels"])?, &mut parts)?;
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

fn labels_into(map: &Value, parts: &mut Vec<String>) -> Option<()> {
    let mut kv: Vec<(&String, &str)> =
        map.as_object()?.iter().map(|(k, v)| v.as_str().map(|v| (k, v))).collect::<Option<_>>()?;
    kv.sort();
    parts.extend(kv.into_iter().map(|(k, v)| format!("{k}={v}")));
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: &str = "2026-01-01T12:00:00Z";

    fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    /// Table runner: every case is (name, object, health, message).
    fn check(cases: &[(&str, Value, Health, &str)]) {
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

    fn deploy(spec: Value, status: Value) -> Value {
        let mut spec = spec;
        spec["selector"] = json!({"matchLabels": {"app": "web"}});
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "web", "namespace": "ns", "generation": 2},
               "spec": spec, "status": status})
    }

    #[test]
    fn deployment() {
        let progressing_ok = json!({"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"});
        check(&[
            (
                "fresh, no status",
                deploy(json!({"replicas": 2}), json!({})),
                Health::Progressing,
                "waiting for the controller to observe it",
            ),
            // The classic: status still describes the previous rollout, and looks complete.
            (
                "stale observedGeneration",
                deploy(
                    json!({"replicas": 2}),
                    json!({
                "observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
                "availableReplicas": 2, "conditions": [progressing_ok]}),
                ),
                Health::Progressing,
                "waiting for the controller to observe generation 2 (status is for 1)",
            ),
            (
                "deadline exceeded",
                deploy(
                    json!({"replicas": 2}),
                    json!({
                "observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1,
                "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                "message": "ReplicaSet \"web-5d\" has timed out progressing."}]}),
                ),
                Health::Failed,
                "ProgressDeadlineExceeded: ReplicaSet \"web-5d\" has timed out progressing.",
            ),
            (
                "paused",
                deploy(
                    json!({"replicas": 2, "paused": true}),
                    json!({
                "observedGeneration": 2, "replicas": 2, "updatedReplicas": 0, "availableReplicas": 2}),
                ),
                Health::Progressing,
                "paused",
            ),
            (
                "not all updated",
                deploy(
                    json!({"replicas": 4}),
                    json!({
                "observedGeneration": 2, "replicas": 5, "updatedReplicas": 2, "readyReplicas": 4, "availableReplicas": 4}),
                ),
                Health::Progressing,
                "2 of 4 replicas updated",
            ),
            (
                "replica failure is named",
                deploy(
                    json!({"replicas": 1}),
                    json!({
                "observedGeneration": 2, "conditions": [{"type": "ReplicaFailure", "status": "True",
                 "reason": "FailedCreate", "message": "pods \"web-1\" is forbidden: exceeded quota"}]}),
                ),
                Health::Progressing,
                "0 of 1 replicas updated (FailedCreate: pods \"web-1\" is forbidden: exceeded quota)",
            ),
            (
                "old replicas terminating",
                deploy(
                    json!({"replicas": 2}),
                    json!({
                "observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "readyReplicas": 3, "availableReplicas": 3}),
                ),
                Health::Progressing,
                "1 old replica pending termination",
            ),
            (
                "updated but not available",
                deploy(
                    json!({"replicas": 4}),
                    json!({
                "observedGeneration": 2, "replicas": 4, "updatedReplicas": 4, "readyReplicas": 2, "availableReplicas": 2}),
                ),
                Health::Progressing,
                "2 of 4 updated replicas available",
            ),
            (
                "available but not ready",
                deploy(
                    json!({"replicas": 2}),
                    json!({
                "observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 1, "availableReplicas": 2}),
                ),
                Health::Progressing,
                "1 of 2 replicas ready",
            ),
            (
                "ready",
                deploy(
                    json!({"replicas": 2}),
                    json!({
                "observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
                "availableReplicas": 2, "conditions": [progressing_ok]}),
                ),
                Health::Ready,
                "2 of 2 replicas ready",
            ),
            (
                "spec.replicas defaults to 1",
                deploy(
                    json!({}),
                    json!({
                "observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1}),
                ),
                Health::Ready,
                "1 of 1 replicas ready",
            ),
            (
                "spec.replicas defaults to 1, none yet",
                deploy(json!({}), json!({"observedGeneration": 2})),
                Health::Progressing,
                "0 of 1 replicas updated",
            ),
            (
                "scaled to zero",
                deploy(json!({"replicas": 0}), json!({"observedGeneration": 2})),
                Health::Ready,
                "scaled to 0",
            ),
            (
                "scaled to zero, old pods going",
                deploy(json!({"replicas": 0}), json!({"observedGeneration": 2, "replicas": 2})),
                Health::Progressing,
                "2 old replicas pending termination",
            ),
        ]);
    }

    fn sts(spec: Value, status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
               "metadata": {"name": "db", "namespace": "ns", "generation": 3},
               "spec": spec, "status": status})
    }

    #[test]
    fn statefulset() {
        let done = |n: i64| {
            json!({"observedGeneration": 3, "replicas": n, "readyReplicas": n, "availableReplicas": n,
            "currentReplicas": n, "updatedReplicas": n, "currentRevision": "db-2", "updateRevision": "db-2"})
        };
        let partitioned = |start: Option<i64>, partition: i64, updated: i64| {
            let mut spec = json!({"replicas": 4, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}});
            if let Some(s) = start {
                spec["ordinals"] = json!({"start": s});
            }
            sts(
                spec,
                json!({"observedGeneration": 3, "replicas": 4, "readyReplicas": 4, "availableReplicas": 4,
                "currentReplicas": 4 - updated, "updatedReplicas": updated, "currentRevision": "db-1", "updateRevision": "db-2"}),
            )
        };
        check(&[
            (
                "no status",
                sts(json!({"replicas": 1}), json!({})),
                Health::Progressing,
                "waiting for the controller to observe it",
            ),
            (
                "stale generation",
                sts(
                    json!({"replicas": 2}),
                    json!({"observedGeneration": 2, "replicas": 2, "readyReplicas": 2,
                "updatedReplicas": 2, "currentRevision": "a", "updateRevision": "a"}),
                ),
                Health::Progressing,
                "waiting for the controller to observe generation 3 (status is for 2)",
            ),
            (
                "creating",
                sts(json!({"replicas": 3}), json!({"observedGeneration": 3, "replicas": 1})),
                Health::Progressing,
                "1 of 3 replicas created",
            ),
            (
                "scaling down",
                sts(json!({"replicas": 1}), json!({"observedGeneration": 3, "replicas": 2, "readyReplicas": 2})),
                Health::Progressing,
                "1 replica pending termination",
            ),
            (
                "not ready",
                sts(json!({"replicas": 3}), json!({"observedGeneration": 3, "replicas": 3, "readyReplicas": 2})),
                Health::Progressing,
                "2 of 3 replicas ready",
            ),
            (
                "ready but not available (minReadySeconds)",
                sts(
                    json!({"replicas": 3}),
                    json!({"observedGeneration": 3,
                "replicas": 3, "readyReplicas": 3, "availableReplicas": 1}),
                ),
                Health::Progressing,
                "1 of 3 replicas available",
            ),
            (
                "rolling, not all updated",
                sts(
                    json!({"replicas": 3}),
                    json!({"observedGeneration": 3, "replicas": 3,
                "readyReplicas": 3, "updatedReplicas": 1, "currentRevision": "db-1", "updateRevision": "db-2"}),
                ),
                Health::Progressing,
                "1 of 3 replicas updated",
            ),
            (
                "all updated, revision not yet current",
                sts(
                    json!({"replicas": 3}),
                    json!({"observedGeneration": 3,
                "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3, "currentRevision": "db-1", "updateRevision": "db-2"}),
                ),
                Health::Progressing,
                "waiting for revision db-2 to become current",
            ),
            ("done", sts(json!({"replicas": 3}), done(3)), Health::Ready, "3 of 3 replicas ready"),
            (
                "no availableReplicas (old server)",
                sts(
                    json!({"replicas": 1}),
                    json!({"observedGeneration": 3, "replicas": 1,
                "readyReplicas": 1, "updatedReplicas": 1, "currentRevision": "a", "updateRevision": "a"}),
                ),
                Health::Ready,
                "1 of 1 replicas ready",
            ),
            (
                "scaled to zero",
                sts(
                    json!({"replicas": 0}),
                    json!({"observedGeneration": 3, "currentRevision": "a", "updateRevision": "a"}),
                ),
                Health::Ready,
                "scaled to 0",
            ),
            (
                "OnDelete ready, revisions differ",
                sts(
                    json!({"replicas": 2, "updateStrategy": {"type": "OnDelete"}}),
                    json!({"observedGeneration": 3, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 0,
                       "currentRevision": "db-1", "updateRevision": "db-2"}),
                ),
                Health::Ready,
                "2 of 2 replicas ready (OnDelete)",
            ),
            (
                "OnDelete not ready",
                sts(
                    json!({"replicas": 2, "updateStrategy": {"type": "OnDelete"}}),
                    json!({"observedGeneration": 3, "replicas": 2, "readyReplicas": 1}),
                ),
                Health::Progressing,
                "1 of 2 replicas ready",
            ),
            // Ordinals 0..3, partition 2: pods 2 and 3 must update; revisions never converge.
            (
                "partition: partly updated",
                partitioned(None, 2, 1),
                Health::Progressing,
                "1 of 2 replicas updated (partition 2: ordinals 2 and up)",
            ),
            (
                "partition: done",
                partitioned(None, 2, 2),
                Health::Ready,
                "4 of 4 replicas ready, 2 updated (partition 2: ordinals 2 and up)",
            ),
            (
                "partition above replicas: nothing to update",
                partitioned(None, 9, 0),
                Health::Ready,
                "4 of 4 replicas ready, 0 updated (partition 9: ordinals 9 and up)",
            ),
            // Ordinals 10..13, partition 2: the controller counts from the start ordinal, so pods
            // 12 and 13 update (by the API docs' "ordinal >= partition", all four would).
            (
                "start ordinal + partition: partly",
                partitioned(Some(10), 2, 1),
                Health::Progressing,
                "1 of 2 replicas updated (partition 2: ordinals 12 and up)",
            ),
            (
                "start ordinal + partition: done",
                partitioned(Some(10), 2, 2),
                Health::Ready,
                "4 of 4 replicas ready, 2 updated (partition 2: ordinals 12 and up)",
            ),
            // Ordinals 10..13, partition 0: every pod must update and the revisions must match.
            (
                "start ordinal, no partition",
                partitioned(Some(10), 0, 4),
                Health::Progressing,
                "waiting for revision db-2 to become current",
            ),
            (
                "start ordinal, no partition, partly",
                partitioned(Some(10), 0, 3),
                Health::Progressing,
                "3 of 4 replicas updated",
            ),
        ]);
    }

    #[test]
    fn statefulset_pods_to_update() {
        // (replicas, partition) -> pods that must be at the update revision
        for (r, p, want) in [(4, 0, 4), (4, 1, 3), (4, 4, 0), (4, 7, 0), (4, -1, 4), (0, 0, 0)] {
            assert_eq!(statefulset_to_update(r, p), want, "replicas {r} partition {p}");
        }
    }

    fn ds(spec: Value, status: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "ns", "generation": 1},
               "spec": spec, "status": status})
    }

    #[test]
    fn daemonset() {
        let st = |sched: i64, upd: i64, ready: i64, avail: i64| {
            json!({"observedGeneration": 1, "desiredNumberScheduled": 3,
            "currentNumberScheduled": sched, "updatedNumberScheduled": upd, "numberReady": ready, "numberAvailable": avail})
        };
        check(&[
            ("no status", ds(json!({}), json!({})), Health::Progressing, "waiting for the controller to observe it"),
            (
                "no desired count",
                ds(json!({}), json!({"observedGeneration": 1})),
                Health::Progressing,
                "waiting for the controller to schedule pods",
            ),
            ("scheduling", ds(json!({}), st(1, 1, 1, 1)), Health::Progressing, "1 of 3 pods scheduled"),
            ("updating", ds(json!({}), st(3, 2, 3, 3)), Health::Progressing, "2 of 3 pods updated"),
            (
                "OnDelete ignores updated",
                ds(json!({"updateStrategy": {"type": "OnDelete"}}), st(3, 0, 3, 3)),
                Health::Ready,
                "3 of 3 pods ready",
            ),
            ("not ready", ds(json!({}), st(3, 3, 2, 2)), Health::Progressing, "2 of 3 pods ready"),
            ("not available", ds(json!({}), st(3, 3, 3, 1)), Health::Progressing, "1 of 3 pods available"),
            ("ready", ds(json!({}), st(3, 3, 3, 3)), Health::Ready, "3 of 3 pods ready"),
            (
                "no nodes match",
                ds(json!({}), json!({"observedGeneration": 1, "desiredNumberScheduled": 0})),
                Health::Ready,
                "0 of 0 pods ready",
            ),
        ]);
    }

    #[test]
    fn replicaset() {
        let rs = |replicas: i64, status: Value| {
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-5d", "namespace": "ns", "generation": 1}, "spec": {"replicas": replicas}, "status": status})
        };
        check(&[
            (
                "stale",
                rs(2, json!({"observedGeneration": 0, "availableReplicas": 2})),
                Health::Progressing,
                "waiting for the controller to observe generation 1 (status is for 0)",
            ),
            (
                "partly",
                rs(3, json!({"observedGeneration": 1, "availableReplicas": 1, "readyReplicas": 2})),
                Health::Progressing,
                "1 of 3 replicas available",
            ),
            (
                "create failure",
                rs(
                    1,
                    json!({"observedGeneration": 1, "conditions": [{"type": "ReplicaFailure",
                "status": "True", "reason": "FailedCreate", "message": "quota"}]}),
                ),
                Health::Progressing,
                "0 of 1 replicas available (FailedCreate: quota)",
            ),
            (
                "ready",
                rs(3, json!({"observedGeneration": 1, "availableReplicas": 3, "readyReplicas": 3})),
                Health::Ready,
                "3 of 3 replicas ready",
            ),
            ("zero", rs(0, json!({"observedGeneration": 1})), Health::Ready, "scaled to 0"),
            (
                "replication controller",
                json!({"apiVersion": "v1", "kind": "ReplicationController",
                "metadata": {"name": "rc", "generation": 1}, "spec": {"replicas": 2, "selector": {"app": "x"}},
                "status": {"observedGeneration": 1, "availableReplicas": 1}}),
                Health::Progressing,
                "1 of 2 replicas available",
            ),
        ]);
    }

    fn pod(status: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-5d-x", "namespace": "ns",
               "creationTimestamp": "2026-01-01T11:59:00Z"},
               "spec": {"containers": [{"name": "app"}]}, "status": status})
    }

    fn waiting(name: &str, reason: &str, message: &str, restarts: i64, last_exit: Option<i64>) -> Value {
        let mut c = json!({"name": name, "ready": false, "restartCount": restarts,
                           "state": {"waiting": {"reason": reason, "message": message}}});
        if let Some(code) = last_exit {
            c["lastState"] = json!({"terminated": {"exitCode": code, "reason": "Error"}});
        }
        c
    }

    fn unschedulable(since: &str) -> Value {
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
               "lastTransitionTime": since, "message": "0/3 nodes are available: 3 Insufficient cpu."}]})
    }

    #[test]
    fn pods() {
        check(&[
            ("succeeded", pod(json!({"phase": "Succeeded"})), Health::Ready, "completed"),
            (
                "ready",
                pod(json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]})),
                Health::Ready,
                "ready",
            ),
            (
                "crash loop",
                pod(json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [waiting("kms-core", "CrashLoopBackOff", "back-off 40s restarting failed container", 5, Some(1))]})),
                Health::Failed,
                "CrashLoopBackOff in container kms-core (exit code 1, 5 restarts)",
            ),
            (
                "image pull",
                pod(json!({"phase": "Pending",
                "containerStatuses": [waiting("app", "ImagePullBackOff", "Back-off pulling image \"nope:1\"", 0, None)]})),
                Health::Failed,
                "ImagePullBackOff in container app: Back-off pulling image \"nope:1\"",
            ),
            (
                "init container crash",
                pod(json!({"phase": "Pending",
                "initContainerStatuses": [waiting("migrate", "CrashLoopBackOff", "", 2, Some(3))],
                "containerStatuses": [waiting("app", "PodInitializing", "", 0, None)]})),
                Health::Failed,
                "CrashLoopBackOff in init container migrate (exit code 3, 2 restarts)",
            ),
            (
                "config error",
                pod(json!({"phase": "Pending",
                "containerStatuses": [waiting("app", "CreateContainerConfigError", "secret \"db\" not found", 0, None)]})),
                Health::Failed,
                "CreateContainerConfigError in container app: secret \"db\" not found",
            ),
            (
                "creating",
                pod(json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [waiting("app", "ContainerCreating", "", 0, None),
                                      {"name": "side", "ready": true, "state": {"running": {}}}]})),
                Health::Progressing,
                "containers not ready: app (ContainerCreating)",
            ),
            (
                "init done, app starting",
                pod(json!({"phase": "Running",
                "initContainerStatuses": [{"name": "migrate", "ready": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
                "containerStatuses": [{"name": "app", "ready": false, "state": {"running": {}}}]})),
                Health::Progressing,
                "containers not ready: app",
            ),
            ("no statuses yet", pod(json!({"phase": "Pending"})), Health::Progressing, "pending (not ready)"),
            ("no status at all", pod(json!({})), Health::Progressing, "pending (not ready)"),
            (
                "unschedulable within grace",
                pod(unschedulable("2026-01-01T11:59:50Z")),
                Health::Progressing,
                "not scheduled yet: Unschedulable: 0/3 nodes are available: 3 Insufficient cpu.",
            ),
            (
                "unschedulable beyond grace",
                pod(unschedulable("2026-01-01T11:59:15Z")),
                Health::Failed,
                "unschedulable for 45s: 0/3 nodes are available: 3 Insufficient cpu.",
            ),
            (
                "failed",
                pod(
                    json!({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory."}),
                ),
                Health::Failed,
                "pod failed: Evicted: The node was low on resource: memory.",
            ),
            (
                "failed with exit code",
                pod(json!({"phase": "Failed", "containerStatuses": [{"name": "app", "ready": false,
                "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]})),
                Health::Failed,
                "pod failed (Error in container app, exit code 2)",
            ),
        ]);
    }

    #[test]
    fn pod_blockers() {
        let opts = RuleOptions::default();
        let b = |p: &Value| pod_blocker(p, now(), &opts);
        for reason in FATAL_WAITING {
            let p = pod(json!({"phase": "Pending", "containerStatuses": [waiting("app", reason, "", 0, None)]}));
            assert_eq!(b(&p).as_deref(), Some(format!("{reason} in container app").as_str()));
        }
        for harmless in ["ContainerCreating", "PodInitializing"] {
            let p = pod(json!({"phase": "Pending", "containerStatuses": [waiting("app", harmless, "", 0, None)]}));
            assert_eq!(b(&p), None, "{harmless}");
        }
        // A bare pod that failed is final; a controller's failed pod (e.g. evicted) is replaced,
        // and a Job's backoffLimit decides for its pods.
        let mut failed = pod(json!({"phase": "Failed", "reason": "Evicted"}));
        assert_eq!(b(&failed).as_deref(), Some("pod failed: Evicted"));
        failed["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d", "controller": true}]);
        assert_eq!(b(&failed), None);
        // Unschedulable: grace counts from the condition's transition, else from creation.
        assert_eq!(b(&pod(unschedulable("2026-01-01T11:59:40Z"))), None);
        assert!(b(&pod(unschedulable("2026-01-01T11:50:00Z"))).unwrap().starts_with("unschedulable for 600s"));
        let mut no_time = pod(unschedulable("x"));
        no_time["status"]["conditions"][0].as_object_mut().unwrap().remove("lastTransitionTime");
        assert!(b(&no_time).unwrap().starts_with("unschedulable for 60s"), "from creationTimestamp");
        let long = RuleOptions { unschedulable_grace: Duration::from_secs(3600) };
        assert_eq!(pod_blocker(&pod(unschedulable("2026-01-01T11:50:00Z")), now(), &long), None);
        // A terminating pod does not block: its replacement is what counts.
        let mut going = pod(json!({"containerStatuses": [waiting("app", "CrashLoopBackOff", "", 1, Some(1))]}));
        going["metadata"]["deletionTimestamp"] = json!(NOW);
        assert_eq!(b(&going), None);
        // Long messages are cut.
        let p = pod(json!({"containerStatuses": [waiting("app", "ErrImagePull", &"x".repeat(500), 0, None)]}));
        assert!(b(&p).unwrap().chars().count() < 250);
    }

    fn job(status: Value) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": "ns", "generation": 1},
               "spec": {"backoffLimit": 2}, "status": status})
    }

    #[test]
    fn jobs() {
        check(&[
            ("just created", job(json!({})), Health::Progressing, "0 active, 0 succeeded, 0 failed"),
            // kstatus calls this Current; a migration that is still running is not done.
            ("running", job(json!({"active": 1, "failed": 1})), Health::Progressing, "1 active, 0 succeeded, 1 failed"),
            (
                "complete",
                job(json!({"succeeded": 1, "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                {"type": "Complete", "status": "True"}]})),
                Health::Ready,
                "completed (1 succeeded)",
            ),
            (
                "success criteria met, pods still terminating",
                job(json!({"succeeded": 1, "active": 0,
                "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}]})),
                Health::Progressing,
                "0 active, 1 succeeded, 0 failed",
            ),
            (
                "failed",
                job(
                    json!({"failed": 3, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit"}]}),
                ),
                Health::Failed,
                "BackoffLimitExceeded: Job has reached the specified backoff limit",
            ),
            (
                "failure target, before Failed",
                job(json!({"failed": 3, "conditions": [{"type": "FailureTarget", "status": "True",
                "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"}]})),
                Health::Failed,
                "DeadlineExceeded: Job was active longer than specified deadline",
            ),
            (
                "suspended",
                json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                "spec": {"suspend": true}, "status": {}}),
                Health::Progressing,
                "suspended",
            ),
        ]);
    }

    #[test]
    fn pvc_service_crd() {
        let pvc = |phase: Option<&str>| {
            let mut v = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"}, "status": {}});
            if let Some(p) = phase {
                v["status"]["phase"] = json!(p);
            }
            v
        };
        let svc = |ty: &str, extra: Value, status: Value| {
            let mut spec = json!({"type": ty, "clusterIP": "10.0.0.7"});
            for (k, v) in extra.as_object().unwrap() {
                spec[k] = v.clone();
            }
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"}, "spec": spec, "status": status})
        };
        let crd = |conds: Value| {
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"}, "status": {"conditions": conds}})
        };
        check(&[
            ("pvc bound", pvc(Some("Bound")), Health::Ready, "bound"),
            ("pvc pending", pvc(Some("Pending")), Health::Progressing, "pending"),
            ("pvc lost", pvc(Some("Lost")), Health::Failed, "lost its volume"),
            ("pvc no status", pvc(None), Health::Progressing, "pending"),
            ("service ClusterIP", svc("ClusterIP", json!({}), json!({})), Health::Ready, "exists"),
            ("service headless", svc("ClusterIP", json!({"clusterIP": "None"}), json!({})), Health::Ready, "exists"),
            (
                "service ExternalName",
                svc("ExternalName", json!({"externalName": "db.example.com"}), json!({})),
                Health::Ready,
                "exists",
            ),
            // kstatus calls this Current as soon as a clusterIP exists.
            (
                "lb without ingress",
                svc("LoadBalancer", json!({}), json!({"loadBalancer": {}})),
                Health::Progressing,
                "waiting for a load balancer address",
            ),
            (
                "lb with empty ingress",
                svc("LoadBalancer", json!({}), json!({"loadBalancer": {"ingress": []}})),
                Health::Progressing,
                "waiting for a load balancer address",
            ),
            (
                "lb with ip",
                svc("LoadBalancer", json!({}), json!({"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}})),
                Health::Ready,
                "address 127.0.0.1",
            ),
            (
                "lb with hostname",
                svc("LoadBalancer", json!({}), json!({"loadBalancer": {"ingress": [{"hostname": "a.elb.example"}]}})),
                Health::Ready,
                "address a.elb.example",
            ),
            (
                "lb with externalIPs",
                svc("LoadBalancer", json!({"externalIPs": ["192.0.2.1"]}), json!({})),
                Health::Ready,
                "external IP 192.0.2.1",
            ),
            ("crd new", crd(json!([])), Health::Progressing, "not established yet"),
            (
                "crd established",
                crd(json!([{"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": "True"}])),
                Health::Ready,
                "established",
            ),
            // Helm's legacy wait calls this ready.
            (
                "crd names rejected",
                crd(json!([{"type": "NamesAccepted", "status": "False", "reason": "ListKindConflict",
                "message": "\"WidgetList\" is already in use"}, {"type": "Established", "status": "False"}])),
                Health::Failed,
                "names not accepted: ListKindConflict: \"WidgetList\" is already in use",
            ),
        ]);
    }

    fn cr(generation: i64, status: Value) -> Value {
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "generation": generation}, "status": status})
    }

    #[test]
    fn custom_resources() {
        let c = |ty: &str, st: &str, reason: &str, msg: &str| json!({"type": ty, "status": st, "reason": reason, "message": msg});
        check(&[
            ("no status", cr(1, json!({})), Health::Ready, "exists"),
            (
                "other conditions only",
                cr(1, json!({"conditions": [c("Available", "True", "", "")]})),
                Health::Ready,
                "exists (no Ready condition)",
            ),
            ("ready", cr(1, json!({"conditions": [c("Ready", "True", "Succeeded", "")]})), Health::Ready, "ready"),
            (
                "ready with message",
                cr(1, json!({"conditions": [c("Ready", "True", "Issued", "Certificate is up to date")]})),
                Health::Ready,
                "Certificate is up to date",
            ),
            (
                "not ready",
                cr(1, json!({"conditions": [c("Ready", "False", "Creating", "waiting for the VPC")]})),
                Health::Progressing,
                "not ready: Creating: waiting for the VPC",
            ),
            (
                "ready unknown",
                cr(1, json!({"conditions": [{"type": "Ready", "status": "Unknown"}]})),
                Health::Progressing,
                "not ready",
            ),
            (
                "stalled",
                cr(
                    1,
                    json!({"conditions": [c("Stalled", "True", "InvalidSpec", "bad port"), c("Ready", "False", "", "")]}),
                ),
                Health::Failed,
                "stalled: InvalidSpec: bad port",
            ),
            (
                "reconciling beats an old Ready",
                cr(
                    1,
                    json!({"conditions": [c("Ready", "True", "", ""),
                c("Reconciling", "True", "Progressing", "applying revision 2")]}),
                ),
                Health::Progressing,
                "reconciling: Progressing: applying revision 2",
            ),
            (
                "reconciling false is fine",
                cr(1, json!({"conditions": [c("Reconciling", "False", "", ""), c("Ready", "True", "", "")]})),
                Health::Ready,
                "ready",
            ),
            (
                "crossplane not synced",
                cr(
                    1,
                    json!({"conditions": [c("Synced", "False", "ReconcileError", "cannot create bucket"),
                c("Ready", "True", "Available", "")]}),
                ),
                Health::Progressing,
                "not synced: ReconcileError: cannot create bucket",
            ),
            (
                "crossplane creating",
                cr(
                    1,
                    json!({"conditions": [c("Synced", "True", "ReconcileSuccess", ""),
                c("Ready", "False", "Creating", "")]}),
                ),
                Health::Progressing,
                "not ready: Creating",
            ),
            (
                "crossplane available",
                cr(
                    1,
                    json!({"conditions": [c("Synced", "True", "ReconcileSuccess", ""),
                c("Ready", "True", "Available", "")]}),
                ),
                Health::Ready,
                "ready",
            ),
            (
                "stale status.observedGeneration",
                cr(2, json!({"observedGeneration": 1, "conditions": [c("Ready", "True", "", "")]})),
                Health::Progressing,
                "waiting for the controller to observe generation 2 (status is for 1)",
            ),
            (
                "stale Ready.observedGeneration",
                cr(2, json!({"conditions": [{"type": "Ready", "status": "True", "observedGeneration": 1}]})),
                Health::Progressing,
                "waiting for the controller to observe generation 2 (Ready is for 1)",
            ),
            (
                "current observedGeneration",
                cr(
                    2,
                    json!({"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True", "observedGeneration": 2}]}),
                ),
                Health::Ready,
                "ready",
            ),
        ]);
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
        let mut gone = deploy(json!({"replicas": 0}), json!({"observedGeneration": 2}));
        gone["metadata"]["deletionTimestamp"] = json!(NOW);
        cases.push(("terminating", gone, Health::Progressing, "terminating"));
        check(&cases);
    }

    #[test]
    fn selectors() {
        let w = |av: &str, kind: &str, spec: Value| json!({"apiVersion": av, "kind": kind, "metadata": {"name": "x"}, "spec": spec});
        let cases = [
            (
                w("apps/v1", "Deployment", json!({"selector": {"matchLabels": {"app": "web", "tier": "front"}}})),
                Some("app=web,tier=front"),
            ),
            (
                w(
                    "apps/v1",
                    "StatefulSet",
                    json!({"selector": {"matchLabels": {"app": "db"}, "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["a", "b"]},
                {"key": "canary", "operator": "NotIn", "values": ["true"]},
                {"key": "shard", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"}]}}),
                ),
                Some("app=db,env in (a,b),canary notin (true),shard,!legacy"),
            ),
            (
                w(
                    "apps/v1",
                    "DaemonSet",
                    json!({"selector": {"matchExpressions": [{"key": "k", "operator": "Exists"}]}}),
                ),
                Some("k"),
            ),
            (
                w(
                    "apps/v1",
                    "ReplicaSet",
                    json!({"selector": {"matchLabels": {"pod-template-hash": "5d", "app": "web"}}}),
                ),
                Some("app=web,pod-template-hash=5d"),
            ),
            (
                w(
                    "batch/v1",
                    "Job",
                    json!({"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}}),
                ),
                Some("batch.kubernetes.io/controller-uid=u1"),
            ),
            (
                w("batch/v1", "Job", json!({"template": {"metadata": {"labels": {"job": "migrate"}}}})),
                Some("job=migrate"),
            ),
            (w("v1", "ReplicationController", json!({"selector": {"app": "old"}})), Some("app=old")),
            (w("apps/v1", "Deployment", json!({"selector": {}})), None),
            (
                w(
                    "apps/v1",
                    "Deployment",
                    json!({"selector": {"matchExpressions": [{"key": "k", "operator": "Bogus"}]}}),
                ),
                None,
            ),
            (w("v1", "Pod", json!({})), None),
            (w("v1", "Service", json!({"selector": {"app": "web"}})), None),
            (w("example.com/v1", "Deployment", json!({"selector": {"matchLabels": {"a": "b"}}})), None),
        ];
        for (obj, want) in cases {
            assert_eq!(pod_selector(&obj).as_deref(), want, "{obj}");
        }
        assert!(is_workload(&w("batch/v1", "Job", json!({}))));
        assert!(!is_workload(&w("batch/v1", "CronJob", json!({}))));
        assert!(!is_workload(&w("v1", "Pod", json!({}))));
    }

    #[test]
    fn options_default_and_serialize() {
        assert_eq!(RuleOptions::default().unschedulable_grace, Duration::from_secs(30));
        let a = Assessment::failed("x");
        assert_eq!(serde_json::to_value(&a).unwrap(), json!({"health": "Failed", "message": "x"}));
    }
}
