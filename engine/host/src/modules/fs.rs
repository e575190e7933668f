//! `fs`: files next to the playbook, and the artifacts directory.

use super::data;
use super::{BuiltModule, ModuleBuilder, NativeModule};
use crate::ctx::HostCtx;
use crate::error::{ErrorKind, Failure, to_rhai};
use crate::value::from_json;
use rhai::{Array, Dynamic, EvalAltResult};
use std::path::{Path, PathBuf};

/// The `fs` module.
pub(crate) struct Fs;

use crate::error::ScriptResult as R;

fn io_err(path: &Path, e: std::io::Error) -> Box<EvalAltResult> {
    let kind = if e.kind() == std::io::ErrorKind::NotFound { ErrorKind::NotFound } else { ErrorKind::Io };
    to_rhai(&Failure::new(kind, format!("{}: {e}", path.display())).with_detail("path", path.display().to_string()))
}

fn read(ctx: &HostCtx, p: &str) -> R<(PathBuf, String)> {
    let path = ctx.resolve_path(p);
    let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
    Ok((path, text))
}

/// Write `content` to `name` under the artifacts directory; returns the path.
pub(crate) fn write_artifact(ctx: &HostCtx, name: &str, content: &str) -> std::io::Result<PathBuf> {
    let path = ctx.artifact_path(name)?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, ctx.redactor().redact(content).as_bytes())?;
    Ok(path)
}

impl NativeModule for Fs {
    fn name(&self) -> &'static str {
        "fs"
    }
    fn build(&self, ctx: &HostCtx) -> BuiltModule {
        let mut b =
            ModuleBuilder::new(ctx, self.name(), "Files. Relative paths resolve against the playbook's directory.");
        let c = ctx.clone();
        b.func("read", &["path: string", "string"], "Read a text file.", move |p: &str| read(&c, p).map(|(_, t)| t))
            .reads();
        let c = ctx.clone();
        b.func(
            "read_yaml",
            &["path: string", "any"],
            "Read and parse a YAML file (one document).",
            move |p: &str| -> R<Dynamic> {
                let (path, t) = read(&c, p)?;
                data::from_yaml(&t)
                    .map(from_json)
                    .map_err(|e| to_rhai(&Failure::new(ErrorKind::Parse, format!("{}: {e}", path.display()))))
            },
        )
        .reads();
        let c = ctx.clone();
        b.func(
            "read_yaml_all",
            &["path: string", "array"],
            "Read every document of a YAML file.",
            move |p: &str| -> R<Array> {
                let (path, t) = read(&c, p)?;
                data::from_yaml_all(&t)
                    .map(|d| d.into_iter().map(from_json).collect())
                    .map_err(|e| to_rhai(&Failure::new(ErrorKind::Parse, format!("{}: {e}", path.display()))))
            },
        )
        .reads();
        let c = ctx.clone();
        b.func("read_json", &["path: string", "any"], "Read and parse a JSON file.", move |p: &str| -> R<Dynamic> {
            let (path, t) = read(&c, p)?;
            serde_json::from_str(&t)
                .map(from_json)
                .map_err(|e| to_rhai(&Failure::new(ErrorKind::Parse, format!("{}: {e}", path.display()))))
        })
        .reads();
        let c = ctx.clone();
        b.func("exists", &["path: string", "bool"], "Does the path exist?", move |p: &str| c.resolve_path(p).exists())
            .reads();
        let c = ctx.clone();
        b.func("list", &["dir: string", "array"], "File names in a directory, sorted.", move |p: &str| -> R<Array> {
            let path = c.resolve_path(p);
            let mut names: Vec<String> = std::fs::read_dir(&path)
                .map_err(|e| io_err(&path, e))?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            Ok(names.into_iter().map(Dynamic::from).collect())
        })
        .reads();
        let c = ctx.clone();
        b.func(
            "write",
            &["path: string", "content: string", "()"],
            "Write a text file (secrets are scrubbed).",
            move |p: &str, content: &str| -> R<()> {
                let path = c.resolve_path(p);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
                }
                std::fs::write(&path, c.redactor().redact(content).as_bytes()).map_err(|e| io_err(&path, e))
            },
        )
        .mutates();
        let c = ctx.clone();
        b.func(
            "artifact",
            &["name: string", "content: string", "string"],
            "Write a file under the artifacts directory (--artifacts, default kmsctl-artifacts); returns its path.",
            move |name: &str, content: &str| -> R<String> {
                write_artifact(&c, name, content)
                    .map(|p| p.display().to_string())
                    .map_err(|e| io_err(Path::new(name), e))
            },
        )
        .reads();
        let c = ctx.clone();
        b.func(
            "path",
            &["path: string", "string"],
            "The absolute path a relative path resolves to.",
            move |p: &str| c.resolve_path(p).display().to_string(),
        )
        .reads();
        let c = ctx.clone();
        b.func(
            "remove",
            &["path: string", "bool"],
            "Remove a file (relative to the playbook); false when it did not exist.",
            move |p: &str| -> R<bool> {
                let path = c.resolve_path(p);
                match std::fs::remove_file(&path) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                    Err(e) => Err(io_err(&path, e)),
                }
            },
        )
        .mutates();
        b.func(
            "from_cwd",
            &["path: string", "string"],
            "The absolute path of `path` taken relative to the directory kmsctl was started in (for\n\
             command-line paths such as --kms-repo, which users give relative to their shell).",
            |p: &str| -> R<String> {
                let cwd = std::env::current_dir().map_err(|e| io_err(Path::new("."), e))?;
                let path = Path::new(p);
                Ok(if path.is_absolute() { path.to_path_buf() } else { cwd.join(path) }.display().to_string())
            },
        )
        .reads();
        b.build()
    }
}
