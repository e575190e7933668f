//! A small fluent harness around the kmsctl binary (in the style of just's `Test`): set up the
//! files, arguments and the expected exit code first, then `run()`, which checks it.
//!
//! ```ignore
//! let r = kmsctl().file("p.rhai", "...").args(["run", "p.rhai", "--x", "1"]).code(0).run();
//! ```

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Path of the binary under test.
pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_kmsctl-dup")
}

/// A kmsctl invocation in a fresh temp directory.
#[must_use = "nothing runs until .run()"]
pub(crate) struct Kmsctl {
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    env_removed: Vec<String>,
    code: Option<i32>,
}

/// Start building an invocation.
pub(crate) fn kmsctl() -> Kmsctl {
    Kmsctl {
        dir: tempfile::tempdir().expect("temp dir"),
        args: Vec::new(),
        env: Vec::new(),
        env_removed: Vec::new(),
        code: None,
    }
}

impl Kmsctl {
    /// Write a file (relative to the temp dir), creating parent directories.
    pub(crate) fn file(self, rel: &str, content: &str) -> Self {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, unindent(content)).expect("write");
        self
    }

    /// Copy the directory tree `src` to `rel` in the temp dir (a KMS checkout the run may write
    /// into, as the toolkit did).
    pub(crate) fn tree(self, rel: &str, src: &Path) -> Self {
        copy_tree(src, &self.dir.path().join(rel));
        self
    }

    /// Add arguments.
    pub(crate) fn args<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// Expect this exit code; `run()` fails the test (showing the output) otherwise.
    pub(crate) fn code(mut self, want: i32) -> Self {
        self.code = Some(want);
        self
    }

    /// Set an environment variable for the child.
    pub(crate) fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Remove an environment variable the child would inherit from the test process.
    pub(crate) fn env_remove(mut self, k: &str) -> Self {
        self.env_removed.push(k.into());
        self
    }

    fn command(&self) -> Command {
        let mut c = Command::new(bin());
        c.args(&self.args).current_dir(self.dir.path()).stdin(Stdio::null());
        // A predictable, plain environment: no colour, no Actions annotations, no stray params.
        for (k, _) in std::env::vars() {
            if k.starts_with("KMSCTL_") || k == "GITHUB_ACTIONS" {
                c.env_remove(k);
            }
        }
        c.env("CI", "true").env("NO_COLOR", "1").env("RUST_BACKTRACE", "0");
        for k in &self.env_removed {
            c.env_remove(k);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Run to completion and check the expected exit code.
    #[track_caller]
    pub(crate) fn run(self) -> Run {
        let out = self.command().output().expect("run kmsctl");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            dir: self.dir,
        };
        if let Some(want) = self.code {
            run.code(want);
        }
        run
    }

    /// Start in the background with stdout piped (for signal tests).
    pub(crate) fn spawn(self) -> Running {
        let child = self.command().stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn kmsctl");
        Running { child, dir: self.dir }
    }
}

/// A finished invocation.
pub(crate) struct Run {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    dir: tempfile::TempDir,
}

impl Run {
    /// Assert the exit code, showing the output when it differs.
    #[track_caller]
    pub(crate) fn code(&self, want: i32) -> &Self {
        assert_eq!(self.code, want, "exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    /// The temp directory the command ran in.
    pub(crate) fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// A new invocation in the same directory (a second command that reads what the first left).
    pub(crate) fn again(self) -> Kmsctl {
        Kmsctl { dir: self.dir, args: Vec::new(), env: Vec::new(), env_removed: Vec::new(), code: None }
    }

    /// stderr with timings and temp paths normalised, for snapshots.
    pub(crate) fn stderr_normalized(&self) -> String {
        normalize(&self.stderr, self.dir.path())
    }

    /// The JSON events printed on stdout (`--output json`).
    pub(crate) fn events(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
            .collect()
    }
}

/// A background invocation.
pub(crate) struct Running {
    /// The child process.
    pub child: Child,
    dir: tempfile::TempDir,
}

impl Running {
    /// The temp directory it runs in.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Read stdout lines until one contains `needle` (the child must print JSON events).
    pub(crate) fn wait_for_stdout(&mut self, needle: &str) -> BufReader<std::process::ChildStdout> {
        let mut r = BufReader::new(self.child.stdout.take().expect("stdout piped"));
        let mut line = String::new();
        loop {
            line.clear();
            if r.read_line(&mut line).expect("read stdout") == 0 {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("kmsctl exited before printing {needle:?}; its stderr:\n{err}");
            }
            if line.contains(needle) {
                return r;
            }
        }
    }

    /// Send a signal by PID (`INT`, `TERM`).
    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill").args([format!("-{sig}"), self.child.id().to_string()]).status().expect("kill");
        assert!(ok.success());
    }
}

/// Replace durations and the temp dir so snapshots are stable.
pub(crate) fn normalize(text: &str, dir: &Path) -> String {
    static DURATION: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\b\d+(\.\d+)?(ms|s|m|h)( \d+(ms|s|m))*\b").expect("regex"));
    let s = text.replace(&dir.display().to_string(), "[tmp]");
    DURATION.replace_all(&s, "[dur]").into_owned()
}

/// Strip the common leading indentation of a raw string literal (and a leading newline).
pub(crate) fn unindent(s: &str) -> String {
    let s = s.strip_prefix('\n').unwrap_or(s);
    let indent = s.lines().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min().unwrap_or(0);
    s.lines().map(|l| if l.len() >= indent { &l[indent..] } else { l.trim_start() }).collect::<Vec<_>>().join("\n")
        + "\n"
}

/// Snapshot stderr with the standard normalisation.
#[macro_export]
macro_rules! assert_stderr_snapshot {
    ($name:expr, $run:expr) => {
        insta::assert_snapshot!($name, $run.stderr_normalized())
    };
}

fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for e in std::fs::read_dir(src).unwrap_or_else(|e| panic!("read {}: {e}", src.display())).flatten() {
        let to = dst.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap_or_else(|e| panic!("copy to {}: {e}", to.display()));
        }
    }
}
