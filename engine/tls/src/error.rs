//! Errors of the tls module, each with the kind a script sees.

use kmsctl_host::{ErrorKind, HostFailure};

/// Making or reading TLS material failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// No party names were given.
    #[error("give at least one party name")]
    NoNames,
    /// A name that is not a DNS-style name (the toolkit's rule).
    #[error("invalid name '{0}': names may hold only ASCII letters, digits, '-' and '.'")]
    InvalidName(String),
    /// The same name twice: each party's certificate is looked up by its name.
    #[error("the name '{0}' is given twice")]
    DuplicateName(String),
    /// A validity outside 1 day to [`crate::MAX_DAYS`].
    #[error("days must be from 1 to {max}, got {got}", max = crate::MAX_DAYS)]
    Days {
        /// The number asked for.
        got: i64,
    },
    /// rcgen could not make a key or certificate (a bug, or the crypto library failed).
    #[error("cannot make the certificate of '{name}': {source}")]
    Generate {
        /// The party.
        name: String,
        /// What rcgen said.
        #[source]
        source: rcgen::Error,
    },
    /// The text is not a PEM certificate (or the certificate inside cannot be read).
    #[error("{0}")]
    Parse(String),
}

impl HostFailure for TlsError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NoNames | Self::InvalidName(_) | Self::DuplicateName(_) | Self::Days { .. } => ErrorKind::Usage,
            Self::Generate { .. } => ErrorKind::Internal,
            Self::Parse(_) => ErrorKind::Parse,
        }
    }
}
