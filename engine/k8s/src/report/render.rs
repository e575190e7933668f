//! From cluster JSON to the report's parts, and from the report to the terminal's few lines:
//! pure, so the wording of every failure is pinned by snapshot tests without a cluster.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{ClaimReport, ConditionLine, ContainerReport, EventLine, FailureReport, LogTail, PodReport};
use crate::json::{at, condition_is, int_at, name_of, one_line, str_at};
use crate::readiness::{Health, RuleOptions, assess, owner_ref, pod_blocker};

/// Failing pods first, then not-ready, then the rest; newest first within each.
pub(super) fn rank_pods(pods: &mut [Value]) {
    let now = jiff::Timestamp::now();
    let opts = RuleOptions::default();
    let rank = |p: &Value| {
        if pod_blocker(p, now, &opts).is_some() {
            0
        } else if assess(p, now, &opts).health != Health::Ready {
            1
        } else {
            2
        }
    };
    pods.sort_by(|a, b| {
        let created = |p: &Value| str_at(p, &["metadata", "creationTimestamp"]).unwrap_or_default().to_string();
        rank(a).cmp(&rank(b)).then_with(|| created(b).cmp(&created(a)))
    });
}

/// Creation order within a second: controllers, then ReplicaSets, then pods.
pub(super) fn kind_rank(kind: &str) -> u8 {
    match kind {
        "ReplicaSet" => 1,
        "Pod" => 2,
        _ => 0,
    }
}

/// An event as a line, with its sort time.
pub(super) fn event_line(e: &Value) -> (Option<jiff::Timestamp>, EventLine) {
    // Old-style events carry lastTimestamp/count; new-style (events.k8s.io) ones eventTime/series.
    let time = ["lastTimestamp", "eventTime", "firstTimestamp"]
        .iter()
        .find_map(|k| str_at(e, &[k]))
        .or_else(|| str_at(e, &["series", "lastObservedTime"]))
        .or_else(|| str_at(e, &["metadata", "creationTimestamp"]));
    let count = int_at(e, &["count"]).or_else(|| int_at(e, &["series", "count"])).unwrap_or(1);
    let line = EventLine {
        time: time.map(str::to_string),
        type_: str_at(e, &["type"]).unwrap_or("Normal").to_string(),
        reason: str_at(e, &["reason"]).unwrap_or_default().to_string(),
        object: format!(
            "{} {}",
            str_at(e, &["involvedObject", "kind"]).unwrap_or_default(),
            str_at(e, &["involvedObject", "name"]).unwrap_or_default()
        ),
        message: str_at(e, &["message"]).unwrap_or_default().trim().to_string(),
        count,
    };
    (time.and_then(|t| t.parse().ok()), line)
}

fn state_text(state: Option<&Value>) -> Option<(String, Option<String>)> {
    let state = state?;
    if let Some(w) = state.get("waiting") {
        let reason = w.get("reason").and_then(Value::as_str).unwrap_or("waiting");
        let msg = w.get("message").and_then(Value::as_str).map(str::to_string);
        return Some((format!("waiting: {reason}"), msg));
    }
    if let Some(t) = state.get("terminated") {
        let reason = t.get("reason").and_then(Value::as_str).unwrap_or("terminated");
        let code = t.get("exitCode").and_then(Value::as_i64).unwrap_or_default();
        let sig = t.get("signal").and_then(Value::as_i64).map(|s| format!(", signal {s}")).unwrap_or_default();
        let msg = t.get("message").and_then(Value::as_str).map(str::to_string);
        return Some((format!("terminated: {reason} (exit code {code}{sig})"), msg));
    }
    if state.get("running").is_some() {
        return Some(("running".to_string(), None));
    }
    None
}

/// A pod's state as a [`PodReport`] (without logs).
pub(super) fn pod_report(pod: &Value, now: jiff::Timestamp, opts: &RuleOptions) -> PodReport {
    let conditions = at(pod, &["status", "conditions"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
            ConditionLine {
                type_: s("type").unwrap_or_default(),
                status: s("status").unwrap_or_default(),
                reason: s("reason"),
                message: s("message"),
            }
        })
        .collect();
    let mut containers = Vec::new();
    for (key, init) in [("initContainerStatuses", true), ("containerStatuses", false)] {
        for c in at(pod, &["status", key]).and_then(Value::as_array).into_iter().flatten() {
            let (state, message) = state_text(c.get("state")).unwrap_or_else(|| ("unknown".to_string(), None));
            containers.push(ContainerReport {
                name: c.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
                init,
                ready: c.get("ready").and_then(Value::as_bool).unwrap_or(false),
                restart_count: c.get("restartCount").and_then(Value::as_i64).unwrap_or(0),
                state,
                last_state: state_text(c.get("lastState")).map(|(s, _)| s),
                message: message.filter(|m| !m.is_empty()),
            });
        }
    }
    // Containers without a status yet (not scheduled): still worth naming.
    for (key, init) in [("initContainers", true), ("containers", false)] {
        for c in at(pod, &["spec", key]).and_then(Value::as_array).into_iter().flatten() {
            let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
            if !containers.iter().any(|r| r.name == name) {
                containers.push(ContainerReport {
                    name: name.to_string(),
                    init,
                    ready: false,
                    restart_count: 0,
                    state: "not started".to_string(),
                    last_state: None,
                    message: None,
                });
            }
        }
    }
    let owner = owner_ref(pod).map(|r| {
        format!(
            "{} {}",
            r.get("kind").and_then(Value::as_str).unwrap_or_default(),
            r.get("name").and_then(Value::as_str).unwrap_or_default()
        )
    });
    PodReport {
        name: str_at(pod, &["metadata", "name"]).unwrap_or_default().to_string(),
        phase: str_at(pod, &["status", "phase"]).unwrap_or("Unknown").to_string(),
        node: str_at(pod, &["spec", "nodeName"]).map(str::to_string),
        owner,
        blocker: pod_blocker(pod, now, opts),
        missing_pull_secrets: Vec::new(),
        conditions,
        containers,
        logs: Vec::new(),
    }
}

/// The claims of a pod's volumes: `persistentVolumeClaim` volumes, and the `<pod>-<volume>`
/// claims of generic ephemeral volumes.
pub(super) fn claim_names(pod: &Value) -> Vec<String> {
    let pod_name = name_of(pod);
    at(pod, &["spec", "volumes"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| match (str_at(v, &["persistentVolumeClaim", "claimName"]), v.get("ephemeral")) {
            (Some(claim), _) => Some(claim.to_string()),
            (None, Some(_)) => Some(format!("{pod_name}-{}", str_at(v, &["name"])?)),
            _ => None,
        })
        .collect()
}

/// Is the pod still waiting for a node (whatever holds it: resources, taints, volumes)?
pub(super) fn unscheduled(pod: &Value) -> bool {
    str_at(pod, &["spec", "nodeName"]).is_none_or(str::is_empty) && !condition_is(pod, "PodScheduled", "True")
}

/// A claim as the report shows it; `None` is a claim that does not exist.
pub(super) fn claim_report(name: &str, claim: Option<&Value>) -> ClaimReport {
    ClaimReport {
        name: name.to_string(),
        phase: match claim {
            Some(c) => str_at(c, &["status", "phase"]).unwrap_or("Pending").to_string(),
            None => "not found".to_string(),
        },
        storage_class: claim.and_then(|c| str_at(c, &["spec", "storageClassName"])).map(str::to_string),
    }
}

/// Whether a container waits for an image the node could not pull.
pub(super) fn pulling_fails(pod: &PodReport) -> bool {
    pod.containers.iter().any(|c| c.state == "waiting: ImagePullBackOff" || c.state == "waiting: ErrImagePull")
}

/// `spec.imagePullSecrets` names.
pub(super) fn pull_secrets(pod: &Value) -> Vec<String> {
    at(pod, &["spec", "imagePullSecrets"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| str_at(s, &["name"]).map(str::to_string))
        .collect()
}

impl FailureReport {
    /// A few lines for the terminal: what failed, each failing pod's worst container, the last
    /// warnings, the last log lines of the crashing container. Details go to [`Self::write`].
    pub fn summary(&self) -> String {
        let mut out = format!("{}: {}\n", self.object, self.reason);
        if !self.owners.is_empty() {
            let chain: Vec<String> = self.owners.iter().map(|o| format!("{} {}", o.kind, o.name)).collect();
            out.push_str(&format!("  owners: {}\n", chain.join(" → ")));
        }
        for p in self.pods.iter().take(3) {
            let mut line = format!("  pod {}", p.name);
            if let Some(o) = &p.owner
                && self.pods.len() > 1
            {
                line.push_str(&format!(" ({o})"));
            }
            let bad: Vec<&ContainerReport> = p.containers.iter().filter(|c| !c.ready && !is_done_init(c)).collect();
            if bad.is_empty() {
                line.push_str(&format!(": {}", p.phase));
                if let Some(b) = &p.blocker {
                    line.push_str(&format!(", {b}"));
                }
                out.push_str(&line);
                out.push('\n');
                continue;
            }
            for c in bad.iter().take(2) {
                out.push_str(&format!("{line}: {}\n", container_text(c)));
            }
            if let Some(b) = &p.blocker
                && b.starts_with("unschedulable")
                && !self.reason.contains(b.as_str())
            {
                out.push_str(&format!("    {b}\n"));
            }
            for s in &p.missing_pull_secrets {
                out.push_str(&format!("    imagePullSecret {s} does not exist\n"));
            }
        }
        for c in self.claims.iter().filter(|c| c.phase != "Bound") {
            let class = c.storage_class.as_ref().map(|s| format!(" (storage class {s})")).unwrap_or_default();
            out.push_str(&format!("  claim {}: {}{class}\n", c.name, c.phase));
        }
        if self.pods.len() > 3 {
            out.push_str(&format!("  ... {} more pods in the report\n", self.pods.len() - 3));
        }
        // Warnings say why; without any, the latest events say what happened last.
        let warnings: Vec<&EventLine> = self.events.iter().filter(|e| e.type_ == "Warning").collect();
        let shown: Vec<&EventLine> = if warnings.is_empty() {
            self.events.iter().rev().take(2).rev().collect()
        } else {
            let mut seen = BTreeSet::new();
            let mut w: Vec<&EventLine> =
                warnings.into_iter().rev().filter(|e| seen.insert((&e.reason, &e.message))).take(3).collect();
            w.reverse();
            w
        };
        for e in shown {
            let times = if e.count > 1 { format!(" (x{})", e.count) } else { String::new() };
            out.push_str(&format!(
                "  event {} {}{times} on {}: {}\n",
                e.type_,
                e.reason,
                e.object,
                one_line(&e.message, 160)
            ));
        }
        if let Some(tail) = self.key_log() {
            let from = if tail.previous { "previous " } else { "" };
            out.push_str(&format!("  last log lines of {}{}/{}:\n", from, tail.pod, tail.container));
            let skip = tail.lines.len().saturating_sub(3);
            for l in tail.lines.iter().skip(skip) {
                out.push_str(&format!("    | {}\n", one_line(l, 200)));
            }
        }
        for n in self.notes.iter().take(2) {
            out.push_str(&format!("  note: {}\n", one_line(n, 200)));
        }
        if self.notes.len() > 2 {
            out.push_str(&format!("  ... {} more notes in the report\n", self.notes.len() - 2));
        }
        out
    }

    /// The log most likely to say why: the previous run of a restarted, not-ready container
    /// (what crashed), else the current log of a not-ready container.
    fn key_log(&self) -> Option<&LogTail> {
        let pod = self.pods.first()?;
        let bad: Vec<&ContainerReport> = pod.containers.iter().filter(|c| !c.ready && !is_done_init(c)).collect();
        let with_lines = |name: &str, previous: bool| {
            pod.logs.iter().find(|l| l.container == name && l.previous == previous && !l.lines.is_empty())
        };
        bad.iter()
            .find_map(|c| with_lines(&c.name, true))
            .or_else(|| bad.iter().find_map(|c| with_lines(&c.name, false)))
    }
}

/// A finished init container is not "not ready" in any useful sense.
fn is_done_init(c: &ContainerReport) -> bool {
    c.init && c.state.starts_with("terminated: ") && c.state.ends_with("(exit code 0)")
}

/// `waiting: CrashLoopBackOff, last terminated: Error (exit code 1), 4 restarts`.
fn container_text(c: &ContainerReport) -> String {
    let mut s = format!("{}{} {}", if c.init { "init container " } else { "container " }, c.name, c.state);
    if let Some(last) = &c.last_state {
        s.push_str(&format!(", last {last}"));
    }
    if c.restart_count > 0 {
        s.push_str(&format!(", {} restart{}", c.restart_count, if c.restart_count == 1 { "" } else { "s" }));
    }
    if let Some(m) = &c.message
        && !c.state.contains("CrashLoopBackOff")
    {
        s.push_str(&format!(": {}", one_line(m, 160)));
    }
    s
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::json::ObjRef;
    use serde_json::json;

    fn crashing_pod() -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-5d9c-x2b", "namespace": "kms", "creationTimestamp": "2026-01-01T11:00:00Z",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9c", "controller": true}]},
            "spec": {"nodeName": "kwok-node-0", "initContainers": [{"name": "migrate"}],
                "containers": [{"name": "kms-core"}, {"name": "sidecar"}, {"name": "later"}]},
            "status": {"phase": "Running",
                "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady",
                                "message": "containers with unready status: [kms-core]"}],
                "initContainerStatuses": [{"name": "migrate", "ready": true, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
                "containerStatuses": [
                    {"name": "kms-core", "ready": false, "restartCount": 4,
                     "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s restarting failed container"}},
                     "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}},
                    {"name": "sidecar", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T11:00:05Z"}}}]}})
    }

    pub(crate) fn report() -> FailureReport {
        let now: jiff::Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        let mut pod = pod_report(&crashing_pod(), now, &RuleOptions::default());
        pod.logs = vec![
            LogTail {
                pod: pod.name.clone(),
                container: "kms-core".into(),
                previous: false,
                lines: vec![],
                error: Some("container is waiting to start".into()),
            },
            LogTail {
                pod: pod.name.clone(),
                container: "kms-core".into(),
                previous: true,
                lines: vec![
                    "starting kms-core v0.12".into(),
                    "loading keys".into(),
                    "reading /keys/fhe.bin".into(),
                    "error: no such file or directory (os error 2)".into(),
                ],
                error: None,
            },
            LogTail {
                pod: pod.name.clone(),
                container: "sidecar".into(),
                previous: false,
                lines: vec!["ok".into()],
                error: None,
            },
        ];
        let ev = |time: &str, ty: &str, reason: &str, object: &str, message: &str, count: i64| EventLine {
            time: Some(time.into()),
            type_: ty.into(),
            reason: reason.into(),
            object: object.into(),
            message: message.into(),
            count,
        };
        FailureReport {
            object: ObjRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: Some("kms".into()),
                name: "web".into(),
            },
            reason: "pod web-5d9c-x2b: CrashLoopBackOff in container kms-core (exit code 1, 4 restarts)".into(),
            owners: vec![],
            pods: vec![pod],
            claims: vec![],
            events: vec![
                ev(
                    "2026-01-01T11:00:00Z",
                    "Normal",
                    "ScalingReplicaSet",
                    "Deployment web",
                    "Scaled up replica set web-5d9c from 0 to 1",
                    1,
                ),
                ev(
                    "2026-01-01T11:00:01Z",
                    "Normal",
                    "Pulled",
                    "Pod web-5d9c-x2b",
                    "Container image \"kms-core:v0.12\" already present on machine",
                    5,
                ),
                ev(
                    "2026-01-01T11:01:00Z",
                    "Warning",
                    "BackOff",
                    "Pod web-5d9c-x2b",
                    "Back-off restarting failed container kms-core in pod web-5d9c-x2b",
                    12,
                ),
            ],
            notes: vec!["replicasets: forbidden (403)".into()],
        }
    }

    #[test]
    fn pod_report_reads_states_and_exit_codes() {
        let r = &report().pods[0];
        assert_eq!(r.node.as_deref(), Some("kwok-node-0"));
        assert_eq!(r.owner.as_deref(), Some("ReplicaSet web-5d9c"));
        assert_eq!(r.blocker.as_deref(), Some("CrashLoopBackOff in container kms-core (exit code 1, 4 restarts)"));
        let states: Vec<(&str, bool, &str, Option<&str>)> =
            r.containers.iter().map(|c| (c.name.as_str(), c.init, c.state.as_str(), c.last_state.as_deref())).collect();
        assert_eq!(
            states,
            [
                ("migrate", true, "terminated: Completed (exit code 0)", None),
                ("kms-core", false, "waiting: CrashLoopBackOff", Some("terminated: Error (exit code 1)")),
                ("sidecar", false, "running", None),
                ("later", false, "not started", None),
            ]
        );
        assert_eq!(r.containers[1].restart_count, 4);
        assert_eq!(r.conditions[0].reason.as_deref(), Some("ContainersNotReady"));
    }

    #[test]
    fn summary_is_short_and_names_the_cause() {
        insta::assert_snapshot!(report().summary(), @r"
        Deployment kms/web: pod web-5d9c-x2b: CrashLoopBackOff in container kms-core (exit code 1, 4 restarts)
          pod web-5d9c-x2b: container kms-core waiting: CrashLoopBackOff, last terminated: Error (exit code 1), 4 restarts
          pod web-5d9c-x2b: container later not started
          event Warning BackOff (x12) on Pod web-5d9c-x2b: Back-off restarting failed container kms-core in pod web-5d9c-x2b
          last log lines of previous web-5d9c-x2b/kms-core:
            | loading keys
            | reading /keys/fhe.bin
            | error: no such file or directory (os error 2)
          note: replicasets: forbidden (403)
        ");
    }

    #[test]
    fn summary_of_a_pod_with_owners_and_no_warnings() {
        let mut r = report();
        r.object = ObjRef {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: Some("kms".into()),
            name: "web-5d9c-x2b".into(),
        };
        r.reason = "timed out after 5m".into();
        r.owners = vec![
            ObjRef {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                namespace: Some("kms".into()),
                name: "web-5d9c".into(),
            },
            ObjRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: Some("kms".into()),
                name: "web".into(),
            },
        ];
        r.events.retain(|e| e.type_ == "Normal");
        r.pods[0].logs.clear();
        r.pods[0].containers.retain(|c| c.name == "kms-core");
        r.notes.clear();
        insta::assert_snapshot!(r.summary(), @r#"
        Pod kms/web-5d9c-x2b: timed out after 5m
          owners: ReplicaSet web-5d9c → Deployment web
          pod web-5d9c-x2b: container kms-core waiting: CrashLoopBackOff, last terminated: Error (exit code 1), 4 restarts
          event Normal ScalingReplicaSet on Deployment web: Scaled up replica set web-5d9c from 0 to 1
          event Normal Pulled (x5) on Pod web-5d9c-x2b: Container image "kms-core:v0.12" already present on machine
        "#);
    }

    #[test]
    fn events_take_the_best_time_and_count() {
        let (t, e) = event_line(&json!({"type": "Warning", "reason": "FailedScheduling",
            "involvedObject": {"kind": "Pod", "name": "p"}, "message": " 0/3 nodes are available \n",
            "eventTime": "2026-01-01T11:00:00.000000Z", "series": {"count": 7, "lastObservedTime": "2026-01-01T11:05:00Z"}}));
        assert_eq!(e.time.as_deref(), Some("2026-01-01T11:00:00.000000Z"));
        assert!(t.is_some());
        assert_eq!((e.count, e.object.as_str(), e.message.as_str()), (7, "Pod p", "0/3 nodes are available"));
        let (_, e) = event_line(&json!({"reason": "X", "metadata": {"creationTimestamp": "2026-01-01T10:00:00Z"}}));
        assert_eq!((e.type_.as_str(), e.count, e.time.as_deref()), ("Normal", 1, Some("2026-01-01T10:00:00Z")));
    }

    #[test]
    fn failing_pods_rank_first() {
        let ready = json!({"metadata": {"name": "ready", "creationTimestamp": "2026-01-01T12:00:00Z"}, "apiVersion": "v1", "kind": "Pod",
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
        let pending_old = json!({"metadata": {"name": "pending-old", "creationTimestamp": "2026-01-01T10:00:00Z"}, "apiVersion": "v1",
            "kind": "Pod", "status": {"phase": "Pending"}});
        let pending_new = json!({"metadata": {"name": "pending-new", "creationTimestamp": "2026-01-01T11:00:00Z"}, "apiVersion": "v1",
            "kind": "Pod", "status": {"phase": "Pending"}});
        let mut pods = vec![ready, pending_old, pending_new, crashing_pod()];
        rank_pods(&mut pods);
        let names: Vec<&str> = pods.iter().map(|p| str_at(p, &["metadata", "name"]).unwrap()).collect();
        assert_eq!(names, ["web-5d9c-x2b", "pending-new", "pending-old", "ready"]);
    }

    /// A report on one pod, as `collect` would build it for a pod that blocks on its own.
    fn pod_alone(pod: Value, events: Vec<EventLine>) -> FailureReport {
        let now: jiff::Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        let p = pod_report(&pod, now, &RuleOptions::default());
        FailureReport {
            object: ObjRef::of(&pod),
            reason: p.blocker.clone().unwrap_or_default(),
            owners: vec![],
            pods: vec![p],
            claims: vec![],
            events,
            notes: vec![],
        }
    }

    fn warning(object: &str, reason: &str, message: &str, count: i64) -> EventLine {
        EventLine {
            time: Some("2026-01-01T11:59:00Z".into()),
            type_: "Warning".into(),
            reason: reason.into(),
            object: object.into(),
            message: message.into(),
            count,
        }
    }

    fn pending_pod(spec: Value, status: Value) -> Value {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "kms-core", "image": "ghcr.io/zama-ai/kms-core:v0.12"}]);
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "kms-core-1-0", "namespace": "kms", "creationTimestamp": "2026-01-01T11:58:00Z",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "kms-core-1", "controller": true}]},
            "spec": spec, "status": status})
    }

    fn waiting_in(reason: &str, message: &str) -> Value {
        json!({"phase": "Pending", "containerStatuses": [{"name": "kms-core", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": reason, "message": message}}}]})
    }

    fn unschedulable(message: &str) -> Value {
        json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "lastTransitionTime": "2026-01-01T11:58:00Z", "message": message}]})
    }

    #[test]
    fn summary_names_a_missing_config_map() {
        let pod = pending_pod(
            json!({"nodeName": "kwok-node-0"}),
            waiting_in("CreateContainerConfigError", "configmap \"kms-core-1-config\" not found"),
        );
        let ev = warning("Pod kms-core-1-0", "Failed", "Error: configmap \"kms-core-1-config\" not found", 6);
        insta::assert_snapshot!(pod_alone(pod, vec![ev]).summary(), @r#"
        Pod kms/kms-core-1-0: CreateContainerConfigError in container kms-core: configmap "kms-core-1-config" not found
          pod kms-core-1-0: container kms-core waiting: CreateContainerConfigError: configmap "kms-core-1-config" not found
          event Warning Failed (x6) on Pod kms-core-1-0: Error: configmap "kms-core-1-config" not found
        "#);
    }

    #[test]
    fn summary_names_a_missing_image_pull_secret() {
        let pod = pending_pod(
            json!({"nodeName": "kwok-node-0", "imagePullSecrets": [{"name": "harbor-cred"}]}),
            waiting_in("ImagePullBackOff", "Back-off pulling image \"ghcr.io/zama-ai/kms-core:v0.12\""),
        );
        let mut r = pod_alone(
            pod,
            vec![
                warning(
                    "Pod kms-core-1-0",
                    "FailedToRetrieveImagePullSecret",
                    "Unable to retrieve some image pull secrets (harbor-cred); attempting to pull the image may not succeed.",
                    4,
                ),
                warning(
                    "Pod kms-core-1-0",
                    "Failed",
                    "Failed to pull image \"ghcr.io/zama-ai/kms-core:v0.12\": failed to authorize: 401 Unauthorized",
                    4,
                ),
            ],
        );
        assert!(pulling_fails(&r.pods[0]));
        r.pods[0].missing_pull_secrets = vec!["harbor-cred".into()];
        insta::assert_snapshot!(r.summary(), @r#"
        Pod kms/kms-core-1-0: ImagePullBackOff in container kms-core: Back-off pulling image "ghcr.io/zama-ai/kms-core:v0.12"
          pod kms-core-1-0: container kms-core waiting: ImagePullBackOff: Back-off pulling image "ghcr.io/zama-ai/kms-core:v0.12"
            imagePullSecret harbor-cred does not exist
          event Warning FailedToRetrieveImagePullSecret (x4) on Pod kms-core-1-0: Unable to retrieve some image pull secrets (harbor-cred); attempting to pull the image may not succeed.
          event Warning Failed (x4) on Pod kms-core-1-0: Failed to pull image "ghcr.io/zama-ai/kms-core:v0.12": failed to authorize: 401 Unauthorized
        "#);
    }

    #[test]
    fn summary_names_insufficient_cpu() {
        let msg = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.";
        let pod = pending_pod(json!({}), unschedulable(msg));
        let ev = warning("Pod kms-core-1-0", "FailedScheduling", msg, 3);
        insta::assert_snapshot!(pod_alone(pod, vec![ev]).summary(), @r#"
        Pod kms/kms-core-1-0: unschedulable for 120s: 0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.
          pod kms-core-1-0: container kms-core not started
          event Warning FailedScheduling (x3) on Pod kms-core-1-0: 0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.
        "#);
    }

    #[test]
    fn summary_names_an_untolerated_taint() {
        let msg = "0/3 nodes are available: 3 node(s) had untolerated taint {dedicated: kms}. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
        let pod = pending_pod(json!({}), unschedulable(msg));
        let ev = warning("Pod kms-core-1-0", "FailedScheduling", msg, 3);
        insta::assert_snapshot!(pod_alone(pod, vec![ev]).summary(), @r#"
        Pod kms/kms-core-1-0: unschedulable for 120s: 0/3 nodes are available: 3 node(s) had untolerated taint {dedicated: kms}. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.
          pod kms-core-1-0: container kms-core not started
          event Warning FailedScheduling (x3) on Pod kms-core-1-0: 0/3 nodes are available: 3 node(s) had untolerated taint {dedicated: kms}. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.
        "#);
    }

    #[test]
    fn summary_follows_an_unscheduled_pod_to_its_pending_claim() {
        let msg = "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
        let pod = pending_pod(
            json!({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data-kms-core-1-0"}},
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}, {"name": "tmp", "emptyDir": {}}]}),
            unschedulable(msg),
        );
        assert!(unscheduled(&pod));
        assert_eq!(claim_names(&pod), ["data-kms-core-1-0", "kms-core-1-0-scratch"]);
        let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data-kms-core-1-0"},
            "spec": {"storageClassName": "gp3"}, "status": {"phase": "Pending"}});
        let mut r = pod_alone(
            pod,
            vec![
                warning("Pod kms-core-1-0", "FailedScheduling", msg, 2),
                warning(
                    "PersistentVolumeClaim data-kms-core-1-0",
                    "ProvisioningFailed",
                    "storageclass.storage.k8s.io \"gp3\" not found",
                    5,
                ),
            ],
        );
        r.claims = vec![claim_report("data-kms-core-1-0", Some(&claim)), claim_report("kms-core-1-0-scratch", None)];
        insta::assert_snapshot!(r.summary(), @r#"
        Pod kms/kms-core-1-0: unschedulable for 120s: 0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.
          pod kms-core-1-0: container kms-core not started
          claim data-kms-core-1-0: Pending (storage class gp3)
          claim kms-core-1-0-scratch: not found
          event Warning FailedScheduling (x2) on Pod kms-core-1-0: 0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.
          event Warning ProvisioningFailed (x5) on PersistentVolumeClaim data-kms-core-1-0: storageclass.storage.k8s.io "gp3" not found
        "#);
    }
}
