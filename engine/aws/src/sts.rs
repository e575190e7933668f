//! STS GetCallerIdentity: who the configured credentials are, so a playbook can check it runs
//! in the intended account before it changes anything.

use crate::error::AwsError;
use aws_config::SdkConfig;
use serde::Serialize;

/// The caller, as STS sees it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Identity {
    /// The account id.
    pub account: String,
    /// The caller's ARN (an assumed role shows as `arn:aws:sts::<acct>:assumed-role/<role>/<session>`).
    pub arn: String,
    /// The unique id of the caller.
    pub user_id: String,
}

/// GetCallerIdentity.
pub async fn caller_identity(sdk: &SdkConfig) -> Result<Identity, AwsError> {
    let out = aws_sdk_sts::Client::new(sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("STS GetCallerIdentity", e))?;
    Ok(Identity {
        account: out.account().unwrap_or_default().to_string(),
        arn: out.arn().unwrap_or_default().to_string(),
        user_id: out.user_id().unwrap_or_default().to_string(),
    })
}
