//! S3 and STS through kmsctl-aws against moto: the put/get/list round trip the toolkit's TLS
//! certificate upload needs, bucket creation, not-found errors, and caller identity with and
//! without an assumed role.

use kmsctl_aws::{AwsError, config, s3, sts};

use super::{ACCOUNT, sdk};
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
