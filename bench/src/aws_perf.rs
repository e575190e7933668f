//! The `aws-perf` scenario: the nightly perf deploy (13 parties) on the eks profile's simulated
//! cluster, side by side, each flow in a fresh namespace, rounds interleaved:
//!
//! - kmsctl: `kmsctl run playbooks/aws-perf.rhai` against the environment's EKS cluster in moto
//!   (`--eks-cluster`), the stand-in tkms-infra and sync-secrets charts, tests/kms-repo;
//! - bash: bench/aws-perf-bash.sh, the toolkit's flow on the same charts and values: its
//!   `sleep 10` after the namespace, tkms-infra `--wait` then the S3 poll, the Kmsparty poll and
//!   one `kubectl wait` per party in turn, sync-secrets' uninstall and sleeps, `helm --wait` per
//!   party in parallel, the init release, `sleep 30` and `kubectl wait`.
//!
//! Both wait on the same thing: the rehearsal controller makes each tkms-infra object Ready 2 s
//! after it is created (real Crossplane takes minutes, which only lengthens both).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use tokio::process::Command;

use crate::deploy::{Sample, bash_phases, measure, phases};
use crate::env::{Env, Result, delta, unique};
use crate::stats::{secs, summarize, table};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Flow {
    Kmsctl,
    Bash,
}

impl Flow {
    fn label(self) -> &'static str {
        match self {
            Flow::Kmsctl => "kmsctl run playbooks/aws-perf.rhai",
            Flow::Bash => "bash flow (deploy.sh --target aws-perf's waits and sleeps), helm 4",
        }
    }
}

/// Run the scenario and print its table.
pub(crate) async fn run(kmsctl: PathBuf, runs: usize, parties: usize) -> Result<()> {
    let cluster = std::env::var("TESTENV_EKS_CLUSTER").ok().filter(|c| !c.is_empty()).ok_or(
        "TESTENV_EKS_CLUSTER is not set: the aws-perf scenario needs the eks profile (bench/run aws-perf starts one)",
    )?;
    let env = Env::connect(kmsctl).await?;
    let out = scenario(&env, &cluster, runs.max(1), parties.clamp(1, 13)).await;
    env.cleanup().await;
    out
}

async fn scenario(env: &Env, cluster: &str, runs: usize, parties: usize) -> Result<()> {
    let mut samples: BTreeMap<Flow, Vec<Sample>> = BTreeMap::new();
    let mut requests: BTreeMap<Flow, BTreeMap<String, f64>> = BTreeMap::new();
    for round in 1..=runs {
        for flow in [Flow::Kmsctl, Flow::Bash] {
            let ns = unique(if flow == Flow::Kmsctl { "bench-awsperf-kmsctl" } else { "bench-awsperf-bash" });
            env.created("namespace", &ns);
            let before = env.requests("tkms.zama.ai", "kmsparties").await?;
            let s = match flow {
                Flow::Kmsctl => kmsctl_flow(env, &ns, cluster, parties).await?,
                Flow::Bash => bash_flow(env, &ns, parties).await?,
            };
            let after = env.requests("tkms.zama.ai", "kmsparties").await?;
            // The last round's reads of the Kmsparties (the rehearsal controller's status
            // writes are a subresource and not counted).
            requests.insert(flow, delta(&before, &after));
            eprintln!("[bench] aws-perf round {round}/{runs}: {} {}", flow.label(), secs(s.wall));
            samples.entry(flow).or_default().push(s);
            // The 13 parties fill the spot pool: the next flow needs it empty.
            let gone =
                env.kubectl().args(["delete", "namespace", &ns, "--wait=true", "--timeout=180s"]).output().await?;
            if !gone.status.success() {
                return Err(format!("delete namespace {ns}: {}", String::from_utf8_lossy(&gone.stderr)).into());
            }
        }
    }
    println!(
        "### {parties}-party aws-perf deploy (threshold), wall time (median of {runs} runs, each in a fresh namespace)\n"
    );
    let kmsctl = summarize(&samples[&Flow::Kmsctl].iter().map(|s| s.wall).collect::<Vec<_>>()).median;
    let body: Vec<Vec<String>> = [Flow::Kmsctl, Flow::Bash]
        .iter()
        .map(|&f| {
            let s = summarize(&samples[&f].iter().map(|s| s.wall).collect::<Vec<_>>());
            let speedup = if f == Flow::Bash { format!("{:.1}× faster", s.median / kmsctl) } else { String::new() };
            let reads: Vec<String> = requests[&f].iter().map(|(verb, n)| format!("{verb} {n}")).collect();
            vec![
                f.label().into(),
                secs(s.median),
                secs(s.min),
                secs(s.max),
                speedup,
                reads.join(", "),
                phases(&samples[&f]),
            ]
        })
        .collect();
    table(&["flow", "median", "min", "max", "kmsctl vs this", "Kmsparty requests", "phases (median)"], &body);
    Ok(())
}

fn charts() -> PathBuf {
    crate::root().join("tests/charts")
}

async fn kmsctl_flow(env: &Env, ns: &str, cluster: &str, parties: usize) -> Result<Sample> {
    let root = crate::root();
    let mut c = env.kmsctl();
    c.arg("run")
        .arg(root.join("playbooks/aws-perf.rhai"))
        .args(["--num-parties", &parties.to_string(), "--namespace", ns, "--eks-cluster", cluster, "--tag", "bench"])
        .arg("--kms-repo")
        .arg(root.join("tests/kms-repo"))
        .arg("--tkms-infra-chart")
        .arg(charts().join("tkms-infra"))
        .arg("--sync-secrets-chart")
        .arg(charts().join("sync-secrets"))
        .arg("--stdlib-dir")
        .arg(root.join("stdlib"))
        // The toolkit's deploy.sh checks no image (the workflow did, W28): neither does this.
        .args(["--image-check-attempts", "0"])
        .args(["--output", "json"])
        .env("KMSCTL_HELM", &env.helm);
    let (mut sample, stdout) = measure(c, false).await?;
    for line in stdout.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
        if v["event"] == "step_finished"
            && let (Some(name), Some(d)) = (v["name"].as_str(), v["duration_ms"].as_f64())
            && ["EKS cluster", "namespace", "infrastructure", "deploy ", "initialise"]
                .iter()
                .any(|p| name.starts_with(p))
        {
            sample.phases.push((name.to_string(), d));
        }
    }
    Ok(sample)
}

async fn bash_flow(env: &Env, ns: &str, parties: usize) -> Result<Sample> {
    let mut c = Command::new("bash");
    c.arg(crate::root().join("bench/aws-perf-bash.sh"))
        .arg(ns)
        .arg(parties.to_string())
        .arg(crate::root().join("tests/kms-repo"))
        .arg(charts().join("tkms-infra"))
        .arg(charts().join("sync-secrets"))
        .env("HELM", &env.helm)
        .env("KUBECTL", &env.kubectl)
        .env("KUBECONFIG", &env.kubeconfig)
        .kill_on_drop(true);
    let (mut sample, stdout) = measure(c, false).await?;
    sample.phases = bash_phases(&stdout);
    Ok(sample)
}
