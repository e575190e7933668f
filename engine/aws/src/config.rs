//! Loading the AWS configuration every call shares: region, profile and an optional role to
//! assume, on top of the standard chain (environment, profiles, SSO, web identity, IMDS).
//!
//! Endpoints are aws-config's business: `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` are
//! honoured by the loader itself, which is how tests point everything at moto.

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
}

/// Load the configuration for `opts`. Credentials are resolved lazily (by the first request, or
/// by [`credentials`]), so this only fails on a missing region.
pub async fn load(opts: &AwsOptions) -> Result<SdkConfig, AwsError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
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
