//! moto as EKS: DescribeCluster leads to the local kube-apiserver, and real EKS tokens (presigned
//! STS GetCallerIdentity, as `aws eks get-token` makes them) authenticate there through the
//! token-review webhook. Garbage and expired tokens get 401.

use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_eks::types::VpcConfigRequest;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use aws_sigv4::sign::v4::SigningParams;
use base64::Engine as _;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::testenv::{TestEnv, testenv, unique};

async fn eks(env: &TestEnv) -> (aws_sdk_eks::Client, aws_config::SdkConfig) {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&env.aws_endpoint)
        .region(Region::new(env.region.clone()))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "testenv"))
        .load()
        .await;
    (aws_sdk_eks::Client::new(&sdk), sdk)
}

/// Create an EKS cluster in moto and return (endpoint, base64 CA) from DescribeCluster.
async fn create_and_describe(eks: &aws_sdk_eks::Client, name: &str) -> (String, String) {
    eks.create_cluster()
        .name(name)
        .version("1.36")
        .role_arn("arn:aws:iam::123456789012:role/eks-cluster")
        .resources_vpc_config(VpcConfigRequest::builder().subnet_ids("subnet-0a1b2c3d").build())
        .send()
        .await
        .expect("CreateCluster");
    let out = eks.describe_cluster().name(name).send().await.expect("DescribeCluster");
    let cluster = out.cluster().expect("cluster");
    assert_eq!(cluster.name(), Some(name));
    assert_eq!(cluster.status().map(|s| s.as_str()), Some("ACTIVE"));
    let endpoint = cluster.endpoint().expect("endpoint").to_string();
    let ca = cluster.certificate_authority().and_then(|c| c.data()).expect("CA").to_string();
    (endpoint, ca)
}

/// `k8s-aws-v1.` + base64url(presigned `GET https://sts.<region>.amazonaws.com/?Action=
/// GetCallerIdentity&Version=2011-06-15` with the `x-k8s-aws-id: <cluster>` header signed).
/// The URL is never fetched by anyone: the webhook asks moto who the access key belongs to.
fn eks_token(creds: Credentials, region: &str, cluster: &str, now: SystemTime) -> String {
    let mut url = url::Url::parse(&format!("https://sts.{region}.amazonaws.com/")).expect("url");
    url.query_pairs_mut().append_pair("Action", "GetCallerIdentity").append_pair("Version", "2011-06-15");
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(60));
    let identity = creds.into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .expect("signing params");
    let headers = [("x-k8s-aws-id", cluster)];
    let request = SignableRequest::new("GET", url.as_str(), headers.into_iter(), SignableBody::Bytes(&[]))
        .expect("signable request");
    let (instructions, _signature) = sign(request, &params.into()).expect("sign").into_parts();
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in instructions.params() {
            q.append_pair(k, v);
        }
    }
    format!("k8s-aws-v1.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url.as_str()))
}

/// A kube client the way kmsctl builds one for EKS: endpoint and CA from DescribeCluster and a
/// bearer token; no client certificate and no kubeconfig file.
async fn bearer_client(endpoint: &str, ca_b64: &str, token: &str) -> Client {
    let kc: Kubeconfig = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "eks", "cluster": {"server": endpoint, "certificate-authority-data": ca_b64}}],
        "users": [{"name": "eks", "user": {"token": token}}],
        "contexts": [{"name": "eks", "context": {"cluster": "eks", "user": "eks"}}],
        "current-context": "eks",
    }))
    .expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("config");
    Client::try_from(config).expect("client")
}

#[tokio::test]
async fn moto_describe_cluster_returns_local_endpoint_and_ca() {
    let env = testenv!();
    let (eks, _) = eks(&env).await;
    let name = unique("describe");
    let (endpoint, ca) = create_and_describe(&eks, &name).await;
    assert_eq!(endpoint, env.api_server, "EKS endpoint must be the local kube-apiserver");
    let pem = base64::engine::general_purpose::STANDARD.decode(&ca).expect("base64 CA");
    assert!(pem.starts_with(b"-----BEGIN CERTIFICATE-----"), "CA is not PEM");
    assert_eq!(pem, env.ca_pem(), "EKS CA must be the cluster's CA");
    let listed = eks.list_clusters().send().await.expect("ListClusters");
    assert!(listed.clusters().iter().any(|c| c == &name));
    eks.delete_cluster().name(&name).send().await.expect("DeleteCluster");
}

#[tokio::test]
async fn eks_token_minted_by_the_test_is_accepted_by_the_apiserver() {
    let env = testenv!();
    let (eks, sdk) = eks(&env).await;
    let name = unique("token");
    let (endpoint, ca) = create_and_describe(&eks, &name).await;
    let creds =
        sdk.credentials_provider().expect("credentials provider").provide_credentials().await.expect("credentials");
    let token = eks_token(creds, &env.region, &name, SystemTime::now());
    let client = bearer_client(&endpoint, &ca, &token).await;

    let namespaces = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("list namespaces with an EKS token");
    assert!(namespaces.items.iter().any(|n| n.metadata.name.as_deref() == Some("kube-system")));

    let review = Api::<SelfSubjectReview>::all(client)
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("SelfSubjectReview");
    let user = review.status.and_then(|s| s.user_info).expect("userInfo");
    let username = user.username.unwrap_or_default();
    assert!(username.starts_with("arn:aws:"), "user is {username}, not the caller's ARN");
    assert!(user.groups.unwrap_or_default().iter().any(|g| g == "system:masters"));
    eks.delete_cluster().name(&name).send().await.expect("DeleteCluster");
}

#[tokio::test]
async fn garbage_and_expired_eks_tokens_are_rejected_with_401() {
    let env = testenv!();
    let (eks, _) = eks(&env).await;
    let name = unique("badtoken");
    let (endpoint, ca) = create_and_describe(&eks, &name).await;
    let creds = Credentials::new("testing", "testing", None, None, "testenv");
    let expired = eks_token(creds, &env.region, &name, SystemTime::now() - Duration::from_secs(20 * 60));
    let not_eks = format!(
        "k8s-aws-v1.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("https://example.invalid/?Action=GetCallerIdentity")
    );
    for (what, token) in
        [("garbage", "not-a-token"), ("not an STS URL", not_eks.as_str()), ("expired", expired.as_str())]
    {
        let client = bearer_client(&endpoint, &ca, token).await;
        match Api::<Namespace>::all(client).list(&ListParams::default()).await {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 401, "{what}: {status:?}"),
            other => panic!("{what} token: expected 401, got {other:?}"),
        }
    }
    eks.delete_cluster().name(&name).send().await.expect("DeleteCluster");
}
