//! Connecting to a cluster: kubeconfig, context selection, context guards, discovery.

use crate::error::K8sError;
use crate::readiness::WatchStats;
use crate::readiness::watches::Watches;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// Which kubeconfig and context to connect with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConnectOptions {
    /// A kubeconfig file; default `$KUBECONFIG`, then `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// The context; default the kubeconfig's current context.
    pub context: Option<String>,
    /// Glob patterns the context's name must match, checked before any request (empty: any).
    pub require_context: Vec<String>,
}

/// A connected cluster: the kube client, the context it came from, and a discovery cache shared
/// by every clone (clones are cheap).
#[derive(Clone)]
pub struct Cluster(Arc<Inner>);

struct Inner {
    client: Client,
    context: String,
    server: String,
    kubeconfig: Option<PathBuf>,
    discovery: RwLock<Option<Arc<Discovery>>>,
    /// `--plan` without `--against-cluster`: never contacted. Its client points at a closed
    /// port, so a request nothing planned for fails (`unavailable`) instead of reaching a cluster.
    offline: bool,
    /// The context's name is known (given, or from the kubeconfig); an offline cluster may not
    /// know it, and then its context guards are checked when the playbook really runs.
    context_known: bool,
    /// The context guards an offline plan has recorded for this cluster, each once.
    guards: std::sync::Mutex<std::collections::HashSet<Vec<String>>>,
    /// The watches every wait on this cluster shares.
    watches: Watches,
}

impl Cluster {
    /// Connect with a kubeconfig and check the API server answers.
    ///
    /// # Errors
    ///
    /// [`K8sError::Config`] for an unreadable kubeconfig or an unknown context, and what the
    /// API server's version check fails with ([`K8sError::Unreachable`], [`K8sError::Auth`]).
    pub async fn connect(opts: &ConnectOptions) -> Result<Self, K8sError> {
        let kc = match &opts.kubeconfig {
            Some(p) => Kubeconfig::read_from(p).map_err(|e| K8sError::Config(format!("{}: {e}", p.display())))?,
            None => Kubeconfig::read().map_err(|e| {
                K8sError::Config(format!("cannot read a kubeconfig ($KUBECONFIG or ~/.kube/config): {e}"))
            })?,
        };
        let context = match &opts.context {
            Some(c) => c.clone(),
            None => kc.current_context.clone().ok_or_else(|| {
                K8sError::Config(
                    "the kubeconfig has no current context; pass --context or #{ context: \"...\" }".into(),
                )
            })?,
        };
        if !kc.contexts.iter().any(|c| c.name == context) {
            let names: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
            return Err(K8sError::Config(format!(
                "context '{context}' is not in the kubeconfig; it has: {}",
                if names.is_empty() { "no contexts".to_string() } else { names.join(", ") }
            )));
        }
        if !opts.require_context.is_empty() {
            check_context(&context, &opts.require_context)?;
        }
        let options = KubeConfigOptions { context: Some(context.clone()), ..Default::default() };
        let config = kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|e| K8sError::Config(format!("context '{context}': {e}")))?;
        let kubeconfig = opts.kubeconfig.clone().or_else(|| single_file(std::env::var_os("KUBECONFIG")));
        Self::from_config(config, context, kubeconfig).await
    }

    /// Connect with a ready-made client configuration (EKS builds one in-process).
    /// `kubeconfig` is a file with the same context, for tools that need one (helm, kubectl).
    ///
    /// # Errors
    ///
    /// [`K8sError::Config`] when no client can be built from `config`, and what the API
    /// server's version check fails with.
    pub async fn from_config(
        config: kube::Config,
        context: String,
        kubeconfig: Option<PathBuf>,
    ) -> Result<Self, K8sError> {
        let server = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|e| K8sError::Config(format!("context '{context}': {e}")))?;
        client
            .apiserver_version()
            .await
            .map_err(|e| K8sError::from_kube(&format!("context '{context}' ({server})"), e))?;
        Ok(Self(Arc::new(Inner {
            client,
            context,
            server,
            kubeconfig,
            discovery: RwLock::new(None),
            offline: false,
            context_known: true,
            guards: Default::default(),
            watches: Watches::default(),
        })))
    }

    /// The cluster a plan runs against without `--against-cluster`: what the kubeconfig says
    /// of the context (its name, server and namespace) when there is one, and no request ever.
    /// `opts.require_context` is checked against the context's name when it is known.
    ///
    /// # Errors
    ///
    /// [`K8sError::Usage`] when the known context does not match `require_context`;
    /// [`K8sError::Config`] when no client can be built (never for want of a cluster).
    pub fn offline(opts: &ConnectOptions) -> Result<Self, K8sError> {
        let kc = match &opts.kubeconfig {
            Some(p) => Kubeconfig::read_from(p).ok(),
            None => Kubeconfig::read().ok(),
        };
        let context = opts.context.clone().or_else(|| kc.as_ref().and_then(|k| k.current_context.clone()));
        let named = |k: &Kubeconfig, c: &str| k.contexts.iter().find(|n| n.name == c).and_then(|n| n.context.clone());
        let entry = kc.as_ref().zip(context.as_deref()).and_then(|(k, c)| named(k, c));
        let server = kc
            .as_ref()
            .zip(entry.as_ref())
            .and_then(|(k, e)| k.clusters.iter().find(|c| c.name == e.cluster))
            .and_then(|c| c.cluster.as_ref().and_then(|c| c.server.clone()));
        let namespace = entry.as_ref().and_then(|e| e.namespace.clone()).unwrap_or_else(|| "default".into());
        if let Some(c) = &context
            && !opts.require_context.is_empty()
        {
            check_context(c, &opts.require_context)?;
        }
        let kubeconfig = opts.kubeconfig.clone().or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from));
        Self::planned(context, server, namespace, kubeconfig)
    }

    /// An offline cluster ([`Cluster::offline`]) with everything given: `context` `None` when
    /// it is not known (an EKS cluster that is not described).
    ///
    /// # Errors
    ///
    /// [`K8sError::Config`] when no client can be built.
    pub fn planned(
        context: Option<String>,
        server: Option<String>,
        namespace: String,
        kubeconfig: Option<PathBuf>,
    ) -> Result<Self, K8sError> {
        let mut config = kube::Config::new("http://127.0.0.1:1".parse().expect("url"));
        config.default_namespace = namespace;
        let client = Client::try_from(config).map_err(|e| K8sError::Config(format!("plan: {e}")))?;
        Ok(Self(Arc::new(Inner {
            client,
            context_known: context.is_some(),
            context: context.unwrap_or_else(|| "(unknown until run)".into()),
            server: server.unwrap_or_else(|| "(not contacted: --plan)".into()),
            kubeconfig,
            discovery: RwLock::new(None),
            offline: true,
            guards: Default::default(),
            watches: Watches::default(),
        })))
    }

    /// `--plan` without `--against-cluster`: this cluster is never contacted and reads see
    /// nothing.
    pub fn is_offline(&self) -> bool {
        self.0.offline
    }

    /// Whether a plan should record the guard `patterns` of this cluster's unknown context:
    /// true once per guard (a playbook checks it when connecting and again on the handle).
    pub fn guard_to_record(&self, patterns: &[String]) -> bool {
        !self.0.context_known && self.0.guards.lock().unwrap_or_else(|e| e.into_inner()).insert(patterns.to_vec())
    }

    /// Whether the context's name is known (always, unless offline).
    pub fn context_known(&self) -> bool {
        self.0.context_known
    }

    /// A cluster nobody answers for (a closed local port), for tests of what happens before
    /// and around API calls.
    #[cfg(test)]
    pub(crate) fn unreachable() -> Self {
        let config = kube::Config::new("http://127.0.0.1:1".parse().expect("url"));
        let client = Client::try_from(config).expect("client");
        let server = "http://127.0.0.1:1".to_string();
        Self(Arc::new(Inner {
            client,
            context: "offline".into(),
            server,
            kubeconfig: None,
            discovery: RwLock::new(None),
            offline: false,
            context_known: true,
            guards: Default::default(),
            watches: Watches::default(),
        }))
    }

    /// The kube client, for callers that make their own requests (helm reads release records).
    pub fn client(&self) -> &Client {
        &self.0.client
    }

    /// The watches its waits share.
    pub(crate) fn watches(&self) -> &Watches {
        &self.0.watches
    }

    /// How many watches its waits have opened, hold open now, and had to relist.
    pub fn watch_stats(&self) -> WatchStats {
        self.0.watches.stats()
    }

    /// The context's name, as the kubeconfig spells it.
    pub fn context(&self) -> &str {
        &self.0.context
    }

    /// The API server's URL.
    pub fn server(&self) -> &str {
        &self.0.server
    }

    /// The kubeconfig file holding this context (`None`: the default `~/.kube/config`), for
    /// external tools that must reach the same cluster.
    pub fn kubeconfig(&self) -> Option<&std::path::Path> {
        self.0.kubeconfig.as_deref()
    }

    /// The context's default namespace (`default` when it names none).
    pub fn default_namespace(&self) -> &str {
        self.0.client.default_namespace()
    }

    /// Fail unless the context name matches one of `patterns` (`*` and `?` wildcards), so a
    /// playbook for kind cannot touch a production cluster by accident. An offline cluster
    /// whose context is not known passes: the plan records the guard for the real run.
    ///
    /// # Errors
    ///
    /// [`K8sError::Usage`] naming the context and the patterns.
    pub fn require_context(&self, patterns: &[String]) -> Result<(), K8sError> {
        if !self.0.context_known {
            return Ok(());
        }
        check_context(&self.0.context, patterns)
    }

    /// Find the API resource for `apiVersion` + `kind`, running discovery once (and again when
    /// the kind is unknown, e.g. right after its CRD was installed).
    ///
    /// # Errors
    ///
    /// [`K8sError::NotFound`] when the cluster does not serve the kind; discovery's own errors.
    pub async fn resolve(&self, api_version: &str, kind: &str) -> Result<(ApiResource, ApiCapabilities), K8sError> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        if let Some(d) = self.0.discovery.read().expect("discovery lock").clone()
            && let Some(found) = d.resolve_gvk(&gvk)
        {
            return Ok(found);
        }
        let d = self.refresh_discovery().await?;
        d.resolve_gvk(&gvk).ok_or_else(|| {
            K8sError::NotFound(format!("the cluster does not serve {kind} in {api_version} (is its CRD installed?)"))
        })
    }

    /// Run discovery again.
    pub(crate) async fn refresh_discovery(&self) -> Result<Arc<Discovery>, K8sError> {
        let d = match Discovery::new(self.0.client.clone()).run_aggregated().await {
            Ok(d) => d,
            Err(_) => Discovery::new(self.0.client.clone())
                .run()
                .await
                .map_err(|e| K8sError::from_kube("API discovery", e))?,
        };
        let d = Arc::new(d);
        *self.0.discovery.write().expect("discovery lock") = Some(d.clone());
        Ok(d)
    }

    /// Forget discovery results (after installing CRDs).
    pub(crate) fn invalidate_discovery(&self) {
        *self.0.discovery.write().expect("discovery lock") = None;
    }
}

/// Shell-style wildcard match: `*` any run, `?` one character.
fn check_context(context: &str, patterns: &[String]) -> Result<(), K8sError> {
    if patterns.iter().any(|p| glob(p, context)) {
        return Ok(());
    }
    Err(K8sError::Usage(format!(
        "refusing to run against context '{context}': this playbook only runs against contexts matching {}",
        patterns.join(", ")
    )))
}

/// `$KUBECONFIG` as the one file tools get with `--kubeconfig`; `None` for a list of files
/// (`a:b`): tools then read `$KUBECONFIG` themselves and merge it as client-go does (helm
/// given `--kubeconfig a:b` looks for a file of that name).
fn single_file(var: Option<std::ffi::OsString>) -> Option<PathBuf> {
    let mut paths = std::env::split_paths(&var?).filter(|p| !p.as_os_str().is_empty()).collect::<Vec<_>>();
    if paths.len() == 1 { paths.pop() } else { None }
}

pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    fn m(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => m(&p[1..], t) || (!t.is_empty() && m(p, &t[1..])),
            (Some('?'), Some(_)) => m(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &t[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    m(&p, &t)
}

#[cfg(test)]
mod tests {
    use super::{glob, single_file};
    use std::path::PathBuf;

    /// Regression: `KUBECONFIG=a:b` reached helm as `--kubeconfig a:b`, a file that does not exist.
    #[test]
    fn only_a_single_kubeconfig_file_is_passed_on() {
        let one = |s: &str| single_file(Some(s.into()));
        assert_eq!(one("/k/config"), Some(PathBuf::from("/k/config")));
        assert_eq!(one("/k/config:"), Some(PathBuf::from("/k/config")));
        assert_eq!(one("/k/a:/k/b"), None);
        assert_eq!(one(""), None);
        assert_eq!(single_file(None), None);
    }

    #[test]
    fn context_globs() {
        assert!(glob("kind-*", "kind-kms-test"));
        assert!(glob("*", "anything"));
        assert!(glob("arn:aws:eks:*:cluster/kms-ci", "arn:aws:eks:eu-west-1:123:cluster/kms-ci"));
        assert!(glob("kind-?", "kind-a"));
        assert!(!glob("kind-*", "prod-eks"));
        assert!(!glob("kind-?", "kind-ab"));
    }
}
