//! `kmsctl run --watch`: run the playbook, then again each time it, a module it imports or one
//! of its values files changes, until Ctrl-C — the edit-and-rerun loop without reaching for the
//! shell's history.
//!
//! Files are watched through their directories: editors save by writing a new file and
//! renaming it over the old one, which a watch on the file itself would lose. A burst of
//! changes (a save that writes twice, a `git checkout`) is one re-run: it starts once nothing
//! changed for [`QUIET`]. Ctrl-C during a run stops that run as always (its cleanup runs) and
//! the watch with it; Ctrl-C between runs stops the watch.

use crate::error::ExitCode;
use crate::run::{Host, Ran, RunError};
use crate::task::CancelReason;
use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the files must stay unchanged before the next run starts.
const QUIET: Duration = Duration::from_millis(300);

/// Why `--watch` could not watch.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The file notifications could not be set up (inotify limits, a directory gone).
    #[error("cannot watch {path} for changes: {source}")]
    Notify {
        /// What was to be watched.
        path: String,
        /// The watcher's error.
        #[source]
        source: notify::Error,
    },
    /// The runtime waiting for changes and Ctrl-C could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

enum Next {
    Changed(PathBuf),
    Stop,
}

impl Host {
    /// Does this command line ask for `--watch`?
    pub fn watches(args: &[String]) -> bool {
        crate::params::parse_args(args, None).0.watch
    }

    /// Run the playbook with `args`, hand each run's result to `each`, and run again when one
    /// of its files changes, until Ctrl-C (or SIGTERM). Returns the exit code to end with: 130
    /// once stopped, the run's own for `--help` (which runs nothing to watch).
    ///
    /// # Errors
    /// The files cannot be watched, or the runtime that waits for changes cannot start.
    pub fn watch(
        &self,
        playbook: &Path,
        args: &[String],
        each: &mut dyn FnMut(Result<Ran, RunError>),
    ) -> Result<i32, WatchError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(WatchError::Runtime)?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            // Reads (the next run loading the files) are not changes.
            if let Ok(ev) = ev
                && !matches!(ev.kind, EventKind::Access(_))
            {
                ev.paths.into_iter().for_each(|p| drop(tx.send(p)));
            }
        })
        .map_err(|source| WatchError::Notify { path: playbook.display().to_string(), source })?;
        let mut watched_dirs: BTreeSet<PathBuf> = BTreeSet::new();
        loop {
            let mut files = Vec::new();
            let r = self.run_collecting(playbook, args, &mut files);
            let stopped = matches!(r, Err(RunError::Stopped { reason: CancelReason::Interrupted, .. }));
            let help = matches!(r, Ok(Ran::Help(_)));
            each(r);
            if stopped {
                return Ok(ExitCode::CANCELLED);
            }
            if help {
                return Ok(ExitCode::OK);
            }
            let files: BTreeSet<PathBuf> = files.iter().filter_map(|f| absolute(f)).collect();
            let dirs: BTreeSet<PathBuf> = files.iter().filter_map(|f| f.parent().map(Path::to_path_buf)).collect();
            for gone in watched_dirs.difference(&dirs) {
                let _ = watcher.unwatch(gone);
            }
            for d in dirs.difference(&watched_dirs) {
                watcher
                    .watch(d, RecursiveMode::NonRecursive)
                    .map_err(|source| WatchError::Notify { path: d.display().to_string(), source })?;
            }
            watched_dirs = dirs;
            eprintln!(
                "watching {} file{} for changes (Ctrl-C stops)",
                files.len(),
                if files.len() == 1 { "" } else { "s" }
            );
            let next = rt.block_on(async {
                let changed = loop {
                    tokio::select! {
                        _ = crate::run::signal() => return Next::Stop,
                        p = rx.recv() => match p {
                            Some(p) if files.contains(&p) => break p,
                            Some(_) => {}
                            None => return Next::Stop,
                        },
                    }
                };
                // Quiet for QUIET: the burst is over.
                loop {
                    tokio::select! {
                        _ = crate::run::signal() => return Next::Stop,
                        _ = tokio::time::sleep(QUIET) => return Next::Changed(changed),
                        p = rx.recv() => if p.is_none() { return Next::Stop },
                    }
                }
            });
            match next {
                Next::Stop => return Ok(ExitCode::CANCELLED),
                Next::Changed(p) => eprintln!("\n{} changed: running again\n", p.display()),
            }
        }
    }
}

/// `f` as an absolute path with its directory resolved (the form a directory watch reports).
fn absolute(f: &Path) -> Option<PathBuf> {
    let dir = match f.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.canonicalize().ok()?,
        _ => std::env::current_dir().ok()?,
    };
    Some(dir.join(f.file_name()?))
}
