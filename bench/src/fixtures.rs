//! Objects the scenarios wait on, and the bench's own watch of them.
//!
//! Widgets are custom resources of a CRD group only one run uses, so the API server's metrics
//! for that group count the tools' requests alone. The CRD has no status subresource: a chart
//! can then create Widgets that are already "not ready" (helm cannot set a status otherwise),
//! and the bench flips them with a plain merge patch. Not ready is `Ready=False` plus
//! `Reconciling=True` (kstatus, which helm 4 uses, ignores `Ready` and only reads
//! `Reconciling`/`Stalled`); ready is `Ready=True`, `Reconciling=False`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::env::{Env, Result, unique};

/// Concurrent requests when creating or flipping many objects.
const CONCURRENCY: usize = 16;

/// The Widget CRD of this run.
pub(crate) struct Widgets {
    /// The CRD's unique group.
    pub group: String,
    /// `<group>/v1`.
    pub api_version: String,
    ar: ApiResource,
}

impl Widgets {
    /// Create the CRD (namespaced, kind `Widget`, no status subresource) and wait until it is
    /// Established.
    pub(crate) async fn create(env: &Env) -> Result<Widgets> {
        let group = format!("{}.kmsctl.test", unique("bench"));
        let crd: CustomResourceDefinition = serde_json::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("widgets.{group}")},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
            },
        }))?;
        let crds: Api<CustomResourceDefinition> = Api::all(env.client());
        crds.create(&PostParams::default(), &crd).await?;
        let name = format!("widgets.{group}");
        env.created("customresourcedefinitions.apiextensions.k8s.io", &name);
        tokio::time::timeout(Duration::from_secs(60), await_condition(crds, &name, conditions::is_crd_established()))
            .await
            .map_err(|_| "the Widget CRD was not established within 60 s")??;
        let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(&group, "v1", "Widget"), "widgets");
        Ok(Widgets { api_version: format!("{group}/v1"), group, ar })
    }

    /// The Widgets of a namespace.
    pub(crate) fn api(&self, env: &Env, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(env.client(), ns, &self.ar)
    }

    /// Create not-ready Widgets.
    pub(crate) async fn create_all(&self, env: &Env, ns: &str, names: &[String]) -> Result<()> {
        let api = self.api(env, ns);
        let ar = &self.ar;
        for_each(names, |name| {
            let api = api.clone();
            let obj = DynamicObject::new(name, ar).data(json!({"spec": {"size": 1}, "status": widget_status(false)}));
            async move { api.create(&PostParams::default(), &obj).await.map(drop) }
        })
        .await
    }

    /// Make Widgets ready (or not ready again): a merge patch of their conditions.
    pub(crate) async fn set_ready(&self, env: &Env, ns: &str, names: &[String], ready: bool) -> Result<()> {
        let api = self.api(env, ns);
        let patch = json!({"status": widget_status(ready)});
        for_each(names, |name| {
            let api = api.clone();
            let patch = patch.clone();
            let name = name.to_string();
            async move { api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await.map(drop) }
        })
        .await
    }
}

/// A Widget's `status`: not ready (`Ready=False`, `Reconciling=True`) or ready.
pub(crate) fn widget_status(ready: bool) -> Value {
    let cond = |ty: &str, status: bool, reason: &str| {
        json!({"type": ty, "status": if status { "True" } else { "False" }, "reason": reason,
               "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"})
    };
    let reason = if ready { "Done" } else { "Provisioning" };
    json!({"conditions": [cond("Ready", ready, reason), cond("Reconciling", !ready, reason)]})
}

/// Run `f` for every name, [`CONCURRENCY`] at a time; the first error wins.
async fn for_each<F, Fut>(names: &[String], f: F) -> Result<()>
where
    F: Fn(&str) -> Fut,
    Fut: Future<Output = std::result::Result<(), kube::Error>>,
{
    futures::stream::iter(names.iter().map(|n| f(n))).buffer_unordered(CONCURRENCY).try_collect::<Vec<()>>().await?;
    Ok(())
}

/// Is a Widget ready (its `Ready` condition is `True`)?
pub(crate) fn widget_ready(obj: &Value) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Has a Deployment rolled out (the controller saw this generation, and every replica is
/// updated, ready and available)? The `kubectl rollout status` definition, tool-independent.
pub(crate) fn deployment_ready(obj: &Value) -> bool {
    let n = |p: &str| obj.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let want = obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    n("/status/observedGeneration") >= n("/metadata/generation")
        && n("/status/updatedReplicas") == want
        && n("/status/readyReplicas") == want
        && n("/status/availableReplicas") == want
        && n("/status/replicas") == want
}

/// A kwok Stage that makes the pods labelled `testenv.kmsctl/stage=<returned name>` Running
/// and Ready `delay_ms` after they are scheduled. Weight 1, so it wins over the baseline
/// (weight 0) stages for those pods only.
pub(crate) async fn ready_stage(env: &Env, delay_ms: u64) -> Result<String> {
    let name = unique("bench-stage");
    let spec = json!({
        "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
        "selector": {
            "matchLabels": {"testenv.kmsctl/stage": name},
            "matchExpressions": [
                {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
            ],
        },
        "weight": 1,
        "delay": {"durationMilliseconds": delay_ms},
        "next": {"statusTemplate": READY_STATUS},
    });
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "Stage"), "stages");
    let api = Api::<DynamicObject>::all_with(env.client(), &ar);
    api.create(&PostParams::default(), &DynamicObject::new(&name, &ar).data(json!({ "spec": spec }))).await?;
    env.created("stages.kwok.x-k8s.io", &name);
    Ok(name)
}

/// kwok's pod-ready status (the baseline `pod-ready` stage, shortened), shared with the tests.
const READY_STATUS: &str = include_str!("../../tests/fixtures/kwok-ready-status.yaml");

/// The bench's own watch of one kind in one namespace: when each object was first seen ready.
/// This is T0 of the latency rows — the moment the API server told a watcher, which is also
/// the earliest moment any tool could know.
pub(crate) struct Observer {
    seen: Arc<Mutex<HashMap<String, Instant>>>,
    changed: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Observer {
    /// Start watching; returns once the initial list is in (nothing later is missed).
    pub(crate) async fn start(api: Api<DynamicObject>, ready: fn(&Value) -> bool) -> Result<Observer> {
        let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let changed = Arc::new(Notify::new());
        let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
        let (s, c) = (seen.clone(), changed.clone());
        let task = tokio::spawn(async move {
            let mut synced = Some(synced_tx);
            let mut events = watcher::watcher(api, watcher::Config::default()).boxed();
            while let Some(ev) = events.next().await {
                let at = Instant::now();
                let obj = match ev {
                    Ok(Event::Apply(o) | Event::InitApply(o)) => o,
                    Ok(Event::InitDone) => {
                        if let Some(tx) = synced.take() {
                            let _ = tx.send(());
                        }
                        continue;
                    }
                    _ => continue,
                };
                let name = obj.metadata.name.clone().unwrap_or_default();
                if ready(&serde_json::to_value(&obj).unwrap_or_default()) {
                    s.lock().expect("seen").entry(name).or_insert(at);
                    c.notify_waiters();
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(30), synced_rx)
            .await
            .map_err(|_| "the bench's watch did not sync")??;
        Ok(Observer { seen, changed, task })
    }

    /// When `name` was first seen ready (waits up to `limit` for it).
    pub(crate) async fn ready_at(&self, name: &str, limit: Duration) -> Result<Instant> {
        let wait = async {
            loop {
                let notified = self.changed.notified();
                if let Some(t) = self.seen.lock().expect("seen").get(name) {
                    return *t;
                }
                notified.await;
            }
        };
        Ok(tokio::time::timeout(limit, wait).await.map_err(|_| format!("{name} was not ready within {limit:?}"))?)
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
