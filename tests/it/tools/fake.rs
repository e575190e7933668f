//! Recording fakes of CLIs: small shell scripts named like the real tool, first on PATH, that
//! append their argv to `calls.log` and print canned output. Used because no container engine
//! (and so no real kind or docker) runs on test machines.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A directory of fake tools and their records.
pub(super) struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    /// An empty fake directory.
    pub(super) fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }

    /// The directory (also `$FAKE_DIR` for the scripts).
    pub(super) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Install an executable script named `name`.
    pub(super) fn install(&self, name: &str, script: &str) -> PathBuf {
        let p = self.dir().join(name);
        std::fs::write(&p, crate::harness::unindent(script)).expect("write fake");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod fake");
        p
    }

    /// PATH with the fakes first.
    pub(super) fn path_env(&self) -> String {
        format!("{}:{}", self.dir().display(), std::env::var("PATH").unwrap_or_default())
    }

    /// Write a state file the scripts read.
    pub(super) fn write(&self, rel: &str, content: &str) {
        std::fs::write(self.dir().join(rel), content).expect("write state");
    }

    /// Read a file the scripts wrote ("" when missing).
    pub(super) fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir().join(rel)).unwrap_or_default()
    }

    /// The recorded command lines, one per call.
    pub(super) fn calls(&self) -> Vec<String> {
        self.read("calls.log").lines().map(str::to_string).collect()
    }
}
