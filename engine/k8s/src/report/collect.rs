//! Collecting a report from the cluster: a bounded number of calls, each with a timeout and
//! all within a budget, because the run is already failing and must not hang on its report.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod, Secret};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, LogParams};
use kube::core::GroupVersion;
use serde_json::Value;
use tokio::time::Instant;

use super::render::{
    claim_names, claim_report, event_line, kind_rank, pod_report, pull_secrets, pulling_fails, rank_pods, unscheduled,
};
use super::{ClaimReport, EventLine, FailureReport, LogTail, PodReport};
use crate::error::K8sError;
use crate::json::{ObjRef, name_of, str_at};
use crate::readiness::{RuleOptions, owner_ref, owns, pod_selector};

/// Pods described per report: the failing ones first.
const MAX_PODS: usize = 5;
/// Claims followed per report.
const MAX_CLAIMS: usize = 5;
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

/// Why a call of the report gave nothing.
#[derive(Debug)]
enum CallError {
    /// The API server answered with an error.
    Kube(kube::Error),
    /// No answer within this long.
    TimedOut(Duration),
    /// The report's budget was used up before the call.
    OverBudget,
}

impl std::fmt::Display for CallError {
    /// The text of a note.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Kube(kube::Error::Api(s)) => write!(f, "{} ({})", s.message, s.code),
            Self::Kube(e) => write!(f, "{e}"),
            Self::TimedOut(d) => write!(f, "no answer within {}s", d.as_secs()),
            Self::OverBudget => write!(f, "skipped: the report's {}s budget is used up", REPORT_BUDGET.as_secs()),
        }
    }
}

impl CallError {
    /// As the crate's error, for callers that fail rather than note (`kc.events`).
    fn into_error(self, context: &str) -> K8sError {
        match self {
            Self::Kube(e) => K8sError::from_kube(context, e),
            other => K8sError::Unreachable(format!("{context}: {other}")),
        }
    }
}

/// Await an API call with [`CALL_TIMEOUT`], and not past `deadline`.
async fn call<T>(deadline: Instant, fut: impl Future<Output = kube::Result<T>>) -> Result<T, CallError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(CallError::OverBudget);
    }
    let limit = left.min(CALL_TIMEOUT);
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r.map_err(CallError::Kube),
        Err(_) => Err(CallError::TimedOut(limit)),
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

impl FailureReport {
    /// Collect the failure report of `obj` (the object a wait blocked on); `reason` is why it
    /// blocked. Never fails: what cannot be fetched is recorded in [`FailureReport::notes`].
    pub async fn collect(client: &kube::Client, obj: &Value, reason: &str) -> FailureReport {
        let object = ObjRef::of(obj);
        let ns = object.namespace.clone();
        let mut notes = Vec::new();
        let deadline = Instant::now() + REPORT_BUDGET;

        let owners = owners_of(client, obj, ns.as_deref(), deadline, &mut notes).await;

        // A Deployment owns its pods through its ReplicaSets; FailedCreate (quota, admission
        // webhooks) lands on the newest ones.
        let mut replicasets = Vec::new();
        if let (Some(ns), true) = (ns.as_deref(), object.kind == "Deployment") {
            match replicasets_of(client, obj, ns, deadline).await {
                Ok(rs) => replicasets = rs,
                Err(e) => notes.push(format!("replicasets: {e}")),
            }
        }

        let mut pod_values = Vec::new();
        if let Some(ns) = ns.as_deref() {
            pod_values = pods_of(client, obj, ns, &replicasets, deadline, &mut notes).await;
        }

        // Claims of the pods still waiting for a node: an unbound claim holds them.
        let mut claims = Vec::new();
        if let Some(ns) = ns.as_deref() {
            let names: BTreeSet<String> = pod_values.iter().filter(|p| unscheduled(p)).flat_map(claim_names).collect();
            claims = claims_of(client, ns, names.into_iter().take(MAX_CLAIMS), deadline, &mut notes).await;
        }

        // Whose events: the object, its owners, the newest ReplicaSets, the pods, the claims.
        let mut subjects: Vec<(String, String)> = vec![(object.kind.clone(), object.name.clone())];
        subjects.extend(owners.iter().map(|o| (o.kind.clone(), o.name.clone())));
        subjects.extend(newest(&replicasets, 2).into_iter().map(|n| ("ReplicaSet".to_string(), n)));
        subjects.extend(pod_values.iter().map(|p| ("Pod".to_string(), name_of(p).to_string())));
        subjects.extend(claims.iter().map(|c| ("PersistentVolumeClaim".to_string(), c.name.clone())));
        let mut seen = BTreeSet::new();
        subjects.retain(|s| seen.insert(s.clone()));
        // Events of cluster-scoped objects are recorded in `default`.
        let ns_of_events = ns.as_deref().unwrap_or("default");
        let (events, failed) = events_within(client, ns_of_events, &subjects, deadline).await;
        notes.extend(failed);

        // Pod details, logs, and the pull secrets of pods that cannot pull their image.
        let now = jiff::Timestamp::now();
        let opts = RuleOptions::default();
        let mut pods = Vec::new();
        for p in &pod_values {
            let mut report = pod_report(p, now, &opts);
            if let Some(ns) = ns.as_deref() {
                report.logs = logs_of(client, ns, &report, deadline).await;
                if pulling_fails(&report) {
                    report.missing_pull_secrets = missing_secrets(client, ns, &pull_secrets(p), deadline).await;
                }
            }
            pods.push(report);
        }
        FailureReport { object, reason: reason.to_string(), owners, pods, claims, events, notes }
    }
}

/// The owner chain upward, nearest first.
async fn owners_of(
    client: &kube::Client,
    obj: &Value,
    ns: Option<&str>,
    deadline: Instant,
    notes: &mut Vec<String>,
) -> Vec<ObjRef> {
    let mut owners = Vec::new();
    let mut cur = obj.clone();
    while owners.len() < MAX_OWNERS {
        let Some(r) = owner_ref(&cur) else { break };
        let (av, kind, name) = (
            str_at(r, &["apiVersion"]).unwrap_or_default(),
            str_at(r, &["kind"]).unwrap_or_default(),
            str_at(r, &["name"]).unwrap_or_default(),
        );
        let oref =
            ObjRef { api_version: av.into(), kind: kind.into(), namespace: ns.map(str::to_string), name: name.into() };
        let Some(api) = dynamic_api(client, av, kind, ns) else {
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
    owners
}

/// The pods to describe: the object itself if it is a pod, else the pods the workload owns
/// (listed by its selector, kept by ownership), failing ones first.
async fn pods_of(
    client: &kube::Client,
    obj: &Value,
    ns: &str,
    replicasets: &[Value],
    deadline: Instant,
    notes: &mut Vec<String>,
) -> Vec<Value> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let object = ObjRef::of(obj);
    if object.kind == "Pod" && object.api_version == "v1" {
        return match call(deadline, api.get(&object.name)).await {
            Ok(p) => vec![to_value(&p)],
            Err(e) => {
                notes.push(format!("pod {}: {e} (showing its last known state)", object.name));
                vec![obj.clone()]
            }
        };
    }
    let Some(sel) = pod_selector(obj) else { return Vec::new() };
    let list = match call(deadline, api.list(&ListParams::default().labels_from(&sel))).await {
        Ok(list) => list,
        Err(e) => {
            notes.push(format!("pods ({sel}): {e}"));
            return Vec::new();
        }
    };
    let rs: Vec<&Value> = replicasets.iter().collect();
    let mut own: Vec<Value> = list.items.iter().map(to_value).filter(|p| owns(obj, p, &rs)).collect();
    if own.is_empty() {
        let others = if list.items.is_empty() { String::new() } else { format!(" ({} of others)", list.items.len()) };
        notes.push(format!("no pods of its own match {sel}{others}"));
    }
    let total = own.len();
    rank_pods(&mut own);
    own.truncate(MAX_PODS);
    if total > own.len() {
        notes.push(format!("{} of {total} pods described (not-ready ones first)", own.len()));
    }
    own
}

/// The ReplicaSets a Deployment controls.
async fn replicasets_of(
    client: &kube::Client,
    deploy: &Value,
    ns: &str,
    deadline: Instant,
) -> Result<Vec<Value>, CallError> {
    let Some(sel) = pod_selector(deploy) else { return Ok(Vec::new()) };
    let Some(api) = dynamic_api(client, "apps/v1", "ReplicaSet", Some(ns)) else { return Ok(Vec::new()) };
    let list = call(deadline, api.list(&ListParams::default().labels_from(&sel))).await?;
    Ok(list.items.iter().map(to_value).filter(|rs| owns(deploy, rs, &[])).collect())
}

/// The names of the `n` newest ReplicaSets, by the Deployment's revision annotation.
fn newest(replicasets: &[Value], n: usize) -> Vec<String> {
    let mut rs: Vec<(i64, &str)> = replicasets
        .iter()
        .map(|r| {
            let rev = str_at(r, &["metadata", "annotations", "deployment.kubernetes.io/revision"])
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            (rev, name_of(r))
        })
        .collect();
    rs.sort_by(|a, b| b.cmp(a));
    rs.into_iter().take(n).map(|(_, name)| name.to_string()).collect()
}

/// Each claim's state; a claim that does not exist says so.
async fn claims_of(
    client: &kube::Client,
    ns: &str,
    names: impl Iterator<Item = String>,
    deadline: Instant,
    notes: &mut Vec<String>,
) -> Vec<ClaimReport> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let mut out = Vec::new();
    for name in names {
        match call(deadline, api.get_opt(&name)).await {
            Ok(c) => out.push(claim_report(&name, c.map(|c| to_value(&c)).as_ref())),
            Err(e) => notes.push(format!("claim {name}: {e}")),
        }
    }
    out
}

/// Which of `names` are not Secrets of `ns`.
async fn missing_secrets(client: &kube::Client, ns: &str, names: &[String], deadline: Instant) -> Vec<String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut missing = Vec::new();
    for name in names {
        // Metadata only: nothing secret is read.
        if let Ok(None) = call(deadline, api.get_metadata_opt(name)).await {
            missing.push(name.clone());
        }
    }
    missing
}

/// core/v1 Events of an object in `ns`, the most recent 20, oldest first.
///
/// # Errors
///
/// The events could not be listed: the API server's answer (forbidden, a bad name), or no
/// answer in time.
pub(crate) async fn events_of(
    client: &kube::Client,
    ns: &str,
    kind: &str,
    name: &str,
) -> Result<Vec<EventLine>, K8sError> {
    let subjects = [(kind.to_string(), name.to_string())];
    let deadline = Instant::now() + REPORT_BUDGET;
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let list = call(deadline, api.list(&ListParams::default().fields(&event_fields(&subjects[0]))))
        .await
        .map_err(|e| e.into_error(&format!("events of {kind} {name}")))?;
    Ok(latest(list.items.iter().map(|e| event_line(&to_value(e))).collect()))
}

fn event_fields((kind, name): &(String, String)) -> String {
    format!("involvedObject.kind={kind},involvedObject.name={name}")
}

/// The events of every subject, and a note for each subject whose events could not be listed.
async fn events_within(
    client: &kube::Client,
    ns: &str,
    subjects: &[(String, String)],
    deadline: Instant,
) -> (Vec<EventLine>, Vec<String>) {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let lists = futures::future::join_all(subjects.iter().map(|s| {
        let api = api.clone();
        async move { (s, call(deadline, api.list(&ListParams::default().fields(&event_fields(s)))).await) }
    }))
    .await;
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    for ((kind, name), list) in lists {
        match list {
            Ok(list) => out.extend(list.items.iter().map(|e| event_line(&to_value(e)))),
            Err(e) => notes.push(format!("events of {kind} {name}: {e}")),
        }
    }
    (latest(out), notes)
}

/// The most recent [`MAX_EVENTS`], oldest first. Times have second precision: on ties,
/// controllers come before what they create.
fn latest(mut events: Vec<(Option<jiff::Timestamp>, EventLine)>) -> Vec<EventLine> {
    events.sort_by_key(|(t, e)| (*t, kind_rank(e.object.split(' ').next().unwrap_or_default())));
    let skip = events.len().saturating_sub(MAX_EVENTS);
    events.into_iter().skip(skip).map(|(_, e)| e).collect()
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
                Err(e) => (Vec::new(), Some(e.to_string())),
            };
            LogTail { pod: pod.name.clone(), container, previous, lines, error }
        }
    });
    futures::future::join_all(fetch).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_stop_at_the_budget() {
        let past = Instant::now();
        let r = call(past, async { Ok::<_, kube::Error>(1) }).await;
        assert_eq!(r.unwrap_err().to_string(), "skipped: the report's 30s budget is used up");
        let r = call(Instant::now() + Duration::from_secs(5), async { Ok::<_, kube::Error>(1) }).await;
        assert_eq!(r.unwrap(), 1);
    }

    /// `kc.events` used to call every failure "cannot reach the cluster".
    #[test]
    fn event_errors_keep_their_cause() {
        let status = |code: u16, message: &str| {
            CallError::Kube(kube::Error::Api(kube::core::Status::failure(message, "").with_code(code).boxed()))
        };
        let e = status(403, "events is forbidden").into_error("events of Pod p");
        assert!(matches!(e, K8sError::Rejected(_)), "{e:?}");
        assert_eq!(e.to_string(), "events of Pod p: events is forbidden");
        let e = status(400, "invalid field selector").into_error("events of Pod p");
        assert_eq!(e.to_string(), "events of Pod p: invalid field selector");
        let e = CallError::TimedOut(Duration::from_secs(10)).into_error("events of Pod p");
        assert_eq!(e.to_string(), "cannot reach the cluster: events of Pod p: no answer within 10s");
    }

    #[test]
    fn newest_replicasets_by_revision() {
        let rs = |name: &str, rev: &str| serde_json::json!({"metadata": {"name": name, "annotations": {"deployment.kubernetes.io/revision": rev}}});
        assert_eq!(newest(&[rs("a", "1"), rs("c", "3"), rs("b", "2")], 2), ["c", "b"]);
    }
}
