//! `kmsctl eks token` on its own: the exec credential it prints, and its usage errors. Needs no
//! test environment: minting a token is local signing.

use std::time::{Duration, SystemTime};

use base64::Engine as _;

use crate::harness::kmsctl;

fn offline(k: crate::harness::Kmsctl) -> crate::harness::Kmsctl {
    k.env("AWS_ACCESS_KEY_ID", "AKIDTESTING")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_SESSION_TOKEN", "")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
}

#[test]
fn eks_token_prints_an_exec_credential_with_a_fresh_token() {
    let run = offline(kmsctl()).args(["eks", "token", "--cluster", "kms-ci", "--region", "eu-west-1"]).code(0).run();
    assert_eq!(run.stderr, "", "nothing on stderr");
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("ExecCredential JSON");
    assert_eq!(v["kind"], "ExecCredential");
    assert_eq!(v["apiVersion"], "client.authentication.k8s.io/v1beta1");
    let token = v["status"]["token"].as_str().expect("token");
    let b64 = token.strip_prefix("k8s-aws-v1.").expect("k8s-aws-v1. prefix");
    let url = String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64).expect("base64url"))
        .expect("utf-8");
    let url = url::Url::parse(&url).expect("presigned URL");
    assert_eq!(url.host_str(), Some("sts.eu-west-1.amazonaws.com"));
    let q = |k: &str| url.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned()).unwrap_or_default();
    assert_eq!(q("Action"), "GetCallerIdentity");
    assert_eq!(q("X-Amz-SignedHeaders"), "host;x-k8s-aws-id");
    assert!(q("X-Amz-Credential").starts_with("AKIDTESTING/"), "{url}");
    let exp: k8s_openapi::jiff::Timestamp =
        v["status"]["expirationTimestamp"].as_str().expect("expiry").parse().expect("RFC 3339");
    let left = SystemTime::from(exp).duration_since(SystemTime::now()).expect("expires in the future");
    assert!(left > Duration::from_secs(13 * 60) && left <= Duration::from_secs(14 * 60), "{left:?}");
}

#[test]
fn eks_token_answers_in_the_api_version_the_caller_asks_for() {
    let info =
        r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#;
    let run = offline(kmsctl())
        .env("KUBERNETES_EXEC_INFO", info)
        .args(["eks", "token", "--cluster=kms", "--region=us-east-1"])
        .code(0)
        .run();
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("JSON");
    assert_eq!(v["apiVersion"], "client.authentication.k8s.io/v1");
}

#[test]
fn eks_token_usage_errors_exit_2() {
    let run = offline(kmsctl()).args(["eks", "token", "--region", "eu-west-1"]).code(2).run();
    assert!(run.stderr.contains("--cluster"), "{}", run.stderr);
    assert_eq!(run.stdout, "");
}

#[test]
fn eks_token_without_a_region_says_how_to_set_one() {
    let run = offline(kmsctl())
        .env("AWS_REGION", "")
        .env("AWS_DEFAULT_REGION", "")
        .args(["eks", "token", "--cluster", "kms"])
        .code(2)
        .run();
    assert!(run.stderr.contains("no AWS region"), "{}", run.stderr);
    assert_eq!(run.stdout, "");
}
