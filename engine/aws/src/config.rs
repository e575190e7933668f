//! Loading the AWS configuration every call shares: region, profile and an optional role to
//! assume, on top of the standard chain (environment, profiles, SSO, web identity, IMDS).
//!
//! Endpoints: `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` are honoured by the loader
//! itself; [`AwsOptions::endpoint`] overrides them for one configuration (a port-forwarded
//! LocalStack or moto), checked by [`check_endpoint`].

use crate::error::AwsError;
use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

/// The session name of assumed roles; it shows in CloudTrail and in the EKS user name.
pub const SESSION_NAME: &str = "kmsctl";

/// Where and as whom to call AWS. Unset fields fall back to the standard chain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AwsOptions {
    /// The region; default `AWS_REGION`, then the profile's.
    pub region: Option<String>,
    /// A named profile; default `AWS_PROFILE`, then `default`.
    pub profile: Option<String>,
    /// A role to assume with the base credentials.
    pub role_arn: Option<String>,
    /// Send every request here instead of AWS (`http://127.0.0.1:4566`); S3 then uses
    /// path-style addressing. Default `AWS_ENDPOINT_URL`, then AWS itself.
    pub endpoint: Option<String>,
}

/// Refuse an endpoint that is not an absolute `http` or `https` URL with a host and nothing
/// after the path.
///
/// # Errors
/// [`AwsError::Usage`] saying what is wrong with it.
pub fn check_endpoint(endpoint: &str) -> Result<(), AwsError> {
    let bad =
        |why: &str| Err(AwsError::Usage(format!("endpoint '{endpoint}' {why}; give a URL like http://127.0.0.1:4566")));
    let url = match url::Url::parse(endpoint) {
        Ok(u) => u,
        Err(e) => return bad(&format!("is not a URL ({e})")),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return bad("must start with http:// or https://");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return bad("has no host");
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return bad("must not hold credentials, a query or a fragment");
    }
    Ok(())
}

/// Load the configuration for `opts`. Credentials are resolved lazily (by the first request, or
/// by [`credentials`]), so this only fails on a missing region or a malformed endpoint.
pub async fn load(opts: &AwsOptions) -> Result<SdkConfig, AwsError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(e) = &opts.endpoint {
        check_endpoint(e)?;
        loader = loader.endpoint_url(e);
    }
    if let Some(r) = &opts.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some(p) = &opts.profile {
        loader = loader.profile_name(p);
    }
    let base = loader.load().await;
    region(&base)?;
    match &opts.role_arn {
        Some(arn) => Ok(assume_role(base, arn).await),
        None => Ok(base),
    }
}

/// `base` with credentials of `role_arn`, assumed with base's credentials (session
/// [`SESSION_NAME`]) and refreshed by the provider before they expire.
pub async fn assume_role(base: SdkConfig, role_arn: &str) -> SdkConfig {
    let provider = AssumeRoleProvider::builder(role_arn).session_name(SESSION_NAME).configure(&base).build().await;
    base.into_builder().credentials_provider(SharedCredentialsProvider::new(provider)).build()
}

/// The configured region.
pub fn region(sdk: &SdkConfig) -> Result<String, AwsError> {
    sdk.region().map(|r| r.to_string()).filter(|r| !r.is_empty()).ok_or_else(|| {
        AwsError::Usage("no AWS region: set AWS_REGION, give the profile a region, or pass a region explicitly".into())
    })
}

/// Resolve credentials now (assuming the role if one is configured).
pub async fn credentials(sdk: &SdkConfig) -> Result<Credentials, AwsError> {
    let provider =
        sdk.credentials_provider().ok_or_else(|| AwsError::Auth("no AWS credentials provider is configured".into()))?;
    provider
        .provide_credentials()
        .await
        .map_err(|e| AwsError::Auth(format!("cannot load AWS credentials: {}", crate::error::chain(&e))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_http_urls_with_a_host() {
        for ok in ["http://127.0.0.1:9000", "https://s3.local.test", "http://localhost:4566/"] {
            assert!(check_endpoint(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("127.0.0.1:9000", "is not a URL (relative URL without a base)"),
            ("localhost:9000", "must start with http:// or https://"),
            ("ftp://127.0.0.1", "must start with http:// or https://"),
            ("http://", "is not a URL (empty host)"),
            ("http://127.0.0.1:9000?x=1", "must not hold credentials, a query or a fragment"),
            ("http://key:pw@127.0.0.1", "must not hold credentials, a query or a fragment"),
        ] {
            let e = check_endpoint(bad).unwrap_err();
            assert_eq!(e.to_string(), format!("endpoint '{bad}' {why}; give a URL like http://127.0.0.1:4566"));
        }
    }
}
