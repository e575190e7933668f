//! The `k8s` module against the local cluster (issue #4): the kmsctl binary runs small
//! playbooks (`KUBECONFIG` = the test cluster's, `--output json`, `--artifacts art`) and the
//! tests assert on its events, its exit code, its artifacts and on the cluster itself (read
//! with kube-rs, and the API server's own metrics where the question is how kmsctl talks to it).
//!
//! kwok runs no containers. What a kubelet would do comes from kwok objects the tests create at
//! run time, each scoped to the test's own pods: Stages (a label with a unique value, weight 1)
//! for crashing, failing, late pods; ClusterLogs, ClusterExec and ClusterPortForward (matching
//! the test's unique namespace) for logs read from files the test writes, commands run on this
//! machine, and forwards to TCP servers the test runs on 127.0.0.1. Cluster-scoped objects get
//! unique names and are deleted when the test ends ([`Cleanup`]). kwok's limits show in two
//! places: exec never closes the command's stdin and reports a failed command without its exit
//! code (only "non-zero" is certain).
//!
//! Every test needs `scripts/testenv/testenv.sh up` (see `crate::testenv`) and runs in parallel
//! with the others: unique namespaces, unique CRD groups, no change to shared objects.

mod apply;
mod failures;
mod follow;
mod metrics;
mod objects;
mod ownership;
mod pods;
mod portforward;
mod reasons;
mod relist;
mod wait;
mod watches;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::{Value, json};

use crate::harness::{Kmsctl, Run, Running, kmsctl};
use crate::testenv::{TestEnv, run, unique, within};

/// A playbook run against the test cluster: `KUBECONFIG` is the cluster's (and nothing else
/// points elsewhere), events as JSON lines on stdout, artifacts under `art/` of its temp dir,
/// and a 5-minute deadline so that a hang fails the test instead of stalling the suite.
/// `@KEY@` placeholders in the script are replaced by `vars`.
pub(crate) fn playbook(env: &TestEnv, script: &str, vars: &[(&str, &str)]) -> Kmsctl {
    named_playbook(env, "p.rhai", script, vars)
}

/// [`playbook`] with a file name of its own (the ownership label names the playbook's stem).
pub(crate) fn named_playbook(env: &TestEnv, file: &str, script: &str, vars: &[(&str, &str)]) -> Kmsctl {
    const OPTIONS: [&str; 6] = ["--output", "json", "--artifacts", "art", "--timeout", "5m"];
    kmsctl()
        .file(file, &fill(script, vars))
        .env("KUBECONFIG", &env.kubeconfig.display().to_string())
        .args(["run", file])
        .args(OPTIONS)
}

/// Replace `@KEY@` placeholders.
pub(crate) fn fill(text: &str, vars: &[(&str, &str)]) -> String {
    let mut s = text.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("@{k}@"), v);
    }
    static PLACEHOLDER: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new("@[A-Z_]+@").expect("regex"));
    assert!(!PLACEHOLDER.is_match(&s), "unfilled placeholder in:\n{s}");
    s
}

/// Run to completion without blocking the test's runtime (its servers and watches go on).
pub(crate) async fn finish(k: Kmsctl) -> Run {
    tokio::task::spawn_blocking(move || k.run()).await.expect("kmsctl run")
}

/// The messages of `log` events.
pub(crate) fn logs(events: &[Value]) -> Vec<String> {
    events.iter().filter(|e| e["event"] == "log").map(|e| e["message"].as_str().unwrap_or_default().into()).collect()
}

/// The one log message starting with `prefix`, without it.
#[track_caller]
pub(crate) fn logged(events: &[Value], prefix: &str) -> String {
    let all = logs(events);
    let found: Vec<&String> = all.iter().filter(|m| m.starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "want one log line starting with {prefix:?}; logs: {all:#?}");
    found[0][prefix.len()..].to_string()
}

/// The messages of `progress` events.
pub(crate) fn progress(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "progress")
        .map(|e| e["message"].as_str().unwrap_or_default().into())
        .collect()
}

/// The `error` event: (kind, message).
#[track_caller]
pub(crate) fn error_of(events: &[Value]) -> (String, String) {
    let e = events.iter().find(|e| e["event"] == "error").unwrap_or_else(|| panic!("no error event: {events:#?}"));
    (e["kind"].as_str().unwrap_or_default().into(), e["message"].as_str().unwrap_or_default().into())
}

/// The `step_finished` event of the step named `name`.
#[track_caller]
pub(crate) fn step<'a>(events: &'a [Value], name: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == "step_finished" && e["name"] == name)
        .unwrap_or_else(|| panic!("no finished step {name:?}: {events:#?}"))
}

/// The `run_finished` event.
#[track_caller]
pub(crate) fn run_finished(events: &[Value]) -> &Value {
    events.iter().find(|e| e["event"] == "run_finished").unwrap_or_else(|| panic!("no run_finished: {events:#?}"))
}

/// A kmsctl run in the background whose JSON events the test reads as they come. Killed (by
/// its PID) if the test ends before it does.
pub(crate) struct Live {
    running: Option<Running>,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: Vec<Value>,
    stderr: Arc<Mutex<String>>,
}

impl Live {
    /// Start `k` (built with [`playbook`]).
    pub(crate) fn start(k: Kmsctl) -> Live {
        let mut running = k.spawn();
        let stdout = running.child.stdout.take().expect("stdout piped");
        let mut stderr_pipe = running.child.stderr.take().expect("stderr piped");
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr_pipe.read_to_string(&mut s);
            sink.lock().expect("stderr").push_str(&s);
        });
        Live { running: Some(running), lines, seen: Vec::new(), stderr }
    }

    fn parse(line: &str) -> Value {
        serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON line {line:?}: {e}"))
    }

    /// The next event matching `pred`, within 60 seconds.
    pub(crate) async fn until(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let found = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = self.lines.recv().await {
                let v = Self::parse(&line);
                self.seen.push(v.clone());
                if pred(&v) {
                    return Some(v);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(v)) => v,
            Ok(None) => panic!(
                "kmsctl ended before {what}; events: {:#?}\nstderr: {}",
                self.seen,
                self.stderr.lock().expect("stderr")
            ),
            Err(_) => panic!("timed out after 60s waiting for {what}; events so far: {:#?}", self.seen),
        }
    }

    /// The next log event whose message starts with `prefix`: the rest of the message.
    pub(crate) async fn log(&mut self, prefix: &str) -> String {
        let v = self
            .until(&format!("a log line starting with {prefix:?}"), |e| {
                e["event"] == "log" && e["message"].as_str().is_some_and(|m| m.starts_with(prefix))
            })
            .await;
        v["message"].as_str().unwrap_or_default()[prefix.len()..].to_string()
    }

    /// The next progress event containing `needle`.
    pub(crate) async fn progress(&mut self, needle: &str) -> String {
        let v = self
            .until(&format!("progress mentioning {needle:?}"), |e| {
                e["event"] == "progress" && e["message"].as_str().is_some_and(|m| m.contains(needle))
            })
            .await;
        v["message"].as_str().unwrap_or_default().to_string()
    }

    /// Send a signal (`INT`, `TERM`) to kmsctl, by its PID.
    pub(crate) fn signal(&self, sig: &str) {
        self.running.as_ref().expect("running").signal(sig);
    }

    /// Wait (at most 60s) until kmsctl exits: its exit code and every event. On timeout it is
    /// killed and the panic shows what it printed.
    pub(crate) async fn end(mut self) -> Ended {
        let mut running = self.running.take().expect("running");
        let pid = running.child.id().to_string();
        let waited = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::task::spawn_blocking(move || {
                let status = running.child.wait();
                (running, status)
            }),
        )
        .await;
        let Ok(joined) = waited else {
            let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(Self::parse(&line));
            }
            panic!(
                "timed out after 60s waiting for kmsctl to exit (killed); events: {:#?}\nstderr: {}",
                self.seen,
                self.stderr.lock().expect("stderr")
            );
        };
        let (running, status) = joined.expect("join");
        let status = status.expect("wait for kmsctl");
        while let Some(line) = self.lines.recv().await {
            self.seen.push(Self::parse(&line));
        }
        let stderr = self.stderr.lock().expect("stderr").clone();
        Ended { code: status.code().unwrap_or(-1), events: std::mem::take(&mut self.seen), stderr, running }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(r) = self.running.as_mut() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

/// A background run that has ended.
pub(crate) struct Ended {
    /// Exit code.
    pub code: i32,
    /// Every event it printed.
    pub events: Vec<Value>,
    /// Its stderr.
    pub stderr: String,
    /// Keeps its temp dir until the test is done with it.
    running: Running,
}

impl Ended {
    /// The temp directory it ran in (artifacts under `art/` with [`playbook`]'s options).
    pub(crate) fn path(&self) -> &Path {
        self.running.path()
    }
}

impl Ended {
    /// Assert the exit code, showing the events when it differs.
    #[track_caller]
    pub(crate) fn code(&self, want: i32) {
        assert_eq!(self.code, want, "exit code; events: {:#?}\nstderr: {}", self.events, self.stderr);
    }
}

/// Deletes a cluster-scoped object (or a namespace) when dropped, with kubectl, without
/// waiting: kwok objects, CRDs and namespaces a test created under unique names.
pub(crate) struct Cleanup {
    kubectl: PathBuf,
    vars: Vec<(String, std::ffi::OsString)>,
    resource: String,
    name: String,
}

impl Cleanup {
    /// Delete `resource/name` (e.g. `stages.kwok.x-k8s.io`, `namespace`) at the end of the test.
    pub(crate) fn new(env: &TestEnv, resource: &str, name: &str) -> Self {
        Self {
            kubectl: env.dir.join("bin/kubectl"),
            vars: env.env_vars(),
            resource: resource.into(),
            name: name.into(),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let out = std::process::Command::new(&self.kubectl)
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .args(["delete", "--ignore-not-found", "--wait=false", &self.resource, &self.name])
            .stdin(std::process::Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                eprintln!("could not delete {} {}: {}", self.resource, self.name, String::from_utf8_lossy(&o.stderr))
            }
            Err(e) => eprintln!("could not run kubectl to delete {} {}: {e}", self.resource, self.name),
        }
    }
}

/// A cluster-scoped kwok object (`Stage`, `ClusterLogs`, `ClusterExec`, `ClusterPortForward`)
/// with a unique name made from `prefix`; deleted at the end of the test.
pub(crate) async fn kwok(env: &TestEnv, kind: &str, prefix: &str, spec: Value) -> (String, Cleanup) {
    let plural = match kind {
        "Stage" => "stages",
        "ClusterLogs" => "clusterlogs",
        "ClusterExec" => "clusterexecs",
        "ClusterPortForward" => "clusterportforwards",
        other => panic!("no plural known for kwok kind {other}"),
    };
    let name = unique(prefix);
    let gvk = GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", kind);
    let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
    let api = Api::<DynamicObject>::all_with(env.client.clone(), &ar);
    let obj = DynamicObject::new(&name, &ar).data(json!({ "spec": spec }));
    api.create(&PostParams::default(), &obj).await.unwrap_or_else(|e| panic!("create {kind} {name}: {e}"));
    let cleanup = Cleanup::new(env, &format!("{plural}.kwok.x-k8s.io"), &name);
    (name, cleanup)
}

/// A Stage for the pods labelled `testenv.kmsctl/stage=<its name>` in phase Pending: weight 1,
/// so it wins over the baseline stages for those pods only. Returns the label value.
pub(crate) async fn pod_stage(env: &TestEnv, prefix: &str, delay_ms: u64, status_template: &str) -> (String, Cleanup) {
    let name = unique(prefix);
    let mut spec = json!({
        "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
        "selector": {
            "matchLabels": {"testenv.kmsctl/stage": name},
            "matchExpressions": [
                {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
            ],
        },
        "weight": 1,
        "next": {"statusTemplate": status_template},
    });
    if delay_ms > 0 {
        spec["delay"] = json!({"durationMilliseconds": delay_ms});
    }
    let gvk = GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "Stage");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "stages");
    let api = Api::<DynamicObject>::all_with(env.client.clone(), &ar);
    api.create(&PostParams::default(), &DynamicObject::new(&name, &ar).data(json!({ "spec": spec })))
        .await
        .unwrap_or_else(|e| panic!("create Stage {name}: {e}"));
    let cleanup = Cleanup::new(env, "stages.kwok.x-k8s.io", &name);
    (name, cleanup)
}

/// kwok's pod-ready status (the baseline `pod-ready` stage, shortened).
pub(crate) const READY_STATUS: &str = include_str!("../../fixtures/kwok-ready-status.yaml");

/// A pod whose containers ran and exited 0 (a Job's pod done): with a delayed [`pod_stage`], a
/// Job that takes that long.
pub(crate) const SUCCEEDED_STATUS: &str = r#"{{ $now := Now }}
phase: Succeeded
startTime: {{ $now | Quote }}
conditions:
- {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: Ready, status: "False", reason: PodCompleted, lastTransitionTime: {{ $now | Quote }}}
- {type: ContainersReady, status: "False", reason: PodCompleted, lastTransitionTime: {{ $now | Quote }}}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: false
  started: false
  restartCount: 0
  state:
    terminated: {exitCode: 0, reason: Completed, startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}
{{ end }}
"#;

/// A kubelet whose containers keep exiting with code 1: CrashLoopBackOff after 4 restarts.
pub(crate) const CRASH_LOOP_STATUS: &str = r#"{{ $now := Now }}
phase: Running
startTime: {{ $now | Quote }}
conditions:
- {type: PodScheduled, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
- {type: Ready, status: "False", reason: ContainersNotReady, lastTransitionTime: {{ $now | Quote }}}
- {type: ContainersReady, status: "False", reason: ContainersNotReady, lastTransitionTime: {{ $now | Quote }}}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: false
  started: false
  restartCount: 4
  state:
    waiting: {reason: CrashLoopBackOff, message: "back-off 1m20s restarting failed container"}
  lastState:
    terminated: {exitCode: 1, reason: Error, startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}
{{ end }}
"#;

/// A container that ran and exited with code 1: the pod fails.
pub(crate) const FAILED_STATUS: &str = r#"{{ $now := Now }}
phase: Failed
startTime: {{ $now | Quote }}
conditions:
- {type: Ready, status: "False", reason: PodFailed, lastTransitionTime: {{ $now | Quote }}}
- {type: ContainersReady, status: "False", reason: PodFailed, lastTransitionTime: {{ $now | Quote }}}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: false
  restartCount: 0
  state:
    terminated: {exitCode: 1, reason: Error, startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}
{{ end }}
"#;

/// Log lines in the CRI format kwok reads (`<time> <stream> F <line>`), one second apart.
pub(crate) fn cri_log(lines: &[&str]) -> String {
    lines.iter().enumerate().map(|(i, l)| format!("2026-01-01T00:00:{:02}.000000000Z stdout F {l}\n", i % 60)).collect()
}

/// A CRD of a group no other test uses (`<prefix>-<unique>.kmsctl.test`), kind `Widget`,
/// namespaced, with a status subresource and any fields. Deleted at the end of the test.
pub(crate) struct Crd {
    /// `widgets.<group>`.
    pub name: String,
    /// The unique group.
    pub group: String,
    /// `<group>/v1`.
    pub api_version: String,
    _cleanup: Cleanup,
}

/// The CRD document of a [`Crd`] group.
pub(crate) fn crd_doc(group: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            }],
        },
    })
}

impl Crd {
    /// A unique group name for a CRD (not created yet), and its cleanup.
    pub(crate) fn reserve(env: &TestEnv, prefix: &str) -> (String, Cleanup) {
        let group = format!("{}.kmsctl.test", unique(prefix));
        let cleanup = Cleanup::new(env, "customresourcedefinitions.apiextensions.k8s.io", &format!("widgets.{group}"));
        (group, cleanup)
    }

    /// Create the CRD and wait until it is Established.
    pub(crate) async fn create(env: &TestEnv, prefix: &str) -> Crd {
        let (group, cleanup) = Self::reserve(env, prefix);
        let doc: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_json::from_value(crd_doc(&group)).expect("CRD");
        let crds = Api::all(env.client.clone());
        crds.create(&PostParams::default(), &doc).await.expect("create CRD");
        let name = format!("widgets.{group}");
        within(60, "the CRD to be established", await_condition(crds, &name, conditions::is_crd_established()))
            .await
            .expect("watch CRD");
        Crd { name, api_version: format!("{group}/v1"), group, _cleanup: cleanup }
    }

    /// The Widgets of a namespace.
    pub(crate) fn api(&self, env: &TestEnv, ns: &str) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk(&self.group, "v1", "Widget");
        Api::namespaced_with(env.client.clone(), ns, &ApiResource::from_gvk_with_plural(&gvk, "widgets"))
    }

    /// Create a Widget and set its status conditions (the status subresource ignores them on
    /// create).
    pub(crate) async fn widget(&self, env: &TestEnv, ns: &str, name: &str, conditions: Value) {
        let api = self.api(env, ns);
        let gvk = GroupVersionKind::gvk(&self.group, "v1", "Widget");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "widgets");
        let obj = DynamicObject::new(name, &ar).data(json!({"spec": {"size": 1}}));
        api.create(&PostParams::default(), &obj).await.unwrap_or_else(|e| panic!("create Widget {name}: {e}"));
        self.set_conditions(env, ns, name, conditions).await;
    }

    /// Replace a Widget's status conditions.
    pub(crate) async fn set_conditions(&self, env: &TestEnv, ns: &str, name: &str, conditions: Value) {
        self.api(env, ns)
            .patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": {"conditions": conditions}})))
            .await
            .unwrap_or_else(|e| panic!("set the status of Widget {name}: {e}"));
    }
}

/// End every open watch on a [`Crd`]'s Widgets as an API server restart would: a spec change
/// (a printer column) makes the API server replace the CRD's storage, so the watches end and
/// re-watching from their resource version answers 410 Gone; a watcher must list again.
pub(crate) async fn break_watches(env: &TestEnv, crd: &Crd) {
    let mut versions = crd_doc(&crd.group)["spec"]["versions"].clone();
    versions[0]["additionalPrinterColumns"] = json!([{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]);
    Api::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>::all(
        env.client.clone(),
    )
    .patch(&crd.name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"versions": versions}})))
    .await
    .expect("patch CRD");
}

/// Wait in this process (2 minutes at most) on the Widget `name` of `crd` in `ns`, while
/// `steps` run beside it once the wait has first reported progress (its watch has listed).
/// Returns the ready objects. (The wait's future is not Send: it cannot go on a task.)
pub(crate) async fn wait_beside(
    cluster: &kmsctl_k8s::Cluster,
    crd: &Crd,
    ns: &str,
    name: &str,
    steps: impl std::future::Future<Output = ()>,
) -> Vec<Value> {
    let target = kmsctl_k8s::Target::Object(kmsctl_k8s::ObjRef {
        api_version: crd.api_version.clone(),
        kind: "Widget".into(),
        namespace: Some(ns.into()),
        name: name.into(),
    });
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let mut report = |_: &kmsctl_k8s::Progress| {
        let _ = seen_tx.send(());
    };
    let wo = kmsctl_k8s::WaitOptions { timeout: Duration::from_secs(120), ..Default::default() };
    let waiting = kmsctl_k8s::wait(cluster, std::slice::from_ref(&target), &wo, &mut report);
    let steps = async {
        within(30, "the wait's first assessment (its watch has listed)", seen.recv()).await;
        steps.await;
    };
    let (ready, ()) = within(120, "the wait to end", async { tokio::join!(waiting, steps) }).await;
    ready.expect("the wait")
}

/// Until one of `cluster`'s watches has listed again (within a minute).
pub(crate) async fn relisted(cluster: &kmsctl_k8s::Cluster) {
    within(60, "a watch to list again", async {
        while cluster.watch_stats().relists == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

/// A status condition.
pub(crate) fn cond(ty: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": ty, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": "2026-01-01T00:00:00Z"})
}

/// The API server's metrics, as text.
pub(crate) async fn metrics(env: &TestEnv) -> String {
    run(env.kubectl().args(["get", "--raw", "/metrics"])).await
}

/// The sum of metric `name` over series with all labels in `with` and none in `without`.
pub(crate) fn metric(text: &str, name: &str, with: &[(&str, &str)], without: &[(&str, &str)]) -> f64 {
    let mut sum = 0.0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name).and_then(|r| r.strip_prefix('{')) else { continue };
        let Some((labels, value)) = rest.rsplit_once("} ") else { continue };
        let has = |(k, v): &(&str, &str)| labels.split(',').any(|l| l == format!("{k}=\"{v}\""));
        if with.iter().all(has) && !without.iter().any(has) {
            sum += value.trim().parse::<f64>().unwrap_or(0.0);
        }
    }
    sum
}

/// A file in the artifacts directory of a finished run.
#[track_caller]
pub(crate) fn artifact(dir: &Path, rel: &str) -> String {
    let p = dir.join("art").join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every file under `dir`, recursively, with its text (binary files lossily).
pub(crate) fn all_files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(all_files(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push((p, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    out
}

#[test]
fn metric_sums_match_labels() {
    let text = "# HELP x\n\
        apiserver_request_total{code=\"200\",group=\"g\",scope=\"namespace\",verb=\"LIST\"} 2\n\
        apiserver_request_total{code=\"410\",group=\"g\",scope=\"cluster\",verb=\"LIST\"} 5\n\
        apiserver_request_total{code=\"200\",group=\"h\",scope=\"namespace\",verb=\"LIST\"} 7\n\
        apiserver_request_total_other{group=\"g\"} 9\n";
    assert_eq!(metric(text, "apiserver_request_total", &[("group", "g")], &[]), 7.0);
    assert_eq!(metric(text, "apiserver_request_total", &[("group", "g")], &[("scope", "cluster")]), 2.0);
    assert_eq!(metric(text, "apiserver_request_total", &[("verb", "WATCH")], &[]), 0.0);
}

#[test]
fn placeholders_are_filled() {
    assert_eq!(fill("a @NS@ @X@ @NS@", &[("NS", "n1"), ("X", "x")]), "a n1 x n1");
    assert_eq!(
        cri_log(&["a", "b"]),
        "2026-01-01T00:00:00.000000000Z stdout F a\n2026-01-01T00:00:01.000000000Z stdout F b\n"
    );
}
