//! Errors of the http module, each with the kind a script sees.

use kmsctl_host::{ErrorKind, HostFailure};

/// A request that got no response (a response of any status is not an error).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL or a header is malformed, or the method unknown.
    #[error("{0}")]
    Usage(String),
    /// No answer within the timeout.
    #[error("{method} {url}: no response within {secs:.1}s")]
    Timeout {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// The timeout.
        secs: f64,
    },
    /// The server answered, but not with what was asked (a Prometheus query it could not run).
    #[error("{0}")]
    Failed(String),
    /// Connection refused, DNS, TLS: nothing answered.
    #[error("{method} {url}: {reason}")]
    Unreachable {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// What failed, innermost cause last.
        reason: String,
    },
}

impl HostFailure for HttpError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Usage(_) => ErrorKind::Usage,
            Self::Timeout { .. } => ErrorKind::Timeout,
            Self::Unreachable { .. } => ErrorKind::Unavailable,
            Self::Failed(_) => ErrorKind::Failed,
        }
    }
}
