//! The aws module against the local test environment: moto for EKS, S3 and STS, and behind
//! moto's EKS endpoint the local kube-apiserver, whose token-review webhook accepts real EKS
//! tokens. Library calls get an explicit moto configuration; the kmsctl binary (the exec plugin,
//! playbooks) gets the environment's AWS_* variables, so nothing depends on the caller's shell.

mod cli;
mod eks;
mod playbook;
mod s3;

use std::path::{Path, PathBuf};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_eks::types::{NodegroupScalingConfig, VpcConfigRequest};

use crate::testenv::TestEnv;

/// moto's account.
pub(crate) const ACCOUNT: &str = "123456789012";

/// A configuration for moto with static test credentials.
pub(crate) async fn sdk(env: &TestEnv) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&env.aws_endpoint)
        .region(Region::new(env.region.clone()))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "testenv"))
        .load()
        .await
}

/// Create an EKS cluster in moto (ACTIVE at once, endpoint and CA of the local apiserver).
pub(crate) async fn create_cluster(sdk: &SdkConfig, name: &str) {
    aws_sdk_eks::Client::new(sdk)
        .create_cluster()
        .name(name)
        .version("1.36")
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/eks-cluster"))
        .resources_vpc_config(VpcConfigRequest::builder().subnet_ids("subnet-0a1b2c3d").build())
        .send()
        .await
        .expect("CreateCluster");
}

/// Create a managed node group in moto.
pub(crate) async fn create_nodegroup(sdk: &SdkConfig, cluster: &str, name: &str) {
    aws_sdk_eks::Client::new(sdk)
        .create_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(name)
        .node_role(format!("arn:aws:iam::{ACCOUNT}:role/eks-node"))
        .subnets("subnet-0a1b2c3d")
        .instance_types("m6i.large")
        .scaling_config(NodegroupScalingConfig::builder().min_size(1).max_size(3).desired_size(2).build())
        .labels("role", "kms")
        .send()
        .await
        .expect("CreateNodegroup");
}

/// Delete node groups and the cluster (moto refuses to delete a cluster with node groups).
pub(crate) async fn delete_cluster(sdk: &SdkConfig, name: &str) {
    let eks = aws_sdk_eks::Client::new(sdk);
    for ng in kmsctl_aws::eks::list_nodegroups(&eks, name).await.unwrap_or_default() {
        let _ = eks.delete_nodegroup().cluster_name(name).nodegroup_name(ng).send().await;
    }
    let _ = eks.delete_cluster().name(name).send().await;
}

/// The environment's AWS_* variables, for children that must reach moto.
pub(crate) fn aws_vars(env: &TestEnv) -> Vec<(String, String)> {
    env.env_vars()
        .into_iter()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, v)| (k, v.to_string_lossy().into_owned()))
        .collect()
}

/// An exec plugin for in-process kube clients of the test binary: a script that runs
/// `kmsctl "$@"` with the environment's AWS variables (kube-rs passes the test process's own
/// environment, which need not have them).
pub(crate) fn plugin(env: &TestEnv, dir: &Path) -> PathBuf {
    wrapper(env, dir, "exec {kmsctl} \"$@\"\n")
}

/// Like [`plugin`], but it counts its runs in `dir/runs` and reports tokens as expiring in 30 s,
/// inside kube-rs's refresh margin (60 s), so every request needs a fresh one.
pub(crate) fn short_lived_plugin(env: &TestEnv, dir: &Path) -> PathBuf {
    const BODY: &str = r#"echo run >> {runs}
out=$({kmsctl} "$@") || exit $?
exp=$(date -u -d '+30 seconds' +%Y-%m-%dT%H:%M:%SZ)
printf '%s\n' "$out" | sed "s/\"expirationTimestamp\":\"[^\"]*\"/\"expirationTimestamp\":\"$exp\"/"
"#;
    wrapper(env, dir, &BODY.replace("{runs}", &quote(&dir.join("runs").display().to_string())))
}

/// Like [`short_lived_plugin`], but its tokens really die `life` seconds after they are made:
/// their signing time is moved back so the environment's webhook (which accepts a token for 15
/// minutes after it was signed, as EKS does) refuses them then; they report that expiry too.
pub(crate) fn expiring_plugin(env: &TestEnv, dir: &Path, life: u32) -> PathBuf {
    const BODY: &str = r#"echo run >> {runs}
out=$({kmsctl} "$@") || exit $?
printf '%s' "$out" | python3 -c '
import base64, datetime, json, re, sys
life = datetime.timedelta(seconds={life})
d = json.load(sys.stdin)
prefix = "k8s-aws-v1."
raw = d["status"]["token"][len(prefix):]
url = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
now = datetime.datetime.now(datetime.timezone.utc)
signed = (now - datetime.timedelta(minutes=15) + life).strftime("%Y%m%dT%H%M%SZ")
url = re.sub(r"X-Amz-Date=[0-9TZ]+", "X-Amz-Date=" + signed, url)
d["status"]["token"] = prefix + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
d["status"]["expirationTimestamp"] = (now + life).strftime("%Y-%m-%dT%H:%M:%SZ")
print(json.dumps(d))'
"#;
    let body =
        BODY.replace("{runs}", &quote(&dir.join("runs").display().to_string())).replace("{life}", &life.to_string());
    wrapper(env, dir, &body)
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A `/bin/sh` script exporting the environment's AWS variables, then `body` with `{kmsctl}`
/// replaced by the quoted kmsctl binary.
fn wrapper(env: &TestEnv, dir: &Path, body: &str) -> PathBuf {
    let mut script = String::from("#!/bin/sh\n");
    for (k, v) in aws_vars(env) {
        script.push_str(&format!("export {k}={}\n", quote(&v)));
    }
    script.push_str(&body.replace("{kmsctl}", &quote(crate::harness::bin())));
    let path = dir.join("kmsctl-plugin");
    std::fs::write(&path, script).expect("write the plugin wrapper");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    path
}
