//! Errors of the k8s module, each with a stable kind for scripts and exit codes.

use kmsctl_host::{ErrorKind, HostFailure};
use rhai::Map;

/// A Kubernetes operation failed.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    /// The kubeconfig or context is unusable.
    #[error("{0}")]
    Config(String),
    /// The API server could not be reached.
    #[error("cannot reach the cluster: {0}")]
    Unreachable(String),
    /// The API server refused our credentials.
    #[error("the cluster refused the credentials: {0}")]
    Auth(String),
    /// The object or kind does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (e.g. a field owned by another manager).
    #[error("{0}")]
    Conflict(String),
    /// The API server rejected the request (invalid object, forbidden).
    #[error("{0}")]
    Rejected(String),
    /// A manifest or argument is wrong.
    #[error("{0}")]
    Usage(String),
    /// An awaited object failed.
    #[error("{message}")]
    Failed {
        /// What failed and why.
        message: String,
        /// Extra fields for the script (object, report path).
        details: Map,
    },
    /// A wait ran out of time.
    #[error("{message}")]
    Timeout {
        /// What was still pending.
        message: String,
        /// Extra fields for the script.
        details: Map,
    },
}

impl K8sError {
    /// Classify a kube client error.
    pub fn from_kube(context: &str, e: kube::Error) -> Self {
        match &e {
            kube::Error::Api(status) => {
                let msg = format!("{context}: {}", status.message);
                match status.code {
                    401 => Self::Auth(msg),
                    404 => Self::NotFound(msg),
                    409 => Self::Conflict(msg),
                    _ => Self::Rejected(msg),
                }
            }
            kube::Error::Auth(_) => Self::Auth(format!("{context}: {e}")),
            _ => Self::Unreachable(format!("{context}: {e}")),
        }
    }
}

impl HostFailure for K8sError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Config(_) | Self::Usage(_) => ErrorKind::Usage,
            Self::Unreachable(_) => ErrorKind::Unavailable,
            Self::Auth(_) => ErrorKind::Auth,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Conflict(_) => ErrorKind::Conflict,
            Self::Rejected(_) | Self::Failed { .. } => ErrorKind::Failed,
            Self::Timeout { .. } => ErrorKind::Timeout,
        }
    }
    fn details(&self) -> Map {
        match self {
            Self::Failed { details, .. } | Self::Timeout { details, .. } => details.clone(),
            _ => Map::new(),
        }
    }
}
