//! S3 and STS through kmsctl-aws against moto: the put/get/list round trip the toolkit's TLS
//! certificate upload needs, bucket creation, not-found errors, and caller identity with and
//! without an assumed role.

use kmsctl_aws::{AwsError, config, s3, sts};

use super::{ACCOUNT, sdk};
use crate::harness::kmsctl;
use crate::testenv::{testenv, unique};

#[tokio::test]
async fn put_get_list_round_trip() {
    let env = testenv!();
    let client = s3::client(&sdk(&env).await);
    let bucket = unique("certs");
    assert!(s3::ensure_bucket(&client, &bucket, &env.region).await.expect("create"));
    assert!(!s3::ensure_bucket(&client, &bucket, &env.region).await.expect("exists"));

    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let put =
        s3::put(&client, &bucket, "tls/party-1/cert.pem", pem.as_bytes().to_vec(), Some("application/x-pem-file"))
            .await
            .expect("put");
    assert_eq!((put.size, put.etag.is_empty()), (pem.len() as i64, false));
    s3::put(&client, &bucket, "tls/party-2/cert.pem", b"two".to_vec(), None).await.expect("put");
    s3::put(&client, &bucket, "other/readme", b"x".to_vec(), None).await.expect("put");

    assert_eq!(s3::get(&client, &bucket, "tls/party-1/cert.pem").await.expect("get"), pem.as_bytes());
    let listed = s3::list(&client, &bucket, "tls/").await.expect("list");
    let keys: Vec<(&str, i64)> = listed.iter().map(|o| (o.key.as_str(), o.size)).collect();
    assert_eq!(keys, [("tls/party-1/cert.pem", pem.len() as i64), ("tls/party-2/cert.pem", 3)]);
    assert!(listed.iter().all(|o| !o.last_modified.is_empty()));
    assert_eq!(s3::list(&client, &bucket, "").await.expect("list all").len(), 3);

    let missing = s3::get(&client, &bucket, "tls/nope").await;
    assert!(matches!(missing, Err(AwsError::NotFound(_))), "{missing:?}");
    let missing = s3::list(&client, &unique("no-such-bucket"), "").await;
    assert!(matches!(missing, Err(AwsError::NotFound(_))), "{missing:?}");
}

#[tokio::test]
async fn caller_identity_plain_and_with_an_assumed_role() {
    let env = testenv!();
    let base = sdk(&env).await;
    let me = sts::caller_identity(&base).await.expect("GetCallerIdentity");
    assert_eq!(me.account, ACCOUNT);
    assert_eq!(me.arn, format!("arn:aws:sts::{ACCOUNT}:user/moto"));
    let role = format!("arn:aws:iam::{ACCOUNT}:role/deployer");
    let assumed = config::assume_role(base, &role).await;
    let them = sts::caller_identity(&assumed).await.expect("GetCallerIdentity as the role");
    assert_eq!(them.arn, format!("arn:aws:sts::{ACCOUNT}:assumed-role/deployer/kmsctl"));
}

/// `endpoint` sends a playbook's S3 calls to the URL given (a port-forwarded LocalStack or moto),
/// with no AWS_ENDPOINT_URL anywhere in kmsctl's environment; a malformed URL is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_call_endpoint_reaches_moto_without_aws_endpoint_url() {
    let env = testenv!();
    let bucket = unique("endpoint");
    let script = r#"
        import "aws" as aws;
        import "log" as log;
        let at = #{ endpoint: "@URL@" };
        log::info(`created: ${aws::s3_ensure_bucket("@BUCKET@", at)}`);
        aws::s3_put("@BUCKET@", "tls/cert_combined.pem", "PEM BUNDLE", at);
        log::info(`got: ${aws::s3_get("@BUCKET@", "tls/cert_combined.pem", at)}`);
        log::info(`listed: ${aws::s3_list("@BUCKET@", "tls/", at).map(|o| o.key)}`);
        try { aws::s3_list("@BUCKET@", "", #{ endpoint: "localhost:9000" }); } catch (e) { log::info(`bad: ${e.kind} ${e.message}`); }
    "#
    .replace("@URL@", &env.aws_endpoint)
    .replace("@BUCKET@", &bucket);
    let mut k = kmsctl().file("p.rhai", &script).args(["run", "p.rhai", "--output", "json", "--timeout", "2m"]);
    for (name, value) in env.env_vars() {
        if !name.starts_with("AWS_ENDPOINT_URL") {
            k = k.env(&name, &value.to_string_lossy());
        }
    }
    let k = k.env_remove("AWS_ENDPOINT_URL").env_remove("AWS_ENDPOINT_URL_S3");
    let r = tokio::task::spawn_blocking(move || k.run()).await.expect("kmsctl run");
    r.code(0);
    let logs: Vec<String> = r
        .events()
        .iter()
        .filter(|e| e["event"] == "log")
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect();
    for want in [
        "created: true",
        "got: PEM BUNDLE",
        r#"listed: ["tls/cert_combined.pem"]"#,
        "bad: usage aws::s3_list: endpoint 'localhost:9000' must start with http:// or https://; give a URL like \
         http://127.0.0.1:4566",
    ] {
        assert!(logs.iter().any(|l| l == want), "{want:?} not in {logs:#?}");
    }
    let client = s3::client(&sdk(&env).await);
    assert_eq!(s3::get(&client, &bucket, "tls/cert_combined.pem").await.expect("in moto"), b"PEM BUNDLE");
}

/// Regression: `aws::s3_get_file` wrote with the default mode (0644 under the usual umask),
/// so a downloaded key or kubeconfig was readable by everyone. It writes 0600, also when it
/// replaces an existing file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_get_file_writes_files_only_the_owner_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let env = testenv!();
    let bucket = unique("getfile");
    let client = s3::client(&sdk(&env).await);
    s3::ensure_bucket(&client, &bucket, &env.region).await.expect("bucket");
    s3::put(&client, &bucket, "keys/party-1.key", b"PRIVATE KEY".to_vec(), None).await.expect("put");
    let script = r#"
        import "aws" as aws;
        aws::s3_get_file("@BUCKET@", "keys/party-1.key", "new/party-1.key");
        aws::s3_get_file("@BUCKET@", "keys/party-1.key", "existing.key");
    "#
    .replace("@BUCKET@", &bucket);
    let mut k = kmsctl()
        .file("p.rhai", &script)
        .file("existing.key", "old") // written with the default mode
        .args(["run", "p.rhai", "--output", "json", "--timeout", "2m"]);
    for (name, value) in env.env_vars() {
        k = k.env(&name, &value.to_string_lossy());
    }
    let r = tokio::task::spawn_blocking(move || k.run()).await.expect("kmsctl run");
    r.code(0);
    for f in ["new/party-1.key", "existing.key"] {
        let p = r.path().join(f);
        assert_eq!(std::fs::read_to_string(&p).expect("downloaded"), "PRIVATE KEY");
        assert_eq!(std::fs::metadata(&p).expect("stat").permissions().mode() & 0o777, 0o600, "{f}");
    }
}
