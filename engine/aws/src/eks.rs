//! EKS: describe clusters and node groups, wait for them to become ACTIVE, and reach a
//! cluster's API server with the same auth kmsctl, helm and kubectl share.
//!
//! Auth is a kubeconfig whose user runs an exec credential plugin: kmsctl itself, as
//! `kmsctl eks token --cluster NAME --region R`. kube-rs runs it again a minute before each token
//! expires (so long runs keep working), helm and kubectl get the same tokens from the same file,
//! and no token is ever written to disk, put in argv or logged.

use crate::error::AwsError;
use crate::token;
use aws_sdk_eks::primitives::{DateTime, DateTimeFormat};
use kmsctl_host::duration;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde::Serialize;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What scripts see of an EKS cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EksCluster {
    /// Its name.
    pub name: String,
    /// Its ARN (also the kubeconfig context name kmsctl writes).
    pub arn: String,
    /// `CREATING`, `ACTIVE`, `UPDATING`, `DELETING`, `FAILED` or `PENDING`.
    pub status: String,
    /// The Kubernetes version, e.g. `1.33`.
    pub version: String,
    /// The EKS platform version.
    pub platform_version: String,
    /// The API server URL (empty until the cluster is created).
    pub endpoint: String,
    /// The cluster CA: base64 of PEM, as in a kubeconfig's `certificate-authority-data`.
    pub certificate_authority: String,
    /// The cluster's IAM role.
    pub role_arn: String,
    /// When it was created (RFC 3339), or empty.
    pub created_at: String,
    /// Health issues, `CODE: message`.
    pub health_issues: Vec<String>,
    /// Tags.
    pub tags: std::collections::BTreeMap<String, String>,
}

/// Min, max and desired size of a node group.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Scaling {
    /// Minimum nodes.
    pub min: i64,
    /// Maximum nodes.
    pub max: i64,
    /// Desired nodes.
    pub desired: i64,
}

/// What scripts see of a managed node group.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Nodegroup {
    /// Its name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// The cluster it belongs to.
    pub cluster: String,
    /// `CREATING`, `ACTIVE`, `UPDATING`, `DELETING`, `CREATE_FAILED`, `DELETE_FAILED` or `DEGRADED`.
    pub status: String,
    /// The Kubernetes version of its nodes.
    pub version: String,
    /// The AMI release version.
    pub release_version: String,
    /// Instance types.
    pub instance_types: Vec<String>,
    /// `ON_DEMAND`, `SPOT` or `CAPACITY_BLOCK`.
    pub capacity_type: String,
    /// The AMI type.
    pub ami_type: String,
    /// Node counts.
    pub scaling: Scaling,
    /// Kubernetes labels put on its nodes.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Health issues, `CODE: message`.
    pub health_issues: Vec<String>,
}

fn timestamp(t: Option<&DateTime>) -> String {
    t.and_then(|t| t.fmt(DateTimeFormat::DateTime).ok()).unwrap_or_default()
}

fn sorted(m: Option<&std::collections::HashMap<String, String>>) -> std::collections::BTreeMap<String, String> {
    m.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
}

impl From<&aws_sdk_eks::types::Cluster> for EksCluster {
    fn from(c: &aws_sdk_eks::types::Cluster) -> Self {
        let s = |v: Option<&str>| v.unwrap_or_default().to_string();
        Self {
            name: s(c.name()),
            arn: s(c.arn()),
            status: c.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            version: s(c.version()),
            platform_version: s(c.platform_version()),
            endpoint: s(c.endpoint()),
            certificate_authority: s(c.certificate_authority().and_then(|ca| ca.data())),
            role_arn: s(c.role_arn()),
            created_at: timestamp(c.created_at()),
            health_issues: c
                .health()
                .map(|h| h.issues().iter().map(|i| issue(i.code().map(|c| c.as_str()), i.message())).collect())
                .unwrap_or_default(),
            tags: sorted(c.tags()),
        }
    }
}

impl From<&aws_sdk_eks::types::Nodegroup> for Nodegroup {
    fn from(n: &aws_sdk_eks::types::Nodegroup) -> Self {
        let s = |v: Option<&str>| v.unwrap_or_default().to_string();
        let sc = n.scaling_config();
        let size = |f: fn(&aws_sdk_eks::types::NodegroupScalingConfig) -> Option<i32>| {
            sc.and_then(f).map(i64::from).unwrap_or_default()
        };
        Self {
            name: s(n.nodegroup_name()),
            arn: s(n.nodegroup_arn()),
            cluster: s(n.cluster_name()),
            status: n.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            version: s(n.version()),
            release_version: s(n.release_version()),
            instance_types: n.instance_types().to_vec(),
            capacity_type: n.capacity_type().map(|c| c.as_str().to_string()).unwrap_or_default(),
            ami_type: n.ami_type().map(|a| a.as_str().to_string()).unwrap_or_default(),
            scaling: Scaling {
                min: size(|c| c.min_size()),
                max: size(|c| c.max_size()),
                desired: size(|c| c.desired_size()),
            },
            labels: sorted(n.labels()),
            health_issues: n
                .health()
                .map(|h| h.issues().iter().map(|i| issue(i.code().map(|c| c.as_str()), i.message())).collect())
                .unwrap_or_default(),
        }
    }
}

fn issue(code: Option<&str>, message: Option<&str>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        (None, m) => m.unwrap_or("unknown issue").to_string(),
    }
}

/// DescribeCluster.
pub async fn describe_cluster(eks: &aws_sdk_eks::Client, name: &str) -> Result<EksCluster, AwsError> {
    let out = eks
        .describe_cluster()
        .name(name)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(&format!("EKS DescribeCluster {name}"), e))?;
    out.cluster()
        .map(EksCluster::from)
        .ok_or_else(|| AwsError::NotFound(format!("EKS DescribeCluster {name}: no cluster in the answer")))
}

/// ListNodegroups (all pages).
pub async fn list_nodegroups(eks: &aws_sdk_eks::Client, cluster: &str) -> Result<Vec<String>, AwsError> {
    eks.list_nodegroups()
        .cluster_name(cluster)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| AwsError::from_sdk(&format!("EKS ListNodegroups {cluster}"), e))
}

/// DescribeNodegroup.
pub async fn describe_nodegroup(eks: &aws_sdk_eks::Client, cluster: &str, name: &str) -> Result<Nodegroup, AwsError> {
    let out = eks
        .describe_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(name)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk(&format!("EKS DescribeNodegroup {cluster}/{name}"), e))?;
    out.nodegroup().map(Nodegroup::from).ok_or_else(|| {
        AwsError::NotFound(format!("EKS DescribeNodegroup {cluster}/{name}: no node group in the answer"))
    })
}

/// Where a resource stands on its way to ACTIVE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// ACTIVE: done.
    Ready,
    /// Still changing; keep polling.
    Pending,
    /// It will not become ACTIVE by waiting: the reason.
    Failed(String),
}

/// Something [`wait_active`] can poll.
pub trait Awaitable {
    /// What it is, for messages: `EKS cluster kms`.
    fn what(&self) -> String;
    /// Its status as AWS reports it.
    fn status(&self) -> &str;
    /// Where that leaves a wait for ACTIVE.
    fn phase(&self) -> Phase;
}

fn with_issues(text: String, issues: &[String]) -> String {
    if issues.is_empty() { text } else { format!("{text}: {}", issues.join("; ")) }
}

impl Awaitable for EksCluster {
    fn what(&self) -> String {
        format!("EKS cluster {}", self.name)
    }
    fn status(&self) -> &str {
        &self.status
    }
    /// As the SDK's `cluster_active` waiter: DELETING and FAILED never turn ACTIVE.
    fn phase(&self) -> Phase {
        match self.status.as_str() {
            "ACTIVE" => Phase::Ready,
            "FAILED" => Phase::Failed(with_issues(format!("{} failed", self.what()), &self.health_issues)),
            "DELETING" => Phase::Failed(format!("{} is being deleted", self.what())),
            _ => Phase::Pending,
        }
    }
}

impl Awaitable for Nodegroup {
    fn what(&self) -> String {
        format!("EKS node group {}/{}", self.cluster, self.name)
    }
    fn status(&self) -> &str {
        &self.status
    }
    /// Stricter than the SDK waiter (which only stops on CREATE_FAILED): a DEGRADED or deleting
    /// node group fails at once with its health issues instead of after the whole timeout.
    fn phase(&self) -> Phase {
        let what = self.what();
        match self.status.as_str() {
            "ACTIVE" => Phase::Ready,
            "CREATE_FAILED" | "DELETE_FAILED" | "DEGRADED" => {
                Phase::Failed(with_issues(format!("{what} is {}", self.status), &self.health_issues))
            }
            "DELETING" => Phase::Failed(format!("{what} is being deleted")),
            _ => Phase::Pending,
        }
    }
}

/// How long and how often to poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitOptions {
    /// Give up after this long.
    pub timeout: Duration,
    /// Time between polls.
    pub interval: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(20 * 60), interval: Duration::from_secs(15) }
    }
}

/// Poll `fetch` until what it returns is ACTIVE, reporting each pending poll to `progress`.
/// `unavailable` errors (throttling, a dropped connection) are retried until the timeout; any
/// other error ends the wait.
pub async fn wait_active<T, F, Fut>(
    what: &str,
    opts: &WaitOptions,
    mut fetch: F,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<T, AwsError>
where
    T: Awaitable,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    let start = tokio::time::Instant::now();
    let mut last_status: Option<String> = None;
    loop {
        match fetch().await {
            Ok(v) => match v.phase() {
                Phase::Ready => return Ok(v),
                Phase::Failed(message) => {
                    return Err(AwsError::Failed { message, status: Some(v.status().to_string()) });
                }
                Phase::Pending => {
                    last_status = Some(v.status().to_string());
                    progress(&format!("{}, {} elapsed", v.status(), duration::format(start.elapsed())));
                }
            },
            Err(AwsError::Unavailable(e)) => progress(&format!("could not poll ({e}); retrying")),
            Err(e) => return Err(e),
        }
        let left = opts.timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            let now = last_status.as_deref().map(|s| format!("; it is {s}")).unwrap_or_default();
            return Err(AwsError::Timeout {
                message: format!(
                    "timed out after {} waiting for {what} to be ACTIVE{now}",
                    duration::format(opts.timeout)
                ),
                status: last_status,
            });
        }
        tokio::time::sleep(opts.interval.min(left)).await;
    }
}

/// Wait until the cluster is ACTIVE; returns it as last described.
pub async fn wait_cluster_active(
    eks: &aws_sdk_eks::Client,
    name: &str,
    opts: &WaitOptions,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<EksCluster, AwsError> {
    wait_active(&format!("EKS cluster {name}"), opts, || describe_cluster(eks, name), progress).await
}

/// Wait until the node group is ACTIVE; returns it as last described.
pub async fn wait_nodegroup_active(
    eks: &aws_sdk_eks::Client,
    cluster: &str,
    name: &str,
    opts: &WaitOptions,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<Nodegroup, AwsError> {
    wait_active(&format!("EKS node group {cluster}/{name}"), opts, || describe_nodegroup(eks, cluster, name), progress)
        .await
}

/// The exec credential plugin a kubeconfig runs for a token: `<command> eks token --cluster ..`.
/// Only names go in argv; the token comes back on the plugin's stdout.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExecAuth {
    /// The kmsctl binary (absolute, so helm and kubectl find it whatever their PATH).
    pub command: String,
    /// The cluster name the token is bound to.
    pub cluster: String,
    /// The region to sign for.
    pub region: String,
    /// A profile for the plugin's credentials (else the environment's).
    pub profile: Option<String>,
    /// A role the plugin assumes.
    pub role_arn: Option<String>,
    /// The AWS endpoint of the call that wrote the kubeconfig, handed to the plugin as
    /// `AWS_ENDPOINT_URL` (its assume-role call goes there too).
    pub aws_endpoint: Option<String>,
}

impl ExecAuth {
    /// The running binary as the plugin: right inside kmsctl, where it is `kmsctl` itself.
    pub fn current_exe() -> Result<String, AwsError> {
        let exe = std::env::current_exe()
            .map_err(|e| AwsError::Io(format!("cannot find the kmsctl binary for the kubeconfig: {e}")))?;
        Ok(exe.to_string_lossy().into_owned())
    }

    /// The plugin's arguments.
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> =
            ["eks", "token", "--cluster", &self.cluster, "--region", &self.region].map(String::from).to_vec();
        if let Some(p) = &self.profile {
            a.extend(["--profile".into(), p.clone()]);
        }
        if let Some(r) = &self.role_arn {
            a.extend(["--role-arn".into(), r.clone()]);
        }
        a
    }

    /// The plugin's environment: kubeconfig `env` entries.
    fn env(&self) -> serde_json::Value {
        let env: Vec<_> =
            self.aws_endpoint.iter().map(|e| serde_json::json!({"name": "AWS_ENDPOINT_URL", "value": e})).collect();
        serde_json::Value::Array(env)
    }
}

/// A kubeconfig with one cluster, user and context, all named `context`, for `cluster` with
/// [`ExecAuth`] as the user.
pub fn kubeconfig(cluster: &EksCluster, context: &str, exec: &ExecAuth) -> Result<Kubeconfig, AwsError> {
    if cluster.endpoint.is_empty() || cluster.certificate_authority.is_empty() {
        return Err(AwsError::Failed {
            message: format!(
                "EKS cluster {} has no API endpoint or CA yet (status {}); wait until it is ACTIVE",
                cluster.name, cluster.status
            ),
            status: Some(cluster.status.clone()),
        });
    }
    let v = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {
            "server": cluster.endpoint,
            "certificate-authority-data": cluster.certificate_authority,
        }}],
        "users": [{"name": context, "user": {"exec": {
            "apiVersion": token::EXEC_API_VERSIONS[0],
            "command": exec.command,
            "args": exec.args(),
            "env": exec.env(),
            "interactiveMode": "Never",
            "provideClusterInfo": false,
            "installHint": "the exec plugin is kmsctl (`kmsctl eks token`); write this kubeconfig again \
                            with aws::eks_kubeconfig where kmsctl is installed",
        }}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
    });
    serde_json::from_value(v).map_err(|e| AwsError::failed(format!("building the kubeconfig: {e}")))
}

/// Put the clusters, users and contexts of `entry` into `into`, replacing same-named ones (as
/// `aws eks update-kubeconfig` does); `set_current` also makes entry's context the current one.
pub fn merge_kubeconfig(into: &mut Kubeconfig, entry: Kubeconfig, set_current: bool) {
    for c in entry.clusters {
        into.clusters.retain(|x| x.name != c.name);
        into.clusters.push(c);
    }
    for u in entry.auth_infos {
        into.auth_infos.retain(|x| x.name != u.name);
        into.auth_infos.push(u);
    }
    for c in entry.contexts {
        into.contexts.retain(|x| x.name != c.name);
        into.contexts.push(c);
    }
    if set_current || into.current_context.is_none() {
        into.current_context = entry.current_context;
    }
    into.api_version.get_or_insert_with(|| "v1".into());
    into.kind.get_or_insert_with(|| "Config".into());
}

/// Write `entry` to `path` (0600), merged into the kubeconfig already there if `merge`.
pub fn write_kubeconfig(path: &Path, entry: Kubeconfig, merge: bool, set_current: bool) -> Result<(), AwsError> {
    let io = |what: &str, e: &dyn std::fmt::Display| AwsError::Io(format!("{what} {}: {e}", path.display()));
    let mut kc = if merge && path.exists() {
        Kubeconfig::read_from(path).map_err(|e| io("reading the kubeconfig", &e))?
    } else {
        Kubeconfig::default()
    };
    merge_kubeconfig(&mut kc, entry, set_current);
    let text = serde_saphyr::to_string(&kc).map_err(|e| io("rendering the kubeconfig", &e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io("creating the directory of", &e))?;
    }
    write_private(path, text.as_bytes()).map_err(|e| io("writing the kubeconfig", &e))
}

/// Write `bytes` to `path` readable by us only (0600, also when it replaces a file), next to it
/// and renamed, so a reader never sees half a file.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let written = opts.open(&tmp).and_then(|mut f| std::io::Write::write_all(&mut f, bytes));
    written.and_then(|_| std::fs::rename(&tmp, path)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Connect to `cluster`: write its kubeconfig (with the exec plugin) to `kubeconfig_path` and
/// return a k8s cluster whose client runs the same plugin, checked against the API server.
pub async fn connect(
    cluster: &EksCluster,
    context: &str,
    exec: &ExecAuth,
    kubeconfig_path: &Path,
) -> Result<kmsctl_k8s::Cluster, AwsError> {
    let kc = kubeconfig(cluster, context, exec)?;
    write_kubeconfig(kubeconfig_path, kc.clone(), false, true)?;
    let options = KubeConfigOptions { context: Some(context.to_string()), ..Default::default() };
    let config = kube::Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| AwsError::failed(format!("EKS cluster {}: {e}", cluster.name)))?;
    kmsctl_k8s::Cluster::from_config(config, context.to_string(), Some(PathBuf::from(kubeconfig_path)))
        .await
        .map_err(|e| from_k8s(&cluster.name, e))
}

fn from_k8s(cluster: &str, e: kmsctl_k8s::K8sError) -> AwsError {
    use kmsctl_k8s::K8sError as K;
    let text = format!("EKS cluster {cluster}: {e}");
    match e {
        K::Auth(_) => AwsError::Auth(text),
        // kube reports a failing exec plugin while building the client.
        K::Config(m) if m.contains("exec") => AwsError::Auth(text),
        K::Unreachable(_) => AwsError::Unavailable(text),
        K::NotFound(_) => AwsError::NotFound(text),
        _ => AwsError::failed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn cluster(status: &str) -> EksCluster {
        EksCluster {
            name: "kms".into(),
            arn: "arn:aws:eks:eu-west-1:123456789012:cluster/kms".into(),
            status: status.into(),
            endpoint: "https://ABC.gr7.eu-west-1.eks.amazonaws.com".into(),
            certificate_authority: "LS0tLS1CRUdJTg==".into(),
            ..Default::default()
        }
    }

    fn nodegroup(status: &str, issues: &[&str]) -> Nodegroup {
        Nodegroup {
            name: "workers".into(),
            cluster: "kms".into(),
            status: status.into(),
            health_issues: issues.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn phases_follow_the_status() {
        assert_eq!(cluster("ACTIVE").phase(), Phase::Ready);
        assert_eq!(cluster("CREATING").phase(), Phase::Pending);
        assert_eq!(cluster("UPDATING").phase(), Phase::Pending);
        assert!(matches!(cluster("FAILED").phase(), Phase::Failed(_)));
        assert_eq!(cluster("DELETING").phase(), Phase::Failed("EKS cluster kms is being deleted".into()));
        assert_eq!(nodegroup("ACTIVE", &[]).phase(), Phase::Ready);
        assert_eq!(nodegroup("CREATING", &[]).phase(), Phase::Pending);
        assert_eq!(
            nodegroup("CREATE_FAILED", &["AsgInstanceLaunchFailures: no capacity"]).phase(),
            Phase::Failed("EKS node group kms/workers is CREATE_FAILED: AsgInstanceLaunchFailures: no capacity".into())
        );
        assert!(matches!(nodegroup("DEGRADED", &[]).phase(), Phase::Failed(_)));
    }

    /// A scripted sequence of answers for `wait_active`.
    fn script(
        answers: Vec<Result<Nodegroup, AwsError>>,
    ) -> impl FnMut() -> std::future::Ready<Result<Nodegroup, AwsError>> {
        let answers = Arc::new(Mutex::new(answers.into_iter()));
        move || std::future::ready(answers.lock().unwrap().next().expect("polled after the script ended"))
    }

    const OPTS: WaitOptions = WaitOptions { timeout: Duration::from_millis(300), interval: Duration::from_millis(5) };

    #[tokio::test]
    async fn waits_through_pending_and_transient_errors_until_active() {
        let fetch = script(vec![
            Ok(nodegroup("CREATING", &[])),
            Err(AwsError::Unavailable("throttled".into())),
            Ok(nodegroup("UPDATING", &[])),
            Ok(nodegroup("ACTIVE", &[])),
        ]);
        let mut seen = Vec::new();
        let ng = wait_active("ng", &OPTS, fetch, &mut |p: &str| seen.push(p.to_string())).await.unwrap();
        assert_eq!(ng.status, "ACTIVE");
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(seen[0].starts_with("CREATING, ") && seen[0].ends_with(" elapsed"), "{seen:?}");
        assert_eq!(seen[1], "could not poll (throttled); retrying");
        assert!(seen[2].starts_with("UPDATING, "), "{seen:?}");
    }

    #[tokio::test]
    async fn a_failed_state_ends_the_wait_at_once() {
        let fetch = script(vec![Ok(nodegroup("CREATING", &[])), Ok(nodegroup("CREATE_FAILED", &["boom"]))]);
        let e = wait_active("ng", &OPTS, fetch, &mut |_: &str| {}).await.unwrap_err();
        assert!(matches!(&e, AwsError::Failed { status: Some(s), .. } if s == "CREATE_FAILED"), "{e:?}");
        assert!(e.to_string().ends_with("is CREATE_FAILED: boom"), "{e}");
    }

    #[tokio::test]
    async fn other_errors_end_the_wait() {
        let fetch = script(vec![Err(AwsError::NotFound("no such node group".into()))]);
        let e = wait_active("ng", &OPTS, fetch, &mut |_: &str| {}).await.unwrap_err();
        assert!(matches!(e, AwsError::NotFound(_)));
    }

    #[tokio::test]
    async fn the_timeout_names_the_last_status() {
        let opts = WaitOptions { timeout: Duration::from_millis(100), interval: Duration::from_millis(30) };
        let fetch = script((0..20).map(|_| Ok(nodegroup("UPDATING", &[]))).collect());
        let t = std::time::Instant::now();
        let e = wait_active("EKS node group kms/workers", &opts, fetch, &mut |_: &str| {}).await.unwrap_err();
        assert!(t.elapsed() >= Duration::from_millis(100) && t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!(
            e.to_string(),
            "timed out after 100ms waiting for EKS node group kms/workers to be ACTIVE; it is UPDATING"
        );
        assert!(matches!(e, AwsError::Timeout { status: Some(s), .. } if s == "UPDATING"));
    }

    fn exec() -> ExecAuth {
        ExecAuth {
            command: "/opt/kmsctl/bin/kmsctl".into(),
            cluster: "kms".into(),
            region: "eu-west-1".into(),
            profile: None,
            role_arn: Some("arn:aws:iam::123456789012:role/deployer".into()),
            aws_endpoint: None,
        }
    }

    #[test]
    fn the_kubeconfig_runs_kmsctl_as_an_exec_plugin() {
        let c = cluster("ACTIVE");
        let kc = kubeconfig(&c, &c.arn, &exec()).unwrap();
        let v = serde_json::to_value(&kc).unwrap();
        assert_eq!(v["current-context"], c.arn);
        assert_eq!(v["clusters"][0]["cluster"]["server"], c.endpoint);
        assert_eq!(v["clusters"][0]["cluster"]["certificate-authority-data"], c.certificate_authority);
        let e = &v["users"][0]["user"]["exec"];
        assert_eq!(e["apiVersion"], "client.authentication.k8s.io/v1beta1");
        assert_eq!(e["command"], "/opt/kmsctl/bin/kmsctl");
        assert_eq!(
            e["args"],
            serde_json::json!([
                "eks",
                "token",
                "--cluster",
                "kms",
                "--region",
                "eu-west-1",
                "--role-arn",
                "arn:aws:iam::123456789012:role/deployer"
            ])
        );
        assert_eq!(e["interactiveMode"], "Never");
        assert_eq!(e["env"], serde_json::json!([]));
        assert!(v["users"][0]["user"].get("token").is_none());
        assert_eq!(v["contexts"][0]["context"]["user"], c.arn);
        let local = ExecAuth { aws_endpoint: Some("http://127.0.0.1:4566".into()), ..exec() };
        let v = serde_json::to_value(kubeconfig(&c, &c.arn, &local).unwrap()).unwrap();
        assert_eq!(
            v["users"][0]["user"]["exec"]["env"],
            serde_json::json!([{"name": "AWS_ENDPOINT_URL", "value": "http://127.0.0.1:4566"}])
        );
    }

    #[test]
    fn a_cluster_without_endpoint_has_no_kubeconfig() {
        let mut c = cluster("CREATING");
        c.endpoint.clear();
        assert!(matches!(kubeconfig(&c, "x", &exec()), Err(AwsError::Failed { .. })));
    }

    #[test]
    fn writing_merges_into_an_existing_kubeconfig_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: kind\nclusters:\n- name: kind\n  cluster:\n    server: https://127.0.0.1:6443\n\
             users:\n- name: kind\n  user:\n    token: abcd\ncontexts:\n- name: kind\n  context:\n    cluster: kind\n    user: kind\n",
        )
        .unwrap();
        let c = cluster("ACTIVE");
        write_kubeconfig(&path, kubeconfig(&c, &c.arn, &exec()).unwrap(), true, false).unwrap();
        let mut other = exec();
        other.region = "us-east-1".into();
        // Same name again: replaced, not duplicated.
        write_kubeconfig(&path, kubeconfig(&c, &c.arn, &other).unwrap(), true, false).unwrap();
        let kc = Kubeconfig::read_from(&path).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("kind"));
        assert!(std::fs::read_to_string(&path).unwrap().contains("token: abcd"), "other users are kept whole");
        let names: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["kind", c.arn.as_str()]);
        assert_eq!(kc.auth_infos.len(), 2);
        let args = kc.auth_infos[1].auth_info.as_ref().unwrap().exec.as_ref().unwrap().args.clone().unwrap();
        assert!(args.contains(&"us-east-1".to_string()), "{args:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        write_kubeconfig(&path, kubeconfig(&c, &c.arn, &exec()).unwrap(), true, true).unwrap();
        assert_eq!(Kubeconfig::read_from(&path).unwrap().current_context.as_deref(), Some(c.arn.as_str()));
    }
}
