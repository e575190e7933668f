//! Waiting until objects are ready, by watching them.
//!
//! Targets are grouped by kind and namespace, so waiting on 1,000 objects costs a handful of
//! watches, not a request per object per poll. Workloads also get a pod watch per namespace
//! (and a ReplicaSet watch where there are Deployments, whose pods they own through them): a
//! crashing or unschedulable pod fails its own workload at once instead of after its progress
//! deadline. Each watch feeds a reflector store; every change is re-assessed immediately, and
//! a one-second tick re-assesses time-based rules (grace periods, per-object timeouts). The
//! watcher relists on expired resource versions and retries transient errors with backoff; a
//! forbidden or missing resource fails the wait at once.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, BoxStream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject};
use kube::core::{DynamicResourceScope, Resource};
use kube::discovery::{ApiResource, Scope};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::watcher::{self, Event};
use serde_json::Value;

use super::ownership;
use super::rules::Health;
use super::targets::{
    Context, Predicate, Progress, State, Target, WaitFailure, WaitOptions, assess_target, timeout_failure,
};
use crate::client::Cluster;
use crate::json::ObjRef;

/// A watched object as the JSON the rules read; its metadata is parsed once, for the store.
#[derive(Clone, Debug)]
struct Watched {
    meta: ObjectMeta,
    json: Value,
}

impl Resource for Watched {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(ar: &ApiResource) -> Cow<'_, str> {
        DynamicObject::kind(ar)
    }
    fn group(ar: &ApiResource) -> Cow<'_, str> {
        DynamicObject::group(ar)
    }
    fn version(ar: &ApiResource) -> Cow<'_, str> {
        DynamicObject::version(ar)
    }
    fn plural(ar: &ApiResource) -> Cow<'_, str> {
        DynamicObject::plural(ar)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

impl<'de> serde::Deserialize<'de> for Watched {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json = Value::deserialize(d)?;
        let meta = match json.get("metadata") {
            Some(m) => ObjectMeta::deserialize(m).map_err(serde::de::Error::custom)?,
            None => ObjectMeta::default(),
        };
        Ok(Self { meta, json })
    }
}

/// A snapshot of a store.
type Objects = Vec<Arc<Watched>>;

/// The watch events of one group, tagged with the group's index.
type GroupEvents = BoxStream<'static, (usize, Result<Event<Watched>, watcher::Error>)>;

/// One watch: a kind in a namespace, narrowed to a selector or to the only name asked for.
#[derive(Clone, PartialEq, Eq)]
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
    store: Store<Watched>,
    writer: Option<Writer<Watched>>,
}

impl Group {
    /// The store's key of an object target; `None` for a selector target.
    fn key_of(&self, target: &Target) -> Option<ObjectRef<Watched>> {
        let Target::Object(o) = target else { return None };
        let key = ObjectRef::new_with(&o.name, self.ar.clone());
        Some(match (self.namespaced, &o.namespace) {
            (true, Some(ns)) => key.within(ns),
            _ => key,
        })
    }

    /// The objects of the store a target is about: its object, or every match of its selector.
    fn matching(&self, key: Option<&ObjectRef<Watched>>) -> Objects {
        match key {
            Some(key) => self.store.get(key).into_iter().collect(),
            None => self.store.state(),
        }
    }
}

fn json(objects: &[Arc<Watched>]) -> Vec<&Value> {
    objects.iter().map(|w| &w.json).collect()
}

/// Wait until every target is ready, reporting progress whenever it changes. Returns the ready
/// objects (selector targets expand to every match).
///
/// # Errors
///
/// A [`WaitFailure`]: an object failed (with `fail_fast`), a deadline passed, or a watch was
/// refused (forbidden, no such kind).
pub async fn wait(
    cluster: &Cluster,
    targets: &[Target],
    opts: &WaitOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Vec<Value>, WaitFailure> {
    wait_with(cluster, targets, opts, None, progress).await
}

/// [`wait`] with a caller rule consulted before the built-in ones.
///
/// # Errors
///
/// As [`wait`]; an `Err` from the predicate fails its object.
pub(crate) async fn wait_with(
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
    let fail = |e: crate::K8sError| WaitFailure::plain(e.to_string());

    let mut groups: Vec<Group> = Vec::new();
    let mut target_group: Vec<usize> = Vec::new();
    let single_names = single_name_groups(targets);
    let (mut pod_namespaces, mut rs_namespaces) = (BTreeSet::new(), BTreeSet::new());
    for t in targets {
        let (api_version, kind, namespace, selector, name) = match t {
            Target::Object(o) => (&o.api_version, &o.kind, o.namespace.clone(), None, Some(o.name.clone())),
            Target::Selector { api_version, kind, namespace, selector, .. } => {
                (api_version, kind, namespace.clone(), Some(selector.clone()), None)
            }
        };
        let (ar, caps) = cluster.resolve(api_version, kind).await.map_err(fail)?;
        let namespaced = caps.scope == Scope::Namespaced;
        let namespace = if namespaced { namespace } else { None };
        let only_name = name.filter(|n| single_names.contains(&(api_version, kind, namespace.as_ref(), n)));
        let key =
            GroupKey { api_version: api_version.clone(), kind: kind.clone(), namespace, selector, name: only_name };
        if ownership::is_workload(api_version, kind)
            && let Some(ns) = &key.namespace
        {
            pod_namespaces.insert(ns.clone());
            if kind == "Deployment" {
                rs_namespaces.insert(ns.clone());
            }
        }
        target_group.push(group_index(&mut groups, key, ar, namespaced));
    }
    // The pods (and ReplicaSets) of each namespace with workloads, whatever their labels.
    let mut companions: HashMap<String, (usize, Option<usize>)> = HashMap::new();
    for (api_version, kind, namespaces) in [("v1", "Pod", &pod_namespaces), ("apps/v1", "ReplicaSet", &rs_namespaces)] {
        if namespaces.is_empty() {
            continue;
        }
        let (ar, _) = cluster.resolve(api_version, kind).await.map_err(fail)?;
        for ns in namespaces {
            let key = GroupKey {
                api_version: api_version.into(),
                kind: kind.into(),
                namespace: Some(ns.clone()),
                selector: None,
                name: None,
            };
            let i = group_index(&mut groups, key, ar.clone(), true);
            let entry = companions.entry(ns.clone()).or_insert((i, None));
            if kind == "ReplicaSet" {
                entry.1 = Some(i);
            }
        }
    }

    let streams: Vec<GroupEvents> = groups
        .iter_mut()
        .enumerate()
        .map(|(i, g)| {
            let api: Api<Watched> = match (&g.key.namespace, g.namespaced) {
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
            let ar = g.ar.clone();
            let writer = g.writer.take().expect("a writer per group");
            watcher::watcher(api, cfg)
                .default_backoff()
                // Objects from list responses carry no apiVersion/kind; the rules need them.
                .modify(move |o: &mut Watched| {
                    if o.json.get("kind").and_then(Value::as_str).is_none_or(str::is_empty) {
                        o.json["kind"] = Value::String(ar.kind.clone());
                        o.json["apiVersion"] = Value::String(ar.api_version.clone());
                    }
                })
                .reflect(writer)
                .map(move |e| (i, e))
                .boxed()
        })
        .collect();
    let mut events = stream::select_all(streams);
    let keys: Vec<Option<ObjectRef<Watched>>> =
        targets.iter().zip(&target_group).map(|(t, gi)| groups[*gi].key_of(t)).collect();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = tokio::time::sleep(opts.timeout);
    tokio::pin!(deadline);
    let mut last_progress: Option<Progress> = None;
    let mut errors_in_a_row: HashMap<usize, u32> = HashMap::new();
    // When each object was first seen, per target: the per-object timeout counts from there.
    let mut first_seen: HashMap<(usize, String), Instant> = HashMap::new();

    loop {
        // Apply everything already queued before assessing: fewer, more consistent assessments.
        let timed_out = tokio::select! {
            biased;
            _ = &mut deadline => true,
            ev = events.next() => {
                let Some((gi, ev)) = ev else { return Err(WaitFailure::plain("every watch ended".into())) };
                handle(&mut groups[gi], ev, gi, &mut errors_in_a_row).map_err(WaitFailure::plain)?;
                while let Some(Some((gi, ev))) = futures::FutureExt::now_or_never(events.next()) {
                    handle(&mut groups[gi], ev, gi, &mut errors_in_a_row).map_err(WaitFailure::plain)?;
                }
                false
            }
            _ = tick.tick() => false,
        };
        if !timed_out && !groups.iter().all(|g| g.synced) {
            continue;
        }

        // One pass over a snapshot of the stores.
        let held: Vec<Objects> =
            keys.iter().zip(&target_group).map(|(k, gi)| groups[*gi].matching(k.as_ref())).collect();
        let target_objects: Vec<Vec<&Value>> = held.iter().map(|h| json(h)).collect();
        let companion_held: HashMap<&str, (Objects, Objects)> = companions
            .iter()
            .map(|(ns, (pods, rs))| {
                (ns.as_str(), (groups[*pods].store.state(), rs.map(|r| groups[r].store.state()).unwrap_or_default()))
            })
            .collect();
        let companion_json: HashMap<&str, (Vec<&Value>, Vec<&Value>)> =
            companion_held.iter().map(|(ns, (p, r))| (*ns, (json(p), json(r)))).collect();
        let now = jiff::Timestamp::now();
        let states: Vec<State> = targets
            .iter()
            .zip(&target_group)
            .zip(&target_objects)
            .map(|((t, gi), objects)| {
                let (pods, replicasets) = groups[*gi]
                    .key
                    .namespace
                    .as_deref()
                    .and_then(|ns| companion_json.get(ns))
                    .map(|(p, r)| (p.as_slice(), r.as_slice()))
                    .unwrap_or_default();
                let cx = Context { pods, replicasets, now, rules: &opts.rules };
                assess_target(t, objects, &cx, &mut predicate)
            })
            .collect();

        if timed_out {
            return Err(timeout_failure(&states, opts));
        }
        let ready = states.iter().filter(|s| s.is_ready()).count();
        if ready == targets.len() {
            return Ok(target_objects.into_iter().flatten().cloned().collect());
        }
        if opts.fail_fast
            && let Some(s) = states.iter().find(|s| s.assessment.health == Health::Failed)
        {
            return Err(s.failure(false, format!("{}: {}", s.target, s.assessment.message)));
        }
        if let Some(limit) = opts.per_object_timeout
            && let Some(f) = per_object_timeout(&states, &mut first_seen, limit)
        {
            return Err(f);
        }
        let p = Progress {
            total: targets.len(),
            ready,
            pending: states
                .iter()
                .filter(|s| !s.is_ready())
                .map(|s| (s.target.clone(), s.assessment.message.clone()))
                .collect(),
        };
        if last_progress.as_ref() != Some(&p) {
            progress(&p);
            last_progress = Some(p);
        }
    }
}

/// The group for `key`, added (with its store) if new.
fn group_index(groups: &mut Vec<Group>, key: GroupKey, ar: ApiResource, namespaced: bool) -> usize {
    if let Some(i) = groups.iter().position(|g| g.key == key) {
        return i;
    }
    let writer = Writer::new(ar.clone());
    groups.push(Group { key, store: writer.as_reader(), writer: Some(writer), ar, namespaced, synced: false });
    groups.len() - 1
}

/// Names that are the only target of their kind and namespace get a name-scoped watch.
fn single_name_groups(targets: &[Target]) -> Vec<(&String, &String, Option<&String>, &String)> {
    let mut names: HashMap<(&String, &String, Option<&String>), Vec<&String>> = HashMap::new();
    for t in targets {
        if let Target::Object(o) = t {
            names.entry((&o.api_version, &o.kind, o.namespace.as_ref())).or_default().push(&o.name);
        }
    }
    names.into_iter().filter(|(_, n)| n.len() == 1).map(|((a, k, ns), n)| (a, k, ns, n[0])).collect()
}

/// The first object not ready `limit` after the wait first saw it, as a timeout.
fn per_object_timeout(
    states: &[State<'_>],
    first_seen: &mut HashMap<(usize, String), Instant>,
    limit: Duration,
) -> Option<WaitFailure> {
    let now = Instant::now();
    let mut late = None;
    for (i, s) in states.iter().enumerate() {
        for v in &s.verdicts {
            let seen = *first_seen.entry((i, ObjRef::of(v.object).to_string())).or_insert(now);
            if late.is_none() && v.assessment.health != Health::Ready && now - seen >= limit {
                let message = format!(
                    "{} not ready after {}: {}",
                    ObjRef::of(v.object),
                    crate::format_duration(limit),
                    v.assessment.message
                );
                late = Some(s.failure(true, message));
            }
        }
    }
    late
}

/// Apply one watch event; `Err` for errors that retrying will not fix.
fn handle(
    g: &mut Group,
    ev: Result<Event<Watched>, watcher::Error>,
    gi: usize,
    errors: &mut HashMap<usize, u32>,
) -> Result<(), String> {
    match ev {
        Ok(ev) => {
            errors.remove(&gi);
            if matches!(ev, Event::InitDone) {
                g.synced = true;
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
