//! The workload kinds: Deployment, StatefulSet, DaemonSet, ReplicaSet (and
//! ReplicationController), Job. Their status counts say how far a rollout is; a crashing pod
//! fails them sooner, but that is the waiter's business (it knows which pods they own).

use serde_json::Value;

use super::{Assessment, cond_reason, cond_text, count, plural, spec_replicas, stale_generation, unobserved};
use crate::json::{at, condition, condition_is, int_at, str_at};

pub(super) fn deployment(obj: &Value) -> Assessment {
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

pub(super) fn statefulset(obj: &Value) -> Assessment {
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

pub(super) fn daemonset(obj: &Value) -> Assessment {
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

pub(super) fn replicaset(obj: &Value) -> Assessment {
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

pub(super) fn job(obj: &Value) -> Assessment {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::rules::Health;
    use crate::readiness::rules::tests::check;
    use serde_json::json;

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
}
