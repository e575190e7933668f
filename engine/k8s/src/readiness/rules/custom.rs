//! CustomResourceDefinitions (Established, or failed when their names were rejected), Argo
//! Workflows (done when they end: the perf runs wait on them) and any other kind: the kstatus
//! condition conventions (Ready, Stalled, Reconciling) plus Crossplane's Synced.

use serde_json::Value;

use super::{Assessment, cond_text, stale_generation};
use crate::json::{at, condition, condition_is, int_at, one_line};

pub(super) fn crd(obj: &Value) -> Assessment {
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

/// An Argo Workflow is ready when it Succeeded and failed when it ended otherwise (Failed,
/// Error), naming the Pod nodes that failed; while it runs, which Pod nodes are running.
pub(super) fn workflow(obj: &Value) -> Assessment {
    let phase = at(obj, &["status", "phase"]).and_then(Value::as_str).unwrap_or("");
    let pods: Vec<&Value> = at(obj, &["status", "nodes"])
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|n| n.get("type").and_then(Value::as_str) == Some("Pod"))
        .collect();
    let named = |want: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = pods
            .iter()
            .filter(|n| want.contains(&n.get("phase").and_then(Value::as_str).unwrap_or("")))
            .map(|n| {
                let name = n.get("displayName").or_else(|| n.get("name")).and_then(Value::as_str).unwrap_or("?");
                match n.get("message").and_then(Value::as_str).filter(|m| !m.is_empty()) {
                    Some(m) => format!("{name} ({})", one_line(m, 120)),
                    None => name.to_string(),
                }
            })
            .collect();
        v.sort();
        v
    };
    let done = pods.iter().filter(|n| n.get("phase").and_then(Value::as_str) == Some("Succeeded")).count();
    match phase {
        "Succeeded" => Assessment::ready(format!("succeeded ({done} pod nodes)")),
        "Failed" | "Error" => {
            let message = at(obj, &["status", "message"]).and_then(Value::as_str).filter(|m| !m.is_empty());
            let failed = named(&["Failed", "Error"]);
            let mut text = format!("workflow {}", phase.to_lowercase());
            if let Some(m) = message {
                text.push_str(&format!(": {}", one_line(m, 200)));
            }
            if !failed.is_empty() {
                text.push_str(&format!("; failed: {}", failed.join(", ")));
            }
            Assessment::failed(text)
        }
        "" | "Pending" => Assessment::progressing("waiting for the workflow controller"),
        _ => {
            let running = named(&["Running", "Pending"]);
            let mut text = format!("{phase}: {done} of {} pod nodes done", pods.len());
            if !running.is_empty() {
                text.push_str(&format!("; running: {}", running.join(", ")));
            }
            Assessment::progressing(text)
        }
    }
}

/// kstatus conventions for any other kind.
pub(super) fn generic(obj: &Value) -> Assessment {
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
                Assessment::ready(m.map_or_else(|| "ready".to_string(), |m| one_line(m, 200)))
            }
            _ => Assessment::progressing(with_text("not ready", c)),
        };
    }
    let has_conditions = at(obj, &["status", "conditions"]).and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    Assessment::ready(if has_conditions { "exists (no Ready condition)" } else { "exists" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::rules::Health;
    use crate::readiness::rules::tests::check;
    use serde_json::json;

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
    fn argo_workflows_are_ready_when_they_succeed_and_fail_naming_their_failed_nodes() {
        let wf = |phase: &str, message: &str, nodes: Value| {
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "perf", "generation": 3},
                "status": {"phase": phase, "message": message, "nodes": nodes}})
        };
        let node = |name: &str, ty: &str, phase: &str, msg: &str| json!({"name": format!("perf[0].{name}"), "displayName": name, "type": ty, "phase": phase, "message": msg});
        let nodes =
            |list: Vec<Value>| Value::Object(list.into_iter().enumerate().map(|(i, n)| (format!("n{i}"), n)).collect());
        check(&[
            (
                "no status yet",
                json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "p"}}),
                Health::Progressing,
                "waiting for the workflow controller",
            ),
            (
                "running",
                wf(
                    "Running",
                    "",
                    nodes(vec![
                        node("perf", "Steps", "Running", ""),
                        node("keygen", "Pod", "Succeeded", ""),
                        node("decrypt", "Pod", "Running", ""),
                        node("warmup", "Pod", "Pending", ""),
                    ]),
                ),
                Health::Progressing,
                "Running: 1 of 3 pod nodes done; running: decrypt, warmup",
            ),
            (
                "succeeded",
                wf("Succeeded", "", nodes(vec![node("keygen", "Pod", "Succeeded", "")])),
                Health::Ready,
                "succeeded (1 pod nodes)",
            ),
            (
                "failed",
                wf(
                    "Failed",
                    "child 'perf-1' failed",
                    nodes(vec![
                        node("keygen", "Pod", "Succeeded", ""),
                        node("decrypt", "Pod", "Failed", "Error (exit code 1)"),
                        node("perf", "Steps", "Failed", "child failed"),
                    ]),
                ),
                Health::Failed,
                "workflow failed: child 'perf-1' failed; failed: decrypt (Error (exit code 1))",
            ),
            (
                "deadline",
                wf(
                    "Failed",
                    "Max duration limit exceeded",
                    nodes(vec![node("long", "Pod", "Failed", "Step exceeded its deadline")]),
                ),
                Health::Failed,
                "workflow failed: Max duration limit exceeded; failed: long (Step exceeded its deadline)",
            ),
            (
                "error",
                wf("Error", "invalid spec: unresolved {{inputs.parameters.x}}", nodes(vec![])),
                Health::Failed,
                "workflow error: invalid spec: unresolved {{inputs.parameters.x}}",
            ),
        ]);
    }
}
