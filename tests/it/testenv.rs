//! How integration tests find the local test environment (`scripts/testenv/testenv.sh up`).
//!
//! Contract with `testenv.sh up`, whose env file (`$TESTENV_DIR/env`) exports:
//! - `TESTENV_KUBECONFIG`: kubeconfig of the local cluster (client-cert admin, `https://127.0.0.1:`)
//! - `TESTENV_AWS_ENDPOINT`: moto (EKS/STS/S3), `http://127.0.0.1:<port>`
//! - `TESTENV_DIR`: the state dir (`bin/` holds helm v4, helm3 and kubectl), `TESTENV_HELM3`
//! - `TESTENV_REQUIRED=1` is set by `scripts/test` (CI): a missing environment is a failure.
//!
//! A plain `KUBECONFIG` is deliberately not the signal: a developer's may point at a real
//! cluster, and these tests create and delete things. Nothing here reads `KUBECONFIG` or
//! `~/.kube`. A kubeconfig whose server is not `https://127.0.0.1:` is refused, and so is a
//! cluster without the `kube-system/testenv-marker` ConfigMap that only `up` creates.
//!
//! ```ignore
//! #[tokio::test]
//! async fn something() {
//!     let env = testenv!();                 // or return early (SKIP) when not up
//!     let ns = env.namespace("something").await;   // unique, deleted when `ns` drops
//!     let out = env.helm().args(["install", ...]).output().await;
//! }
//! ```
#![allow(dead_code)] // support for tests that are still to come

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config};

/// Everything a test needs to talk to the local environment.
pub(crate) struct TestEnv {
    /// The state dir of the running environment.
    pub dir: PathBuf,
    /// The cluster's admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// `https://127.0.0.1:<port>`.
    pub api_server: String,
    /// moto's endpoint, `http://127.0.0.1:<port>`.
    pub aws_endpoint: String,
    /// The region the env file names (`AWS_REGION`), `us-east-1` by default.
    pub region: String,
    /// A client for the cluster (admin), built from `kubeconfig` only.
    pub client: Client,
    /// Private scratch space: helm's homes, kubectl's cache. Removed on drop.
    scratch: tempfile::TempDir,
}

/// `let env = testenv!();` at the top of an async test: the environment, or an early return
/// (reported as a pass with a SKIP line) when it is not up and not required.
macro_rules! testenv {
    () => {
        match $crate::testenv::TestEnv::get().await {
            Some(env) => env,
            None => return,
        }
    };
}
pub(crate) use testenv;

/// `let env = testenv_profile!("kind");`: the environment of a rehearsal profile
/// (`TESTENV_PROFILE`, scripts/testenv/profiles/), which `scripts/test` brings up next to the
/// default one and names in `TESTENV_ENV_<PROFILE>` (the path of its env file). Skips like
/// `testenv!()` without it; under `TESTENV_REQUIRED=1` a missing one fails the test.
macro_rules! testenv_profile {
    ($profile:expr) => {
        match $crate::testenv::TestEnv::of_profile($profile).await {
            Some(env) => env,
            None => return,
        }
    };
}
pub(crate) use testenv_profile;

/// The eks environment's node pools are shared by its tests: those that fill the spot pool, count
/// nodes, or add nodes (enclave node groups) take turns.
pub(crate) static EKS_POOLS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl TestEnv {
    /// The environment, or `None` (after printing a SKIP line) when it is not up. Panics when
    /// `TESTENV_REQUIRED=1` and it is not up or not reachable, and always when it does not look
    /// like the local loopback test cluster.
    pub(crate) async fn get() -> Option<TestEnv> {
        let required = var("TESTENV_REQUIRED").as_deref() == Some("1");
        let test = std::thread::current().name().unwrap_or("?").to_string();
        let (Some(kubeconfig), Some(aws_endpoint)) = (var("TESTENV_KUBECONFIG"), var("TESTENV_AWS_ENDPOINT")) else {
            if required {
                panic!(
                    "TESTENV_REQUIRED=1 but the test environment is not up: run \
                     `scripts/testenv/testenv.sh up` and source the file it prints \
                     (TESTENV_KUBECONFIG / TESTENV_AWS_ENDPOINT are not set)"
                );
            }
            eprintln!("SKIP {test}: test environment not up (scripts/testenv/testenv.sh up)");
            return None;
        };
        let kubeconfig = PathBuf::from(kubeconfig);
        let kc = Kubeconfig::read_from(&kubeconfig)
            .unwrap_or_else(|e| panic!("reading TESTENV_KUBECONFIG {}: {e}", kubeconfig.display()));
        let api_server = current_server(&kc).unwrap_or_default();
        assert!(
            is_loopback_url(&api_server, "https"),
            "TESTENV_KUBECONFIG {} points at '{api_server}', not at https://127.0.0.1:<port>; \
             refusing to run tests against it",
            kubeconfig.display()
        );
        assert!(
            is_loopback_url(&aws_endpoint, "http"),
            "TESTENV_AWS_ENDPOINT is '{aws_endpoint}', not http://127.0.0.1:<port>; refusing"
        );
        let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("kube config from TESTENV_KUBECONFIG");
        let client = Client::try_from(config).expect("kube client");
        // Only `testenv.sh up` creates this ConfigMap: proof that this is the disposable cluster.
        let marker = Api::<ConfigMap>::namespaced(client.clone(), "kube-system").get_opt("testenv-marker").await;
        match marker {
            Ok(Some(_)) => {}
            Ok(None) => panic!(
                "{api_server} has no kube-system/testenv-marker ConfigMap: not a cluster made by \
                 testenv.sh up; refusing to change anything in it"
            ),
            Err(e) if required => panic!("test environment at {api_server} is not reachable: {e}"),
            Err(e) => {
                eprintln!("SKIP {test}: test environment at {api_server} not reachable: {e}");
                return None;
            }
        }
        let dir = var("TESTENV_DIR").map(PathBuf::from).unwrap_or_else(|| {
            // …/kwok/clusters/testenv/kubeconfig.yaml -> …
            kubeconfig.ancestors().nth(4).expect("TESTENV_DIR").to_path_buf()
        });
        Some(TestEnv {
            dir,
            kubeconfig,
            api_server,
            aws_endpoint,
            region: var("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
            client,
            scratch: tempfile::Builder::new().prefix("kmsctl-testenv-").tempdir().expect("temp dir"),
        })
    }

    /// The environment of `profile` (see [`testenv_profile!`]): its env file is read, not the
    /// process environment, and its marker must name the profile.
    pub(crate) async fn of_profile(profile: &str) -> Option<TestEnv> {
        let required = var("TESTENV_REQUIRED").as_deref() == Some("1");
        let test = std::thread::current().name().unwrap_or("?").to_string();
        let key = format!("TESTENV_ENV_{}", profile.to_ascii_uppercase());
        let Some(file) = var(&key) else {
            if required {
                panic!(
                    "TESTENV_REQUIRED=1 but there is no {profile} environment: {key} is not set (scripts/test \
                     brings it up; by hand: TESTENV_PROFILE={profile} TESTENV_DIR=... testenv.sh up, then \
                     {key}=$TESTENV_DIR/env)"
                );
            }
            eprintln!("SKIP {test}: no {profile} environment ({key} is not set)");
            return None;
        };
        Self::of_env_file(&file, profile, required).await
    }

    /// The environment an env file describes (written by `testenv.sh up` for `profile`).
    async fn of_env_file(file: &str, profile: &str, required: bool) -> Option<TestEnv> {
        let test = std::thread::current().name().unwrap_or("?").to_string();
        let key = format!("TESTENV_ENV_{}", profile.to_ascii_uppercase());
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("reading {key}={file}: {e}"));
        let vars = env_file_vars(&text);
        let get = |k: &str| vars.get(k).cloned().unwrap_or_else(|| panic!("{file} does not set {k}"));
        let kubeconfig = PathBuf::from(get("TESTENV_KUBECONFIG"));
        let aws_endpoint = get("TESTENV_AWS_ENDPOINT");
        assert_eq!(get("TESTENV_PROFILE"), profile, "{key}={file} is not a {profile} environment");
        let kc = Kubeconfig::read_from(&kubeconfig)
            .unwrap_or_else(|e| panic!("reading the kubeconfig {}: {e}", kubeconfig.display()));
        let api_server = current_server(&kc).unwrap_or_default();
        assert!(is_loopback_url(&api_server, "https"), "{file}: '{api_server}' is not https://127.0.0.1:<port>");
        assert!(is_loopback_url(&aws_endpoint, "http"), "{file}: '{aws_endpoint}' is not http://127.0.0.1:<port>");
        let config =
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("kube config from env file");
        let client = Client::try_from(config).expect("kube client");
        let marker = Api::<ConfigMap>::namespaced(client.clone(), "kube-system").get_opt("testenv-marker").await;
        match marker {
            Ok(Some(m)) => {
                let p = m.data.as_ref().and_then(|d| d.get("profile")).map(String::as_str);
                assert_eq!(p, Some(profile), "{api_server}: the testenv-marker names another profile");
            }
            Ok(None) => panic!("{api_server} has no kube-system/testenv-marker ConfigMap: refusing to change it"),
            Err(e) if required => panic!("{profile} environment at {api_server} is not reachable: {e}"),
            Err(e) => {
                eprintln!("SKIP {test}: {profile} environment at {api_server} not reachable: {e}");
                return None;
            }
        }
        Some(TestEnv {
            dir: PathBuf::from(get("TESTENV_DIR")),
            kubeconfig,
            api_server,
            aws_endpoint,
            region: vars.get("AWS_REGION").cloned().unwrap_or_else(|| "us-east-1".into()),
            client,
            scratch: tempfile::Builder::new().prefix("kmsctl-testenv-").tempdir().expect("temp dir"),
        })
    }

    /// A private environment of its own (generic profile), for a test that breaks its control
    /// plane (restarts the API server, pauses etcd): brought up here (~20 s; the binaries are
    /// the cached ones), down when the guard drops. Private environments take turns. Skips
    /// like `testenv!()` when the shared environment is not up and not required.
    pub(crate) async fn private() -> Option<(TestEnv, PrivateEnv)> {
        static TURNS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        TestEnv::get().await?;
        let turn = TURNS.lock().await;
        let parent = tempfile::Builder::new().prefix("kmsctl-private-env-").tempdir().expect("temp dir");
        let dir = parent.path().join("testenv");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/testenv/testenv.sh");
        let out = tokio::process::Command::new(&script)
            .arg("up")
            .env("TESTENV_DIR", &dir)
            .env("TESTENV_PROFILE", "generic")
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("testenv.sh up");
        let guard = PrivateEnv { script, dir: dir.clone(), _parent: parent, _turn: turn };
        assert!(out.status.success(), "private testenv up failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let env = Self::of_env_file(&dir.join("env").display().to_string(), "generic", true).await?;
        Some((env, guard))
    }

    /// The PID of a control-plane component (`kube-apiserver`, `etcd`), from kwokctl's pid file.
    pub(crate) fn component_pid(&self, name: &str) -> u32 {
        let f = self.dir.join(format!("kwok/clusters/testenv/pids/{name}.pid"));
        std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display())).trim().parse().expect("pid")
    }

    /// The server's CA certificate (PEM), as the kubeconfig names it.
    pub(crate) fn ca_pem(&self) -> Vec<u8> {
        let kc = Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let cluster = kc.clusters[0].cluster.as_ref().expect("cluster");
        if let Some(data) = &cluster.certificate_authority_data {
            use base64::Engine as _;
            return base64::engine::general_purpose::STANDARD.decode(data).expect("certificate-authority-data");
        }
        let path = cluster.certificate_authority.as_ref().expect("certificate-authority");
        std::fs::read(path).expect("read CA")
    }

    /// A new namespace with a unique name; it is deleted (in the background) on drop.
    pub(crate) async fn namespace(&self, prefix: &str) -> TestNamespace {
        let name = unique(prefix);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("kmsctl.test/owner".to_string(), "it".to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
        // Pods are refused until kube-controller-manager has made the default ServiceAccount.
        let sas = Api::<ServiceAccount>::namespaced(self.client.clone(), &name);
        within(30, "the default ServiceAccount", await_condition(sas, "default", conditions::is_created()))
            .await
            .expect("watch ServiceAccount");
        TestNamespace { name, kubeconfig: self.kubeconfig.clone() }
    }

    /// Environment for a child process (helm, kubectl, the kmsctl binary): the cluster's
    /// kubeconfig, moto, static AWS credentials, and private helm/kubectl homes for this test.
    pub(crate) fn env_vars(&self) -> Vec<(String, OsString)> {
        let s = self.scratch.path();
        let mut v: Vec<(String, OsString)> = vec![
            ("KUBECONFIG".into(), self.kubeconfig.clone().into()),
            ("KUBECACHEDIR".into(), s.join("kube-cache").into()),
            ("HELM_CACHE_HOME".into(), s.join("helm/cache").into()),
            ("HELM_CONFIG_HOME".into(), s.join("helm/config").into()),
            ("HELM_DATA_HOME".into(), s.join("helm/data").into()),
            ("AWS_ENDPOINT_URL".into(), self.aws_endpoint.clone().into()),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
            ("AWS_REGION".into(), self.region.clone().into()),
            ("AWS_DEFAULT_REGION".into(), self.region.clone().into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            ("AWS_CONFIG_FILE".into(), "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()),
        ];
        if let Some(path) = std::env::var_os("PATH") {
            let mut dirs = vec![self.dir.join("bin")];
            dirs.extend(std::env::split_paths(&path));
            v.push(("PATH".into(), std::env::join_paths(dirs).expect("PATH")));
        }
        v
    }

    /// Apply [`TestEnv::env_vars`] to a command, and drop variables that would redirect it.
    pub(crate) fn apply_env(&self, cmd: &mut tokio::process::Command) {
        for k in ["HELM_KUBECONTEXT", "HELM_NAMESPACE", "HELM_KUBEAPISERVER", "HELM_KUBETOKEN"] {
            cmd.env_remove(k);
        }
        cmd.envs(self.env_vars()).stdin(std::process::Stdio::null());
    }

    /// `helm` (v4, the default) with the environment applied.
    pub(crate) fn helm(&self) -> tokio::process::Command {
        self.tool(self.dir.join("bin/helm"))
    }

    /// `helm` v3 with the environment applied.
    pub(crate) fn helm3(&self) -> tokio::process::Command {
        self.tool(var("TESTENV_HELM3").map_or_else(|| self.dir.join("bin/helm3"), PathBuf::from))
    }

    /// `kubectl` (the server's version) with the environment applied.
    pub(crate) fn kubectl(&self) -> tokio::process::Command {
        self.tool(self.dir.join("bin/kubectl"))
    }

    fn tool(&self, path: PathBuf) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(path);
        self.apply_env(&mut cmd);
        cmd
    }
}

/// Is `pid` a live process (not gone, not a zombie)?
pub(crate) fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')))
}

/// A private environment ([`TestEnv::private`]): brought down when dropped.
pub(crate) struct PrivateEnv {
    script: PathBuf,
    dir: PathBuf,
    _parent: tempfile::TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Drop for PrivateEnv {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.script)
            .arg("down")
            .env("TESTENV_DIR", &self.dir)
            .stdin(std::process::Stdio::null())
            .output();
    }
}

/// A namespace a test owns. Dropped after a passing test, it is deleted (without waiting for
/// the namespace controller); after a failing one it is kept for inspection.
pub(crate) struct TestNamespace {
    /// Its name.
    pub name: String,
    kubeconfig: PathBuf,
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("keeping namespace {} of the failed test for inspection", self.name);
            return;
        }
        // The test's runtime may be the only thread and is blocked here, so the delete runs on a
        // thread with a runtime and a client of its own.
        let (name, kubeconfig) = (self.name.clone(), self.kubeconfig.clone());
        let deleted = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                let kc = Kubeconfig::read_from(&kubeconfig)?;
                let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
                let client = Client::try_from(config)?;
                Api::<Namespace>::all(client).delete(&name, &DeleteParams::background()).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
            .map_err(|e| std::io::Error::other(e.to_string()))
        })
        .join();
        if let Ok(Err(e)) = deleted {
            eprintln!("could not delete namespace {}: {e}", self.name);
        }
    }
}

/// Run a command, panic with its output unless it succeeds, and return its stdout.
pub(crate) async fn run(cmd: &mut tokio::process::Command) -> String {
    let Output { status, stdout, stderr } = cmd.output().await.expect("spawn");
    let (out, err) = (String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&stderr));
    assert!(status.success(), "{cmd:?} failed ({status}):\n--- stdout\n{out}\n--- stderr\n{err}");
    out.into_owned()
}

/// A short unique DNS-1123 label: `<prefix>-<8 base36 chars>` (prefix cut to 40 chars and
/// lowercased; the result is at most 49 chars, so suffixes like `-core-12` still fit in 63).
pub(crate) fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let mut p: String =
        prefix.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).take(40).collect();
    p = p.trim_matches('-').to_string();
    if p.is_empty() || !p.starts_with(|c: char| c.is_ascii_lowercase()) {
        p.insert(0, 't');
    }
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_nanos();
    let mut n = (nanos as u64)
        ^ (u64::from(std::process::id()) << 40)
        ^ (u64::from(COUNTER.fetch_add(1, Ordering::Relaxed)) << 20);
    let mut suffix = String::new();
    for _ in 0..8 {
        suffix.push(char::from_digit((n % 36) as u32, 36).expect("digit"));
        n /= 36;
    }
    format!("{p}-{suffix}")
}

/// `NAME=VALUE` words of the env file's `export` lines (values as bash's `printf %q` writes
/// them; `$` expansions such as PATH's are not resolved).
fn env_file_vars(text: &str) -> std::collections::HashMap<String, String> {
    let mut vars = std::collections::HashMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("export ") else { continue };
        let (mut word, mut escaped, mut words) = (String::new(), false, Vec::new());
        for c in rest.chars() {
            if escaped {
                word.push(c);
                escaped = false;
                continue;
            }
            match c {
                '\\' => escaped = true,
                ' ' => words.push(std::mem::take(&mut word)),
                _ => word.push(c),
            }
        }
        words.push(word);
        for w in words {
            if let Some((k, v)) = w.split_once('=') {
                vars.insert(k.to_string(), v.to_string());
            }
        }
    }
    vars
}

fn current_server(kc: &Kubeconfig) -> Option<String> {
    let ctx_name = kc.current_context.as_deref()?;
    let ctx = kc.contexts.iter().find(|c| c.name == ctx_name)?.context.as_ref()?;
    let cluster = kc.clusters.iter().find(|c| c.name == ctx.cluster)?.cluster.as_ref()?;
    cluster.server.clone()
}

fn is_loopback_url(u: &str, scheme: &str) -> bool {
    url::Url::parse(u).is_ok_and(|u| {
        u.scheme() == scheme
            && u.host_str() == Some("127.0.0.1")
            && u.port().is_some()
            && u.path().trim_end_matches('/').is_empty()
    })
}

/// Await `fut` at most `secs` seconds, panicking with `what` on timeout.
pub(crate) async fn within<T>(secs: u64, what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs}s waiting for {what}"))
}

/// Path of a chart under tests/charts.
pub(crate) fn chart(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts").join(name)
}

#[test]
fn unique_names_are_dns_labels_and_differ() {
    let a = unique("Helm_Install.Test");
    let b = unique("Helm_Install.Test");
    assert_ne!(a, b);
    for n in [&a, &b, &unique(""), &unique("9lives"), &unique(&"x".repeat(100))] {
        assert!(n.len() <= 49, "{n}");
        assert!(n.starts_with(|c: char| c.is_ascii_lowercase()), "{n}");
        assert!(n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{n}");
    }
    assert!(a.starts_with("helm-install-test-"), "{a}");
}

#[test]
fn only_loopback_servers_are_accepted() {
    assert!(is_loopback_url("https://127.0.0.1:6443", "https"));
    assert!(!is_loopback_url("https://127.0.0.1", "https"));
    assert!(!is_loopback_url("http://127.0.0.1:6443", "https"));
    assert!(!is_loopback_url("https://10.0.0.1:6443", "https"));
    assert!(!is_loopback_url("https://ABC.gr7.eu-west-1.eks.amazonaws.com", "https"));
    assert!(!is_loopback_url("https://127.0.0.1.nip.io:6443", "https"));
    assert!(!is_loopback_url("https://127.0.0.1:6443/proxy", "https"));
}

#[test]
fn env_file_vars_reads_printf_q_values() {
    let v = env_file_vars(
        "# comment\nexport TESTENV_DIR=/tmp/a\\ b\nexport HELM_CACHE_HOME=/x HELM_DATA_HOME=/y\nexport PATH=/p:\"$PATH\"\n",
    );
    assert_eq!(v["TESTENV_DIR"], "/tmp/a b");
    assert_eq!((v["HELM_CACHE_HOME"].as_str(), v["HELM_DATA_HOME"].as_str()), ("/x", "/y"));
}
