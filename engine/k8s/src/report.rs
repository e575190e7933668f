//! The failure report: what to look at when a wait fails or times out.
//!
//! [`collect`] gathers the blocking object, its owner chain, its most relevant pods (container
//! states, exit codes, the last log lines of the current and the previous container) and the
//! recent events of all of them. It never fails: whatever it cannot fetch becomes a note.
//! [`FailureReport::summary`] is the few lines for the terminal; [`FailureReport::write`] puts
//! the details (JSON, summary, logs) under the artifacts dir.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, LogParams};
use kube::core::GroupVersion;
use serde_json::Value;

use crate::object::{ObjRef, at, int_at, str_at};
use crate::readiness::rules::{self, RuleOptions};

/// Pods described per report: the failing ones first.
const MAX_PODS: usize = 5;
/// Log lines kept per container (and per previous container).
const LOG_LINES: i64 = 50;
/// Events kept, the most recent.
const MAX_EVENTS: usize = 20;
/// Owner references followed upward.
const MAX_OWNERS: usize = 5;
/// Each API call: a report must not hang the run that is already failing.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// All of a report's calls together.
const REPORT_BUDGET: Duration = Duration::from_secs(30);

/// Why a wait failed, with everything needed to see why without a cluster at hand.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FailureReport {
    /// The object the wait was blocked on.
    pub object: ObjRef,
    /// The assessment message, or e.g. "timed out after 5m".
    pub reason: String,
    /// The owner chain upward, nearest first: Pod → ReplicaSet → Deployment.
    pub owners: Vec<ObjRef>,
    /// The most relevant pods (not-ready ones first).
    pub pods: Vec<PodReport>,
    /// Recent events of the object, its owners and its pods, oldest first.
    pub events: Vec<EventLine>,
    /// What could not be collected, and why.
    pub notes: Vec<String>,
}

/// One pod's state.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PodReport {
    /// Pod name.
    pub name: String,
    /// `status.phase`.
    pub phase: String,
    /// The node it runs on, once scheduled.
    pub node: Option<String>,
    /// Its controller, e.g. `ReplicaSet web-5d9c` (tells old pods from new ones).
    pub owner: Option<String>,
    /// Why the pod would fail its workload now ([`rules::pod_blocker`]), if it would.
    pub blocker: Option<String>,
    /// `status.conditions`.
    pub conditions: Vec<ConditionLine>,
    /// Init containers, then containers.
    pub containers: Vec<ContainerReport>,
    /// Log tails, per container (and previous container).
    pub logs: Vec<LogTail>,
}

/// One pod condition.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ConditionLine {
    /// `Ready`, `PodScheduled`, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False`, `Unknown`.
    pub status: String,
    /// Machine-readable reason.
    pub reason: Option<String>,
    /// Human message.
    pub message: Option<String>,
}

/// One container's state.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ContainerReport {
    /// Container name.
    pub name: String,
    /// An init container?
    pub init: bool,
    /// Passing its readiness probe.
    pub ready: bool,
    /// Restarts so far.
    pub restart_count: i64,
    /// `running`, `waiting: CrashLoopBackOff`, `terminated: Error (exit code 1)`.
    pub state: String,
    /// The previous run's end, e.g. `terminated: Error (exit code 1)`.
    pub last_state: Option<String>,
    /// The waiting or terminated message, when there is one.
    pub message: Option<String>,
}

/// The end of a container's log.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LogTail {
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
    /// The previous (crashed) container's log rather than the current one.
    pub previous: bool,
    /// The last lines.
    pub lines: Vec<String>,
    /// Why there are no lines, when the log could not be read.
    pub error: Option<String>,
}

/// One event.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EventLine {
    /// When it last happened (RFC 3339).
    pub time: Option<String>,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `BackOff`, `FailedScheduling`, ...
    pub reason: String,
    /// `Pod web-5d9c-x2b`.
    pub object: String,
    /// What happened.
    pub message: String,
    /// How many times.
    pub count: i64,
}

/// Await an API call with [`CALL_TIMEOUT`], and not past `deadline`; errors become text for a
/// note.
async fn call<T>(deadline: Instant, fut: impl Future<Output = kube::Result<T>>) -> Result<T, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(format!("skipped: the report's {}s budget is used up", REPORT_BUDGET.as_secs()));
    }
    let limit = left.min(CALL_TIMEOUT);
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(kube::Error::Api(s))) => Err(format!("{} ({})", s.message, s.code)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", limit.as_secs())),
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A dynamic API for a kind, without discovery (plural guessed; right for the kinds that own
/// pods and for most CRDs).
fn dynamic_api(client: &kube::Client, api_version: &str, kind: &str, ns: Option<&str>) -> Option<Api<DynamicObject>> {
    let gvk = api_version.parse::<GroupVersion>().ok()?.with_kind(kind);
    let ar = ApiResource::from_gvk(&gvk);
    Some(match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    })
}

/// The owner reference to follow: the controller, else the first.
fn owner_ref(obj: &Value) -> Option<&Value> {
    let refs = at(obj, &["metadata", "ownerReferences"])?.as_array()?;
    refs.iter().find(|r| r.get("controller").and_then(Value::as_bool) == Some(true)).or_else(|| refs.first())
}

/// Collect the failure report of `obj`. `reason` is why the wait failed. Never fails: what it
/// cannot fetch is recorded in [`FailureReport::notes`].
pub async fn collect(client: &kube::Client, obj: &Value, reason: &str) -> FailureReport {
    let object = ObjRef::of(obj);
    let ns = object.namespace.clone();
    let mut notes = Vec::new();
    let deadline = Instant::now() + REPORT_BUDGET;

    // Owner chain, upward.
    let mut owners = Vec::new();
    let mut cur = obj.clone();
    while owners.len() < MAX_OWNERS {
        let Some(r) = owner_ref(&cur) else { break };
        let (av, kind, name) = (
            r.get("apiVersion").and_then(Value::as_str).unwrap_or_default(),
            r.get("kind").and_then(Value::as_str).unwrap_or_default(),
            r.get("name").and_then(Value::as_str).unwrap_or_default(),
        );
        let oref = ObjRef { api_version: av.into(), kind: kind.into(), namespace: ns.clone(), name: name.into() };
        let Some(api) = dynamic_api(client, av, kind, ns.as_deref()) else {
            notes.push(format!("owner {oref}: unknown apiVersion {av}"));
            owners.push(oref);
            break;
        };
        match call(deadline, api.get(name)).await {
            Ok(o) => {
                owners.push(oref);
                cur = to_value(&o);
            }
            Err(e) => {
                notes.push(format!("owner {oref}: {e}"));
                owners.push(oref);
                break;
            }
        }
    }

    // Pods.
    let mut pod_values = Vec::new();
    let mut pods_total = 0;
    if let Some(ns) = ns.as_deref() {
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        if object.kind == "Pod" && object.api_version == "v1" {
            match call(deadline, api.get(&object.name)).await {
                Ok(p) => pod_values.push(to_value(&p)),
                Err(e) => {
                    notes.push(format!("pod {}: {e} (showing its last known state)", object.name));
                    pod_values.push(obj.clone());
                }
            }
            pods_total = 1;
        } else if let Some(sel) = rules::pod_selector(obj) {
            match call(deadline, api.list(&ListParams::default().labels(&sel))).await {
                Ok(list) if list.items.is_empty() => notes.push(format!("no pods match {sel}")),
                Ok(list) => {
                    let mut all: Vec<Value> = list.items.iter().map(to_value).collect();
                    pods_total = all.len();
                    rank_pods(&mut all);
                    all.truncate(MAX_PODS);
                    pod_values = all;
                }
                Err(e) => notes.push(format!("pods ({sel}): {e}")),
            }
        }
    }
    if pods_total > pod_values.len() {
        notes.push(format!("{} of {pods_total} pods described (not-ready ones first)", pod_values.len()));
    }

    // Whose events: the object, its owners, a Deployment's newest ReplicaSets (FailedCreate
    // lands there: quota, admission webhooks), and the pods.
    let mut subjects: Vec<(String, String)> = vec![(object.kind.clone(), object.name.clone())];
    subjects.extend(owners.iter().map(|o| (o.kind.clone(), o.name.clone())));
    if let (Some(ns), true) = (ns.as_deref(), object.kind == "Deployment") {
        match replicasets_of(client, obj, ns, deadline).await {
            Ok(rs) => subjects.extend(rs.into_iter().map(|n| ("ReplicaSet".to_string(), n))),
            Err(e) => notes.push(format!("replicasets: {e}")),
        }
    }
    subjects.extend(
        pod_values
            .iter()
            .map(|p| ("Pod".to_string(), str_at(p, &["metadata", "name"]).unwrap_or_default().to_string())),
    );
    let mut seen = BTreeSet::new();
    subjects.retain(|s| seen.insert(s.clone()));
    // Events of cluster-scoped objects are recorded in `default`.
    let events = events_within(client, ns.as_deref().unwrap_or("default"), &subjects, &mut notes, deadline).await;

    // Pod details and logs.
    let now = jiff::Timestamp::now();
    let opts = RuleOptions::default();
    let mut pods = Vec::new();
    for p in &pod_values {
        let mut report = pod_report(p, now, &opts);
        if let Some(ns) = ns.as_deref() {
            report.logs = logs_of(client, ns, &report, deadline).await;
        }
        pods.push(report);
    }
    FailureReport { object, reason: reason.to_string(), owners, pods, events, notes }
}

/// Failing pods first, then not-ready, then the rest; newest first within each.
fn rank_pods(pods: &mut [Value]) {
    let now = jiff::Timestamp::now();
    let opts = RuleOptions::default();
    let rank = |p: &Value| {
        if rules::pod_blocker(p, now, &opts).is_some() {
            0
        } else if rules::assess(p, now, &opts).health != rules::Health::Ready {
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

/// The names of a Deployment's two newest ReplicaSets.
async fn replicasets_of(
    client: &kube::Client,
    deploy: &Value,
    ns: &str,
    deadline: Instant,
) -> Result<Vec<String>, String> {
    let Some(sel) = rules::pod_selector(deploy) else { return Ok(Vec::new()) };
    let uid = str_at(deploy, &["metadata", "uid"]).unwrap_or_default();
    let api = dynamic_api(client, "apps/v1", "ReplicaSet", Some(ns)).ok_or("apps/v1")?;
    let list = call(deadline, api.list(&ListParams::default().labels(&sel))).await?;
    let mut rs: Vec<(i64, String)> = list
        .items
        .iter()
        .map(to_value)
        .filter(|r| {
            at(r, &["metadata", "ownerReferences"])
                .and_then(Value::as_array)
                .is_some_and(|refs| refs.iter().any(|o| o.get("uid").and_then(Value::as_str) == Some(uid)))
        })
        .map(|r| {
            let rev = str_at(&r, &["metadata", "annotations", "deployment.kubernetes.io/revision"])
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            (rev, str_at(&r, &["metadata", "name"]).unwrap_or_default().to_string())
        })
        .collect();
    rs.sort_by(|a, b| b.cmp(a));
    Ok(rs.into_iter().take(2).map(|(_, n)| n).collect())
}

/// core/v1 Events of each subject (kind, name) in `ns`, the most recent 20, oldest
/// first. What cannot be listed is added to `notes`.
pub async fn events_of(
    client: &kube::Client,
    ns: &str,
    subjects: &[(String, String)],
    notes: &mut Vec<String>,
) -> Vec<EventLine> {
    events_within(client, ns, subjects, notes, Instant::now() + REPORT_BUDGET).await
}

async fn events_within(
    client: &kube::Client,
    ns: &str,
    subjects: &[(String, String)],
    notes: &mut Vec<String>,
    deadline: Instant,
) -> Vec<EventLine> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let lists = futures::future::join_all(subjects.iter().map(|(kind, name)| {
        let fields = format!("involvedObject.kind={kind},involvedObject.name={name}");
        let api = api.clone();
        async move { (kind, name, call(deadline, api.list(&ListParams::default().fields(&fields))).await) }
    }))
    .await;
    let mut out: Vec<(Option<jiff::Timestamp>, EventLine)> = Vec::new();
    for (kind, name, list) in lists {
        match list {
            Ok(list) => out.extend(list.items.iter().map(|e| event_line(&to_value(e)))),
            Err(e) => notes.push(format!("events of {kind} {name}: {e}")),
        }
    }
    // Times have second precision: on ties, put controllers before what they create.
    out.sort_by_key(|(t, e)| (*t, kind_rank(e.object.split(' ').next().unwrap_or_default())));
    let skip = out.len().saturating_sub(MAX_EVENTS);
    out.into_iter().skip(skip).map(|(_, e)| e).collect()
}

/// Creation order within a second: controllers, then ReplicaSets, then pods.
fn kind_rank(kind: &str) -> u8 {
    match kind {
        "ReplicaSet" => 1,
        "Pod" => 2,
        _ => 0,
    }
}

/// An event as a line, with its sort time.
fn event_line(e: &Value) -> (Option<jiff::Timestamp>, EventLine) {
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
pub fn pod_report(pod: &Value, now: jiff::Timestamp, opts: &RuleOptions) -> PodReport {
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
        blocker: rules::pod_blocker(pod, now, opts),
        conditions,
        containers,
        logs: Vec::new(),
    }
}

/// The last lines of each started container, and of the previous one after a restart.
async fn logs_of(client: &kube::Client, ns: &str, pod: &PodReport, deadline: Instant) -> Vec<LogTail> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut wanted = Vec::new();
    for c in &pod.containers {
        let ran_before = c.restart_count > 0 || c.last_state.is_some();
        // A container that never ran (not started, pulling, bad config) has no log to read.
        if (!c.state.starts_with("waiting") && c.state != "not started") || ran_before {
            wanted.push((c.name.clone(), false));
        }
        if ran_before {
            wanted.push((c.name.clone(), true));
        }
    }
    let fetch = wanted.into_iter().map(|(container, previous)| {
        let api = api.clone();
        async move {
            let lp = LogParams {
                container: Some(container.clone()),
                previous,
                tail_lines: Some(LOG_LINES),
                ..LogParams::default()
            };
            let (lines, error) = match call(deadline, api.logs(&pod.name, &lp)).await {
                Ok(text) => (text.lines().map(str::to_string).collect(), None),
                Err(e) => (Vec::new(), Some(e)),
            };
            LogTail { pod: pod.name.clone(), container, previous, lines, error }
        }
    });
    futures::future::join_all(fetch).await
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
            {
                out.push_str(&format!("    {b}\n"));
            }
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

    /// [`Self::summary`] plus where the details were written.
    pub fn summary_with_files(&self, written: &Path) -> String {
        format!("{}  details: {}\n", self.summary(), written.display())
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

    /// Write the report under `dir/<kind>-<namespace>-<name>/`: `report.json`, `summary.txt`
    /// and `logs/<pod>.<container>[.previous].log`. Returns that directory.
    pub fn write(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let mut leaf = self.object.kind.to_lowercase();
        if let Some(ns) = &self.object.namespace {
            leaf.push('-');
            leaf.push_str(ns);
        }
        leaf.push('-');
        leaf.push_str(&self.object.name);
        let out = dir.join(safe_file_name(&leaf));
        std::fs::create_dir_all(&out)?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(out.join("report.json"), json + "\n")?;
        std::fs::write(out.join("summary.txt"), self.summary())?;
        let tails: Vec<&LogTail> = self.pods.iter().flat_map(|p| &p.logs).filter(|l| !l.lines.is_empty()).collect();
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

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut t: String = flat.chars().take(max).collect();
    t.push('…');
    t
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
    use super::*;
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

    fn report() -> FailureReport {
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
    fn write_creates_json_summary_and_logs() {
        let dir = std::env::temp_dir().join(format!("kmsctl-report-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let r = report();
        let out = r.write(&dir).unwrap();
        assert_eq!(out, dir.join("deployment-kms-web"));
        let json: Value = serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
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
        r.write(&dir).unwrap();
        assert!(r.summary_with_files(&out).ends_with(&format!("  details: {}\n", out.display())));
        std::fs::remove_dir_all(&dir).unwrap();
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

    #[tokio::test]
    async fn calls_stop_at_the_budget() {
        let past = Instant::now();
        let r = call(past, async { Ok::<_, kube::Error>(1) }).await;
        assert_eq!(r, Err("skipped: the report's 30s budget is used up".to_string()));
        let r = call(Instant::now() + Duration::from_secs(5), async { Ok::<_, kube::Error>(1) }).await;
        assert_eq!(r, Ok(1));
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(safe_file_name("../etc/passwd"), "_etc_passwd");
        assert_eq!(safe_file_name("pod-1.app.previous.log"), "pod-1.app.previous.log");
    }
}
