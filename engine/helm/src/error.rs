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
    /// helm's output could not be parsed.
    #[error("cannot read helm's output: {what}")]
    Output {
        /// What was being read, and how it looked.
        what: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A release's manifest is not valid YAML.
    #[error("cannot read the release's manifest: {0}")]
    Manifest(String),
    /// A local file (values, a temp dir) could not be written.
    #[error("{what}")]
    Io {
        /// What was being written.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Reading helm's release records from the cluster failed.
    #[error("cannot read {what}")]
    Cluster {
        /// Which records.
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// helm could not be started, or could not be waited for.
    #[error(transparent)]
    Process(#[from] kmsctl_proc::ProcError),
    /// A local chart's dependency could not be built: names the dependency and its source.
    #[error("chart {chart}: dependency {dependency} from {from}: {reason}")]
    Dependency {
        /// The chart whose `dependencies` list it (`umbrella`).
        chart: String,
        /// The dependency (or dependencies) that failed (`coordinator`).
        dependency: String,
        /// Its source as Chart.yaml gives it (`file://../coordinator`, `oci://...`).
        from: String,
        /// What went wrong (a missing directory, the end of helm's stderr).
        reason: String,
        /// The source does not exist (kind `not_found`; otherwise `failed`).
        missing: bool,
    },
    /// The operation was cancelled (the host reports the cancellation itself).
    #[error("cancelled")]
    Cancelled,
}

impl HostFailure for HelmError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Unavailable(_) => ErrorKind::Unavailable,
            Self::Failed { .. } | Self::Output { .. } | Self::Manifest(_) | Self::Io { .. } => ErrorKind::Failed,
            Self::Cluster { source, .. } => match source {
                kube::Error::Api(s) if s.code == 401 || s.code == 403 => ErrorKind::Auth,
                _ => ErrorKind::Unavailable,
            },
            Self::Process(e) => e.kind(),
            Self::Cancelled => ErrorKind::Cancelled,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Usage(_) => ErrorKind::Usage,
            Self::Dependency { missing: true, .. } => ErrorKind::NotFound,
            Self::Dependency { .. } => ErrorKind::Failed,
        }
    }

    fn details(&self) -> rhai::Map {
        let mut m = rhai::Map::new();
        if let Self::Dependency { chart, dependency, from, .. } = self {
            m.insert("chart".into(), chart.clone().into());
            m.insert("dependency".into(), dependency.clone().into());
            m.insert("source".into(), from.clone().into());
        }
        m
    }
}
