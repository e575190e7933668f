//! The `readiness` scenario, side by side with kubectl and helm on the same cluster:
//!
//! 1. Reaction latency: the bench makes an object ready and measures from T0 — the moment its
//!    own watch sees the object ready, i.e. when the API server reported it — to T1, when the
//!    tool returned (process exit, or the library call returning). Widgets are flipped by the
//!    bench once the tool is waiting; Deployments are made ready by kwok (a Stage that marks
//!    the pod Ready 3 s after it is scheduled), because helm installs the object itself.
//! 2. Waiting on many objects: the API server's own request counters for the Widget resource
//!    while each tool waits on the same number of objects that the bench flips to ready.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kmsctl_k8s::ObjRef;
use kmsctl_k8s::{Target, WaitOptions};
use kube::api::{Api, ApiResource, PostParams};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::oneshot;

use crate::env::{Env, Result, delta};
use crate::fixtures::{Observer, Widgets, deployment_ready, ready_stage, widget_ready};
use crate::stats::{ms, secs, summarize, table};

/// Pause between "the tool is waiting" and the flip, so its watch is surely established (a
/// flip during the watch's start is not lost, but would count the start as reaction time).
const SETTLE: Duration = Duration::from_millis(300);
/// How long after being scheduled kwok makes a latency Deployment's pod Ready: enough for
/// every tool to have installed the chart and be waiting.
const STAGE_DELAY_MS: u64 = 3000;
/// A tool "ahead" of the bench's watch by less than this saw the same event first.
const SAME_EVENT_MS: f64 = 5.0;
/// The target from spec/MISSION.md.
const TARGET_MS: f64 = 100.0;

/// Run the scenario and print its tables.
pub(crate) async fn run(kmsctl: PathBuf, trials: usize, objects: usize) -> Result<()> {
    let env = Env::connect(kmsctl).await?;
    let out = scenario(&env, trials, objects.max(1)).await;
    env.cleanup().await;
    out
}

async fn scenario(env: &Env, trials: usize, objects: usize) -> Result<()> {
    write_files(env)?;
    let widgets = Widgets::create(env).await?;
    // `--trials 0`: the request counts only (a 10,000-object run).
    if trials > 0 {
        latency(env, &widgets, trials).await?;
    }
    many(env, &widgets, objects).await
}

// ---- the tools ------------------------------------------------------------------------------

/// Who waits, in the latency and request-count rows.
#[derive(Clone, Copy, PartialEq)]
enum Tool {
    /// `kmsctl_k8s::wait`, in this process.
    Engine,
    /// The kmsctl binary running a playbook; done when the process exits.
    Kmsctl,
    /// `kubectl wait --for=condition=Ready`.
    Kubectl,
    /// helm 4 `upgrade --install --wait` (its default watcher strategy, kstatus).
    Helm4,
    /// helm 3 `upgrade --install --wait` (legacy: polls every 2 s).
    Helm3,
}

impl Tool {
    fn label(self, how: &str) -> String {
        match self {
            Tool::Engine => "kmsctl engine (library, in-process)".into(),
            Tool::Kmsctl => format!("kmsctl binary (`{how}`, process exit)"),
            Tool::Kubectl => format!("`kubectl wait {how}`"),
            Tool::Helm4 => format!("helm 4 `{how}`"),
            Tool::Helm3 => format!("helm 3 `{how}`"),
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Tool::Engine => "engine",
            Tool::Kmsctl => "kmsctl",
            Tool::Kubectl => "kubectl",
            Tool::Helm4 => "helm4",
            Tool::Helm3 => "helm3",
        }
    }
}

/// Wait with kmsctl's engine; `waiting` is signalled at its first progress report (the
/// watches have listed the objects and found them not ready). Returns when it finished.
async fn engine_wait(env: &Env, targets: Vec<Target>, waiting: oneshot::Sender<()>) -> Result<Instant> {
    let mut waiting = Some(waiting);
    let opts = WaitOptions { timeout: Duration::from_secs(600), ..Default::default() };
    let outcome = kmsctl_k8s::wait(&env.cluster, &targets, &opts, &mut |_| {
        if let Some(w) = waiting.take() {
            let _ = w.send(());
        }
    })
    .await;
    let at = Instant::now();
    outcome.map_err(|e| format!("kmsctl's engine: {}", e.message))?;
    Ok(at)
}

/// A Widget target for the engine.
fn widget_target(widgets: &Widgets, ns: &str, name: &str) -> Target {
    Target::Object(ObjRef {
        api_version: widgets.api_version.clone(),
        kind: "Widget".into(),
        namespace: Some(ns.into()),
        name: name.into(),
    })
}

/// Run a tool to completion and return when it exited. `waiting` is signalled at the first
/// line of its output (stdout or stderr) for which `is_waiting` holds.
async fn run_tool(
    cmd: Command,
    what: &str,
    waiting: Option<oneshot::Sender<()>>,
    is_waiting: fn(&str) -> bool,
) -> Result<Instant> {
    Ok(run_tool_peak(cmd, what, waiting, is_waiting).await?.0)
}

/// [`run_tool`], also returning the tool's own peak RSS in KiB (VmHWM, sampled every 50 ms).
async fn run_tool_peak(
    mut cmd: Command,
    what: &str,
    waiting: Option<oneshot::Sender<()>>,
    is_waiting: fn(&str) -> bool,
) -> Result<(Instant, u64)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    let signal = Arc::new(Mutex::new(waiting));
    let out = tokio::spawn(scan(child.stdout.take().expect("piped"), signal.clone(), is_waiting));
    let err = tokio::spawn(scan(child.stderr.take().expect("piped"), signal, is_waiting));
    let (peak, done) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    if let Some(pid) = child.id() {
        tokio::spawn(crate::deploy::sample_peak(pid, false, peak.clone(), done.clone()));
    }
    let status = child.wait().await?;
    let at = Instant::now();
    done.store(true, Ordering::Relaxed);
    if !status.success() {
        let (out, err) = (out.await.unwrap_or_default(), err.await.unwrap_or_default());
        return Err(format!("{what} failed ({status}):\n{out}\n{err}").into());
    }
    Ok((at, peak.load(Ordering::Relaxed)))
}

/// Read lines, signal at the first waiting line, keep the last few lines for error messages.
async fn scan(
    stream: impl AsyncRead + Unpin,
    signal: Arc<Mutex<Option<oneshot::Sender<()>>>>,
    is_waiting: fn(&str) -> bool,
) -> String {
    let mut lines = BufReader::new(stream).lines();
    let mut tail: Vec<String> = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        if is_waiting(&line)
            && let Some(tx) = signal.lock().expect("signal").take()
        {
            let _ = tx.send(());
        }
        tail.push(line);
        if tail.len() > 20 {
            tail.remove(0);
        }
    }
    tail.join("\n")
}

/// kmsctl's JSON event stream reports progress once its wait has found the objects not ready.
fn kmsctl_waiting(line: &str) -> bool {
    serde_json::from_str::<Value>(line).is_ok_and(|v| v["event"] == "progress")
}

/// kubectl -v=6 logs each response; a watch request's means it is watching.
fn kubectl_waiting(line: &str) -> bool {
    line.contains("watch=true")
}

/// helm --debug logs the start of its wait (v4 "waiting for resources", v3 "beginning wait").
fn helm_waiting(line: &str) -> bool {
    line.contains("waiting for resources") || line.contains("beginning wait for")
}

/// `kmsctl run wait.rhai`: wait for the named Widgets.
fn kmsctl_wait_cmd(env: &Env, widgets: &Widgets, ns: &str, names: &[String]) -> Command {
    let mut c = env.kmsctl();
    c.args(["run", "wait.rhai", "--output", "json", "--namespace", ns, "--api-version", &widgets.api_version])
        .args(["--names", &names.join(",")]);
    c
}

// ---- 1. reaction latency --------------------------------------------------------------------

/// One row of the latency table.
struct LatencyRow {
    tool: String,
    object: &'static str,
    /// T1 - T0 per trial, in ms (negative: the tool returned before the object was ready).
    samples: Vec<f64>,
}

/// T1 - T0 in milliseconds, negative when T1 came first.
fn signed_ms(t0: Instant, t1: Instant) -> f64 {
    if t1 >= t0 { crate::stats::millis(t1 - t0) } else { -crate::stats::millis(t0 - t1) }
}

async fn latency(env: &Env, widgets: &Widgets, trials: usize) -> Result<()> {
    let mut rows = Vec::new();
    let ns = env.namespace("bench-latency").await?;
    let observer = Observer::start(widgets.api(env, &ns), widget_ready).await?;
    for tool in [Tool::Engine, Tool::Kmsctl, Tool::Kubectl] {
        let mut samples = Vec::new();
        for i in 0..trials {
            samples.push(widget_trial(env, widgets, &observer, &ns, tool, &format!("{}-{i}", tool.slug())).await?);
        }
        let how = if tool == Tool::Kmsctl { "kc.wait(..)" } else { "--for=condition=Ready" };
        rows.push(LatencyRow { tool: tool.label(how), object: "Widget (custom resource)", samples });
        eprintln!("[bench] latency: {} done", tool.slug());
    }

    let ns = env.namespace("bench-latency-deploy").await?;
    let stage = ready_stage(env, STAGE_DELAY_MS).await?;
    let ar = ApiResource::erase::<Deployment>(&());
    let observer = Observer::start(Api::namespaced_with(env.client(), &ns, &ar), deployment_ready).await?;
    for tool in [Tool::Engine, Tool::Kmsctl, Tool::Helm4, Tool::Helm3] {
        let mut samples = Vec::new();
        for i in 0..trials {
            let name = format!("{}-{i}", tool.slug());
            let t1 = deployment_trial(env, &ns, &stage, tool, &name).await?;
            let t0 = observer.ready_at(&name, Duration::from_secs(10)).await?;
            samples.push(signed_ms(t0, t1));
        }
        let how = if tool == Tool::Kmsctl { "helm::upgrade(..)" } else { "upgrade --install --wait" };
        rows.push(LatencyRow { tool: tool.label(how), object: "Deployment (pod Ready by kwok)", samples });
        eprintln!("[bench] latency: {} on Deployments done", tool.slug());
    }
    print_latency(&rows, trials);
    Ok(())
}

/// One Widget trial: create it not ready, start the tool, flip it once the tool is waiting.
/// Returns T1 - T0 in ms.
async fn widget_trial(
    env: &Env,
    widgets: &Widgets,
    observer: &Observer,
    ns: &str,
    tool: Tool,
    name: &str,
) -> Result<f64> {
    let names = [name.to_string()];
    widgets.create_all(env, ns, &names).await?;
    let (tx, rx) = oneshot::channel();
    let tool_done = async {
        match tool {
            Tool::Engine => engine_wait(env, vec![widget_target(widgets, ns, name)], tx).await,
            Tool::Kmsctl => {
                run_tool(kmsctl_wait_cmd(env, widgets, ns, &names), "kmsctl", Some(tx), kmsctl_waiting).await
            }
            _ => {
                let mut c = env.kubectl();
                c.args(["wait", "--for=condition=Ready", "--timeout=120s", "-v=6", "-n", ns])
                    .arg(format!("widgets.{}/{name}", widgets.group));
                run_tool(c, "kubectl wait", Some(tx), kubectl_waiting).await
            }
        }
    };
    let flip = async {
        rx.await.map_err(|_| format!("{} ended before it was waiting", tool.slug()))?;
        tokio::time::sleep(SETTLE).await;
        widgets.set_ready(env, ns, &names, true).await?;
        observer.ready_at(name, Duration::from_secs(60)).await
    };
    let (t1, t0) = tokio::try_join!(tool_done, flip)?;
    Ok(signed_ms(t0, t1))
}

/// One Deployment trial: the tool creates (or installs) it and waits; kwok makes its pod
/// Ready [`STAGE_DELAY_MS`] later. Returns T1.
async fn deployment_trial(env: &Env, ns: &str, stage: &str, tool: Tool, name: &str) -> Result<Instant> {
    match tool {
        Tool::Engine => {
            let doc: Deployment = serde_json::from_value(deployment(name, stage))?;
            Api::<Deployment>::namespaced(env.client(), ns).create(&PostParams::default(), &doc).await?;
            let target = Target::Object(ObjRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: Some(ns.into()),
                name: name.into(),
            });
            engine_wait(env, vec![target], oneshot::channel().0).await
        }
        Tool::Kmsctl => {
            let mut c = env.kmsctl();
            c.args(["run", "helm-upgrade.rhai", "--release", name, "--namespace", ns, "--stage", stage]);
            run_tool(c, "kmsctl helm::upgrade", None, |_| false).await
        }
        _ => {
            let mut c = env.helm(tool == Tool::Helm3);
            c.args(["upgrade", "--install", name]).arg(env.path("ready-chart")).args([
                "-n",
                ns,
                "--set-string",
                &format!("stage={stage}"),
                "--wait",
                "--timeout",
                "2m",
            ]);
            run_tool(c, "helm upgrade --wait", None, |_| false).await
        }
    }
}

fn print_latency(rows: &[LatencyRow], trials: usize) {
    println!("### Reaction latency: object ready (per the API server) → tool proceeds ({trials} trials per row)\n");
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let s = summarize(&r.samples);
            // Within a few ms is the same watch event reaching two watchers of one process.
            let early = r.samples.iter().filter(|x| **x < -SAME_EVENT_MS).count();
            let same = r.samples.iter().filter(|x| (-SAME_EVENT_MS..0.0).contains(*x)).count();
            let note = match (early, same) {
                (0, 0) => String::new(),
                (0, n) => format!("{n} ahead of the bench's own watch (same event)"),
                (n, _) => format!("{n} returned before ready"),
            };
            let target = if r.tool.starts_with("kmsctl") {
                format!("≤ {} {}", ms(TARGET_MS), if s.median <= TARGET_MS { "ok" } else { "OVER" })
            } else {
                String::new()
            };
            vec![r.tool.clone(), r.object.into(), ms(s.median), ms(s.p90), ms(s.min), ms(s.max), target, note]
        })
        .collect();
    table(&["tool", "object", "median", "p90", "min", "max", "target", "note"], &body);
}

/// The Deployment of a latency trial (also what ready-chart renders): one replica that must
/// be available before it counts (maxUnavailable 0, else helm 3 counts 0 of 1 as enough).
fn deployment(name: &str, stage: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "testenv.kmsctl/stage": stage}},
                "spec": {"containers": [{"name": "app", "image": "bench/app:1"}]},
            },
        },
    })
}

// ---- 2. waiting on many objects -------------------------------------------------------------

/// One row of the request-count table.
struct ManyRow {
    tool: String,
    /// Requests to the Widget resource during the run, by verb.
    requests: BTreeMap<String, f64>,
    /// Writes that were not the bench's flips (helm's install).
    tool_writes: f64,
    wall: Duration,
    /// Tool exit minus the moment the bench's last flip was acknowledged (negative: before;
    /// a watcher may see the last object before the bench's own patch call returns).
    after_ready: f64,
    /// Did the tool exit before the bench began to flip (it did not wait at all)?
    did_not_wait: bool,
    /// The tool process's peak RSS, KiB (0: in the bench's own process).
    peak_kb: u64,
    /// Why the tool failed (its other fields are then empty).
    failed: Option<String>,
}

impl ManyRow {
    fn failed(tool: String, why: String) -> Self {
        ManyRow {
            tool,
            requests: BTreeMap::new(),
            tool_writes: 0.0,
            wall: Duration::ZERO,
            after_ready: 0.0,
            did_not_wait: false,
            peak_kb: 0,
            failed: Some(why),
        }
    }
}

async fn many(env: &Env, widgets: &Widgets, n: usize) -> Result<()> {
    let names: Vec<String> = (0..n).map(|i| format!("w-{i}")).collect();
    let ns = env.namespace("bench-many").await?;
    widgets.create_all(env, &ns, &names).await?;
    let mut rows = Vec::new();
    // Above 1,000 objects kubectl (a watch per object, one after the other: 100 s per 1,000)
    // and helm 3 (which does not wait for custom resources) are left out.
    let tools: &[Tool] = if n > 1000 {
        eprintln!("[bench] {n} objects: kubectl wait and helm 3 left out (100 s per 1,000; no wait)");
        &[Tool::Engine, Tool::Kmsctl, Tool::Helm4]
    } else {
        &[Tool::Engine, Tool::Kmsctl, Tool::Kubectl, Tool::Helm4, Tool::Helm3]
    };
    for &tool in tools {
        let ns = match tool {
            Tool::Helm4 | Tool::Helm3 => env.namespace("bench-many-helm").await?,
            _ => {
                widgets.set_ready(env, &ns, &names, false).await?;
                ns.clone()
            }
        };
        // helm's own install can fail at sizes the API server cannot take at once (10,000
        // server-side applies); that is its result, not the bench's failure.
        match many_run(env, widgets, &ns, &names, tool).await {
            Ok(row) => rows.push(row),
            Err(e) if matches!(tool, Tool::Helm4 | Tool::Helm3) => {
                let text = e.to_string();
                let first =
                    text.lines().find(|l| l.contains("Timeout")).or(text.lines().next()).unwrap_or("").to_string();
                eprintln!("[bench] {n} objects: {} failed: {first}", tool.slug());
                rows.push(ManyRow::failed(tool.label("upgrade --install --wait"), first));
            }
            Err(e) => return Err(e),
        }
        eprintln!("[bench] {n} objects: {} done", tool.slug());
    }
    print_many(&rows, n);
    Ok(())
}

/// One tool waiting on every Widget of `ns` (helm installs them itself); the bench flips them
/// all to ready once the tool is waiting.
async fn many_run(env: &Env, widgets: &Widgets, ns: &str, names: &[String], tool: Tool) -> Result<ManyRow> {
    let before = env.requests(&widgets.group, "widgets").await?;
    let start = Instant::now();
    let (tx, rx) = oneshot::channel();
    let tool_done = async {
        match tool {
            Tool::Engine => {
                let targets = names.iter().map(|n| widget_target(widgets, ns, n)).collect();
                Ok((engine_wait(env, targets, tx).await?, 0))
            }
            Tool::Kmsctl => {
                run_tool_peak(kmsctl_wait_cmd(env, widgets, ns, names), "kmsctl", Some(tx), kmsctl_waiting).await
            }
            Tool::Kubectl => {
                let mut c = env.kubectl();
                c.args(["wait", "--for=condition=Ready", "--all", "--timeout=10m", "-v=6", "-n", ns])
                    .arg(format!("widgets.{}", widgets.group));
                run_tool_peak(c, "kubectl wait --all", Some(tx), kubectl_waiting).await
            }
            Tool::Helm4 | Tool::Helm3 => {
                let mut c = env.helm(tool == Tool::Helm3);
                c.args(["upgrade", "--install", "many"])
                    .arg(env.path("many-chart"))
                    .args(["-n", ns, "--set-string", &format!("apiVersion={}", widgets.api_version)])
                    .args(["--set", &format!("count={}", names.len()), "--wait", "--timeout", "10m", "--debug"]);
                run_tool_peak(c, "helm upgrade --wait", Some(tx), helm_waiting).await
            }
        }
    };
    let flip = async {
        // A tool that ends without waiting (helm 3 on custom resources) closes the channel.
        let _ = rx.await;
        tokio::time::sleep(SETTLE).await;
        let flip_start = Instant::now();
        widgets.set_ready(env, ns, names, true).await?;
        Ok::<_, crate::env::Error>((flip_start, Instant::now()))
    };
    let ((end, peak_kb), (flip_start, all_ready)) = tokio::try_join!(tool_done, flip)?;
    // A watch is counted when it ends: give the API server a moment to close the tool's.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let requests = delta(&before, &env.requests(&widgets.group, "widgets").await?);
    let writes: f64 = requests.iter().filter(|(v, _)| !is_read(v)).map(|(_, n)| n).sum();
    let how = match tool {
        Tool::Kmsctl => format!("kc.wait([{} names])", names.len()),
        Tool::Kubectl => "--for=condition=Ready --all".into(),
        _ => "upgrade --install --wait".into(),
    };
    Ok(ManyRow {
        tool: tool.label(&how),
        requests,
        tool_writes: writes - names.len() as f64,
        wall: end - start,
        after_ready: signed_ms(all_ready, end),
        did_not_wait: end < flip_start,
        peak_kb,
        failed: None,
    })
}

fn is_read(verb: &str) -> bool {
    matches!(verb, "LIST" | "WATCH" | "GET")
}

fn print_many(rows: &[ManyRow], n: usize) {
    println!(
        "### API requests while waiting on {n} objects (Widget custom resources; `apiserver_request_total` deltas for that resource)\n"
    );
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            if let Some(why) = &r.failed {
                let mut row = vec![r.tool.clone()];
                row.extend(std::iter::repeat_n("-".to_string(), 7));
                row.push(format!("failed: {why}"));
                return row;
            }
            let get = |v: &str| r.requests.get(v).copied().unwrap_or(0.0);
            let reads = get("LIST") + get("WATCH") + get("GET");
            let done = if r.did_not_wait {
                format!("{} before: did not wait", ms(-r.after_ready))
            } else if r.after_ready < 0.0 {
                format!(
                    "{} before (saw the last object by watch before the bench's patch returned)",
                    ms(-r.after_ready)
                )
            } else {
                format!("{} after", ms(r.after_ready))
            };
            let writes = if r.tool_writes > 0.0 { format!("{} (its install)", r.tool_writes) } else { "0".into() };
            vec![
                r.tool.clone(),
                format!("{}", get("LIST")),
                format!("{}", get("WATCH")),
                format!("{}", get("GET")),
                format!("{reads}"),
                writes,
                secs(crate::stats::millis(r.wall)),
                if r.peak_kb == 0 { "(in the bench)".into() } else { format!("{:.0} MB", r.peak_kb as f64 / 1024.0) },
                done,
            ]
        })
        .collect();
    table(
        &[
            "tool",
            "LIST",
            "WATCH",
            "GET",
            "reads",
            "writes",
            "wall time",
            "peak RSS",
            "returned vs. the bench's last flip acknowledged",
        ],
        &body,
    );
}

// ---- files ----------------------------------------------------------------------------------

/// The playbooks and charts the tools run, in the scratch dir.
fn write_files(env: &Env) -> Result<()> {
    let put = |rel: &str, text: &str| -> Result<()> {
        let p = env.path(rel);
        std::fs::create_dir_all(p.parent().expect("parent"))?;
        Ok(std::fs::write(p, text)?)
    };
    put("wait.rhai", WAIT_PLAYBOOK)?;
    put("helm-upgrade.rhai", HELM_PLAYBOOK)?;
    put("ready-chart/Chart.yaml", "apiVersion: v2\nname: ready\nversion: 0.1.0\n")?;
    put("ready-chart/templates/deployment.yaml", READY_TEMPLATE)?;
    put("many-chart/Chart.yaml", "apiVersion: v2\nname: many\nversion: 0.1.0\n")?;
    put("many-chart/templates/widgets.yaml", MANY_TEMPLATE)?;
    Ok(())
}

const WAIT_PLAYBOOK: &str = r#"//! Wait until the named Widgets are ready (bench/run readiness).
fn params() {[
    #{ name: "namespace", doc: "Namespace of the Widgets" },
    #{ name: "api_version", doc: "The Widgets' apiVersion" },
    #{ name: "names", doc: "Comma-separated Widget names" },
]}
import "k8s" as k8s;
let kc = k8s::connect();
let targets = [];
for n in param::names.split(",") {
    targets.push(#{ api_version: param::api_version, kind: "Widget", namespace: param::namespace, name: n });
}
kc.wait(targets, #{ timeout: "10m" });
"#;

const HELM_PLAYBOOK: &str = r#"//! Install a one-Deployment chart and wait until it is ready (bench/run readiness).
fn params() {[
    #{ name: "release", doc: "Release name" },
    #{ name: "namespace", doc: "Namespace" },
    #{ name: "stage", doc: "The kwok Stage label of the pods" },
]}
import "k8s" as k8s;
import "helm" as helm;
let kc = k8s::connect();
helm::upgrade(kc, param::release, "ready-chart", #{ namespace: param::namespace, values: #{ stage: param::stage }, timeout: "2m" });
"#;

const READY_TEMPLATE: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: 1
  strategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}, testenv.kmsctl/stage: {{ .Values.stage | quote }}}
    spec:
      containers: [{name: app, image: "bench/app:1"}]
"#;

// Created not ready (the CRD has no status subresource, so the status is kept on create).
const MANY_TEMPLATE: &str = r#"{{- range $i := until (int .Values.count) }}
---
apiVersion: {{ $.Values.apiVersion }}
kind: Widget
metadata:
  name: w-{{ $i }}
spec: {size: 1}
status:
  conditions:
  - {type: Ready, status: "False", reason: Provisioning, message: "", lastTransitionTime: "2026-01-01T00:00:00Z"}
  - {type: Reconciling, status: "True", reason: Provisioning, message: "", lastTransitionTime: "2026-01-01T00:00:00Z"}
{{- end }}
"#;
