//! Errors of the aws module, each with a stable kind, so scripts can `catch` a missing bucket or
//! refused credentials and the CLI can map them to exit codes.

use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use kmsctl_host::{ErrorKind, HostFailure};
use rhai::Map;

/// An AWS operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// Bad arguments or configuration (no region, an invalid parameter).
    #[error("{0}")]
    Usage(String),
    /// The cluster, node group, bucket or key does not exist.
    #[error("{0}")]
    NotFound(String),
    /// No credentials, or AWS refused them.
    #[error("{0}")]
    Auth(String),
    /// AWS could not be reached, or throttled us.
    #[error("{0}")]
    Unavailable(String),
    /// The request conflicts with the current state (a resource in use).
    #[error("{0}")]
    Conflict(String),
    /// A local file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// The awaited resource failed (a node group in CREATE_FAILED), or AWS rejected the request.
    #[error("{message}")]
    Failed {
        /// What failed and why.
        message: String,
        /// The resource's last status, if any.
        status: Option<String>,
    },
    /// kmsctl could not start its async runtime.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// A wait ran out of time.
    #[error("{message}")]
    Timeout {
        /// What was still pending.
        message: String,
        /// The resource's last status.
        status: Option<String>,
    },
}

impl AwsError {
    /// A failure without a resource status.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed { message: message.into(), status: None }
    }

    /// Classify an SDK error of the operation `what` (e.g. "EKS DescribeCluster my-cluster").
    pub fn from_sdk<E>(what: &str, e: SdkError<E>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match &e {
            SdkError::ServiceError(se) => {
                let err = se.err();
                let code = err.code().unwrap_or("");
                let status = se.raw().status().as_u16();
                let message = err.message().map(str::to_string).unwrap_or_else(|| err.to_string());
                let text = if code.is_empty() {
                    format!("{what}: {message} (HTTP {status})")
                } else {
                    format!("{what}: {code}: {message}")
                };
                classify_service(code, status, text)
            }
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
                let text = format!("{what}: {}", chain(&e));
                if looks_like_credentials(&text) { Self::Auth(text) } else { Self::Unavailable(text) }
            }
            _ => {
                let text = format!("{what}: {}", chain(&e));
                if looks_like_credentials(&text) { Self::Auth(text) } else { Self::Usage(text) }
            }
        }
    }
}

/// An error and its sources on one line, each level once (SDK errors wrap the same text several
/// times, and `DisplayErrorContext` appends a Debug dump users should not have to read).
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// The SDK reports a missing credential chain as a dispatch or construction failure; its text is
/// the only stable signal.
fn looks_like_credentials(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("credentials") || t.contains("identity resolver") || t.contains("no identity")
}

fn classify_service(code: &str, status: u16, text: String) -> AwsError {
    match code {
        "ResourceNotFoundException" | "NoSuchBucket" | "NoSuchKey" | "NotFound" | "NoSuchEntity" => {
            AwsError::NotFound(text)
        }
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "SignatureDoesNotMatch"
        | "InvalidAccessKeyId"
        | "InvalidSignatureException"
        | "MissingAuthenticationToken"
        | "InvalidToken" => AwsError::Auth(text),
        "InvalidParameterException"
        | "InvalidParameterValue"
        | "InvalidRequestException"
        | "ValidationError"
        | "ValidationException"
        | "InvalidBucketName"
        | "InvalidArgument" => AwsError::Usage(text),
        "ServiceUnavailableException"
        | "ServiceUnavailable"
        | "ServerException"
        | "InternalError"
        | "InternalFailure"
        | "ThrottlingException"
        | "Throttling"
        | "SlowDown"
        | "RequestLimitExceeded" => AwsError::Unavailable(text),
        "ResourceInUseException" | "BucketAlreadyExists" | "BucketAlreadyOwnedByYou" | "BucketNotEmpty" => {
            AwsError::Conflict(text)
        }
        _ => match status {
            404 => AwsError::NotFound(text),
            401 | 403 => AwsError::Auth(text),
            500..=599 => AwsError::Unavailable(text),
            _ => AwsError::failed(text),
        },
    }
}

impl HostFailure for AwsError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Usage(_) => ErrorKind::Usage,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Auth(_) => ErrorKind::Auth,
            Self::Unavailable(_) => ErrorKind::Unavailable,
            Self::Conflict(_) => ErrorKind::Conflict,
            Self::Io(_) => ErrorKind::Io,
            Self::Runtime(_) => ErrorKind::Internal,
            Self::Failed { .. } => ErrorKind::Failed,
            Self::Timeout { .. } => ErrorKind::Timeout,
        }
    }

    fn details(&self) -> Map {
        let mut m = Map::new();
        if let Self::Failed { status: Some(s), .. } | Self::Timeout { status: Some(s), .. } = self {
            m.insert("status".into(), s.clone().into());
        }
        m
    }

    fn hint(&self) -> Option<String> {
        match self {
            Self::Auth(_) => Some(
                "check the AWS credentials: AWS_PROFILE or the `profile` option, AWS_ACCESS_KEY_ID/\
                 AWS_SECRET_ACCESS_KEY, or `role_arn` to assume a role"
                    .into(),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_codes_map_to_kinds() {
        let k = |code: &str, status: u16| classify_service(code, status, String::new()).kind();
        assert_eq!(k("ResourceNotFoundException", 404), ErrorKind::NotFound);
        assert_eq!(k("NoSuchKey", 404), ErrorKind::NotFound);
        assert_eq!(k("InvalidClientTokenId", 403), ErrorKind::Auth);
        assert_eq!(k("ResourceInUseException", 409), ErrorKind::Conflict);
        assert_eq!(k("ThrottlingException", 400), ErrorKind::Unavailable);
        assert_eq!(k("InvalidParameterException", 400), ErrorKind::Usage);
        assert_eq!(k("", 404), ErrorKind::NotFound);
        assert_eq!(k("", 403), ErrorKind::Auth);
        assert_eq!(k("", 503), ErrorKind::Unavailable);
        assert_eq!(k("SomethingNew", 400), ErrorKind::Failed);
    }

    #[test]
    fn wait_errors_carry_the_last_status() {
        let e = AwsError::Timeout { message: "x".into(), status: Some("CREATING".into()) };
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert_eq!(e.details().get("status").map(|s| s.to_string()).as_deref(), Some("CREATING"));
        assert!(AwsError::Auth("no".into()).hint().is_some());
    }

    #[test]
    fn error_chains_read_as_one_line_without_repeats() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("inner detail")]
        struct Inner;
        assert_eq!(chain(&Outer(Inner)), "outer: inner detail");
        let io = std::io::Error::other("x");
        assert_eq!(chain(&io), "x");
    }
}
