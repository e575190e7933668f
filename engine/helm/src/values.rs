//! Values for helm, written to files only readable by us, in a private directory removed when
//! the operation ends. Values maps may hold secrets: they are exposed in these files and
//! nowhere else (never `--set`, never argv).

use crate::error::HelmError;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

/// Values files for one helm run; deleted on drop.
pub(crate) struct ValuesFiles {
    // Held for its Drop, which removes the directory and its files.
    _dir: tempfile::TempDir,
    /// The files, in the order they must be passed.
    pub paths: Vec<PathBuf>,
}

impl ValuesFiles {
    /// Write each map to its own 0600 JSON file (helm reads JSON as YAML).
    pub(crate) fn write(maps: &[serde_json::Value]) -> Result<Self, HelmError> {
        let io = |what: String| move |source| HelmError::Io { what, source };
        let dir = tempfile::Builder::new()
            .prefix("kmsctl-helm-")
            .tempdir()
            .map_err(io("cannot create a private directory for helm's values".into()))?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .map_err(io(format!("cannot make {} private", dir.path().display())))?;
        let mut paths = Vec::new();
        for (i, m) in maps.iter().enumerate() {
            if !m.is_object() {
                return Err(HelmError::Usage(format!("helm values must be maps, value set {} is not", i + 1)));
            }
            let path = dir.path().join(format!("values-{i}.json"));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io(format!("cannot create {}", path.display())))?;
            f.write_all(m.to_string().as_bytes()).map_err(io(format!("cannot write {}", path.display())))?;
            paths.push(path);
        }
        Ok(Self { _dir: dir, paths })
    }

    /// The private directory.
    pub(crate) fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_files_are_private_and_removed() {
        let files = ValuesFiles::write(&[serde_json::json!({"a": 1}), serde_json::json!({"pw": "s3cret"})]).unwrap();
        let dir = files.dir().to_path_buf();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        for p in &files.paths {
            assert_eq!(std::fs::metadata(p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(std::fs::read_to_string(&files.paths[1]).unwrap(), r#"{"pw":"s3cret"}"#);
        drop(files);
        assert!(!dir.exists());
        assert!(ValuesFiles::write(&[serde_json::json!([1])]).is_err());
    }
}
