//! What a wait is for, and where it stands given what the watches have seen: pure functions
//! over snapshots of JSON objects, so the waiter only feeds them and tests need no cluster.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use super::ownership;
use super::rules::{self, Assessment, Health, RuleOptions};
use crate::error::{Details, K8sError};
use crate::json::{ObjRef, name_of};

/// What to wait for.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// One object; it may not exist yet.
    Object(ObjRef),
    /// Every object of a kind matching a label selector, and at least `min` of them.
    Selector {
        /// The API group and version, e.g. `apps/v1`.
        api_version: String,
        /// The kind, e.g. `Deployment`.
        kind: String,
        /// The namespace; `None` for cluster-scoped kinds or all namespaces.
        namespace: Option<String>,
        /// A label selector in the API's syntax, e.g. `app=kms-core`.
        selector: String,
        /// How many matching objects must exist before the target can be ready.
        min: usize,
    },
}

impl Target {
    /// Its API version and kind.
    pub(crate) fn kind(&self) -> (&str, &str) {
        match self {
            Target::Object(o) => (&o.api_version, &o.kind),
            Target::Selector { api_version, kind, .. } => (api_version, kind),
        }
    }
}

impl std::fmt::Display for Target {
    /// `StatefulSet kms/db`, or `Pod kms/[app=db]` for a selector.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Object(o) => write!(f, "{o}"),
            Target::Selector { kind, namespace, selector, .. } => match namespace {
                Some(ns) => write!(f, "{kind} {ns}/[{selector}]"),
                None => write!(f, "{kind} [{selector}]"),
            },
        }
    }
}

/// How to wait.
#[derive(Clone, Debug)]
pub struct WaitOptions {
    /// Deadline for the whole wait (default 5 minutes).
    pub timeout: Duration,
    /// How long each object may stay not ready, counted from when the wait first sees it (an
    /// object created during the wait gets its full time; one that never appears is bounded by
    /// `timeout` alone).
    pub per_object_timeout: Option<Duration>,
    /// Stop at the first failed object (default); otherwise keep waiting, as it may recover.
    pub fail_fast: bool,
    /// Settings of the built-in rules.
    pub rules: RuleOptions,
    /// What is being waited for, in messages ("the parties"); default "N objects".
    pub what: Option<String>,
}

impl Default for WaitOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(300),
            per_object_timeout: None,
            fail_fast: true,
            rules: RuleOptions::default(),
            what: None,
        }
    }
}

/// Where a wait stands, for progress lines.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Number of targets.
    pub total: usize,
    /// Targets ready.
    pub ready: usize,
    /// The targets still pending, each with why.
    pub pending: Vec<(String, String)>,
}

impl Progress {
    /// `3/13 ready; waiting for StatefulSet kms/x (0 of 1 replicas ready), ... and 7 more`,
    /// naming at most `max` pending targets.
    pub fn summary(&self, max: usize) -> String {
        let mut s = format!("{}/{} ready", self.ready, self.total);
        if !self.pending.is_empty() {
            let shown: Vec<String> = self.pending.iter().take(max).map(|(t, m)| format!("{t} ({m})")).collect();
            s.push_str(&format!("; waiting for {}", shown.join(", ")));
            if self.pending.len() > max {
                s.push_str(&format!(" and {} more", self.pending.len() - max));
            }
        }
        s
    }
}

/// Why a wait did not succeed.
#[derive(Debug)]
pub struct WaitFailure {
    /// A deadline passed (otherwise an object failed or a watch was refused).
    pub timeout: bool,
    /// One line: what failed or was still pending, and why.
    pub message: String,
    /// The object to report on: the failed one (a workload's failing pod), or the first pending.
    pub blocking: Option<Value>,
    /// Why it blocks, in its own terms (the pod's reason rather than its workload's).
    pub reason: String,
}

impl WaitFailure {
    /// A failure without an object to blame (a watch refused, no such kind).
    pub(crate) fn plain(message: String) -> Self {
        Self { timeout: false, message, blocking: None, reason: String::new() }
    }

    /// As the crate's error: [`K8sError::Timeout`] or [`K8sError::Failed`], naming the
    /// blocking object.
    pub fn into_error(self) -> K8sError {
        let details =
            Details { object: self.blocking.as_ref().map(|b| ObjRef::of(b).to_string()), ..Default::default() };
        if self.timeout {
            K8sError::Timeout { message: self.message, details }
        } else {
            K8sError::Failed { message: self.message, details }
        }
    }
}

/// A rule supplied by the caller (a script's predicate), consulted before the built-in rules;
/// `Ok(None)` defers to them, `Err` fails the object.
pub(crate) type Predicate<'a> = dyn FnMut(&Value) -> Result<Option<Assessment>, String> + 'a;

/// What one pass of assessment looks at, besides the targets' own objects.
pub(crate) struct Context<'a> {
    /// The pods of the target's namespace, for workloads.
    pub(crate) pods: &'a [&'a Value],
    /// The ReplicaSets of the target's namespace, through which Deployments own pods.
    pub(crate) replicasets: &'a [&'a Value],
    pub(crate) now: Timestamp,
    pub(crate) rules: &'a RuleOptions,
}

/// One object's verdict within a target.
pub(crate) struct Verdict<'a> {
    pub(crate) object: &'a Value,
    pub(crate) assessment: Assessment,
    /// The pod that fails a workload, and the pod's own reason.
    pub(crate) pod: Option<(&'a Value, String)>,
}

impl<'a> Verdict<'a> {
    /// What to report on and why: the failing pod, else the object itself.
    fn blocking(&self) -> (&'a Value, Option<String>) {
        match &self.pod {
            Some((p, why)) => (p, Some(why.clone())),
            None => (self.object, None),
        }
    }
}

/// A target's state after one pass.
pub(crate) struct State<'a> {
    pub(crate) target: String,
    pub(crate) assessment: Assessment,
    /// The object to report on, and why it blocks (in its own terms).
    pub(crate) blocking: Option<(&'a Value, Option<String>)>,
    /// Every object's own verdict (for per-object deadlines).
    pub(crate) verdicts: Vec<Verdict<'a>>,
}

impl State<'_> {
    pub(crate) fn is_ready(&self) -> bool {
        self.assessment.health == Health::Ready
    }

    fn reason(&self) -> String {
        self.blocking.as_ref().and_then(|(_, r)| r.clone()).unwrap_or_else(|| self.assessment.message.clone())
    }

    /// The failure that ends a wait on this target.
    pub(crate) fn failure(&self, timeout: bool, message: String) -> WaitFailure {
        WaitFailure {
            timeout,
            message,
            blocking: self.blocking.as_ref().map(|(b, _)| (*b).clone()),
            reason: self.reason(),
        }
    }
}

/// Assess one target over the objects it matches now.
pub(crate) fn assess_target<'a>(
    target: &Target,
    objects: &[&'a Value],
    cx: &Context<'a>,
    predicate: &mut Option<&mut Predicate<'_>>,
) -> State<'a> {
    let mut state = State {
        target: target.to_string(),
        assessment: Assessment::ready("ready"),
        blocking: None,
        verdicts: Vec::new(),
    };
    match target {
        Target::Object(_) if objects.is_empty() => {
            state.assessment = Assessment::progressing("not found yet");
            return state;
        }
        Target::Selector { min, .. } if objects.len() < *min => {
            state.assessment = Assessment::progressing(format!("{} of at least {min} found", objects.len()));
            return state;
        }
        _ => {}
    }
    let many = objects.len() > 1;
    let mut not_ready = Vec::new();
    for o in objects {
        let v = assess_one(o, cx, predicate);
        match v.assessment.health {
            Health::Ready => {}
            Health::Failed => {
                let msg = if many {
                    format!("{}: {}", ObjRef::of(o), v.assessment.message)
                } else {
                    v.assessment.message.clone()
                };
                state.assessment = Assessment::failed(msg);
                state.blocking = Some(v.blocking());
                state.verdicts.push(v);
                return state;
            }
            Health::Progressing => {
                state.blocking.get_or_insert_with(|| v.blocking());
                not_ready.push(if many {
                    format!("{}: {}", name_of(o), v.assessment.message)
                } else {
                    v.assessment.message.clone()
                });
            }
        }
        state.verdicts.push(v);
    }
    if !not_ready.is_empty() {
        state.assessment = Assessment::progressing(not_ready.join("; "));
    }
    state
}

/// One object: the caller's predicate, else the built-in rules; a workload that is not ready
/// fails when one of its own pods is in a fatal state.
fn assess_one<'a>(o: &'a Value, cx: &Context<'a>, predicate: &mut Option<&mut Predicate<'_>>) -> Verdict<'a> {
    let verdict = |assessment| Verdict { object: o, assessment, pod: None };
    if let Some(p) = predicate {
        match p(o) {
            Ok(Some(a)) => return verdict(a),
            Ok(None) => {}
            Err(e) => return verdict(Assessment::failed(format!("predicate failed: {e}"))),
        }
    }
    let a = rules::assess(o, cx.now, cx.rules);
    if a.health != Health::Progressing || !ownership::is_workload_object(o) {
        return verdict(a);
    }
    for pod in cx.pods.iter().filter(|p| ownership::fails_with(o, p, cx.replicasets)) {
        if let Some(reason) = rules::pod_blocker(pod, cx.now, cx.rules) {
            let assessment = Assessment::failed(format!("pod {}: {reason}", name_of(pod)));
            return Verdict { object: o, assessment, pod: Some((pod, reason)) };
        }
    }
    verdict(a)
}

/// The failure when the overall deadline passes: how many targets are pending, naming five.
pub(crate) fn timeout_failure(states: &[State<'_>], opts: &WaitOptions) -> WaitFailure {
    let pending: Vec<&State> = states.iter().filter(|s| !s.is_ready()).collect();
    let n = states.len();
    let what = opts.what.clone().unwrap_or_else(|| format!("{n} object{}", if n == 1 { "" } else { "s" }));
    let list: Vec<String> =
        pending.iter().take(5).map(|s| format!("{} ({})", s.target, s.assessment.message)).collect();
    let more = if pending.len() > 5 { format!(" and {} more", pending.len() - 5) } else { String::new() };
    let message = format!(
        "timed out after {} waiting for {what}: {} of {n} not ready: {}{more}",
        crate::format_duration(opts.timeout),
        pending.len(),
        list.join(", ")
    );
    match pending.first() {
        Some(s) => s.failure(true, message),
        None => WaitFailure { timeout: true, ..WaitFailure::plain(message) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: &str = "2026-01-01T12:00:00Z";

    fn sts(name: &str, uid: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": name, "namespace": "kms", "uid": uid, "generation": 1},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "kms-core"}}},
            "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 0}})
    }

    fn crashing_pod(name: &str, owner: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "kms", "labels": {"app": "kms-core"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "x", "uid": owner, "controller": true}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "core", "ready": false, "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": {"terminated": {"exitCode": 1}}}]}})
    }

    fn assess_with(target: &Target, objects: &[&Value], pods: &[&Value]) -> (Health, String, Option<String>) {
        let rules = RuleOptions::default();
        let cx = Context { pods, replicasets: &[], now: NOW.parse().unwrap(), rules: &rules };
        let s = assess_target(target, objects, &cx, &mut None);
        let blocking = s.blocking.map(|(b, _)| name_of(b).to_string());
        (s.assessment.health, s.assessment.message, blocking)
    }

    /// Two parties' StatefulSets share `app: kms-core`; party 2's pod crashes. Only party 2
    /// fails, and its report is about its own pod.
    #[test]
    fn a_crashing_pod_fails_its_own_statefulset_only() {
        let (p1, p2) = (sts("kms-core-1", "u1"), sts("kms-core-2", "u2"));
        let pod2 = crashing_pod("kms-core-2-0", "u2");
        let t = |o: &Value| Target::Object(ObjRef::of(o));
        assert_eq!(
            assess_with(&t(&p1), &[&p1], &[&pod2]),
            (Health::Progressing, "0 of 1 replicas ready".into(), Some("kms-core-1".into()))
        );
        assert_eq!(
            assess_with(&t(&p2), &[&p2], &[&pod2]),
            (
                Health::Failed,
                "pod kms-core-2-0: CrashLoopBackOff in container core (exit code 1, 3 restarts)".into(),
                Some("kms-core-2-0".into())
            )
        );
    }

    #[test]
    fn missing_objects_and_minimum_counts_are_pending() {
        let obj = Target::Object(ObjRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: None,
            name: "c".into(),
        });
        assert_eq!(assess_with(&obj, &[], &[]), (Health::Progressing, "not found yet".into(), None));
        let sel = Target::Selector {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("kms".into()),
            selector: "app=x".into(),
            min: 2,
        };
        let cm =
            |n: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n, "namespace": "kms"}});
        let (a, b) = (cm("a"), cm("b"));
        assert_eq!(assess_with(&sel, &[&a], &[]), (Health::Progressing, "1 of at least 2 found".into(), None));
        assert_eq!(assess_with(&sel, &[&a, &b], &[]), (Health::Ready, "ready".into(), None));
    }

    #[test]
    fn many_objects_name_the_pending_ones() {
        let sel = Target::Selector {
            api_version: "apps/v1".into(),
            kind: "StatefulSet".into(),
            namespace: Some("kms".into()),
            selector: "app=kms-core".into(),
            min: 1,
        };
        let (p1, p2) = (sts("kms-core-1", "u1"), sts("kms-core-2", "u2"));
        let (health, message, blocking) = assess_with(&sel, &[&p1, &p2], &[]);
        assert_eq!(health, Health::Progressing);
        assert_eq!(message, "kms-core-1: 0 of 1 replicas ready; kms-core-2: 0 of 1 replicas ready");
        assert_eq!(blocking.as_deref(), Some("kms-core-1"), "the first pending object is reported");
    }
}
