//! Helm's JSON: releases, history, and the objects of a release's manifest.

use serde_json::Value;

/// A release status as helm reports it: `deployed`, `failed`, `pending-upgrade`, ...
pub(crate) fn status_of(release: &Value) -> &str {
    release.pointer("/info/status").and_then(Value::as_str).unwrap_or("unknown")
}

/// The release revision.
pub(crate) fn revision_of(release: &Value) -> i64 {
    release.get("version").and_then(Value::as_i64).unwrap_or(0)
}

/// The status of a release whose `helm uninstall` has begun and not finished.
pub(crate) const UNINSTALLING: &str = "uninstalling";

/// Is the release stuck in a `pending-*` state (an interrupted install, upgrade or rollback)?
pub(crate) fn is_pending(status: &str) -> bool {
    status.starts_with("pending-")
}

/// Is the release in a state helm refuses to upgrade: pending, or left [`UNINSTALLING`]?
pub(crate) fn is_stuck(status: &str) -> bool {
    is_pending(status) || status == UNINSTALLING
}

/// What helm says when the cluster, not the release, failed it: the API server restarting or
/// overloaded, a connection cut. Returns the matching text (for the log), `None` for any
/// other failure (a bad chart, a refused object, a hook that failed), which a retry would only
/// repeat.
pub(crate) fn is_transient(stderr: &str) -> Option<&'static str> {
    const TRANSIENT: [&str; 11] = [
        "connection refused",
        "connection reset by peer",
        "unexpected EOF",
        "i/o timeout",
        "TLS handshake timeout",
        "http2: server sent GOAWAY",
        "http2: client connection lost",
        "the server is currently unable to handle the request",
        "etcdserver: request timed out",
        "etcdserver: leader changed",
        // A restarted API server's allocator before its repair loop has run.
        "failed to allocate a serviceIP",
    ];
    TRANSIENT.into_iter().find(|t| stderr.contains(t))
}

/// `[{revision, status}]`, oldest first, from the labels of helm's release records
/// (`version`, `status`).
pub(crate) fn records_of(labels: impl IntoIterator<Item = std::collections::BTreeMap<String, String>>) -> Vec<Value> {
    let mut out: Vec<(i64, String)> =
        labels.into_iter().filter_map(|l| Some((l.get("version")?.parse().ok()?, l.get("status")?.clone()))).collect();
    out.sort();
    out.into_iter().map(|(revision, status)| serde_json::json!({"revision": revision, "status": status})).collect()
}

/// The latest revision's number (0 for no release).
pub(crate) fn latest_revision(history: &[Value]) -> i64 {
    history.iter().filter_map(|h| h.get("revision").and_then(Value::as_i64)).max().unwrap_or(0)
}

/// The status of the latest revision, from `helm history -o json`; `None` for no release.
pub(crate) fn latest_status(history: &[Value]) -> Option<&str> {
    history.iter().max_by_key(|h| h.get("revision").and_then(Value::as_i64))?.get("status")?.as_str()
}

/// The latest revision that was successfully deployed, from `helm history -o json`.
pub(crate) fn last_deployed(history: &[Value]) -> Option<i64> {
    history
        .iter()
        .filter(|h| matches!(h.get("status").and_then(Value::as_str), Some("deployed" | "superseded")))
        .filter_map(|h| h.get("revision").and_then(Value::as_i64))
        .max()
}

/// The objects a release installed (its manifest, hooks excluded).
pub(crate) fn manifest_objects(release: &Value) -> Result<Vec<Value>, String> {
    let text = release.get("manifest").and_then(Value::as_str).unwrap_or_default();
    let docs = kmsctl_host::from_yaml_all(text)?;
    Ok(docs.into_iter().filter(|d| d.is_object()).collect())
}

/// Hook Jobs whose last run failed.
pub(crate) fn failed_hook_jobs(release: &Value) -> Vec<Value> {
    release
        .get("hooks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|h| h.get("kind").and_then(Value::as_str) == Some("Job"))
        .filter(|h| h.pointer("/last_run/phase").and_then(Value::as_str) == Some("Failed"))
        .map(|h| serde_json::json!({ "apiVersion": "batch/v1", "kind": "Job", "metadata": { "name": h.get("name").cloned().unwrap_or_default() } }))
        .collect()
}

/// The release's test hooks (`helm.sh/hook: test`, or the old `test-success`) as helm last ran
/// them: `{name, kind, phase, started_at, completed_at}`, phase `()` for a test never run.
pub(crate) fn test_hooks(release: &Value) -> Vec<Value> {
    release
        .get("hooks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|h| {
            h.get("events")
                .and_then(Value::as_array)
                .is_some_and(|e| e.iter().any(|e| matches!(e.as_str(), Some("test" | "test-success"))))
        })
        .map(|h| {
            let run = |k: &str| h.pointer(&format!("/last_run/{k}")).filter(|v| v.as_str() != Some("")).cloned();
            serde_json::json!({
                "name": h.get("name").cloned().unwrap_or_default(),
                "kind": h.get("kind").cloned().unwrap_or_default(),
                "phase": run("phase"),
                "started_at": run("started_at"),
                "completed_at": run("completed_at"),
            })
        })
        .collect()
}

/// One run of a hook, from a release record: what the run report draws as a hook phase.
#[derive(Debug, PartialEq)]
pub(crate) struct HookRun {
    /// `Job kms-core-init`.
    pub what: String,
    /// When it started and completed (RFC 3339, as helm wrote them).
    pub started_at: String,
    /// Empty while it runs.
    pub completed_at: String,
    /// `Succeeded`, `Failed`, `Running`.
    pub phase: String,
}

/// The hooks of a release that have run, in the order helm lists them.
pub(crate) fn hook_runs(release: &Value) -> Vec<HookRun> {
    let s = |h: &Value, p: &str| h.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    release
        .get("hooks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|h| HookRun {
            what: format!("{} {}", s(h, "/kind"), s(h, "/name")),
            started_at: s(h, "/last_run/started_at"),
            completed_at: s(h, "/last_run/completed_at"),
            phase: s(h, "/last_run/phase"),
        })
        .filter(|r| !r.started_at.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_runs_are_read_from_the_release_record() {
        let rel = serde_json::json!({"hooks": [
            {"name": "init", "kind": "Job", "last_run": {"started_at": "2026-12-01T10:00:00.5Z", "completed_at": "2026-12-01T10:00:02Z", "phase": "Succeeded"}},
            {"name": "never", "kind": "Job", "last_run": {"started_at": "", "phase": ""}},
            {"name": "cfg", "kind": "ConfigMap"},
        ]});
        assert_eq!(
            hook_runs(&rel),
            [HookRun {
                what: "Job init".into(),
                started_at: "2026-12-01T10:00:00.5Z".into(),
                completed_at: "2026-12-01T10:00:02Z".into(),
                phase: "Succeeded".into()
            }]
        );
    }
    use serde_json::json;

    #[test]
    fn reads_status_history_and_manifest() {
        let rel = json!({
            "version": 3,
            "info": {"status": "pending-upgrade"},
            "manifest": "---\napiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\n# only a comment\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: b}\n",
            "hooks": [
                {"name": "init", "kind": "Job", "last_run": {"phase": "Failed"}},
                {"name": "cfg", "kind": "ConfigMap", "last_run": {"phase": "Succeeded"}},
            ],
        });
        assert_eq!(status_of(&rel), "pending-upgrade");
        assert!(is_pending(status_of(&rel)));
        assert!(is_stuck("uninstalling") && is_stuck("pending-install"));
        assert!(!is_stuck("deployed") && !is_stuck("failed") && !is_stuck("superseded"));
        assert_eq!(revision_of(&rel), 3);
        let objs = manifest_objects(&rel).unwrap();
        assert_eq!(objs.iter().map(|o| o["kind"].as_str().unwrap()).collect::<Vec<_>>(), ["Service", "StatefulSet"]);
        assert_eq!(failed_hook_jobs(&rel)[0]["metadata"]["name"], "init");
        assert!(test_hooks(&rel).is_empty());
        let tested = json!({"hooks": [
            {"name": "t1", "kind": "Pod", "events": ["test"], "last_run": {"phase": "Failed", "started_at": "a", "completed_at": "b"}},
            {"name": "t0", "kind": "Pod", "events": ["test-success"], "last_run": {"phase": "", "started_at": "", "completed_at": ""}},
            {"name": "pre", "kind": "Job", "events": ["pre-install"], "last_run": {"phase": "Succeeded"}},
        ]});
        assert_eq!(
            test_hooks(&tested),
            [
                json!({"name": "t1", "kind": "Pod", "phase": "Failed", "started_at": "a", "completed_at": "b"}),
                json!({"name": "t0", "kind": "Pod", "phase": null, "started_at": null, "completed_at": null}),
            ]
        );
        let history = vec![
            json!({"revision": 1, "status": "superseded"}),
            json!({"revision": 2, "status": "deployed"}),
            json!({"revision": 3, "status": "pending-upgrade"}),
        ];
        assert_eq!(last_deployed(&history), Some(2));
        assert_eq!((latest_revision(&history), latest_revision(&[])), (3, 0));
        assert_eq!(latest_status(&history), Some("pending-upgrade"));
        assert_eq!(latest_status(&[]), None);
        let labels = |v: &str, s: &str| {
            std::collections::BTreeMap::from([("version".to_string(), v.to_string()), ("status".into(), s.into())])
        };
        let records = records_of([labels("10", "pending-upgrade"), labels("9", "deployed"), labels("x", "failed")]);
        assert_eq!(
            records,
            [json!({"revision": 9, "status": "deployed"}), json!({"revision": 10, "status": "pending-upgrade"})]
        );
        assert_eq!(last_deployed(&[json!({"revision": 1, "status": "pending-install"})]), None);
    }

    #[test]
    fn only_cluster_outages_are_transient() {
        let outage = "Error: server-side apply failed for object ns/x /v1, Kind=Service: Patch \"https://127.0.0.1:1/api\": unexpected EOF";
        assert_eq!(is_transient(outage), Some("unexpected EOF"));
        assert_eq!(
            is_transient("Error: Kubernetes cluster unreachable: dial tcp 127.0.0.1:1: connect: connection refused"),
            Some("connection refused")
        );
        for permanent in [
            "Error: INSTALLATION FAILED: template: kms-core/templates/x.yaml:3: function \"nope\" not defined",
            "Error: UPGRADE FAILED: failed pre-install: job failed: BackoffLimitExceeded",
            "Error: admission webhook denied the request",
        ] {
            assert_eq!(is_transient(permanent), None, "{permanent}");
        }
    }
}
