//! The failure report: what to look at when a wait fails or times out, so nobody has to go and
//! find it with kubectl while the cluster moves on.
//!
//! [`FailureReport::collect`] (`collect`, the I/O) gathers the blocking object, its owner
//! chain, its most relevant pods (container states, exit codes, the last log lines of the
//! current and the previous container), the claims of pods that wait for volumes, missing
//! image pull secrets and the recent events of all of them. It never fails: whatever it
//! cannot fetch becomes a note. `render` (pure) turns cluster JSON into the report's parts and
//! the report into the few lines of [`FailureReport::summary`]; [`FailureReport::write`] puts
//! the details (JSON, summary, logs) under the artifacts dir.

mod collect;
mod render;

use std::path::{Path, PathBuf};

use crate::json::ObjRef;
use kmsctl_host::Redactor;

pub(crate) use collect::events_of;

/// Why a wait failed, with everything needed to see why without a cluster at hand.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FailureReport {
    /// The object the wait was blocked on (a workload's failing pod rather than the workload).
    pub object: ObjRef,
    /// Why it blocked: the assessment message, or e.g. "timed out after 5m".
    pub reason: String,
    /// The owner chain upward, nearest first: Pod → ReplicaSet → Deployment.
    pub owners: Vec<ObjRef>,
    /// The most relevant pods, failing ones first, then not-ready ones.
    pub pods: Vec<PodReport>,
    /// The PersistentVolumeClaims the not-yet-scheduled pods wait for.
    pub claims: Vec<ClaimReport>,
    /// Recent events of the object, its owners, its pods and their claims, oldest first.
    pub events: Vec<EventLine>,
    /// What could not be collected, and why.
    pub notes: Vec<String>,
}

/// One pod's state.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PodReport {
    /// The pod's name.
    pub name: String,
    /// `status.phase`: `Pending`, `Running`, `Failed`...
    pub phase: String,
    /// The node it runs on, once scheduled.
    pub node: Option<String>,
    /// Its controller, e.g. `ReplicaSet web-5d9c` (tells old pods from new ones).
    pub owner: Option<String>,
    /// Why the pod would fail its workload now ([`crate::pod_blocker`]), if it would.
    pub blocker: Option<String>,
    /// `status.conditions`.
    pub conditions: Vec<ConditionLine>,
    /// Init containers, then containers.
    pub containers: Vec<ContainerReport>,
    /// The `imagePullSecrets` it names that do not exist (why an image pull is refused).
    pub missing_pull_secrets: Vec<String>,
    /// Log tails, per container (and previous container).
    pub logs: Vec<LogTail>,
}

/// One pod condition.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConditionLine {
    /// `Ready`, `PodScheduled`, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// The machine-readable reason, e.g. `Unschedulable`.
    pub reason: Option<String>,
    /// The human message, e.g. `0/3 nodes are available: 3 Insufficient cpu.`
    pub message: Option<String>,
}

/// One container's state.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ContainerReport {
    /// The container's name.
    pub name: String,
    /// Whether it is an init container.
    pub init: bool,
    /// Whether it passes its readiness probe.
    pub ready: bool,
    /// Restarts so far.
    pub restart_count: i64,
    /// `running`, `waiting: CrashLoopBackOff`, `terminated: Error (exit code 1)`, `not started`.
    pub state: String,
    /// How the previous run ended, e.g. `terminated: Error (exit code 1)`.
    pub last_state: Option<String>,
    /// The waiting or terminated message, when there is one.
    pub message: Option<String>,
}

/// One PersistentVolumeClaim a pod waits for.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClaimReport {
    /// The claim's name.
    pub name: String,
    /// `status.phase` (`Pending`, `Bound`, `Lost`), or `not found` when it does not exist.
    pub phase: String,
    /// `spec.storageClassName`, when set.
    pub storage_class: Option<String>,
}

/// The end of a container's log.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogTail {
    /// The pod's name.
    pub pod: String,
    /// The container's name.
    pub container: String,
    /// The previous (crashed) container's log rather than the current one.
    pub previous: bool,
    /// The last lines.
    pub lines: Vec<String>,
    /// Why there are no lines, when the log could not be read.
    pub error: Option<String>,
}

/// One event.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EventLine {
    /// When it last happened (RFC 3339).
    pub time: Option<String>,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The reason, e.g. `BackOff`, `FailedScheduling`, `ProvisioningFailed`.
    pub reason: String,
    /// What it is about, e.g. `Pod web-5d9c-x2b`.
    pub object: String,
    /// What happened.
    pub message: String,
    /// How many times it happened.
    pub count: i64,
}

impl FailureReport {
    /// Write the report under `dir/<kind>-<namespace>-<name>/`: `report.json`, `summary.txt`
    /// and `logs/<pod>.<container>[.previous].log`. Returns that directory. Writing the same
    /// object's report again overwrites it. Secrets are scrubbed from the values before
    /// anything is serialised or written: in JSON a secret holding `"`, `\` or a newline is
    /// escaped and would no longer match, and a log tail is scrubbed whole, not line by line.
    ///
    /// # Errors
    ///
    /// Creating the directory or writing a file failed.
    pub fn write(&self, dir: &Path, redactor: &Redactor) -> std::io::Result<PathBuf> {
        let json = self.scrubbed(redactor)?;
        // Every file is rendered from the scrubbed values (the summary flattens newlines).
        let rep: FailureReport = serde_json::from_value(json.clone()).map_err(std::io::Error::other)?;
        let mut leaf = rep.object.kind.to_lowercase();
        if let Some(ns) = &rep.object.namespace {
            leaf.push('-');
            leaf.push_str(ns);
        }
        leaf.push('-');
        leaf.push_str(&rep.object.name);
        let out = dir.join(safe_file_name(&leaf));
        std::fs::create_dir_all(&out)?;
        let json = serde_json::to_string_pretty(&json).map_err(std::io::Error::other)?;
        std::fs::write(out.join("report.json"), json + "\n")?;
        std::fs::write(out.join("summary.txt"), rep.summary())?;
        let tails: Vec<&LogTail> = rep.pods.iter().flat_map(|p| &p.logs).filter(|l| !l.lines.is_empty()).collect();
        if !tails.is_empty() {
            let logs = out.join("logs");
            std::fs::create_dir_all(&logs)?;
            for t in tails {
                let name = format!("{}.{}{}.log", t.pod, t.container, if t.previous { ".previous" } else { "" });
                let mut text = t.lines.join("\n");
                text.push('\n');
                std::fs::write(logs.join(safe_file_name(&name)), text)?;
            }
        }
        Ok(out)
    }
}

impl FailureReport {
    /// The report as JSON with every secret scrubbed: log tails whole (a secret may span
    /// lines), then every string value (in JSON a secret holding `"`, `\` or a newline is
    /// escaped and would no longer match).
    ///
    /// # Errors
    ///
    /// The report cannot be serialised (it always can).
    pub fn scrubbed(&self, redactor: &Redactor) -> std::io::Result<serde_json::Value> {
        let mut tails = self.clone();
        for t in tails.pods.iter_mut().flat_map(|p| &mut p.logs) {
            t.lines = redactor.redact(&t.lines.join("\n")).lines().map(str::to_string).collect();
        }
        let mut json = serde_json::to_value(&tails).map_err(std::io::Error::other)?;
        redactor.scrub_json(&mut json);
        Ok(json)
    }
}

/// Object names are DNS labels; guard anyway, since a path comes from cluster data.
fn safe_file_name(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .collect::<String>()
        .trim_start_matches('.')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::render::tests::report;
    use super::*;

    #[test]
    fn write_creates_json_summary_and_logs() {
        let dir = tempfile::tempdir().unwrap();
        let r = report();
        let out = r.write(dir.path(), &Redactor::new()).unwrap();
        assert_eq!(out, dir.path().join("deployment-kms-web"));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
        assert_eq!(json["object"]["kind"], "Deployment");
        assert_eq!(json["pods"][0]["containers"][1]["last_state"], "terminated: Error (exit code 1)");
        assert_eq!(json["events"][2]["type"], "Warning");
        assert_eq!(json["notes"][0], "replicasets: forbidden (403)");
        assert_eq!(std::fs::read_to_string(out.join("summary.txt")).unwrap(), r.summary());
        let mut logs: Vec<String> = std::fs::read_dir(out.join("logs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        logs.sort();
        assert_eq!(logs, ["web-5d9c-x2b.kms-core.previous.log", "web-5d9c-x2b.sidecar.log"]);
        let prev = std::fs::read_to_string(out.join("logs/web-5d9c-x2b.kms-core.previous.log")).unwrap();
        assert!(prev.ends_with("error: no such file or directory (os error 2)\n"), "{prev}");
        // Writing again (a second failure of the same object) overwrites.
        assert_eq!(r.write(dir.path(), &Redactor::new()).unwrap(), out);
    }

    /// Regression: the report was written first and its files scrubbed afterwards, and in
    /// report.json a secret holding `"`, `\` or a newline is JSON-escaped, so the scrubber
    /// missed it; a multi-line secret in a log tail was split over lines.
    #[test]
    fn a_secret_with_quotes_backslashes_or_newlines_never_reaches_a_report_file() {
        const SECRET: &str = "pa\"ss\\wo\nrd-42";
        let redactor = Redactor::new();
        redactor.secret(SECRET);
        let mut r = report();
        r.reason = format!("login failed with {SECRET}");
        r.notes.push(format!("note {SECRET}"));
        let tail = &mut r.pods[0].logs[0];
        tail.lines = format!("before\nusing {SECRET} now\nafter").lines().map(str::to_string).collect();
        let dir = tempfile::tempdir().unwrap();
        let out = r.write(dir.path(), &redactor).unwrap();
        let escaped = serde_json::to_string(SECRET).unwrap();
        let escaped = escaped.trim_matches('"');
        let mut files = vec![out.join("report.json"), out.join("summary.txt")];
        files.extend(std::fs::read_dir(out.join("logs")).unwrap().map(|e| e.unwrap().path()));
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for leak in [SECRET, escaped, "pa\"ss", "wo\nrd-42"] {
                assert!(!text.contains(leak), "{leak:?} in {}:\n{text}", f.display());
            }
        }
        let json = std::fs::read_to_string(out.join("report.json")).unwrap();
        assert!(json.contains("login failed with ***") && json.contains("using *** now"), "{json}");
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(safe_file_name("../etc/passwd"), "_etc_passwd");
        assert_eq!(safe_file_name("pod-1.app.previous.log"), "pod-1.app.previous.log");
    }
}
