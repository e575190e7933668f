//! EKS bearer tokens, minted in-process the way `aws eks get-token` mints them, so neither kmsctl
//! nor the helm/kubectl it drives needs the aws CLI. Pure functions: no I/O, no clock.
//!
//! A token is `k8s-aws-v1.` + base64url(no padding) of a SigV4 query-presigned
//! `GET https://sts.<region>.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15` whose
//! signed headers include `x-k8s-aws-id: <cluster>`. EKS's authenticator replays it against STS
//! to learn the caller's ARN; nothing here calls STS.

use crate::error::AwsError;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use aws_sigv4::sign::v4::SigningParams;
use base64::Engine as _;
use std::time::{Duration, SystemTime};

/// The prefix of every EKS token.
pub(crate) const PREFIX: &str = "k8s-aws-v1.";

/// `X-Amz-Expires` of the presigned URL; the CLI signs 60 s, the authenticator allows 15 min
/// from `X-Amz-Date` regardless.
pub(crate) const PRESIGN_EXPIRES: Duration = Duration::from_secs(60);

/// How long clients may use a token: the CLI's 14 minutes, a minute inside the authenticator's
/// 15, so clients refresh before the server refuses.
pub(crate) const TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 60);

/// The header that binds a token to one cluster.
pub(crate) const CLUSTER_HEADER: &str = "x-k8s-aws-id";

/// The regional STS host the token is presigned for. Always the real one, even with
/// `AWS_ENDPOINT_URL` set: EKS only accepts tokens for STS hosts (the test environment's
/// authenticator too), and the URL is never fetched by us.
pub(crate) fn sts_host(region: &str) -> String {
    let suffix = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    format!("sts.{region}.{suffix}")
}

/// Mint an EKS token for `cluster` signed at `now`, its presigned URL valid for `expires`.
pub(crate) fn eks_token(
    creds: &Credentials,
    region: &str,
    cluster: &str,
    now: SystemTime,
    expires: Duration,
) -> Result<String, AwsError> {
    let fail = |e: &dyn std::fmt::Display| AwsError::Usage(format!("cannot sign an EKS token: {e}"));
    let mut url = url::Url::parse(&format!("https://{}/", sts_host(region))).map_err(|e| fail(&e))?;
    url.query_pairs_mut().append_pair("Action", "GetCallerIdentity").append_pair("Version", "2011-06-15");
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires);
    let identity = creds.clone().into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| fail(&e))?;
    let headers = [(CLUSTER_HEADER, cluster)];
    let request = SignableRequest::new("GET", url.as_str(), headers.into_iter(), SignableBody::Bytes(&[]))
        .map_err(|e| fail(&e))?;
    let (instructions, _signature) = sign(request, &params.into()).map_err(|e| fail(&e))?.into_parts();
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in instructions.params() {
            q.append_pair(k, v);
        }
    }
    Ok(format!("{PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url.as_str())))
}

/// The `client.authentication.k8s.io` API versions an exec plugin may answer in; both have the
/// same `status` shape.
pub(crate) const EXEC_API_VERSIONS: [&str; 2] =
    ["client.authentication.k8s.io/v1beta1", "client.authentication.k8s.io/v1"];

/// The ExecCredential JSON a kubeconfig exec plugin prints: the token and when to refresh it
/// (`expirationTimestamp`, RFC 3339 in UTC, whole seconds, as client-go and kube-rs parse it).
pub(crate) fn exec_credential(api_version: &str, token: &str, expiration: SystemTime) -> Result<String, AwsError> {
    let ts = jiff::Timestamp::try_from(expiration)
        .map_err(|e| AwsError::Usage(format!("bad token expiration: {e}")))?
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let v = serde_json::json!({
        "kind": "ExecCredential",
        "apiVersion": api_version,
        "spec": {},
        "status": { "expirationTimestamp": ts, "token": token },
    });
    Ok(v.to_string())
}

/// The API version to answer in: the one the caller announced in `KUBERNETES_EXEC_INFO` when we
/// speak it, else v1beta1 (what our kubeconfigs ask for).
pub(crate) fn exec_api_version(exec_info: Option<&str>) -> &'static str {
    let asked = exec_info
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
        .and_then(|v| v.get("apiVersion").and_then(|a| a.as_str()).map(str::to_string));
    EXEC_API_VERSIONS.into_iter().find(|v| Some(*v) == asked.as_deref()).unwrap_or(EXEC_API_VERSIONS[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(token: &str) -> url::Url {
        let b64 = token.strip_prefix(PREFIX).expect("prefix");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64).expect("base64url without padding");
        url::Url::parse(std::str::from_utf8(&raw).unwrap()).unwrap()
    }

    fn query(url: &url::Url, k: &str) -> String {
        url.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned()).unwrap_or_default()
    }

    /// The reference vector from the research notes: what awscli 2.36 signs for these inputs.
    #[test]
    fn token_matches_the_reference_vector() {
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("session/token+with=reserved".into()),
            None,
            "test",
        );
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_323_045); // 2026-01-02T03:04:05Z
        let token = eks_token(&creds, "us-east-1", "my-cluster", now, Duration::from_secs(900)).unwrap();
        assert!(!token.ends_with('='));
        let url = decode(&token);
        assert_eq!(url.host_str(), Some("sts.us-east-1.amazonaws.com"));
        assert_eq!(query(&url, "Action"), "GetCallerIdentity");
        assert_eq!(query(&url, "Version"), "2011-06-15");
        assert_eq!(query(&url, "X-Amz-Algorithm"), "AWS4-HMAC-SHA256");
        assert_eq!(query(&url, "X-Amz-Credential"), "AKIDEXAMPLE/20260102/us-east-1/sts/aws4_request");
        assert_eq!(query(&url, "X-Amz-Date"), "20260102T030405Z");
        assert_eq!(query(&url, "X-Amz-Expires"), "900");
        assert_eq!(query(&url, "X-Amz-SignedHeaders"), "host;x-k8s-aws-id");
        assert_eq!(query(&url, "X-Amz-Security-Token"), "session/token+with=reserved");
        assert_eq!(query(&url, "X-Amz-Signature"), "cf9e1cfb488e56c0bbd982c8d675c2f728b91b09f6d8aaccc5a0dbfde46e96ec");
    }

    #[test]
    fn tokens_are_bound_to_the_cluster_and_region() {
        let creds = Credentials::new("AKID", "secret", None, None, "test");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_323_045);
        let a = eks_token(&creds, "eu-west-1", "a", now, PRESIGN_EXPIRES).unwrap();
        let b = eks_token(&creds, "eu-west-1", "b", now, PRESIGN_EXPIRES).unwrap();
        assert_ne!(query(&decode(&a), "X-Amz-Signature"), query(&decode(&b), "X-Amz-Signature"));
        assert_eq!(decode(&a).host_str(), Some("sts.eu-west-1.amazonaws.com"));
        assert_eq!(query(&decode(&a), "X-Amz-Expires"), "60");
        assert_eq!(sts_host("cn-north-1"), "sts.cn-north-1.amazonaws.com.cn");
    }

    #[test]
    fn exec_credential_json_has_the_token_and_an_rfc3339_expiry() {
        let exp = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_323_045) + TOKEN_LIFETIME;
        let json = exec_credential(EXEC_API_VERSIONS[0], "k8s-aws-v1.abc", exp).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "kind": "ExecCredential",
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "spec": {},
                "status": { "expirationTimestamp": "2026-01-02T03:18:05Z", "token": "k8s-aws-v1.abc" },
            })
        );
    }

    #[test]
    fn the_answer_speaks_the_callers_exec_api_version() {
        assert_eq!(exec_api_version(None), "client.authentication.k8s.io/v1beta1");
        let v1 =
            r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#;
        assert_eq!(exec_api_version(Some(v1)), "client.authentication.k8s.io/v1");
        assert_eq!(exec_api_version(Some(r#"{"apiVersion":"x/v9"}"#)), "client.authentication.k8s.io/v1beta1");
        assert_eq!(exec_api_version(Some("not json")), "client.authentication.k8s.io/v1beta1");
    }
}
