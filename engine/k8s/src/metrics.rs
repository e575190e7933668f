//! The metrics API (`metrics.k8s.io`: metrics-server on a real cluster, the test environment's
//! stand-in in rehearsal): the pods' CPU and memory now, as `kubectl top pod` shows them, and
//! a sampler that records them in the background of a run — the toolkit's
//! `sample_core_cpu.sh`, a `kubectl top` loop the perf workflow killed with a trap.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube_quantity::ParsedQuantity;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::client::Cluster;
use crate::error::K8sError;

/// One container's usage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ContainerUsage {
    /// The container's name.
    pub name: String,
    /// CPU in millicores.
    pub cpu_millis: i64,
    /// Memory (working set) in bytes.
    pub memory_bytes: i64,
}

/// One pod's usage, as the metrics API last measured it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PodUsage {
    /// The pod's name.
    pub pod: String,
    /// When it was measured (RFC 3339).
    pub timestamp: String,
    /// Its containers.
    pub containers: Vec<ContainerUsage>,
}

impl PodUsage {
    /// The pod's CPU in millicores (its containers' sum).
    pub(crate) fn cpu_millis(&self) -> i64 {
        self.containers.iter().map(|c| c.cpu_millis).sum()
    }

    /// The pod's memory in bytes (its containers' sum).
    pub(crate) fn memory_bytes(&self) -> i64 {
        self.containers.iter().map(|c| c.memory_bytes).sum()
    }
}

fn pod_metrics() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics"), "pods")
}

/// The usage of a namespace's pods (those matching `selector`), sorted by name.
pub(crate) async fn pod_usage(
    cluster: &Cluster,
    namespace: &str,
    selector: Option<&str>,
) -> Result<Vec<PodUsage>, K8sError> {
    let api: Api<DynamicObject> = Api::namespaced_with(cluster.client().clone(), namespace, &pod_metrics());
    let lp = match selector {
        Some(s) => ListParams::default().labels(s),
        None => ListParams::default(),
    };
    let what = format!("pod metrics in {namespace}");
    let list = api.list(&lp).await.map_err(|e| match &e {
        kube::Error::Api(s) if s.code == 404 => K8sError::NotFound(format!(
            "{what}: the cluster serves no metrics API (metrics.k8s.io/v1beta1); is metrics-server installed?"
        )),
        kube::Error::Api(s) if s.code == 503 => K8sError::Unreachable(format!(
            "{what}: the metrics API is registered but not available (HTTP 503): {}",
            s.message
        )),
        _ => K8sError::from_kube(&what, e),
    })?;
    let mut out: Vec<PodUsage> = list
        .items
        .iter()
        .map(|o| parse(o.metadata.name.as_deref().unwrap_or_default(), &o.data))
        .collect::<Result<_, _>>()?;
    out.sort_by(|a, b| a.pod.cmp(&b.pod));
    Ok(out)
}

/// A PodMetrics object's body (`timestamp`, `containers[].usage`).
fn parse(pod: &str, data: &Value) -> Result<PodUsage, K8sError> {
    let quantity = |c: &Value, key: &str, scale: f64| -> Result<i64, K8sError> {
        let text = c.pointer(&format!("/usage/{key}")).and_then(Value::as_str).unwrap_or("0");
        let q = ParsedQuantity::try_from(text)
            .map_err(|e| K8sError::Rejected(format!("pod metrics of {pod}: {key} {text:?} is not a quantity: {e}")))?;
        Ok((q.to_bytes_f64().unwrap_or_default() * scale).round() as i64)
    };
    let containers = data
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            Ok(ContainerUsage {
                name: c.get("name").and_then(Value::as_str).unwrap_or_default().to_string(),
                cpu_millis: quantity(c, "cpu", 1000.0)?,
                memory_bytes: quantity(c, "memory", 1.0)?,
            })
        })
        .collect::<Result<_, K8sError>>()?;
    Ok(PodUsage {
        pod: pod.to_string(),
        timestamp: data.get("timestamp").and_then(Value::as_str).unwrap_or_default().to_string(),
        containers,
    })
}

/// What the sampler records, and where.
#[derive(Clone, Debug)]
pub(crate) struct SamplerSpec {
    /// The pods' namespace.
    pub namespace: String,
    /// Which pods (a label selector; all when `None`).
    pub selector: Option<String>,
    /// Time between samples.
    pub interval: Duration,
    /// The file the samples go to, a line per pod and sample: `<utc> <pod> <cpu>m <memory>Mi`
    /// (the toolkit's `core-cpu-samples.log`, `kubectl top`'s units).
    pub file: PathBuf,
}

/// A pod's samples, summed up.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PodStats {
    /// How many samples measured it.
    pub samples: u64,
    /// The highest CPU seen, millicores.
    pub cpu_max_millis: i64,
    /// The sum of its CPU samples (for the mean), millicores.
    pub cpu_sum_millis: i64,
    /// The highest memory seen, bytes.
    pub memory_max_bytes: i64,
}

/// What a sampler recorded, when it stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    /// Rounds taken (each reads every matching pod once).
    pub rounds: u64,
    /// Rounds that failed (the metrics API did not answer); the sampler goes on.
    pub failed_rounds: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// Per pod.
    pub pods: BTreeMap<String, PodStats>,
}

impl Summary {
    fn record(&mut self, usage: &[PodUsage]) {
        self.rounds += 1;
        for u in usage {
            let s = self.pods.entry(u.pod.clone()).or_default();
            s.samples += 1;
            s.cpu_max_millis = s.cpu_max_millis.max(u.cpu_millis());
            s.cpu_sum_millis += u.cpu_millis();
            s.memory_max_bytes = s.memory_max_bytes.max(u.memory_bytes());
        }
    }
}

/// The lines of one round, as the toolkit's sampler printed them (`<utc> <pod> <cpu> <mem>`).
fn lines(at: &str, usage: &[PodUsage]) -> String {
    usage
        .iter()
        .map(|u| format!("{at} {} {}m {}Mi\n", u.pod, u.cpu_millis(), u.memory_bytes() / (1024 * 1024)))
        .collect()
}

/// A sampler running in the background: samples at once, then every interval, until stopped.
pub(crate) struct Sampler {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Summary>,
}

impl Sampler {
    /// Start sampling on `rt`. The file (and its directory) is created, or truncated, first, so
    /// a bad path fails here.
    pub(crate) fn start(cluster: Cluster, spec: SamplerSpec, rt: &tokio::runtime::Handle) -> Result<Self, K8sError> {
        let bad = |e: std::io::Error| K8sError::Usage(format!("sampler file {}: {e}", spec.file.display()));
        if let Some(dir) = spec.file.parent() {
            std::fs::create_dir_all(dir).map_err(bad)?;
        }
        let mut file = std::fs::File::create(&spec.file).map_err(bad)?;
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = rt.spawn(async move {
            let mut summary = Summary::default();
            let mut tick = tokio::time::interval(spec.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    _ = stopped.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let at = jiff::Timestamp::now().round(jiff::Unit::Second).unwrap_or_else(|_| jiff::Timestamp::now());
                let round = tokio::select! {
                    _ = stopped.cancelled() => break,
                    r = pod_usage(&cluster, &spec.namespace, spec.selector.as_deref()) => r,
                };
                let text = match round {
                    Ok(usage) => {
                        summary.record(&usage);
                        lines(&at.to_string(), &usage)
                    }
                    Err(e) => {
                        summary.rounds += 1;
                        summary.failed_rounds += 1;
                        summary.last_error = Some(e.to_string());
                        format!("{at} error: {e}\n")
                    }
                };
                // Written per round, so a run that is killed keeps what it sampled.
                let _ = file.write_all(text.as_bytes()).and_then(|()| file.flush());
            }
            summary
        });
        Ok(Self { stop, task })
    }

    /// A token that stops the sampler (for the run's cleanup).
    pub(crate) fn stopper(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stop and return what it recorded.
    pub(crate) async fn stop(self) -> Summary {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_pod_metrics_in_kubectl_tops_units() {
        let data = json!({
            "timestamp": "2026-12-01T14:00:00Z",
            "window": "10s",
            "containers": [
                {"name": "core", "usage": {"cpu": "3500m", "memory": "2Gi"}},
                {"name": "logger", "usage": {"cpu": "1234567n", "memory": "10240Ki"}},
            ],
        });
        let u = parse("kms-core-1-0", &data).expect("parsed");
        assert_eq!(u.containers[0], ContainerUsage { name: "core".into(), cpu_millis: 3500, memory_bytes: 2 << 30 });
        assert_eq!((u.containers[1].cpu_millis, u.containers[1].memory_bytes), (1, 10 << 20));
        assert_eq!((u.cpu_millis(), u.memory_bytes()), (3501, (2 << 30) + (10 << 20)));
        assert_eq!(lines("2026-12-01T14:00:00Z", &[u]), "2026-12-01T14:00:00Z kms-core-1-0 3501m 2058Mi\n");
    }

    #[test]
    fn a_usage_that_is_not_a_quantity_is_an_error_naming_the_pod() {
        let data = json!({"containers": [{"name": "core", "usage": {"cpu": "lots", "memory": "1Mi"}}]});
        let e = parse("p", &data).expect_err("refused");
        assert!(e.to_string().contains("pod metrics of p: cpu \"lots\""), "{e}");
    }

    #[test]
    fn the_summary_keeps_each_pods_max_and_sum() {
        let usage = |cpu, mem| PodUsage {
            pod: "p".into(),
            timestamp: String::new(),
            containers: vec![ContainerUsage { name: "c".into(), cpu_millis: cpu, memory_bytes: mem }],
        };
        let mut s = Summary::default();
        s.record(&[usage(100, 5)]);
        s.record(&[usage(300, 2)]);
        assert_eq!(s.rounds, 2);
        assert_eq!(s.pods["p"], PodStats { samples: 2, cpu_max_millis: 300, cpu_sum_millis: 400, memory_max_bytes: 5 });
    }
}
