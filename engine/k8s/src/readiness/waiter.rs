//! Waiting until objects are ready, by watching them.
//!
//! Targets are grouped by kind and namespace, so waiting on 1,000 objects costs a handful of
//! watches, not a request per object per poll; and the watches are the cluster's shared ones
//! (`watches`), so 13 parties waiting at once share them too. Workloads also read the pods of
//! their namespace (and its ReplicaSets where there are Deployments, whose pods they own
//! through them): a crashing or unschedulable pod fails its own workload at once instead of
//! after its progress deadline. Every change of a store is re-assessed immediately, and a
//! one-second tick re-assesses time-based rules (grace periods, per-object timeouts). The
//! watches relist on expired resource versions and retry transient errors with backoff; a
//! forbidden or missing resource fails the wait at once.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, BoxStream, StreamExt};
use kube::discovery::{ApiResource, Scope};
use kube::runtime::reflector::ObjectRef;
use serde_json::Value;

use super::ownership;
use super::rules::Health;
use super::targets::{
    Context, Predicate, Progress, State, Target, WaitFailure, WaitOptions, assess_target, timeout_failure,
};
use super::watches::{Shared, WatchKey, WatchState, Watched};
use crate::client::Cluster;
use crate::json::ObjRef;

/// A snapshot of a store.
type Objects = Vec<Arc<Watched>>;

/// The changes of one group's watch, tagged with the group's index; `None` once it stopped.
type GroupChanges = BoxStream<'static, (usize, Option<WatchState>)>;

/// Kinds whose objects carry payloads (Helm keeps every revision of a release in a Secret): a
/// namespace-wide watch would hold them all, so the only name of such a kind a wait asks for
/// gets a watch of its own. Other kinds are watched namespace-wide, shared by every wait.
const PAYLOAD_KINDS: [(&str, &str); 2] = [("v1", "Secret"), ("v1", "ConfigMap")];

/// A watch a wait reads, shared with every other wait of the run that asks for the same key.
struct Group {
    key: WatchKey,
    watch: Arc<Shared>,
    synced: bool,
    /// Its watch's version when last told: changes with every change of its store.
    version: u64,
}

impl Group {
    /// Take in what its watch says; `Err` for an error retrying will not fix.
    fn update(&mut self, state: Option<WatchState>) -> Result<(), String> {
        let Some(state) = state else { return Err(format!("the watch of {} objects stopped", self.key.kind)) };
        if let Some(fatal) = state.fatal {
            return Err(fatal);
        }
        self.synced = state.synced;
        self.version = state.version;
        Ok(())
    }

    /// The store's key of an object target; `None` for a selector target.
    fn key_of(&self, target: &Target) -> Option<ObjectRef<Watched>> {
        let Target::Object(o) = target else { return None };
        let key = ObjectRef::new_with(&o.name, self.watch.ar.clone());
        Some(match (self.watch.namespaced, &o.namespace) {
            (true, Some(ns)) => key.within(ns),
            _ => key,
        })
    }

    /// The objects of the store a target is about: its object, or every match of its selector.
    fn matching(&self, key: Option<&ObjectRef<Watched>>) -> Objects {
        match key {
            Some(key) => self.watch.store.get(key).into_iter().collect(),
            None => self.watch.store.state(),
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
        let only_name = name.filter(|n| {
            PAYLOAD_KINDS.contains(&(api_version.as_str(), kind.as_str()))
                && single_names.contains(&(api_version, kind, namespace.as_ref(), n))
        });
        let key =
            WatchKey { api_version: api_version.clone(), kind: kind.clone(), namespace, selector, name: only_name };
        if ownership::is_workload(api_version, kind)
            && let Some(ns) = &key.namespace
        {
            pod_namespaces.insert(ns.clone());
            if kind == "Deployment" {
                rs_namespaces.insert(ns.clone());
            }
        }
        target_group.push(group_index(cluster, &mut groups, key, ar, namespaced));
    }
    // The pods (and ReplicaSets) of each namespace with workloads, whatever their labels.
    let mut companions: HashMap<String, (usize, Option<usize>)> = HashMap::new();
    for (api_version, kind, namespaces) in [("v1", "Pod", &pod_namespaces), ("apps/v1", "ReplicaSet", &rs_namespaces)] {
        if namespaces.is_empty() {
            continue;
        }
        let (ar, _) = cluster.resolve(api_version, kind).await.map_err(fail)?;
        for ns in namespaces {
            let key = WatchKey {
                api_version: api_version.into(),
                kind: kind.into(),
                namespace: Some(ns.clone()),
                selector: None,
                name: None,
            };
            let i = group_index(cluster, &mut groups, key, ar.clone(), true);
            let entry = companions.entry(ns.clone()).or_insert((i, None));
            if kind == "ReplicaSet" {
                entry.1 = Some(i);
            }
        }
    }

    let changes: Vec<GroupChanges> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            stream::unfold(Some(g.watch.changes()), move |rx| async move {
                let mut rx = rx?;
                match rx.changed().await {
                    Ok(()) => {
                        let state = rx.borrow_and_update().clone();
                        Some(((i, Some(state)), Some(rx)))
                    }
                    Err(_) => Some(((i, None), None)),
                }
            })
            .boxed()
        })
        .collect();
    let mut events = stream::select_all(changes);
    let keys: Vec<Option<ObjectRef<Watched>>> =
        targets.iter().zip(&target_group).map(|(t, gi)| groups[*gi].key_of(t)).collect();
    // The companions a target's workloads are judged with: (pods, ReplicaSets) groups.
    let target_companions: Vec<Option<(usize, Option<usize>)>> = targets
        .iter()
        .zip(&target_group)
        .map(|(t, gi)| {
            let (api_version, kind) = t.kind();
            let ns = groups[*gi].key.namespace.as_ref()?;
            ownership::is_workload(api_version, kind).then(|| companions.get(ns).copied()).flatten()
        })
        .collect();
    let names: Vec<String> = targets.iter().map(ToString::to_string).collect();
    let mut assessed: Vec<Option<Assessed>> = targets.iter().map(|_| None).collect();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = tokio::time::sleep(opts.timeout);
    tokio::pin!(deadline);
    let mut last_progress: Option<Progress> = None;
    // When each object was first seen, per target: the per-object timeout counts from there.
    let mut first_seen: HashMap<(usize, String), Instant> = HashMap::new();

    loop {
        // Apply everything already queued before assessing: fewer, more consistent assessments.
        let (timed_out, ticked) = tokio::select! {
            biased;
            _ = &mut deadline => (true, true),
            ev = events.next() => {
                let Some((gi, state)) = ev else { return Err(WaitFailure::plain("every watch ended".into())) };
                groups[gi].update(state).map_err(WaitFailure::plain)?;
                while let Some(Some((gi, state))) = futures::FutureExt::now_or_never(events.next()) {
                    groups[gi].update(state).map_err(WaitFailure::plain)?;
                }
                (false, false)
            }
            _ = tick.tick() => (false, true),
        };
        if !timed_out && !groups.iter().all(|g| g.synced) {
            continue;
        }

        // One pass over a snapshot of the stores. Between ticks only the targets whose objects
        // (or whose workloads' pods) changed are assessed again; a tick assesses all, for the
        // rules that change with time alone (grace periods, per-object timeouts).
        let held: Vec<Objects> =
            keys.iter().zip(&target_group).map(|(k, gi)| groups[*gi].matching(k.as_ref())).collect();
        let versions = |c: Option<(usize, Option<usize>)>| {
            c.map(|(pods, rs)| (groups[pods].version, rs.map(|r| groups[r].version)))
        };
        let stale: Vec<usize> = (0..targets.len())
            .filter(|&i| {
                ticked || !assessed[i].as_ref().is_some_and(|a| a.same(&held[i], versions(target_companions[i])))
            })
            .collect();
        let workloads_stale = stale.iter().any(|&i| target_companions[i].is_some());
        let companion_held: HashMap<&str, (Objects, Objects)> = companions
            .iter()
            .filter(|_| workloads_stale)
            .map(|(ns, (pods, rs))| {
                (
                    ns.as_str(),
                    (groups[*pods].watch.store.state(), rs.map(|r| groups[r].watch.store.state()).unwrap_or_default()),
                )
            })
            .collect();
        let companion_json: HashMap<&str, (Vec<&Value>, Vec<&Value>)> =
            companion_held.iter().map(|(ns, (p, r))| (*ns, (json(p), json(r)))).collect();
        let now = jiff::Timestamp::now();
        // Only the stale targets' objects as JSON: at 10,000 targets a pass must not be O(n).
        let stale_objects: Vec<Vec<&Value>> = stale.iter().map(|&i| json(&held[i])).collect();
        let states: Vec<(usize, State)> = stale
            .iter()
            .zip(&stale_objects)
            .map(|(&i, objects)| {
                let (pods, replicasets) = groups[target_group[i]]
                    .key
                    .namespace
                    .as_deref()
                    .and_then(|ns| companion_json.get(ns))
                    .map(|(p, r)| (p.as_slice(), r.as_slice()))
                    .unwrap_or_default();
                let cx = Context { pods, replicasets, now, rules: &opts.rules };
                (i, assess_target(&targets[i], objects, &cx, &mut predicate))
            })
            .collect();
        for (i, st) in &states {
            assessed[*i] = Some(Assessed {
                objects: held[*i].clone(),
                companions: versions(target_companions[*i]),
                ready: st.is_ready(),
                message: st.assessment.message.clone(),
            });
        }

        if timed_out {
            let all: Vec<State> = states.into_iter().map(|(_, s)| s).collect();
            return Err(timeout_failure(&all, opts));
        }
        let ready = assessed.iter().flatten().filter(|a| a.ready).count();
        if ready == targets.len() {
            return Ok(held.iter().flatten().map(|w| w.json.clone()).collect());
        }
        if opts.fail_fast
            && let Some((_, s)) = states.iter().find(|(_, s)| s.assessment.health == Health::Failed)
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
            pending: assessed
                .iter()
                .zip(&names)
                .filter_map(|(a, name)| a.as_ref().filter(|a| !a.ready).map(|a| (name.clone(), a.message.clone())))
                .collect(),
        };
        if last_progress.as_ref() != Some(&p) {
            progress(&p);
            last_progress = Some(p);
        }
    }
}

/// A target's last assessment, and what it was made from.
struct Assessed {
    objects: Objects,
    /// The versions of the pods and ReplicaSets its workloads were judged with.
    companions: Option<(u64, Option<u64>)>,
    ready: bool,
    message: String,
}

impl Assessed {
    /// Made from the same objects (the stores replace an object's `Arc` when it changes).
    fn same(&self, objects: &Objects, companions: Option<(u64, Option<u64>)>) -> bool {
        self.companions == companions
            && self.objects.len() == objects.len()
            && self.objects.iter().zip(objects).all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

/// The group for `key`, added (from the cluster's shared watches) if new.
fn group_index(cluster: &Cluster, groups: &mut Vec<Group>, key: WatchKey, ar: ApiResource, namespaced: bool) -> usize {
    if let Some(i) = groups.iter().position(|g| g.key == key) {
        return i;
    }
    let watch = cluster.watches().get(cluster.client(), key.clone(), ar, namespaced);
    groups.push(Group { key, watch, synced: false, version: 0 });
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
    states: &[(usize, State<'_>)],
    first_seen: &mut HashMap<(usize, String), Instant>,
    limit: Duration,
) -> Option<WaitFailure> {
    let now = Instant::now();
    let mut late = None;
    for (i, s) in states {
        for v in &s.verdicts {
            let seen = *first_seen.entry((*i, ObjRef::of(v.object).to_string())).or_insert(now);
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
