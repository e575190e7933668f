//! The local test environment the cluster scenarios run on.
//!
//! `bench/run` sources the environment's env file (a private environment it started, or the
//! running one `TESTENV_DIR` names), so this reads `TESTENV_DIR`, `TESTENV_KUBECONFIG` and
//! `TESTENV_HELM3` and refuses anything that is not the loopback test cluster: the scenarios
//! create and delete namespaces and CRDs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kmsctl_k8s::{Cluster, ConnectOptions};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use tokio::process::Command;

/// A benchmark error: what failed, in words.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;
/// A benchmark result.
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// The cluster, its tools, and what the scenario created (deleted by [`Env::cleanup`]).
pub(crate) struct Env {
    /// The cluster's admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// kmsctl's own cluster handle (the in-process readiness engine uses it).
    pub cluster: Cluster,
    /// The release kmsctl binary.
    pub kmsctl: PathBuf,
    /// helm v4 (the environment's default helm).
    pub helm: PathBuf,
    /// helm v3.
    pub helm3: PathBuf,
    /// kubectl.
    pub kubectl: PathBuf,
    /// Scratch space for charts, playbooks and values; removed on drop.
    pub scratch: tempfile::TempDir,
    created: Mutex<Vec<(String, String)>>,
}

fn var(name: &str) -> Result<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or_else(|| {
        format!("{name} is not set: run the cluster scenarios through bench/run (it starts a test environment)").into()
    })
}

impl Env {
    /// Connect to the test environment named by the `TESTENV_*` variables.
    pub(crate) async fn connect(kmsctl: PathBuf) -> Result<Env> {
        let dir = PathBuf::from(var("TESTENV_DIR")?);
        let kubeconfig = PathBuf::from(var("TESTENV_KUBECONFIG")?);
        let opts = ConnectOptions { kubeconfig: Some(kubeconfig.clone()), ..Default::default() };
        let cluster = Cluster::connect(&opts).await?;
        if !cluster.server().starts_with("https://127.0.0.1:") {
            return Err(format!("{} is not the local test cluster; refusing to run", cluster.server()).into());
        }
        let marker: Api<ConfigMap> = Api::namespaced(cluster.client().clone(), "kube-system");
        marker.get("testenv-marker").await.map_err(|e| format!("no testenv marker on the cluster ({e}); refusing"))?;
        Ok(Env {
            kubeconfig,
            cluster,
            kmsctl,
            helm: dir.join("bin/helm"),
            helm3: PathBuf::from(var("TESTENV_HELM3")?),
            kubectl: dir.join("bin/kubectl"),
            scratch: tempfile::Builder::new().prefix("kmsctl-bench.").tempdir()?,
            created: Mutex::new(Vec::new()),
        })
    }

    /// The kube client.
    pub(crate) fn client(&self) -> kube::Client {
        self.cluster.client().clone()
    }

    /// A file path in the scratch dir.
    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.scratch.path().join(rel)
    }

    /// kubectl against the cluster.
    pub(crate) fn kubectl(&self) -> Command {
        tool(&self.kubectl, &self.kubeconfig)
    }

    /// helm (v4, or v3 with `v3`) against the cluster.
    pub(crate) fn helm(&self, v3: bool) -> Command {
        tool(if v3 { &self.helm3 } else { &self.helm }, &self.kubeconfig)
    }

    /// The kmsctl binary with `KUBECONFIG` pointing at the cluster, run in the scratch dir.
    pub(crate) fn kmsctl(&self) -> Command {
        let mut c = Command::new(&self.kmsctl);
        c.env("KUBECONFIG", &self.kubeconfig).current_dir(self.scratch.path()).kill_on_drop(true);
        c
    }

    /// A fresh namespace `<prefix>-<unique>`, deleted by [`Env::cleanup`].
    pub(crate) async fn namespace(&self, prefix: &str) -> Result<String> {
        let name = unique(prefix);
        let ns =
            Namespace { metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() }, ..Default::default() };
        Api::<Namespace>::all(self.client()).create(&PostParams::default(), &ns).await?;
        self.created("namespace", &name);
        Ok(name)
    }

    /// Remember a cluster-scoped object to delete at the end (`namespace`, a CRD, a kwok Stage).
    pub(crate) fn created(&self, resource: &str, name: &str) {
        self.created.lock().expect("created").push((resource.into(), name.into()));
    }

    /// Delete what the scenario created, without waiting (a private environment goes down
    /// anyway; a shared one is left as it was).
    pub(crate) async fn cleanup(&self) {
        let all = std::mem::take(&mut *self.created.lock().expect("created"));
        for (resource, name) in all.iter().rev() {
            if resource == "namespace" {
                let _ = Api::<Namespace>::all(self.client()).delete(name, &DeleteParams::background()).await;
                continue;
            }
            let _ =
                self.kubectl().args(["delete", "--ignore-not-found", "--wait=false", resource, name]).output().await;
        }
    }

    /// Every request the API server has counted so far (`apiserver_request_total`, all series).
    pub(crate) async fn total_requests(&self) -> Result<f64> {
        let req = http::Request::get("/metrics").body(Vec::new())?;
        let text = self.client().request_text(req).await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with("apiserver_request_total{"))
            .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
            .sum())
    }

    /// The API server's request counters for one resource of one group, by verb
    /// (`apiserver_request_total`, summed over codes and scopes).
    pub(crate) async fn requests(&self, group: &str, resource: &str) -> Result<BTreeMap<String, f64>> {
        let req = http::Request::get("/metrics").body(Vec::new())?;
        let text = self.client().request_text(req).await?;
        Ok(requests_by_verb(&text, group, resource))
    }
}

fn tool(bin: &Path, kubeconfig: &Path) -> Command {
    let mut c = Command::new(bin);
    c.arg("--kubeconfig").arg(kubeconfig).kill_on_drop(true);
    c
}

/// `<prefix>-<base36 of the current milliseconds><counter>`: unique across runs of one machine.
pub(crate) fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut n = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
    let mut s = Vec::new();
    while n > 0 {
        s.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
    }
    s.reverse();
    format!("{prefix}-{}{}", String::from_utf8_lossy(&s), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Sum `apiserver_request_total` over the series of `group`/`resource`, by verb.
pub(crate) fn requests_by_verb(text: &str, group: &str, resource: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else { continue };
        let Some((labels, value)) = rest.rsplit_once("} ") else { continue };
        let label = |k: &str| labels.split(',').find_map(|l| l.strip_prefix(&format!("{k}=\"")))?.strip_suffix('"');
        if label("group") == Some(group)
            && label("resource") == Some(resource)
            && label("subresource").is_none_or(str::is_empty)
        {
            let verb = label("verb").unwrap_or("?").to_string();
            *out.entry(verb).or_insert(0.0) += value.trim().parse::<f64>().unwrap_or(0.0);
        }
    }
    out
}

/// `after - before`, per verb.
pub(crate) fn delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_verb() {
        let text = "apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"g\",resource=\"widgets\",scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1\"} 2\n\
            apiserver_request_total{code=\"200\",group=\"g\",resource=\"widgets\",scope=\"resource\",subresource=\"\",verb=\"GET\",version=\"v1\"} 3\n\
            apiserver_request_total{code=\"200\",group=\"g\",resource=\"widgets\",scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1\"} 4\n\
            apiserver_request_total{code=\"200\",group=\"g\",resource=\"widgets\",scope=\"resource\",subresource=\"status\",verb=\"PATCH\",version=\"v1\"} 5\n\
            apiserver_request_total{code=\"200\",group=\"h\",resource=\"widgets\",scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1\"} 7\n";
        let m = requests_by_verb(text, "g", "widgets");
        assert_eq!(m, BTreeMap::from([("GET".into(), 3.0), ("LIST".into(), 6.0)]));
        let d = delta(&BTreeMap::from([("LIST".into(), 1.0)]), &m);
        assert_eq!(d, BTreeMap::from([("GET".into(), 3.0), ("LIST".into(), 5.0)]));
    }
}
