//! The `deploy` scenario: an N-party (13) threshold deploy of tests/charts/kms-core, side by
//! side on the same cluster, each flow in a fresh namespace, rounds interleaved so that noise
//! spreads evenly:
//!
//! - kmsctl: `kmsctl run bench/deploy.rhai --num-parties N` (release build, the repo's stdlib;
//!   deploy-bash.sh's flow and values through kmsctl's engine); wall time, its own peak RSS
//!   (VmHWM sampled every 50 ms) and, under GNU time, the CPU time of it and its helm children;
//! - bash: bench/deploy-bash.sh, the toolkit's flow (`helm --wait` per party in parallel, the
//!   init release, `sleep 30`, `kubectl wait`), with helm 4 and with helm 3;
//! - floor: the same releases rendered with `helm template` beforehand, server-side applied at
//!   once, and watched until every party pod is Ready, then the init Job applied and watched
//!   until Complete (it must run after the parties) — what the cluster itself needs;
//! - helm floor: every party's `helm upgrade --install` at once without --wait, watched, then
//!   the init release — what any tool that installs Helm releases needs (helm's own CPU).
//!
//! Then helm's own cost per invocation, alone on the machine, to show where tool time goes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kmsctl_k8s::parse_manifests;
use kube::api::{Api, ApiResource, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::env::{Env, Result, unique};
use crate::fixtures::Observer;
use crate::stats::{millis, secs, summarize, table};

/// Image names for every flow (kwok pulls nothing; they only need to be equal).
const CORE_IMAGE: &str = "kms-core-service";
const CLIENT_IMAGE: &str = "kms-core-client";
const TAG: &str = "bench";
/// GNU time, for CPU time and max RSS including children (optional).
const GNU_TIME: &str = "/usr/bin/time";
/// Targets from spec/MISSION.md.
const FLOOR_RATIO_TARGET: f64 = 1.2;
const MEMORY_TARGET_MB: f64 = 60.0;

/// The flows, in the order of a round.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Flow {
    Floor,
    HelmFloor,
    Kmsctl,
    Bash4,
    Bash3,
}

impl Flow {
    fn label(self) -> &'static str {
        match self {
            Flow::Floor => "cluster floor (helm template + server-side apply, watched)",
            Flow::HelmFloor => "helm floor (every helm upgrade at once, no --wait, watched)",
            Flow::Kmsctl => "kmsctl run bench/deploy.rhai",
            Flow::Bash4 => "bash flow, helm 4 (--wait = kstatus watcher)",
            Flow::Bash3 => "bash flow, helm 3 (--wait = legacy, polls every 2 s)",
        }
    }
}

/// One run of a flow.
#[derive(Default)]
pub(crate) struct Sample {
    /// Wall time, ms.
    pub(crate) wall: f64,
    /// Named phases, ms.
    pub(crate) phases: Vec<(String, f64)>,
    /// The process's own and its children's user+sys CPU, seconds (GNU time).
    cpu: Option<f64>,
    /// kmsctl's own peak RSS (VmHWM), KiB.
    pub(crate) own_peak_kb: Option<u64>,
    /// The largest RSS of any process of the tree (GNU time %M), KiB.
    largest_kb: Option<u64>,
}

/// Run the scenario and print its tables.
pub(crate) async fn run(kmsctl: PathBuf, runs: usize, parties: usize) -> Result<()> {
    let env = Env::connect(kmsctl).await?;
    let out = scenario(&env, runs.max(1), parties.clamp(1, 13)).await;
    env.cleanup().await;
    out
}

async fn scenario(env: &Env, runs: usize, parties: usize) -> Result<()> {
    let values = Values::write(env, parties)?;
    let mut samples: BTreeMap<Flow, Vec<Sample>> = BTreeMap::new();
    for round in 1..=runs {
        for flow in [Flow::Floor, Flow::HelmFloor, Flow::Kmsctl, Flow::Bash4, Flow::Bash3] {
            let s = match flow {
                Flow::Floor => floor(env, &values, parties).await?,
                Flow::HelmFloor => helm_floor(env, &values, parties).await?,
                Flow::Kmsctl => kmsctl_flow(env, parties).await?,
                Flow::Bash4 => bash_flow(env, parties, false).await?,
                Flow::Bash3 => bash_flow(env, parties, true).await?,
            };
            eprintln!("[bench] deploy round {round}/{runs}: {} {}", flow.label(), secs(s.wall));
            samples.entry(flow).or_default().push(s);
        }
    }
    let costs = helm_costs(env, &values).await?;
    print_walls(&samples, parties, runs);
    print_kmsctl(&samples[&Flow::Kmsctl]);
    print_costs(&costs, parties);
    Ok(())
}

// ---- values, as stdlib/kms.rhai makes them --------------------------------------------------

/// Values files of every release, in the scratch dir.
struct Values {
    common: PathBuf,
    parties: Vec<PathBuf>,
    init: PathBuf,
}

impl Values {
    fn write(env: &Env, n: usize) -> Result<Values> {
        let put = |name: String, v: Value| -> Result<PathBuf> {
            let p = env.path(&name);
            std::fs::write(&p, serde_json::to_vec_pretty(&v)?)?;
            Ok(p)
        };
        let (t, majority, reconstruct) = if n >= 13 {
            (4, 5, 9)
        } else if n > 1 {
            (1, 2, 3)
        } else {
            (0, 1, 1)
        };
        let peers: Vec<Value> =
            (1..=n).map(|id| json!({"id": id, "host": format!("kms-core-{id}-core-{id}"), "port": 50001})).collect();
        let common = json!({
            "kmsCore": {
                "image": {"name": CORE_IMAGE, "tag": TAG},
                "thresholdMode": {"enabled": true, "thresholdValue": t, "peersList": peers, "tls": {"enabled": false}},
            },
            "kmsCoreClient": {"image": {"name": CLIENT_IMAGE, "tag": TAG}, "num_majority": majority, "num_reconstruct": reconstruct},
        });
        let party = |id: usize| {
            let prefix = |p: &str| json!({"s3": {"prefix": format!("{p}-p{id}")}});
            json!({
                "kmsPeers": {"id": id, "count": 1},
                "kmsCore": {"publicVault": prefix("PUB"), "privateVault": prefix("PRIV"), "backupVault": prefix("BACKUP")},
            })
        };
        let init = json!({"kmsCore": {"enabled": false}, "kmsInit": {"enabled": true}, "kmsGenCertAndKeys": {"enabled": false}});
        Ok(Values {
            common: put("common.json".into(), common)?,
            parties: (1..=n).map(|id| put(format!("party-{id}.json"), party(id))).collect::<Result<_>>()?,
            init: put("init.json".into(), init)?,
        })
    }
}

fn chart() -> PathBuf {
    crate::root().join("tests/charts/kms-core")
}

// ---- the flows ------------------------------------------------------------------------------

pub(crate) async fn kmsctl_flow(env: &Env, parties: usize) -> Result<Sample> {
    let ns = unique("bench-deploy-kmsctl");
    env.created("namespace", &ns);
    let root = crate::root();
    let mut c = env.kmsctl();
    c.arg("run")
        .arg(root.join("bench/deploy.rhai"))
        .args(["--num-parties", &parties.to_string(), "--namespace", &ns, "--chart"])
        .arg(chart())
        .arg("--stdlib-dir")
        .arg(root.join("stdlib"))
        .args(["--core-image", CORE_IMAGE, "--client-image", CLIENT_IMAGE, "--tag", TAG, "--output", "json"]);
    let (mut sample, stdout) = measure(c, true).await?;
    // The playbook's own step timings (JSON events).
    for line in stdout.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        if v["event"] == "step_finished"
            && let (Some(name), Some(d)) = (v["name"].as_str(), v["duration_ms"].as_f64())
            && (name.starts_with("deploy ") || name.starts_with("initialise"))
        {
            sample.phases.push((name.to_string(), d));
        }
    }
    Ok(sample)
}

async fn bash_flow(env: &Env, parties: usize, v3: bool) -> Result<Sample> {
    let ns = unique(if v3 { "bench-deploy-bash3" } else { "bench-deploy-bash4" });
    env.created("namespace", &ns);
    let mut c = Command::new("bash");
    c.arg(crate::root().join("bench/deploy-bash.sh"))
        .args([&ns, &parties.to_string()])
        .arg(chart())
        .env("HELM", if v3 { &env.helm3 } else { &env.helm })
        .env("KUBECTL", &env.kubectl)
        .env("KUBECONFIG", &env.kubeconfig)
        .env("CORE_IMAGE", CORE_IMAGE)
        .env("CLIENT_IMAGE", CLIENT_IMAGE)
        .env("TAG", TAG)
        .kill_on_drop(true);
    let (mut sample, stdout) = measure(c, false).await?;
    sample.phases = bash_phases(&stdout);
    Ok(sample)
}

/// A bash flow's last line, "phases namespace=0.05 parties=12.34 init=1.23 ..." (seconds), as
/// named phases in ms.
pub(crate) fn bash_phases(stdout: &str) -> Vec<(String, f64)> {
    let line = stdout.lines().rev().find(|l| l.starts_with("phases ")).unwrap_or_default();
    line.split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse::<f64>().unwrap_or(0.0) * 1000.0))
        .collect()
}

async fn floor(env: &Env, values: &Values, parties: usize) -> Result<Sample> {
    // Rendering is a tool's cost, not the cluster's: done before the clock starts.
    let ns = unique("bench-deploy-floor");
    let mut party_docs = Vec::new();
    for (i, v) in values.parties.iter().enumerate() {
        party_docs.extend(render(env, &format!("kms-core-{}", i + 1), &ns, &[&values.common, v]).await?);
    }
    let init_docs = render(env, "kms-core-init", &ns, &[&values.common, &values.init]).await?;
    watched(env, &ns, parties, apply_all(env, &ns, party_docs), apply_all(env, &ns, init_docs)).await
}

/// What any tool that installs Helm releases needs: every party's `helm upgrade --install`
/// at once (no --wait), watched until the party pods are Ready, then the init release (helm
/// runs its hook Job and waits for it), watched until the Job is Complete.
async fn helm_floor(env: &Env, values: &Values, parties: usize) -> Result<Sample> {
    let ns = unique("bench-deploy-helmfloor");
    let upgrade = |release: String, files: [&PathBuf; 2]| {
        let mut c = env.helm(false);
        c.args(["upgrade", "--install", &release]).arg(chart()).args(["-n", &ns]);
        for f in files {
            c.arg("-f").arg(f);
        }
        async move {
            let out = c.output().await?;
            if !out.status.success() {
                return Err(format!("helm upgrade {release}: {}", String::from_utf8_lossy(&out.stderr)).into());
            }
            Ok::<_, crate::env::Error>(())
        }
    };
    let all_parties = async {
        let each = values.parties.iter().enumerate();
        futures::future::try_join_all(each.map(|(i, v)| upgrade(format!("kms-core-{}", i + 1), [&values.common, v])))
            .await
            .map(drop)
    };
    let init = upgrade("kms-core-init".into(), [&values.common, &values.init]);
    watched(env, &ns, parties, all_parties, init).await
}

/// Time a floor flow: create `ns`, run `deploy_parties` and watch until every party pod is
/// Ready, then run `deploy_init` and watch until the init Job is Complete.
async fn watched(
    env: &Env,
    ns: &str,
    parties: usize,
    deploy_parties: impl Future<Output = Result<()>>,
    deploy_init: impl Future<Output = Result<()>>,
) -> Result<Sample> {
    let start = Instant::now();
    Api::<k8s_openapi::api::core::v1::Namespace>::all(env.client())
        .create(&Default::default(), &serde_json::from_value(json!({"metadata": {"name": ns}}))?)
        .await?;
    env.created("namespace", ns);
    let pods = Observer::start(Api::namespaced_with(env.client(), ns, &ApiResource::erase::<Pod>(&())), |p| {
        has_condition(p, "Ready")
    })
    .await?;
    deploy_parties.await?;
    for id in 1..=parties {
        pods.ready_at(&format!("kms-core-{id}-core-{id}"), Duration::from_secs(600)).await?;
    }
    let parties_ready = start.elapsed();
    let jobs = Observer::start(Api::namespaced_with(env.client(), ns, &ApiResource::erase::<Job>(&())), |j| {
        has_condition(j, "Complete")
    })
    .await?;
    deploy_init.await?;
    jobs.ready_at("kms-core-init-threshold-init", Duration::from_secs(600)).await?;
    let wall = start.elapsed();
    Ok(Sample {
        wall: millis(wall),
        phases: vec![
            ("parties ready".into(), millis(parties_ready)),
            ("init Job".into(), millis(wall - parties_ready)),
        ],
        ..Default::default()
    })
}

fn has_condition(obj: &Value, ty: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == ty && c["status"] == "True"))
}

/// `helm template` one release (hooks included) into objects.
async fn render(env: &Env, release: &str, ns: &str, values: &[&PathBuf]) -> Result<Vec<Value>> {
    let kube_version = std::env::var("TESTENV_K8S_VERSION").unwrap_or_else(|_| "v1.36.1".into());
    let mut c = Command::new(&env.helm);
    c.args(["template", release]).arg(chart()).args(["-n", ns, "--kube-version", &kube_version]);
    for v in values {
        c.arg("-f").arg(v);
    }
    let out = c.output().await?;
    if !out.status.success() {
        return Err(format!("helm template {release}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(parse_manifests(&String::from_utf8_lossy(&out.stdout))?)
}

/// Server-side apply every object at once.
async fn apply_all(env: &Env, ns: &str, docs: Vec<Value>) -> Result<()> {
    let params = PatchParams::apply("kmsctl-bench-floor").force();
    futures::stream::iter(docs)
        .map(|doc| {
            let params = params.clone();
            async move {
                let api_version = doc["apiVersion"].as_str().unwrap_or_default();
                let kind = doc["kind"].as_str().unwrap_or_default();
                let name = doc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
                let (ar, _) = env.cluster.resolve(api_version, kind).await?;
                let api: Api<kube::api::DynamicObject> = Api::namespaced_with(env.client(), ns, &ar);
                api.patch(&name, &params, &Patch::Apply(&doc)).await?;
                Ok::<_, crate::env::Error>(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

// ---- measuring a process --------------------------------------------------------------------

/// Run `cmd` to completion (under GNU time when there is one): wall time, CPU, max RSS, and
/// with `sample` its own peak RSS. Returns the sample and its stdout.
pub(crate) async fn measure(cmd: Command, sample: bool) -> Result<(Sample, String)> {
    let time_out = tempfile::NamedTempFile::new()?;
    let gnu_time = Path::new(GNU_TIME).exists();
    let mut c = if gnu_time { under_time(&cmd, time_out.path()) } else { cmd };
    let mut child = c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let start = Instant::now();
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s).await;
        s
    });
    let err = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    if sample && let Some(pid) = child.id() {
        tokio::spawn(sample_peak(pid, gnu_time, peak.clone(), done.clone()));
    }
    let status = child.wait().await?;
    let wall = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let (stdout, stderr) = (out.await?, err.await?);
    if !status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(
            format!("{:?} failed ({status}):\n{}", c.as_std().get_args().collect::<Vec<_>>(), tail.join("\n")).into()
        );
    }
    let mut s = Sample { wall: millis(wall), ..Default::default() };
    if gnu_time {
        // "%e %U %S %M" on its last line.
        let text = std::fs::read_to_string(time_out.path())?;
        let f: Vec<f64> =
            text.lines().last().unwrap_or_default().split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if f.len() == 4 {
            s.cpu = Some(f[1] + f[2]);
            s.largest_kb = Some(f[3] as u64);
        }
    }
    let p = peak.load(Ordering::Relaxed);
    s.own_peak_kb = (p > 0).then_some(p);
    Ok((s, stdout))
}

/// The same command, run by GNU time writing "%e %U %S %M" to `out`.
fn under_time(cmd: &Command, out: &Path) -> Command {
    let std = cmd.as_std();
    let mut c = Command::new(GNU_TIME);
    c.args(["-f", "%e %U %S %M", "-o"]).arg(out).arg(std.get_program()).args(std.get_args());
    for (k, v) in std.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(d) = std.get_current_dir() {
        c.current_dir(d);
    }
    c.kill_on_drop(true);
    c
}

/// Sample the process's VmHWM (its peak RSS so far) every 50 ms until `done`; under GNU time
/// the process is time's child. The last sample before it exits is its peak (minus at most
/// what it grew in its last 50 ms).
pub(crate) async fn sample_peak(pid: u32, under_time: bool, peak: Arc<AtomicU64>, done: Arc<AtomicBool>) {
    let mut target = (!under_time).then_some(pid);
    while !done.load(Ordering::Relaxed) {
        if target.is_none() {
            target = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .ok()
                .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()));
        }
        if let Some(kb) = target.and_then(vm_hwm_kb) {
            peak.fetch_max(kb, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()
}

// ---- helm's own cost ------------------------------------------------------------------------

/// One helm command's cost alone on the machine: (what, wall samples ms, CPU samples s).
type Cost = (String, Vec<f64>, Vec<f64>);

/// What kmsctl's helm::upgrade runs per release (a first install with helm 4: an upgrade
/// without --wait or the client-side OpenAPI check), helm's default, and a render, each
/// measured alone, 3 times, in fresh namespaces.
async fn helm_costs(env: &Env, values: &Values) -> Result<Vec<Cost>> {
    let variants: [(&str, &[&str]); 3] = [
        (
            "helm upgrade --install --disable-openapi-validation (what kmsctl runs for a first install)",
            &["upgrade", "--install", "--disable-openapi-validation"],
        ),
        ("helm upgrade --install (helm's default)", &["upgrade", "--install"]),
        ("helm template", &["template"]),
    ];
    let mut costs: Vec<Cost> = variants.iter().map(|(what, _)| (what.to_string(), vec![], vec![])).collect();
    for _ in 0..3 {
        let ns = env.namespace("bench-helm-cost").await?;
        for (i, (_, args)) in variants.iter().enumerate() {
            let mut c = env.helm(false);
            c.args(*args)
                .arg(format!("kms-core-{}", i + 1))
                .arg(chart())
                .args(["-n", &ns])
                .arg("-f")
                .arg(&values.common)
                .arg("-f")
                .arg(&values.parties[i % values.parties.len()]);
            let (s, _) = measure(c, false).await?;
            costs[i].1.push(s.wall);
            costs[i].2.push(s.cpu.unwrap_or(f64::NAN));
        }
    }
    Ok(costs)
}

// ---- tables ---------------------------------------------------------------------------------

fn median(xs: &[f64]) -> f64 {
    summarize(xs).median
}

fn print_walls(samples: &BTreeMap<Flow, Vec<Sample>>, parties: usize, runs: usize) {
    println!("### {parties}-party threshold deploy, wall time (median of {runs} runs, each in a fresh namespace)\n");
    let wall = |f: Flow| median(&samples[&f].iter().map(|s| s.wall).collect::<Vec<_>>());
    let floor = wall(Flow::Floor);
    let helm_floor = wall(Flow::HelmFloor);
    let kmsctl = wall(Flow::Kmsctl);
    let body: Vec<Vec<String>> = [Flow::Floor, Flow::HelmFloor, Flow::Kmsctl, Flow::Bash4, Flow::Bash3]
        .iter()
        .map(|&f| {
            let all: Vec<f64> = samples[&f].iter().map(|s| s.wall).collect();
            let s = summarize(&all);
            let ratio = s.median / floor;
            let vs_floor = match f {
                Flow::Floor => "1.00×".to_string(),
                Flow::Kmsctl => format!(
                    "{ratio:.2}× (target ≤ {FLOOR_RATIO_TARGET}×: {}); {:.2}× the helm floor",
                    if ratio <= FLOOR_RATIO_TARGET { "ok" } else { "MISSED" },
                    s.median / helm_floor
                ),
                _ => format!("{ratio:.2}×"),
            };
            let speedup = match f {
                Flow::Bash4 | Flow::Bash3 => format!("{:.1}× faster", s.median / kmsctl),
                _ => String::new(),
            };
            vec![f.label().into(), secs(s.median), secs(s.min), secs(s.max), vs_floor, speedup, phases(&samples[&f])]
        })
        .collect();
    table(&["flow", "median", "min", "max", "vs floor", "kmsctl vs this", "phases (median)"], &body);
}

/// "name 1.23 s, other 4.56 s": each phase's median over the runs.
pub(crate) fn phases(samples: &[Sample]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for s in samples {
        for (n, _) in &s.phases {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    names
        .iter()
        .map(|n| {
            let xs: Vec<f64> =
                samples.iter().flat_map(|s| s.phases.iter().filter(|(k, _)| k == n).map(|(_, v)| *v)).collect();
            format!("{n} {}", secs(median(&xs)))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_kmsctl(samples: &[Sample]) {
    println!("### kmsctl during the deploy (median, max of the runs)\n");
    let mb = |kb: Option<u64>| kb.map(|k| k as f64 / 1024.0);
    let row = |what: &str, xs: Vec<f64>, unit: &str, target: String| -> Vec<String> {
        if xs.is_empty() {
            return vec![what.into(), "n/a".into(), "n/a".into(), target];
        }
        let s = summarize(&xs);
        vec![what.into(), format!("{:.1} {unit}", s.median), format!("{:.1} {unit}", s.max), target]
    };
    let own: Vec<f64> = samples.iter().filter_map(|s| mb(s.own_peak_kb)).collect();
    let own_max = own.iter().copied().fold(0.0, f64::max);
    let body = vec![
        row(
            "kmsctl's own peak RSS (VmHWM, sampled every 50 ms)",
            own,
            "MB",
            format!("≤ {MEMORY_TARGET_MB} MB: {}", if own_max <= MEMORY_TARGET_MB { "ok" } else { "MISSED" }),
        ),
        row(
            "largest process in the tree (GNU time %M; a helm child if above)",
            samples.iter().filter_map(|s| mb(s.largest_kb)).collect(),
            "MB",
            String::new(),
        ),
        row(
            "CPU, user+sys, kmsctl and its helm children",
            samples.iter().filter_map(|s| s.cpu).collect(),
            "s",
            String::new(),
        ),
    ];
    table(&["measure", "median", "max", "target"], &body);
}

fn print_costs(costs: &[Cost], parties: usize) {
    println!("### helm's own cost per invocation, one party's release, alone on the machine (median of 3)\n");
    let body: Vec<Vec<String>> = costs
        .iter()
        .map(|(what, wall, cpu)| vec![what.clone(), secs(median(wall)), format!("{:.2} s", median(cpu))])
        .collect();
    table(&["command", "wall", "CPU user+sys"], &body);
    let per_release = median(&costs[0].2);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let total = per_release * (parties + 1) as f64;
    println!(
        "kmsctl runs one helm process per release: {} releases × {per_release:.2} CPU-s = {total:.1} CPU-s of helm, \
         at least {:.1} s on {cores} cores before any waiting.\n",
        parties + 1,
        total / cores as f64
    );
}
