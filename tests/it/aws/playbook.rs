//! The `aws` module as playbooks use it: the kmsctl binary runs a playbook against moto and the
//! local apiserver with the environment's AWS_* variables, and kubectl then uses the kubeconfig
//! the playbook wrote. EKS auth is kmsctl's own exec plugin (`kmsctl eks token`) throughout.

use serde_json::Value;

use super::{ACCOUNT, create_cluster, create_nodegroup, delete_cluster, sdk};
use crate::harness::{Run, kmsctl};
use crate::testenv::{TestEnv, run, testenv, unique};

/// Run `script` (with `@KEY@` placeholders filled) with the environment's variables.
async fn playbook(env: &TestEnv, script: &str, vars: &[(&str, &str)]) -> Run {
    let mut text = script.to_string();
    for (k, v) in vars {
        text = text.replace(&format!("@{k}@"), v);
    }
    let mut k = kmsctl().file("p.rhai", &text).args(["run", "p.rhai", "--output", "json", "--timeout", "5m"]);
    for (name, value) in env.env_vars() {
        k = k.env(&name, &value.to_string_lossy());
    }
    tokio::task::spawn_blocking(move || k.run()).await.expect("kmsctl run")
}

/// The one log message starting with `prefix`, without it.
#[track_caller]
fn logged(events: &[Value], prefix: &str) -> String {
    let found: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "log")
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.starts_with(prefix))
        .collect();
    assert_eq!(found.len(), 1, "want one log line starting with {prefix:?}: {events:#?}");
    found[0][prefix.len()..].to_string()
}

const SCRIPT: &str = r#"
import "aws" as aws;
import "k8s" as k8s;
import "log" as log;

log::info(`caller: ${aws::caller_identity().arn}`);

let c = aws::eks_wait_active("@CLUSTER@", #{ timeout: "1m", interval: "1s" });
log::info(`cluster: ${c.status} ${c.version}`);
log::info(`nodegroups: ${aws::eks_nodegroups("@CLUSTER@")}`);
let ng = aws::eks_wait_nodegroup_active("@CLUSTER@", "workers", #{ timeout: "1m", interval: "1s" });
log::info(`nodegroup: ${ng.status} ${ng.scaling.desired}`);

let kc = aws::eks_connect("@CLUSTER@");
log::info(`context: ${kc.context()}`);
let names = kc.list("Namespace", #{}).map(|n| n.metadata.name);
log::info(`kube-system: ${names.contains("kube-system")}`);
log::info(`kubeconfig: ${aws::eks_kubeconfig("@CLUSTER@", "out/kubeconfig")}`);

let key = secret("-----BEGIN PRIVATE KEY-----\nsuper-secret-key-material\n-----END PRIVATE KEY-----\n");
aws::s3_put("@BUCKET@", "tls/key.pem", key, #{ create_bucket: true, content_type: "application/x-pem-file" });
aws::s3_put("@BUCKET@", "tls/cert.pem", "CERT");
let back = aws::s3_get("@BUCKET@", "tls/key.pem", #{ secret: true });
log::info(`same: ${back == key}, secret: ${is_secret(back)}, shown as ${back}`);
log::info(`listed: ${aws::s3_list("@BUCKET@", "tls/").map(|o| o.key)}`);
try { aws::s3_get("@BUCKET@", "tls/missing.pem"); } catch (e) { log::info(`missing: ${e.kind}`); }
try { aws::eks_describe("@CLUSTER@-gone"); } catch (e) { log::info(`no cluster: ${e.kind}`); }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_playbook_uses_eks_s3_and_sts_and_kubectl_uses_its_kubeconfig() {
    let env = testenv!();
    let sdk = sdk(&env).await;
    let cluster = unique("eks-playbook");
    let bucket = unique("certs");
    create_cluster(&sdk, &cluster).await;
    create_nodegroup(&sdk, &cluster, "workers").await;

    let r = playbook(&env, SCRIPT, &[("CLUSTER", &cluster), ("BUCKET", &bucket)]).await;
    r.code(0);
    let ev = r.events();
    let arn = format!("arn:aws:eks:{}:{ACCOUNT}:cluster/{cluster}", env.region);
    assert_eq!(logged(&ev, "caller: "), format!("arn:aws:sts::{ACCOUNT}:user/moto"));
    assert_eq!(logged(&ev, "cluster: "), "ACTIVE 1.36");
    assert_eq!(logged(&ev, "nodegroups: "), r#"["workers"]"#);
    assert_eq!(logged(&ev, "nodegroup: "), "ACTIVE 2");
    assert_eq!(logged(&ev, "context: "), arn);
    assert_eq!(logged(&ev, "kube-system: "), "true");
    assert_eq!(logged(&ev, "kubeconfig: "), arn);
    assert_eq!(logged(&ev, "same: "), "true, secret: true, shown as ***");
    assert_eq!(logged(&ev, "listed: "), r#"["tls/cert.pem", "tls/key.pem"]"#);
    assert_eq!(logged(&ev, "missing: "), "not_found");
    assert_eq!(logged(&ev, "no cluster: "), "not_found");
    let waits: Vec<&Value> = ev
        .iter()
        .filter(|e| e["event"] == "step_finished" && e["name"].as_str().is_some_and(|n| n.starts_with("wait for EKS")))
        .collect();
    assert_eq!(waits.len(), 2, "{ev:#?}");
    assert!(waits.iter().all(|w| w["outcome"] == "ok"), "{waits:#?}");
    for text in [&r.stdout, &r.stderr] {
        assert!(!text.contains("super-secret-key-material"), "a secret leaked:\n{text}");
        assert!(!text.contains("k8s-aws-v1."), "a token leaked:\n{text}");
    }

    // The kubeconfig the playbook wrote: the exec plugin is this kmsctl binary, no token inside,
    // and kubectl authenticates with it as the AWS caller.
    let kubeconfig = r.path().join("out/kubeconfig");
    let text = std::fs::read_to_string(&kubeconfig).expect("the playbook's kubeconfig");
    let plugin =
        text.lines().find_map(|l| l.trim().strip_prefix("command: ")).unwrap_or_default().trim_matches(['\'', '"']);
    assert_eq!(plugin, crate::harness::bin(), "the exec plugin is this kmsctl binary:\n{text}");
    assert!(!text.contains("k8s-aws-v1."), "no token on disk:\n{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&kubeconfig).expect("stat").permissions().mode() & 0o777, 0o600);
    }
    let path = kubeconfig.display().to_string();
    let out = run(env.kubectl().args(["--kubeconfig", &path, "get", "namespace", "kube-system", "-o", "name"])).await;
    assert_eq!(out.trim(), "namespace/kube-system");
    let whoami = run(env.kubectl().args([
        "--kubeconfig",
        &path,
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]))
    .await;
    assert_eq!(whoami, format!("arn:aws:sts::{ACCOUNT}:user/moto"));
    delete_cluster(&sdk, &cluster).await;
}

/// A handle's methods belong to its type, not to an import: a cluster from `aws::eks_connect`
/// is used with `kc.list`, `kc.apply` and `kc.wait` by a playbook that never imports `k8s`
/// (regression: every call failed with "Function not found: list (Cluster, ...)" while
/// `kmsctl check` said ok).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_from_eks_connect_has_its_methods_without_importing_k8s() {
    let env = testenv!();
    let sdk = sdk(&env).await;
    let cluster = unique("eks-methods");
    create_cluster(&sdk, &cluster).await;
    let ns = env.namespace("eks-methods").await;
    let script = r#"
import "aws" as aws;
import "log" as log;

let kc = aws::eks_connect("@CLUSTER@");
let objs = kc.apply(`
apiVersion: v1
kind: ConfigMap
metadata: {name: from-eks, namespace: @NS@}
data: {k: v}
`);
let ready = kc.wait(objs, #{ timeout: "1m" });
let names = kc.list("ConfigMap", #{ namespace: "@NS@" }).map(|c| c.metadata.name);
log::info(`applied: ${objs.len()} waited: ${ready.len()} listed: ${names.contains("from-eks")}`);
"#;
    kmsctl().file("p.rhai", script).args(["check", "p.rhai"]).code(0).run();
    let r = playbook(&env, script, &[("CLUSTER", &cluster), ("NS", &ns.name)]).await;
    r.code(0);
    assert_eq!(logged(&r.events(), "applied: "), "1 waited: 1 listed: true");
    delete_cluster(&sdk, &cluster).await;
}
