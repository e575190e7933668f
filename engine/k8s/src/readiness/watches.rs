//! Watches shared by every wait of a run.
//!
//! Concurrent waits (13 parties installing at once) ask for the same kinds in the same
//! namespace. When each opened its own watches, a run held 13 × kinds watches and a copy of
//! every pod of the namespace per wait: memory grew with the square of the parties. Here one
//! reflector per watch key serves them all: the first wait starts it, later ones read its
//! store at once (already synced), and it stops when the last wait holding it lets go.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use futures::{Stream, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::core::{DynamicResourceScope, Resource};
use kube::discovery::ApiResource;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{Store, store::Writer};
use kube::runtime::watcher::{self, Event};
use serde_json::Value;
use tokio::sync::watch;

/// A watched object as the JSON the rules read; its metadata is parsed once, for the store.
#[derive(Clone, Debug)]
pub(crate) struct Watched {
    meta: ObjectMeta,
    pub(crate) json: Value,
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

/// One watch: a kind in a namespace (or cluster-wide), narrowed to a selector or a name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct WatchKey {
    pub(crate) api_version: String,
    pub(crate) kind: String,
    pub(crate) namespace: Option<String>,
    pub(crate) selector: Option<String>,
    pub(crate) name: Option<String>,
}

/// What a shared watch tells the waits reading it; every change of its store bumps `version`.
#[derive(Clone, Debug, Default)]
pub(crate) struct WatchState {
    /// The first list is in the store.
    pub(crate) synced: bool,
    /// An error retrying will not fix (forbidden, no such kind): waits on it fail.
    pub(crate) fatal: Option<String>,
    pub(crate) version: u64,
}

/// A running watch and its store; dropping the last handle stops it.
pub(crate) struct Shared {
    pub(crate) ar: ApiResource,
    pub(crate) namespaced: bool,
    pub(crate) store: Store<Watched>,
    state: watch::Receiver<WatchState>,
    task: tokio::task::AbortHandle,
}

impl Shared {
    /// Its changes, starting with one for what it holds now.
    pub(crate) fn changes(&self) -> watch::Receiver<WatchState> {
        let mut rx = self.state.clone();
        rx.mark_changed();
        rx
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How many watches a cluster's waits opened, hold open now, and had to relist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchStats {
    /// Watches started since the cluster was connected.
    pub started: u64,
    /// Watches open now.
    pub open: u64,
    /// Lists after the first (an expired resource version, a broken watch).
    pub relists: u64,
}

#[derive(Default)]
struct Counters {
    started: AtomicU64,
    relists: AtomicU64,
}

/// The registry of a cluster's shared watches.
#[derive(Default)]
pub(crate) struct Watches {
    live: Mutex<HashMap<WatchKey, Weak<Shared>>>,
    counters: Arc<Counters>,
}

impl Watches {
    /// The running watch for `key`, started if there is none (or the one there failed for good).
    /// Must be called within a Tokio runtime: the watch runs as a task of its own.
    pub(crate) fn get(&self, client: &Client, key: WatchKey, ar: ApiResource, namespaced: bool) -> Arc<Shared> {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        live.retain(|_, w| w.strong_count() > 0);
        if let Some(s) = live.get(&key).and_then(Weak::upgrade)
            && s.state.borrow().fatal.is_none()
        {
            return s;
        }
        let s = Arc::new(self.start(client, &key, ar, namespaced));
        live.insert(key, Arc::downgrade(&s));
        s
    }

    pub(crate) fn stats(&self) -> WatchStats {
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        WatchStats {
            started: self.counters.started.load(Ordering::Relaxed),
            open: live.values().filter(|w| w.strong_count() > 0).count() as u64,
            relists: self.counters.relists.load(Ordering::Relaxed),
        }
    }

    fn start(&self, client: &Client, key: &WatchKey, ar: ApiResource, namespaced: bool) -> Shared {
        let api: Api<Watched> = match (&key.namespace, namespaced) {
            (Some(ns), true) => Api::namespaced_with(client.clone(), ns, &ar),
            _ => Api::all_with(client.clone(), &ar),
        };
        let mut cfg = watcher::Config::default();
        if let Some(s) = &key.selector {
            cfg = cfg.labels(s);
        }
        if let Some(n) = &key.name {
            cfg = cfg.fields(&format!("metadata.name={n}"));
        }
        let writer = Writer::new(ar.clone());
        let store = writer.as_reader();
        let typed = ar.clone();
        let events = watcher::watcher(api, cfg)
            .default_backoff()
            // Objects from list responses carry no apiVersion/kind; the rules need them.
            .modify(move |o: &mut Watched| {
                if o.json.get("kind").and_then(Value::as_str).is_none_or(str::is_empty) {
                    o.json["kind"] = Value::String(typed.kind.clone());
                    o.json["apiVersion"] = Value::String(typed.api_version.clone());
                }
            })
            .reflect(writer);
        let (tx, state) = watch::channel(WatchState::default());
        self.counters.started.fetch_add(1, Ordering::Relaxed);
        let task = tokio::spawn(feed(events, tx, key.kind.clone(), self.counters.clone())).abort_handle();
        Shared { ar, namespaced, store, state, task }
    }
}

/// Drive a watch, telling its readers of every change of the store and of fatal errors.
async fn feed(
    events: impl Stream<Item = Result<Event<Watched>, watcher::Error>>,
    tx: watch::Sender<WatchState>,
    kind: String,
    counters: Arc<Counters>,
) {
    futures::pin_mut!(events);
    let (mut lists, mut errors) = (0u32, 0u32);
    while let Some(ev) = events.next().await {
        match ev {
            Ok(ev) => {
                errors = 0;
                match ev {
                    Event::Init => {
                        lists += 1;
                        if lists > 1 {
                            counters.relists.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Event::InitApply(_) => {}
                    // The reflector's store changes on these (a list is swapped in at its end).
                    Event::InitDone | Event::Apply(_) | Event::Delete(_) => tx.send_modify(|s| {
                        s.version += 1;
                        s.synced |= matches!(ev, Event::InitDone);
                        s.fatal = None;
                    }),
                }
            }
            Err(e) => {
                errors += 1;
                tracing::debug!(%kind, error = %e, attempt = errors, "watch error; retrying");
                if is_fatal(&e) {
                    tx.send_modify(|s| s.fatal = Some(format!("cannot watch {kind} objects: {e}")));
                }
            }
        }
    }
}

/// Errors retrying will not fix: unauthorized, forbidden, no such resource.
fn is_fatal(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s)) => {
            matches!(s.code, 401 | 403 | 404)
        }
        watcher::Error::WatchError(s) => matches!(s.code, 401 | 403),
        _ => false,
    }
}
