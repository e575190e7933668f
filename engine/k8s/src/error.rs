//! The one error type of the crate. Each variant maps to a stable kind for scripts and exit
//! codes (in the Rhai adapter); the variants say what went wrong, not where.

use std::path::PathBuf;

/// A Kubernetes operation failed. Scripts see the variant as the error's kind: `usage`
/// (Config, Usage), `unavailable`, `auth`, `not_found`, `conflict`, `failed` (Rejected, Failed),
/// `timeout`.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    /// The kubeconfig or context is unusable (missing file, unknown context, bad credentials
    /// plugin).
    #[error("{0}")]
    Config(String),
    /// The API server could not be reached or did not answer in time.
    #[error("cannot reach the cluster: {0}")]
    Unreachable(String),
    /// The API server refused our credentials (HTTP 401).
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
    /// A manifest or argument is wrong; nothing was sent.
    #[error("{0}")]
    Usage(String),
    /// An awaited object failed: it will not become ready without a change.
    #[error("{message}")]
    Failed {
        /// What failed and why.
        message: String,
        /// The object to look at, and where its failure report is.
        details: Details,
    },
    /// A wait or a delete ran out of time.
    #[error("{message}")]
    Timeout {
        /// What was still pending.
        message: String,
        /// The object that blocked, its report, what held it.
        details: Details,
    },
}

/// What a failed wait or delete adds to its message, for scripts to act on (`e.object`,
/// `e.report`, `e.finalizers`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Details {
    /// The blocking object, e.g. `Pod kms/kms-core-1-0`.
    pub object: Option<String>,
    /// The directory the failure report was written to.
    pub report: Option<PathBuf>,
    /// The finalizers holding an object that would not go away.
    pub finalizers: Option<Vec<String>>,
}

impl K8sError {
    /// Classify a kube client error; `context` says what was being done ("get Pod x").
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

    /// The details of a failure or timeout, to add to (the report path); `None` otherwise.
    pub(crate) fn details_mut(&mut self) -> Option<&mut Details> {
        match self {
            Self::Failed { details, .. } | Self::Timeout { details, .. } => Some(details),
            _ => None,
        }
    }
}
