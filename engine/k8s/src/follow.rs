//! Following the logs of a changing set of pods — an Argo workflow's steps, which start one
//! after another (`argo logs -f`): a watch on the pods of a selector, and for each pod that
//! has started a log stream whose lines go, prefixed with the pod's node name, to one file
//! and to a callback (the run's log), secrets scrubbed.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kmsctl_host::Redactor;
use kube::api::{Api, LogParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;

use crate::client::Cluster;
use crate::error::K8sError;

/// Whose logs, and where they go.
#[derive(Clone, Debug)]
pub(crate) struct FollowSpec {
    /// The pods' namespace.
    pub namespace: String,
    /// Which pods (a label selector).
    pub selector: String,
    /// The container (default: the pod's first).
    pub container: Option<String>,
    /// The annotation that names a pod in the prefix (e.g. Argo's
    /// `workflows.argoproj.io/node-name`); the pod's name without it.
    pub prefix_annotation: Option<String>,
    /// The file every line goes to, as `<prefix>: <line>`.
    pub file: PathBuf,
}

/// What a follower saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FollowSummary {
    /// Pods whose logs were followed.
    pub pods: u64,
    /// Lines written.
    pub lines: u64,
}

/// A line as it goes out: `<prefix>: <text>`.
pub(crate) type LineSink = Arc<dyn Fn(&str) + Send + Sync>;

struct Shared {
    file: Mutex<std::fs::File>,
    summary: Mutex<FollowSummary>,
    redactor: Redactor,
    sink: Option<LineSink>,
}

impl Shared {
    fn line(&self, prefix: &str, text: &str) {
        let line = format!("{prefix}: {}", self.redactor.redact(text));
        if let Ok(mut f) = self.file.lock() {
            let _ = writeln!(f, "{line}").and_then(|()| f.flush());
        }
        self.summary.lock().expect("summary").lines += 1;
        if let Some(sink) = &self.sink {
            sink(&line);
        }
    }
}

/// A follower running in the background until stopped.
pub(crate) struct Follower {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    shared: Arc<Shared>,
}

/// How long the streams of pods that are still running get to deliver what they have once
/// the follower is stopped.
const DRAIN: Duration = Duration::from_millis(500);

impl Follower {
    /// Start following on `rt`. The file (and its directory) is created, or truncated, first.
    pub(crate) fn start(
        cluster: Cluster,
        spec: FollowSpec,
        redactor: Redactor,
        sink: Option<LineSink>,
        rt: &tokio::runtime::Handle,
    ) -> Result<Self, K8sError> {
        let bad = |e: std::io::Error| K8sError::Usage(format!("log file {}: {e}", spec.file.display()));
        if let Some(dir) = spec.file.parent() {
            std::fs::create_dir_all(dir).map_err(bad)?;
        }
        let file = std::fs::File::create(&spec.file).map_err(bad)?;
        let shared = Arc::new(Shared { file: Mutex::new(file), summary: Mutex::default(), redactor, sink });
        let stop = CancellationToken::new();
        let task = rt.spawn(watch(cluster, spec, shared.clone(), stop.clone()));
        Ok(Self { stop, task, shared })
    }

    /// A token that stops the follower (for the run's cleanup).
    pub(crate) fn stopper(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stop (streams still open get [`DRAIN`] to finish) and return what was seen.
    pub(crate) async fn stop(self) -> FollowSummary {
        self.stop.cancel();
        let _ = self.task.await;
        self.shared.summary.lock().expect("summary").clone()
    }
}

async fn watch(cluster: Cluster, spec: FollowSpec, shared: Arc<Shared>, stop: CancellationToken) {
    let api: Api<Pod> = Api::namespaced(cluster.client().clone(), &spec.namespace);
    let cfg = watcher::Config::default().labels(&spec.selector);
    let mut events = std::pin::pin!(watcher(api.clone(), cfg).default_backoff());
    let mut seen = HashSet::new();
    let mut streams = tokio::task::JoinSet::new();
    loop {
        let ev = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            ev = events.next() => ev,
        };
        let pod = match ev {
            Some(Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p))) => p,
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                tracing::debug!("follow logs: watch error: {e}");
                continue;
            }
            None => break,
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
        // Logs exist once a container has started.
        if !matches!(phase.as_str(), "Running" | "Succeeded" | "Failed") || !seen.insert(name.clone()) {
            continue;
        }
        shared.summary.lock().expect("summary").pods += 1;
        let prefix = spec
            .prefix_annotation
            .as_ref()
            .and_then(|a| pod.metadata.annotations.as_ref()?.get(a).cloned())
            .unwrap_or_else(|| name.clone());
        let lp = LogParams { follow: true, container: spec.container.clone(), ..Default::default() };
        let (api, shared) = (api.clone(), shared.clone());
        streams.spawn(async move {
            match api.log_stream(&name, &lp).await {
                Ok(stream) => {
                    let mut lines = stream.lines();
                    while let Ok(Some(line)) = lines.try_next().await {
                        shared.line(&prefix, &line);
                    }
                }
                Err(e) => shared.line(&prefix, &format!("# logs unavailable: {e}")),
            }
        });
    }
    let _ = tokio::time::timeout(DRAIN, async { while streams.join_next().await.is_some() {} }).await;
    streams.abort_all();
}
