//! The Rhai adapter: `import "aws" as aws;`, then `aws::eks_connect("kms")`, `aws::s3_put(..)`.
//! Argument conversion, caching and documentation only; the work is in the other modules.

use crate::config::{self, AwsOptions};
use crate::eks::{self, ExecAuth, WaitOptions};
use crate::error::AwsError;
use crate::{s3, sts};
use aws_config::SdkConfig;
use kmsctl_host::Level;
use kmsctl_host::Opts;
use kmsctl_host::value::from_json;
use kmsctl_host::{BuiltModule, ModuleBuilder, NativeModule};
use kmsctl_host::{HostCtx, Secret};
use kmsctl_host::{to_rhai, usage_err};
use kmsctl_k8s::Cluster;
use kmsctl_k8s::ClusterHandle;
use rhai::{Array, Dynamic, Map};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use kmsctl_host::ScriptResult as R;

/// The `aws` native module.
pub struct Aws;

/// Options every function takes: where and as whom to call AWS.
const AWS_KEYS: [&str; 4] = ["region", "profile", "role_arn", "endpoint"];

// Functions' own options, beside [`AWS_KEYS`].
const CONNECT_KEYS: &[&str] = &["context", "exec_command"];
const KUBECONFIG_KEYS: &[&str] = &["context", "exec_command", "set_current", "merge"];
const WAIT_KEYS: &[&str] = &["timeout", "interval"];
const PUT_KEYS: &[&str] = &["content_type", "create_bucket"];
const GET_KEYS: &[&str] = &["secret"];

/// A function's options: its own keys plus [`AWS_KEYS`].
fn aws_keys(extra: &[&'static str]) -> Vec<&'static str> {
    AWS_KEYS.iter().chain(extra).copied().collect()
}

/// The options map of an aws function: its own keys plus [`AWS_KEYS`].
fn aws_opts<'a>(map: &'a Map, func: &'a str, extra: &[&'static str]) -> R<Opts<'a>> {
    Opts::new(map, func, &aws_keys(extra))
}

/// Where and as whom to call AWS (empty values mean unset).
fn aws_of(o: &Opts) -> R<AwsOptions> {
    let get = |k: &str| o.str(k).map(|v| v.filter(|s| !s.is_empty()));
    let endpoint = get("endpoint")?;
    if let Some(e) = &endpoint {
        config::check_endpoint(e).map_err(|e| o.usage(e))?;
    }
    Ok(AwsOptions { region: get("region")?, profile: get("profile")?, role_arn: get("role_arn")?, endpoint })
}

/// Arguments that must not be empty (a bucket, a cluster name).
fn required(func: &str, what: &str, v: &str) -> R<()> {
    if v.trim().is_empty() { Err(usage_err(format!("{func}: {what} must not be empty"))) } else { Ok(()) }
}

fn to_script<T: serde::Serialize>(v: &T) -> Dynamic {
    from_json(serde_json::to_value(v).unwrap_or_default())
}

/// A connection: AWS options, cluster name, context name and exec command.
type ConnectKey = (AwsOptions, String, Option<String>, Option<String>);

/// The module's state for one run: loaded configurations (an assumed role is assumed once and
/// refreshed by its provider) and connected clusters.
struct State {
    ctx: HostCtx,
    configs: Mutex<HashMap<AwsOptions, SdkConfig>>,
    clusters: Mutex<HashMap<ConnectKey, Cluster>>,
}

impl State {
    fn sdk(&self, opts: &AwsOptions) -> R<SdkConfig> {
        // A plan that does not read the world never reaches AWS, whatever asks.
        if self.ctx.mode().is_offline() {
            let message = "AWS is not contacted in a plan without --against-cluster".to_string();
            return Err(to_rhai(&kmsctl_host::Failure::new(kmsctl_host::ErrorKind::Unavailable, message)));
        }
        if let Some(c) = self.configs.lock().expect("configs lock").get(opts) {
            return Ok(c.clone());
        }
        let o = opts.clone();
        let sdk = self.ctx.block_on(async move { config::load(&o).await })?;
        self.configs.lock().expect("configs lock").insert(opts.clone(), sdk.clone());
        Ok(sdk)
    }

    fn eks(&self, opts: &AwsOptions) -> R<aws_sdk_eks::Client> {
        Ok(aws_sdk_eks::Client::new(&self.sdk(opts)?))
    }

    /// Run a wait as a step with live progress.
    fn step<T>(
        &self,
        name: String,
        work: impl AsyncFnOnce(&mut (dyn FnMut(&str) + Send)) -> Result<T, AwsError>,
    ) -> R<T> {
        let step = self.ctx.open_step(&name, kmsctl_host::StepKind::Wait, None);
        let st = step.clone();
        let r = self.ctx.block_on(async move {
            let mut progress = |p: &str| st.progress(p);
            work(&mut progress).await
        });
        step.finish(&r);
        r
    }

    fn connect(&self, name: &str, o: &Map) -> R<ClusterHandle> {
        const F: &str = "aws::eks_connect";
        required(F, "the cluster name", name)?;
        let oo = aws_opts(o, F, CONNECT_KEYS)?;
        let aws = aws_of(&oo)?;
        let (context, command) = (oo.str("context")?, oo.str("exec_command")?);
        let key = (aws.clone(), name.to_string(), context.clone(), command.clone());
        if let Some(c) = self.clusters.lock().expect("clusters lock").get(&key) {
            return Ok(ClusterHandle::new(c.clone(), self.ctx.clone()));
        }
        if self.ctx.mode().is_offline() {
            // Without AWS the cluster's ARN (its context's name) is not known unless given.
            let cluster = Cluster::planned(context, None, "default".into(), None).map_err(|e| to_rhai(&e))?;
            self.ctx.log(Level::Info, format!("EKS cluster {name}: not described (--plan without --against-cluster)"));
            self.clusters.lock().expect("clusters lock").insert(key, cluster.clone());
            return Ok(ClusterHandle::new(cluster, self.ctx.clone()));
        }
        let sdk = self.sdk(&aws)?;
        let region = config::region(&sdk).map_err(|e| to_rhai(&e))?;
        let command = match command {
            Some(c) => c,
            None => ExecAuth::current_exe().map_err(|e| to_rhai(&e))?,
        };
        let exec = ExecAuth {
            command,
            cluster: name.to_string(),
            region,
            profile: aws.profile.clone(),
            role_arn: aws.role_arn.clone(),
            aws_endpoint: aws.endpoint.clone(),
        };
        // The kubeconfig helm and kubectl use for this cluster; it holds no token, only the plugin.
        let dir = tempfile::Builder::new()
            .prefix("kmsctl-eks-")
            .tempdir()
            .map_err(|e| to_rhai(&AwsError::Io(format!("cannot create a temp dir for the kubeconfig: {e}"))))?
            .keep();
        let path = dir.join("kubeconfig");
        let d2 = dir.clone();
        let cleanup = self.ctx.on_cleanup(format!("kubeconfig of EKS cluster {name}"), move || {
            Box::pin(async move {
                let _ = tokio::fs::remove_dir_all(d2).await;
            })
        });
        let (eks_client, n, p) = (aws_sdk_eks::Client::new(&sdk), name.to_string(), path.clone());
        let connected = self.ctx.block_on(async move {
            let cluster = eks::describe_cluster(&eks_client, &n).await?;
            let ctx_name =
                context.unwrap_or_else(|| if cluster.arn.is_empty() { n.clone() } else { cluster.arn.clone() });
            eks::connect(&cluster, &ctx_name, &exec, &p).await
        });
        let cluster = match connected {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                self.ctx.remove_cleanup(cleanup);
                return Err(e);
            }
        };
        self.ctx.log(Level::Info, format!("connected to EKS cluster {name} ({})", cluster.server()));
        self.clusters.lock().expect("clusters lock").insert(key, cluster.clone());
        Ok(ClusterHandle::new(cluster, self.ctx.clone()))
    }

    fn kubeconfig(&self, name: &str, path: &str, o: &Map) -> R<String> {
        const F: &str = "aws::eks_kubeconfig";
        required(F, "the cluster name", name)?;
        required(F, "the path", path)?;
        let oo = aws_opts(o, F, KUBECONFIG_KEYS)?;
        let aws = aws_of(&oo)?;
        let (context, command) = (oo.str("context")?, oo.str("exec_command")?);
        let (set_current, merge) = (oo.bool("set_current", true)?, oo.bool("merge", true)?);
        let sdk = self.sdk(&aws)?;
        let region = config::region(&sdk).map_err(|e| to_rhai(&e))?;
        let command = match command {
            Some(c) => c,
            None => ExecAuth::current_exe().map_err(|e| to_rhai(&e))?,
        };
        let exec = ExecAuth {
            command,
            cluster: name.to_string(),
            region,
            profile: aws.profile,
            role_arn: aws.role_arn,
            aws_endpoint: aws.endpoint,
        };
        let target = self.ctx.resolve_path(path);
        let (eks_client, n, t) = (aws_sdk_eks::Client::new(&sdk), name.to_string(), target.clone());
        let ctx_name = self.ctx.block_on(async move {
            let cluster = eks::describe_cluster(&eks_client, &n).await?;
            let ctx_name =
                context.unwrap_or_else(|| if cluster.arn.is_empty() { n.clone() } else { cluster.arn.clone() });
            let kc = eks::kubeconfig(&cluster, &ctx_name, &exec)?;
            eks::write_kubeconfig(&t, kc, merge, set_current)?;
            Ok::<_, AwsError>(ctx_name)
        })?;
        self.ctx.log(Level::Info, format!("wrote context {ctx_name} to {}", target.display()));
        Ok(ctx_name)
    }

    fn s3_put(&self, func: &'static str, bucket: &str, key: &str, body: Vec<u8>, oo: &Opts) -> R<Map> {
        required(func, "the bucket", bucket)?;
        required(func, "the key", key)?;
        let aws = aws_of(oo)?;
        let content_type = oo.str("content_type")?;
        let create = oo.bool("create_bucket", false)?;
        let sdk = self.sdk(&aws)?;
        let region = config::region(&sdk).map_err(|e| to_rhai(&e))?;
        let client = s3::client(&sdk);
        let (b, k) = (bucket.to_string(), key.to_string());
        let (created, put) = self.ctx.block_on(async move {
            let created = create && s3::ensure_bucket(&client, &b, &region).await?;
            Ok::<_, AwsError>((created, s3::put(&client, &b, &k, body, content_type.as_deref()).await?))
        })?;
        if created {
            self.ctx.log(Level::Info, format!("created S3 bucket {bucket}"));
        }
        self.ctx.log(Level::Debug, format!("put s3://{bucket}/{key} ({} bytes)", put.size));
        Ok(to_script(&put).cast::<Map>())
    }

    fn s3_get_bytes(&self, func: &'static str, bucket: &str, key: &str, aws: &AwsOptions) -> R<Vec<u8>> {
        required(func, "the bucket", bucket)?;
        required(func, "the key", key)?;
        if self.ctx.mode().is_offline() {
            return Err(to_rhai(&AwsError::NotFound(format!("s3://{bucket}/{key} (--plan: an empty S3)"))));
        }
        let client = s3::client(&self.sdk(aws)?);
        let (b, k) = (bucket.to_string(), key.to_string());
        self.ctx.block_on(async move { s3::get(&client, &b, &k).await })
    }
}

/// Content for S3: text, a secret (sent as is, never logged) or a blob.
fn body_of(func: &str, v: &Dynamic) -> R<Vec<u8>> {
    if v.is_string() {
        return Ok(v.to_string().into_bytes());
    }
    if let Some(s) = v.read_lock::<Secret>() {
        return Ok(s.expose().as_bytes().to_vec());
    }
    if v.is_blob() {
        return Ok(v.read_lock::<rhai::Blob>().map(|b| b.to_vec()).unwrap_or_default());
    }
    Err(usage_err(format!("{func}: content must be a string, a secret or a blob, got {}", v.type_name())))
}

impl NativeModule for Aws {
    fn name(&self) -> &'static str {
        "aws"
    }
    fn build(&self, ctx: &HostCtx) -> BuiltModule {
        let mut b = ModuleBuilder::new(
            ctx,
            self.name(),
            "AWS: EKS, S3, STS. Every function takes an optional last map with `region`, `profile`,\n\
             `role_arn` (a role to assume) and `endpoint` (a URL such as http://127.0.0.1:4566 for a\n\
             port-forwarded LocalStack or moto; S3 then uses path-style addressing); otherwise the\n\
             standard AWS chain applies (AWS_REGION, AWS_PROFILE, AWS_ACCESS_KEY_ID..., SSO, web identity)\n\
             and AWS_ENDPOINT_URL is honoured.\n\
             `aws::eks_connect(\"kms\")` returns the same `Cluster` as `k8s::connect()` (import \"k8s\" for its methods).",
        );
        b.ty::<ClusterHandle>("Cluster");
        let st = Arc::new(State { ctx: ctx.clone(), configs: Mutex::default(), clusters: Mutex::default() });

        let caller = {
            let st = st.clone();
            move |o: &Map| -> R<Map> {
                let aws = aws_of(&aws_opts(o, "aws::caller_identity", &[])?)?;
                let sdk = st.sdk(&aws)?;
                let id = st.ctx.block_on(async move { sts::caller_identity(&sdk).await })?;
                Ok(to_script(&id).cast::<Map>())
            }
        };
        let c2 = caller.clone();
        b.func("caller_identity", &["map"], "Who the AWS credentials are: #{account, arn, user_id}.", move || {
            c2(&Map::new())
        })
        .reads();
        b.func(
            "caller_identity",
            &["options: map", "map"],
            "Who the AWS credentials are: #{account, arn, user_id}. Options: region, profile, role_arn, endpoint.",
            move |o: Map| caller(&o),
        )
        .options(&aws_keys(&[]))
        .reads();

        // ---- EKS
        let describe = {
            let st = st.clone();
            move |name: &str, o: &Map| -> R<Map> {
                required("aws::eks_describe", "the cluster name", name)?;
                let eks = st.eks(&aws_of(&aws_opts(o, "aws::eks_describe", &[])?)?)?;
                let n = name.to_string();
                let c = st.ctx.block_on(async move { eks::describe_cluster(&eks, &n).await })?;
                Ok(to_script(&c).cast::<Map>())
            }
        };
        let d2 = describe.clone();
        b.func(
            "eks_describe",
            &["name: string", "options: map", "map"],
            "Describe an EKS cluster: #{name, arn, status, version, platform_version, endpoint,\n\
             certificate_authority (base64 PEM), role_arn, created_at, health_issues, tags}.\n\
             Throws `not_found` when it does not exist.",
            move |n: &str, o: Map| d2(n, &o),
        )
        .options(&aws_keys(&[]))
        .reads();
        b.func("eks_describe", &["name: string", "map"], "Describe an EKS cluster.", move |n: &str| {
            describe(n, &Map::new())
        })
        .reads();

        let nodegroups = {
            let st = st.clone();
            move |cluster: &str, o: &Map| -> R<Array> {
                required("aws::eks_nodegroups", "the cluster name", cluster)?;
                let eks = st.eks(&aws_of(&aws_opts(o, "aws::eks_nodegroups", &[])?)?)?;
                let c = cluster.to_string();
                let names = st.ctx.block_on(async move { eks::list_nodegroups(&eks, &c).await })?;
                Ok(names.into_iter().map(Dynamic::from).collect())
            }
        };
        let n2 = nodegroups.clone();
        b.func(
            "eks_nodegroups",
            &["cluster: string", "options: map", "array"],
            "The names of a cluster's managed node groups.",
            move |c: &str, o: Map| n2(c, &o),
        )
        .options(&aws_keys(&[]))
        .reads();
        b.func(
            "eks_nodegroups",
            &["cluster: string", "array"],
            "The names of a cluster's node groups.",
            move |c: &str| nodegroups(c, &Map::new()),
        )
        .reads();

        let nodegroup = {
            let st = st.clone();
            move |cluster: &str, name: &str, o: &Map| -> R<Map> {
                required("aws::eks_nodegroup", "the cluster name", cluster)?;
                required("aws::eks_nodegroup", "the node group name", name)?;
                let eks = st.eks(&aws_of(&aws_opts(o, "aws::eks_nodegroup", &[])?)?)?;
                let (c, n) = (cluster.to_string(), name.to_string());
                let ng = st.ctx.block_on(async move { eks::describe_nodegroup(&eks, &c, &n).await })?;
                Ok(to_script(&ng).cast::<Map>())
            }
        };
        let ng2 = nodegroup.clone();
        b.func(
            "eks_nodegroup",
            &["cluster: string", "name: string", "options: map", "map"],
            "Describe a node group: #{name, arn, cluster, status, version, release_version, instance_types,\n\
             capacity_type, ami_type, scaling: #{min, max, desired}, labels, health_issues}.",
            move |c: &str, n: &str, o: Map| ng2(c, n, &o),
        )
        .options(&aws_keys(&[]))
        .reads();
        b.func(
            "eks_nodegroup",
            &["cluster: string", "name: string", "map"],
            "Describe a node group.",
            move |c: &str, n: &str| nodegroup(c, n, &Map::new()),
        )
        .reads();

        let wait_opts = |oo: &Opts| -> R<WaitOptions> {
            let d = WaitOptions::default();
            let interval = oo.duration("interval")?.unwrap_or(d.interval);
            if interval.is_zero() {
                return Err(oo.usage("interval must be more than 0s"));
            }
            Ok(WaitOptions { timeout: oo.duration("timeout")?.unwrap_or(d.timeout), interval })
        };
        let wait_cluster = {
            let st = st.clone();
            move |name: &str, o: &Map| -> R<Map> {
                const F: &str = "aws::eks_wait_active";
                required(F, "the cluster name", name)?;
                let oo = aws_opts(o, F, WAIT_KEYS)?;
                let wo = wait_opts(&oo)?;
                let eks = st.eks(&aws_of(&oo)?)?;
                let n = name.to_string();
                let c = st.step(format!("wait for EKS cluster {name} to be ACTIVE"), async move |p| {
                    eks::wait_cluster_active(&eks, &n, &wo, p).await
                })?;
                Ok(to_script(&c).cast::<Map>())
            }
        };
        let w2 = wait_cluster.clone();
        b.func(
            "eks_wait_active",
            &["name: string", "options: map", "map"],
            "Wait until an EKS cluster is ACTIVE, polling with progress. Options: timeout (\"20m\"),\n\
             interval (\"15s\"). Throws `failed` at once for FAILED or DELETING, `timeout` with the last\n\
             status otherwise. Returns the cluster as eks_describe does.",
            move |n: &str, o: Map| w2(n, &o),
        )
        .options(&aws_keys(WAIT_KEYS))
        .reads();
        b.func(
            "eks_wait_active",
            &["name: string", "map"],
            "Wait until an EKS cluster is ACTIVE (20m).",
            move |n: &str| wait_cluster(n, &Map::new()),
        )
        .reads();

        let wait_ng = {
            let st = st.clone();
            move |cluster: &str, name: &str, o: &Map| -> R<Map> {
                const F: &str = "aws::eks_wait_nodegroup_active";
                required(F, "the cluster name", cluster)?;
                required(F, "the node group name", name)?;
                let oo = aws_opts(o, F, WAIT_KEYS)?;
                let wo = wait_opts(&oo)?;
                let eks = st.eks(&aws_of(&oo)?)?;
                let (c, n) = (cluster.to_string(), name.to_string());
                let ng = st.step(format!("wait for EKS node group {cluster}/{name} to be ACTIVE"), async move |p| {
                    eks::wait_nodegroup_active(&eks, &c, &n, &wo, p).await
                })?;
                Ok(to_script(&ng).cast::<Map>())
            }
        };
        let wn2 = wait_ng.clone();
        b.func(
            "eks_wait_nodegroup_active",
            &["cluster: string", "name: string", "options: map", "map"],
            "Wait until a node group is ACTIVE, polling with progress. Options: timeout (\"20m\"), interval\n\
             (\"15s\"). Throws `failed` at once for CREATE_FAILED, DELETE_FAILED, DEGRADED (with the health\n\
             issues) or DELETING, `timeout` with the last status otherwise.",
            move |c: &str, n: &str, o: Map| wn2(c, n, &o),
        )
        .options(&aws_keys(WAIT_KEYS))
        .reads();
        b.func(
            "eks_wait_nodegroup_active",
            &["cluster: string", "name: string", "map"],
            "Wait until a node group is ACTIVE (20m).",
            move |c: &str, n: &str| wait_ng(c, n, &Map::new()),
        )
        .reads();

        let s = st.clone();
        b.func(
            "eks_connect",
            &["name: string", "options: map", "Cluster"],
            "Connect to an EKS cluster: a `Cluster` like k8s::connect() returns, whose context is the cluster\n\
             ARN. Tokens are minted in-process by kmsctl's exec plugin and refreshed before they expire;\n\
             helm and kubectl get the same auth through the cluster's kubeconfig. Options: region, profile,\n\
             role_arn, endpoint (also handed to the plugin), context (the context name), exec_command (the\n\
             kmsctl binary the plugin runs; default this one).",
            move |n: &str, o: Map| s.connect(n, &o),
        )
        .options(&aws_keys(CONNECT_KEYS))
        .plans();
        let s = st.clone();
        b.func("eks_connect", &["name: string", "Cluster"], "Connect to an EKS cluster.", move |n: &str| {
            s.connect(n, &Map::new())
        })
        .plans();
        let s = st.clone();
        b.func(
            "eks_kubeconfig",
            &["name: string", "path: string", "options: map", "string"],
            "Write a kubeconfig entry for an EKS cluster to `path` (0600; relative to the playbook),\n\
             like `aws eks update-kubeconfig` but with `kmsctl eks token` as the exec plugin, so helm and\n\
             kubectl need no aws CLI. Returns the context name (the cluster ARN). Options: region, profile,\n\
             role_arn, endpoint, context, exec_command, merge (true: keep other entries), set_current (true).",
            move |n: &str, p: &str, o: Map| s.kubeconfig(n, p, &o),
        )
        .options(&aws_keys(KUBECONFIG_KEYS))
        .mutates();
        let s = st.clone();
        b.func(
            "eks_kubeconfig",
            &["name: string", "path: string", "string"],
            "Write a kubeconfig entry for an EKS cluster.",
            move |n: &str, p: &str| s.kubeconfig(n, p, &Map::new()),
        )
        .mutates();

        // ---- S3
        let s = st.clone();
        let put = move |bucket: &str, key: &str, content: Dynamic, o: &Map| -> R<Map> {
            const F: &str = "aws::s3_put";
            let oo = aws_opts(o, F, PUT_KEYS)?;
            let body = body_of(F, &content)?;
            s.s3_put(F, bucket, key, body, &oo)
        };
        let p2 = put.clone();
        b.func(
            "s3_put",
            &["bucket: string", "key: string", "content: string|Secret|blob", "options: map", "map"],
            "Put an object. Content may be a secret: it is sent as is and never logged. Returns #{bucket,\n\
             key, etag, size}. Options: region, profile, role_arn, endpoint, content_type, create_bucket (false).",
            move |b: &str, k: &str, c: Dynamic, o: Map| p2(b, k, c, &o),
        )
        .options(&aws_keys(PUT_KEYS))
        .mutates();
        b.func(
            "s3_put",
            &["bucket: string", "key: string", "content: string|Secret|blob", "map"],
            "Put an object.",
            move |b: &str, k: &str, c: Dynamic| put(b, k, c, &Map::new()),
        )
        .mutates();
        let s = st.clone();
        let put_file = move |bucket: &str, key: &str, path: &str, o: &Map| -> R<Map> {
            const F: &str = "aws::s3_put_file";
            let oo = aws_opts(o, F, PUT_KEYS)?;
            required(F, "the path", path)?;
            let p = s.ctx.resolve_path(path);
            let body = std::fs::read(&p).map_err(|e| to_rhai(&AwsError::Io(format!("{F}: {}: {e}", p.display()))))?;
            s.s3_put(F, bucket, key, body, &oo)
        };
        let pf2 = put_file.clone();
        b.func(
            "s3_put_file",
            &["bucket: string", "key: string", "path: string", "options: map", "map"],
            "Upload a file (relative to the playbook). Options as for s3_put.",
            move |b: &str, k: &str, p: &str, o: Map| pf2(b, k, p, &o),
        )
        .options(&aws_keys(PUT_KEYS))
        .mutates();
        b.func(
            "s3_put_file",
            &["bucket: string", "key: string", "path: string", "map"],
            "Upload a file.",
            move |b: &str, k: &str, p: &str| put_file(b, k, p, &Map::new()),
        )
        .mutates();

        let s = st.clone();
        let get = move |bucket: &str, key: &str, o: &Map| -> R<Dynamic> {
            const F: &str = "aws::s3_get";
            let oo = aws_opts(o, F, GET_KEYS)?;
            let secret = oo.bool("secret", false)?;
            let bytes = s.s3_get_bytes(F, bucket, key, &aws_of(&oo)?)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| usage_err(format!("{F}: s3://{bucket}/{key} is not UTF-8 text; use aws::s3_get_file")))?;
            Ok(if secret { Dynamic::from(s.ctx.secret(text)) } else { Dynamic::from(text) })
        };
        let g2 = get.clone();
        b.func(
            "s3_get",
            &["bucket: string", "key: string", "options: map", "string|Secret"],
            "An object's content as text. Options: region, profile, role_arn, endpoint, secret (true: return a\n\
             Secret, masked everywhere). Throws `not_found` for a missing bucket or key.",
            move |b: &str, k: &str, o: Map| g2(b, k, &o),
        )
        .options(&aws_keys(GET_KEYS))
        .reads();
        b.func(
            "s3_get",
            &["bucket: string", "key: string", "string"],
            "An object's content as text.",
            move |b: &str, k: &str| get(b, k, &Map::new()),
        )
        .reads();
        let s = st.clone();
        let get_file = move |bucket: &str, key: &str, path: &str, o: &Map| -> R<Map> {
            const F: &str = "aws::s3_get_file";
            let aws = aws_of(&aws_opts(o, F, &[])?)?;
            required(F, "the path", path)?;
            let bytes = s.s3_get_bytes(F, bucket, key, &aws)?;
            let p: PathBuf = s.ctx.resolve_path(path);
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| to_rhai(&AwsError::Io(format!("{F}: {}: {e}", dir.display()))))?;
            }
            // The object may be a secret (a key, a kubeconfig): 0600, as kmsctl writes every such file.
            crate::eks::write_private(&p, &bytes)
                .map_err(|e| to_rhai(&AwsError::Io(format!("{F}: {}: {e}", p.display()))))?;
            let mut m = Map::new();
            m.insert("path".into(), p.display().to_string().into());
            m.insert("size".into(), (bytes.len() as rhai::INT).into());
            Ok(m)
        };
        let gf2 = get_file.clone();
        b.func(
            "s3_get_file",
            &["bucket: string", "key: string", "path: string", "options: map", "map"],
            "Download an object to a file (relative to the playbook; parents created). Returns #{path, size}.",
            move |b: &str, k: &str, p: &str, o: Map| gf2(b, k, p, &o),
        )
        .options(&aws_keys(&[]))
        .reads();
        b.func(
            "s3_get_file",
            &["bucket: string", "key: string", "path: string", "map"],
            "Download an object to a file.",
            move |b: &str, k: &str, p: &str| get_file(b, k, p, &Map::new()),
        )
        .reads();

        let s = st.clone();
        let list = move |bucket: &str, prefix: &str, o: &Map| -> R<Array> {
            const F: &str = "aws::s3_list";
            required(F, "the bucket", bucket)?;
            if s.ctx.mode().is_offline() {
                return Ok(Array::new());
            }
            let client = s3::client(&s.sdk(&aws_of(&aws_opts(o, F, &[])?)?)?);
            let (b, p) = (bucket.to_string(), prefix.to_string());
            let objs = s.ctx.block_on(async move { s3::list(&client, &b, &p).await })?;
            Ok(objs.iter().map(to_script).collect())
        };
        let l2 = list.clone();
        b.func(
            "s3_list",
            &["bucket: string", "prefix: string", "options: map", "array"],
            "Objects whose key starts with `prefix` (\"\" for all), in key order: #{key, size,\n\
             last_modified, etag}.",
            move |b: &str, p: &str, o: Map| l2(b, p, &o),
        )
        .options(&aws_keys(&[]))
        .reads();
        b.func(
            "s3_list",
            &["bucket: string", "prefix: string", "array"],
            "Objects under a prefix.",
            move |b: &str, p: &str| list(b, p, &Map::new()),
        )
        .reads();

        let s = st.clone();
        let ensure = move |bucket: &str, o: &Map| -> R<bool> {
            const F: &str = "aws::s3_ensure_bucket";
            required(F, "the bucket", bucket)?;
            let sdk = s.sdk(&aws_of(&aws_opts(o, F, &[])?)?)?;
            let region = config::region(&sdk).map_err(|e| to_rhai(&e))?;
            let client = s3::client(&sdk);
            let b = bucket.to_string();
            s.ctx.block_on(async move { s3::ensure_bucket(&client, &b, &region).await })
        };
        let e2 = ensure.clone();
        b.func(
            "s3_ensure_bucket",
            &["bucket: string", "options: map", "bool"],
            "Create a bucket in the region unless it exists; true if it was created.",
            move |b: &str, o: Map| e2(b, &o),
        )
        .options(&aws_keys(&[]))
        .mutates();
        b.func("s3_ensure_bucket", &["bucket: string", "bool"], "Create a bucket unless it exists.", move |b: &str| {
            ensure(b, &Map::new())
        })
        .mutates();
        b.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmsctl_host::CancelScope;
    use kmsctl_host::Events;
    use kmsctl_host::Redactor;

    /// An engine with the module as `aws::`; calls that reach AWS are not made here.
    fn engine() -> (tokio::runtime::Runtime, rhai::Engine) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let events = Events::new(Vec::new(), Redactor::new());
        let ctx = HostCtx::new(rt.handle().clone(), CancelScope::root(), events, Default::default());
        let mut e = rhai::Engine::new();
        e.register_static_module("aws", Aws.build(&ctx).functions.into());
        (rt, e)
    }

    fn error(e: &rhai::Engine, script: &str) -> (String, String) {
        let err = e.eval::<Dynamic>(script).expect_err("must fail");
        let v = match err.unwrap_inner() {
            rhai::EvalAltResult::ErrorRuntime(v, _) => v.clone(),
            other => panic!("not a runtime error: {other}"),
        };
        let m = v.cast::<Map>();
        (m["kind"].to_string(), m["message"].to_string())
    }

    #[test]
    fn unknown_options_are_refused_with_a_suggestion() {
        let (_rt, e) = engine();
        let (kind, msg) = error(&e, r#"aws::s3_get("b", "k", #{ regoin: "eu-west-1" })"#);
        assert_eq!(kind, "usage");
        assert_eq!(
            msg,
            "aws::s3_get: unknown option 'regoin' (did you mean 'region'?); options are region, profile, role_arn, endpoint, secret"
        );
        let (_, msg) = error(&e, r#"aws::eks_connect("kms", #{ exec: "x" })"#);
        assert!(msg.starts_with("aws::eks_connect: unknown option 'exec'"), "{msg}");
        assert!(msg.ends_with("options are region, profile, role_arn, endpoint, context, exec_command"), "{msg}");
    }

    #[test]
    fn bad_option_values_and_arguments_are_usage_errors() {
        let (_rt, e) = engine();
        for (script, want) in [
            (
                r#"aws::eks_wait_active("kms", #{ timeout: "soon" })"#,
                "aws::eks_wait_active: timeout: 'soon' is not a duration like 90s, 5m or 1h30m",
            ),
            (
                r#"aws::eks_wait_nodegroup_active("kms", "ng", #{ interval: 0 })"#,
                "aws::eks_wait_nodegroup_active: interval must be more than 0s",
            ),
            (r#"aws::s3_put("b", "k", 42)"#, "aws::s3_put: content must be a string, a secret or a blob, got i64"),
            (r#"aws::s3_put("", "k", "x")"#, "aws::s3_put: the bucket must not be empty"),
            (r#"aws::caller_identity(#{ region: [] })"#, "aws::caller_identity: region must be a string, got array"),
            (r#"aws::s3_get("b", "k", #{ secret: "yes" })"#, "aws::s3_get: secret must be true or false, got string"),
            (r#"aws::eks_describe("")"#, "aws::eks_describe: the cluster name must not be empty"),
            (
                r#"aws::s3_list("b", "", #{ endpoint: "127.0.0.1:9000" })"#,
                "aws::s3_list: endpoint '127.0.0.1:9000' is not a URL (relative URL without a base); give a URL \
                 like http://127.0.0.1:4566",
            ),
        ] {
            let (kind, msg) = error(&e, script);
            assert_eq!((kind.as_str(), msg.as_str()), ("usage", want), "{script}");
        }
    }
}
