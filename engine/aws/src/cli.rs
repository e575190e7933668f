//! `kmsctl eks token`: the kubeconfig exec credential plugin, so kmsctl's own client, helm and
//! kubectl reach EKS without the aws CLI. It prints an ExecCredential with a fresh token on
//! stdout (the only place the token ever goes) and errors on stderr.

use crate::config::{self, AwsOptions};
use crate::error::AwsError;
use crate::token;
use std::time::SystemTime;

/// What `kmsctl eks token` mints a token for (the binary parses its command line).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenRequest {
    /// The EKS cluster name the token is for.
    pub cluster: String,
    /// The cluster's region (default: the AWS_* environment, then the profile's).
    pub region: Option<String>,
    /// The AWS profile for credentials.
    pub profile: Option<String>,
    /// A role to assume first.
    pub role_arn: Option<String>,
}

/// Mint a token for `req` and return the ExecCredential JSON for stdout, in the API version
/// `KUBERNETES_EXEC_INFO` asks for.
///
/// # Errors
/// No region or credentials ([`kmsctl_host::ErrorKind::Usage`], [`kmsctl_host::ErrorKind::Auth`]),
/// or the assume-role call failed.
pub fn eks_token(req: &TokenRequest) -> Result<String, AwsError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(AwsError::Runtime)?;
    let exec_info = std::env::var("KUBERNETES_EXEC_INFO").ok();
    rt.block_on(exec_credential(req, exec_info.as_deref(), SystemTime::now()))
}

/// The ExecCredential JSON for `args`, minted at `now`, in the API version the caller asked for
/// in `KUBERNETES_EXEC_INFO`.
async fn exec_credential(args: &TokenRequest, exec_info: Option<&str>, now: SystemTime) -> Result<String, AwsError> {
    // The endpoint comes from AWS_ENDPOINT_URL: kubeconfigs for a per-call endpoint set it.
    let opts = AwsOptions {
        region: args.region.clone(),
        profile: args.profile.clone(),
        role_arn: args.role_arn.clone(),
        endpoint: None,
    };
    let sdk = config::load(&opts).await?;
    let region = config::region(&sdk)?;
    let creds = config::credentials(&sdk).await?;
    let tok = token::eks_token(&creds, &region, &args.cluster, now, token::PRESIGN_EXPIRES)?;
    token::exec_credential(token::exec_api_version(exec_info), &tok, now + token::TOKEN_LIFETIME)
}
