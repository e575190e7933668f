//! Pods: Ready, finished, or in a state that will not resolve by waiting ([`pod_blocker`]),
//! which fails the pod and the workload that owns it.

use jiff::Timestamp;
use serde_json::Value;

use super::{Assessment, RuleOptions, cond_text, plural, timestamp};
use crate::json::{at, condition, condition_is, is_terminating, one_line, str_at};

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

pub(super) fn pod(obj: &Value, now: Timestamp, opts: &RuleOptions) -> Assessment {
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
    if is_terminating(pod) {
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
            s.push_str(&format!(": {}", one_line(m, 200)));
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
                s.push_str(&format!(": {}", one_line(msg, 300)));
            }
            return Some(s);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::rules::Health;
    use crate::readiness::rules::tests::{NOW, check, now};
    use serde_json::json;
    use std::time::Duration;

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
}
