//! Waiting until objects are ready, by watching them.
//!
//! Targets are grouped by kind and namespace, so waiting on 1,000 objects costs a handful of
//! watches, not a request per object per poll. Workloads also get one pod watch per namespace:
//! a crashing or unschedulable pod fails its Deployment, StatefulSet or Job at once instead of
//! after its progress deadline. Every change is re-assessed immediately; a one-second tick
//! re-assesses time-based rules (grace periods, per-object timeouts). The watcher relists on
//! expired resource versions and retries transient errors with backoff; a forbidden or missing
//! resource fails the wait at once.

use super::rules::{self, Assessment, Health, RuleOptions};
use crate::client::Cluster;
use crate::error::K8sError;
use crate::object::{ObjRef, at, str_at};
use futures::stream::{self, BoxStream, StreamExt};
use kube::api::{Api, DynamicObject};
use kube::discovery::{ApiResource, Scope};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// What to wait for.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// One object.
    Object(ObjRef),
    /// Every object of a kind matching a label selector, and at least `min` of them.
    Selector {
        /// `apps/v1`.
        api_version: String,
        /// `Deployment`.
        kind: String,
        /// Namespace (`None`: cluster-scoped, or all namespaces).
        namespace: Option<String>,
        /// Label selector, e.g. `app=kms-core`.
        selector: String,
        /// Minimum number of matching objects.
        min: usize,
    },
}

impl std::fmt::Display for Target {
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
    /// Deadline for the whole wait.
    pub timeout: Duration,
    /// Deadline for each object, from the start of the wait.
    pub per_object_timeout: Option<Duration>,
    /// Stop at the first failed object (otherwise keep waiting: it may recover).
    pub fail_fast: bool,
    /// Rule settings.
    pub rules: RuleOptions,
    /// What is being waited for, for messages ("parties").
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

/// Where a wait stands, for progress views.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    /// Number of targets.
    pub total: usize,
    /// Targets ready.
    pub ready: usize,
    /// The targets still pending and why.
    pub pending: Vec<(String, String)>,
}

impl Progress {
    /// "3/13 ready; waiting for StatefulSet kms/x (0 of 1 ready), ..."
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
    /// One-line explanation.
    pub message: String,
    /// The object that blocked the wait (the failed one, or the first still pending).
    pub blocking: Option<Value>,
    /// Its assessment message.
    pub reason: String,
}

impl WaitFailure {
    /// As a script-facing error.
    pub fn into_error(self) -> K8sError {
        let mut details = rhai::Map::new();
        if let Some(b) = &self.blocking {
            details.insert("object".into(), ObjRef::of(b).to_string().into());
        }
        if self.timeout {
            K8sError::Timeout { message: self.message, details }
        } else {
            K8sError::Failed { message: self.message, details }
        }
    }
}

/// A rule supplied by the caller (a Rhai predicate): `None` defers to the built-in rules.
pub type Predicate<'a> = dyn FnMut(&Value) -> Result<Option<Assessment>, String> + 'a;

/// The watch events of one group, tagged with the group's index.
type GroupEvents = BoxStream<'static, (usize, Result<Event<DynamicObject>, watcher::Error>)>;

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct GroupKey {
    api_version: String,
    kind: String,
    namespace: Option<String>,
    selector: Option<String>,
    name: Option<String>,
}

struct Group {
    key: GroupKey,
    ar: ApiResource,
    namespaced: bool,
    synced: bool,
    store: BTreeMap<(String, String), Value>,
    buffer: Option<BTreeMap<(String, String), Value>>,
}

/// Wait until every target is ready. Returns the ready objects (selector targets expand to
/// every match).
pub async fn wait(
    cluster: &Cluster,
    targets: &[Target],
    opts: &WaitOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Vec<Value>, WaitFailure> {
    wait_with(cluster, targets, opts, None, progress).await
}

/// [`wait`] with a caller rule consulted before the built-in ones.
pub async fn wait_with(
    cluster: &Cluster,
    targets: &[Target],
    opts: &WaitOptions,
    mut predicate: Option<&mut Predicate<'_>>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Vec<Value>, WaitFailure> {
    // Nothing to wait for (e.g. a Helm release made only of hooks) is done, not "no watch".
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let start = Instant::now();
    let fail = |message: String| WaitFailure { timeout: false, message, blocking: None, reason: String::new() };

    // Resolve kinds and build one watch per (kind, namespace[, selector]).
    let mut groups: Vec<Group> = Vec::new();
    let mut target_group: Vec<usize> = Vec::new();
    let mut pod_namespaces: Vec<String> = Vec::new();
    let single_names = single_name_groups(targets);
    for t in targets {
        let (api_version, kind, namespace, selector, name) = match t {
            Target::Object(o) => (&o.api_version, &o.kind, o.namespace.clone(), None, Some(o.name.clone())),
            Target::Selector { api_version, kind, namespace, selector, .. } => {
                (api_version, kind, namespace.clone(), Some(selector.clone()), None)
            }
        };
        let (ar, caps) = cluster.resolve(api_version, kind).await.map_err(|e| fail(e.to_string()))?;
        let namespaced = caps.scope == Scope::Namespaced;
        let namespace = if namespaced { namespace } else { None };
        let key = GroupKey {
            api_version: api_version.clone(),
            kind: kind.clone(),
            namespace: namespace.clone(),
            name: name
                .filter(|n| single_names.contains(&(api_version.clone(), kind.clone(), namespace.clone(), n.clone()))),
            selector,
        };
        let idx = match groups.iter().position(|g| g.key == key) {
            Some(i) => i,
            None => {
                groups.push(Group { key, ar, namespaced, synced: false, store: BTreeMap::new(), buffer: None });
                groups.len() - 1
            }
        };
        target_group.push(idx);
        if is_workload_kind(kind)
            && let Some(ns) = namespace
            && !pod_namespaces.contains(&ns)
        {
            pod_namespaces.push(ns);
        }
    }
    let pod_group_start = groups.len();
    if !pod_namespaces.is_empty() {
        let (ar, _) = cluster.resolve("v1", "Pod").await.map_err(|e| fail(e.to_string()))?;
        for ns in &pod_namespaces {
            let key = GroupKey {
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: Some(ns.clone()),
                selector: None,
                name: None,
            };
            groups.push(Group {
                key,
                ar: ar.clone(),
                namespaced: true,
                synced: false,
                store: BTreeMap::new(),
                buffer: None,
            });
        }
    }

    let streams: Vec<GroupEvents> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let api: Api<DynamicObject> = match (&g.key.namespace, g.namespaced) {
                (Some(ns), true) => Api::namespaced_with(cluster.client().clone(), ns, &g.ar),
                _ => Api::all_with(cluster.client().clone(), &g.ar),
            };
            let mut cfg = watcher::Config::default();
            if let Some(s) = &g.key.selector {
                cfg = cfg.labels(s);
            }
            if let Some(n) = &g.key.name {
                cfg = cfg.fields(&format!("metadata.name={n}"));
            }
            watcher::watcher(api, cfg).default_backoff().map(move |e| (i, e)).boxed()
        })
        .collect();
    let mut events = stream::select_all(streams);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = tokio::time::sleep(opts.timeout);
    tokio::pin!(deadline);
    let mut last_progress: Option<Progress> = None;
    let mut errors_in_a_row: HashMap<usize, u32> = HashMap::new();

    loop {
        // Apply everything already queued before assessing: fewer, more consistent assessments.
        tokio::select! {
            biased;
            _ = &mut deadline => {
                let states = assess_all(targets, &target_group, &groups, pod_group_start, opts, &mut predicate);
                return Err(timeout_failure(targets, &states, opts));
            }
            ev = events.next() => {
                let Some((gi, ev)) = ev else { return Err(fail("every watch ended".into())) };
                handle(&mut groups[gi], ev, gi, &mut errors_in_a_row).map_err(fail)?;
                while let Some(Some((gi, ev))) = futures::FutureExt::now_or_never(events.next()) {
                    handle(&mut groups[gi], ev, gi, &mut errors_in_a_row).map_err(fail)?;
                }
            }
            _ = tick.tick() => {}
        }
        if !groups.iter().all(|g| g.synced) {
            continue;
        }
        let states = assess_all(targets, &target_group, &groups, pod_group_start, opts, &mut predicate);
        let ready = states.iter().filter(|s| s.assessment.health == Health::Ready).count();
        if ready == targets.len() {
            return Ok(states.into_iter().flat_map(|s| s.objects).collect());
        }
        if opts.fail_fast
            && let Some(s) = states.iter().find(|s| s.assessment.health == Health::Failed)
        {
            return Err(WaitFailure {
                timeout: false,
                message: format!("{}: {}", s.target, s.assessment.message),
                blocking: s.blocking.clone(),
                reason: s.reason(),
            });
        }
        if let Some(limit) = opts.per_object_timeout
            && start.elapsed() >= limit
            && let Some(s) = states.iter().find(|s| s.assessment.health != Health::Ready)
        {
            return Err(WaitFailure {
                timeout: true,
                message: format!("{} not ready after {}s: {}", s.target, limit.as_secs(), s.assessment.message),
                blocking: s.blocking.clone(),
                reason: s.reason(),
            });
        }
        let p = Progress {
            total: targets.len(),
            ready,
            pending: states
                .iter()
                .filter(|s| s.assessment.health != Health::Ready)
                .map(|s| (s.target.clone(), s.assessment.message.clone()))
                .collect(),
        };
        if last_progress.as_ref() != Some(&p) {
            progress(&p);
            last_progress = Some(p);
        }
    }
}

/// Names that are the only target of their kind and namespace get a name-scoped watch.
fn single_name_groups(targets: &[Target]) -> Vec<(String, String, Option<String>, String)> {
    let mut count: HashMap<(String, String, Option<String>), Vec<String>> = HashMap::new();
    for t in targets {
        if let Target::Object(o) = t {
            count.entry((o.api_version.clone(), o.kind.clone(), o.namespace.clone())).or_default().push(o.name.clone());
        }
    }
    count
        .into_iter()
        .filter(|(_, names)| names.len() == 1)
        .map(|((a, k, n), names)| (a, k, n, names[0].clone()))
        .collect()
}

fn handle(
    g: &mut Group,
    ev: Result<Event<DynamicObject>, watcher::Error>,
    gi: usize,
    errors: &mut HashMap<usize, u32>,
) -> Result<(), String> {
    let to_value = |o: DynamicObject| -> ((String, String), Value) {
        let mut v = serde_json::to_value(&o).unwrap_or_default();
        // Objects from list responses carry no apiVersion/kind.
        if v.get("kind").and_then(Value::as_str).is_none_or(str::is_empty) {
            v["kind"] = Value::String(g.ar.kind.clone());
            v["apiVersion"] = Value::String(g.ar.api_version.clone());
        }
        let key = (
            str_at(&v, &["metadata", "namespace"]).unwrap_or_default().to_string(),
            str_at(&v, &["metadata", "name"]).unwrap_or_default().to_string(),
        );
        (key, v)
    };
    match ev {
        Ok(ev) => {
            errors.remove(&gi);
            match ev {
                Event::Init => g.buffer = Some(BTreeMap::new()),
                Event::InitApply(o) => {
                    let (k, v) = to_value(o);
                    g.buffer.get_or_insert_with(BTreeMap::new).insert(k, v);
                }
                Event::InitDone => {
                    g.store = g.buffer.take().unwrap_or_default();
                    g.synced = true;
                }
                Event::Apply(o) => {
                    let (k, v) = to_value(o);
                    g.store.insert(k, v);
                }
                Event::Delete(o) => {
                    let (k, _) = to_value(o);
                    g.store.remove(&k);
                }
            }
            Ok(())
        }
        Err(e) => {
            let fatal = match &e {
                watcher::Error::InitialListFailed(kube::Error::Api(s))
                | watcher::Error::WatchStartFailed(kube::Error::Api(s)) => matches!(s.code, 401 | 403 | 404),
                watcher::Error::WatchError(s) => matches!(s.code, 401 | 403),
                _ => false,
            };
            let n = errors.entry(gi).or_default();
            *n += 1;
            tracing::debug!(kind = %g.key.kind, error = %e, attempt = *n, "watch error; retrying");
            if fatal {
                return Err(format!("cannot watch {} objects: {e}", g.key.kind));
            }
            Ok(())
        }
    }
}

struct State {
    target: String,
    assessment: Assessment,
    /// The object to report on, and why it blocks (in its own terms).
    blocking: Option<Value>,
    blocking_reason: Option<String>,
    objects: Vec<Value>,
}

impl State {
    fn reason(&self) -> String {
        self.blocking_reason.clone().unwrap_or_else(|| self.assessment.message.clone())
    }
}

fn assess_all(
    targets: &[Target],
    target_group: &[usize],
    groups: &[Group],
    pod_group_start: usize,
    opts: &WaitOptions,
    predicate: &mut Option<&mut Predicate<'_>>,
) -> Vec<State> {
    let now = jiff::Timestamp::now();
    targets
        .iter()
        .zip(target_group)
        .map(|(t, gi)| {
            let g = &groups[*gi];
            let objects: Vec<Value> = match t {
                Target::Object(o) => {
                    let key = (
                        if g.namespaced { o.namespace.clone().unwrap_or_default() } else { String::new() },
                        o.name.clone(),
                    );
                    g.store.get(&key).cloned().into_iter().collect()
                }
                Target::Selector { .. } => g.store.values().cloned().collect(),
            };
            let pods: Vec<&Value> = groups[pod_group_start..]
                .iter()
                .filter(|pg| pg.key.namespace == g.key.namespace)
                .flat_map(|pg| pg.store.values())
                .collect();
            let mut state = State {
                target: t.to_string(),
                assessment: ok(""),
                blocking: None,
                blocking_reason: None,
                objects: Vec::new(),
            };
            match t {
                Target::Object(_) if objects.is_empty() => {
                    state.assessment = Assessment { health: Health::Progressing, message: "not found yet".into() };
                }
                Target::Selector { min, .. } if objects.len() < *min => {
                    state.assessment = Assessment {
                        health: Health::Progressing,
                        message: format!("{} of at least {min} found", objects.len()),
                    };
                }
                _ => {
                    let mut not_ready = Vec::new();
                    for o in &objects {
                        let (a, blocking) = assess_one(o, &pods, now, opts, predicate);
                        match a.health {
                            Health::Ready => {}
                            Health::Failed => {
                                let msg = if objects.len() > 1 {
                                    format!("{}: {}", ObjRef::of(o), a.message)
                                } else {
                                    a.message
                                };
                                state.assessment = Assessment { health: Health::Failed, message: msg };
                                let (b, why) = blocking.map(|(b, r)| (b, Some(r))).unwrap_or_else(|| (o.clone(), None));
                                state.blocking = Some(b);
                                state.blocking_reason = why;
                                break;
                            }
                            Health::Progressing => {
                                if state.blocking.is_none() {
                                    let (b, why) =
                                        blocking.map(|(b, r)| (b, Some(r))).unwrap_or_else(|| (o.clone(), None));
                                    state.blocking = Some(b);
                                    state.blocking_reason = why;
                                }
                                not_ready.push(if objects.len() > 1 {
                                    format!("{}: {}", name_of(o), a.message)
                                } else {
                                    a.message
                                });
                            }
                        }
                    }
                    if state.assessment.health != Health::Failed {
                        state.assessment = if not_ready.is_empty() {
                            state.blocking = None;
                            ok("ready")
                        } else {
                            Assessment { health: Health::Progressing, message: not_ready.join("; ") }
                        };
                    }
                }
            }
            state.objects = objects;
            state
        })
        .collect()
}

/// Kinds whose pods can fail them fast.
fn is_workload_kind(kind: &str) -> bool {
    matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job")
}

fn ok(msg: &str) -> Assessment {
    Assessment { health: Health::Ready, message: msg.into() }
}

fn name_of(o: &Value) -> &str {
    str_at(o, &["metadata", "name"]).unwrap_or("?")
}

/// One object: the caller's predicate, else the built-in rules; a workload that is not ready
/// fails when one of its pods is in a fatal state. Returns the blocking object and its own
/// reason when it is not the object itself (the pod).
fn assess_one(
    o: &Value,
    pods: &[&Value],
    now: jiff::Timestamp,
    opts: &WaitOptions,
    predicate: &mut Option<&mut Predicate<'_>>,
) -> (Assessment, Option<(Value, String)>) {
    if let Some(p) = predicate {
        match p(o) {
            Ok(Some(a)) => return (a, None),
            Ok(None) => {}
            Err(e) => return (Assessment { health: Health::Failed, message: format!("predicate failed: {e}") }, None),
        }
    }
    let a = rules::assess(o, now, &opts.rules);
    if a.health != Health::Progressing || !rules::is_workload(o) {
        return (a, None);
    }
    let selector = at(o, &["spec", "selector"]).cloned().unwrap_or(Value::Null);
    for pod in pods.iter().filter(|p| labels_match(&selector, p)) {
        if let Some(reason) = rules::pod_blocker(pod, now, &opts.rules) {
            let msg = format!("pod {}: {reason}", name_of(pod));
            return (Assessment { health: Health::Failed, message: msg }, Some(((*pod).clone(), reason)));
        }
    }
    (a, None)
}

/// Does `obj`'s labels match a workload's `spec.selector` (matchLabels and matchExpressions)?
pub fn labels_match(selector: &Value, obj: &Value) -> bool {
    let labels = at(obj, &["metadata", "labels"]).and_then(Value::as_object);
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    if selector.is_null() {
        return false;
    }
    if let Some(ml) = selector.get("matchLabels").and_then(Value::as_object)
        && !ml.iter().all(|(k, v)| get(k) == v.as_str())
    {
        return false;
    }
    if let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let ok = match e.get("operator").and_then(Value::as_str) {
                Some("In") => get(key).is_some_and(|v| values.contains(&v)),
                Some("NotIn") => get(key).is_none_or(|v| !values.contains(&v)),
                Some("Exists") => get(key).is_some(),
                Some("DoesNotExist") => get(key).is_none(),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

fn timeout_failure(targets: &[Target], states: &[State], opts: &WaitOptions) -> WaitFailure {
    let pending: Vec<&State> = states.iter().filter(|s| s.assessment.health != Health::Ready).collect();
    let what = opts
        .what
        .clone()
        .unwrap_or_else(|| format!("{} object{}", targets.len(), if targets.len() == 1 { "" } else { "s" }));
    let list: Vec<String> =
        pending.iter().take(5).map(|s| format!("{} ({})", s.target, s.assessment.message)).collect();
    let more = if pending.len() > 5 { format!(" and {} more", pending.len() - 5) } else { String::new() };
    let first = pending.first();
    WaitFailure {
        timeout: true,
        message: format!(
            "timed out after {} waiting for {what}: {} of {} not ready: {}{more}",
            kmsctl_host::duration::format(opts.timeout),
            pending.len(),
            targets.len(),
            list.join(", ")
        ),
        blocking: first.and_then(|s| s.blocking.clone()),
        reason: first.map(|s| s.reason()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::labels_match;
    use serde_json::json;

    #[test]
    fn selectors_match_labels_and_expressions() {
        let pod = json!({"metadata": {"labels": {"app": "kms-core", "tier": "b"}}});
        assert!(labels_match(&json!({"matchLabels": {"app": "kms-core"}}), &pod));
        assert!(!labels_match(&json!({"matchLabels": {"app": "other"}}), &pod));
        assert!(labels_match(
            &json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}),
            &pod
        ));
        assert!(labels_match(&json!({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}), &pod));
        assert!(!labels_match(
            &json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["b"]}]}),
            &pod
        ));
        assert!(!labels_match(&json!(null), &pod));
    }
}
