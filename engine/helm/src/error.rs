//! Errors of the helm module.

use kmsctl_host::{ErrorKind, HostFailure};

/// A helm operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    /// The helm binary is missing or unusable.
    #[error("{0}")]
    Unavailable(String),
    /// helm ran and failed.
    #[error("helm {command} failed (exit code {code}): {stderr}")]
    Failed {
        /// The helm subcommand (`upgrade kms-core-1`).
        command: String,
        /// Exit code.
        code: i32,
        /// The end of helm's stderr.
        stderr: String,
    },
    /// The release does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Bad arguments.
    #[error("{0}")]
    Usage(String),
    /// The release's objects did not become ready (a wait failed).
    #[error("{0}")]
    NotReady(String),
    /// helm's output could not be read.
    #[error("cannot read helm's output: {0}")]
    Output(String),
}

impl HostFailure for HelmError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Unavailable(_) => ErrorKind::Unavailable,
            Self::Failed { .. } | Self::NotReady(_) | Self::Output(_) => ErrorKind::Failed,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Usage(_) => ErrorKind::Usage,
        }
    }
}
