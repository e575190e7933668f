//! Errors of external commands, each with a stable kind for scripts and exit codes.

use kmsctl_host::duration;
use kmsctl_host::{ErrorKind, HostFailure};
use rhai::{INT, Map};
use std::time::Duration;

/// Running an external command (or interpreting its output) failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    /// The program is not installed or not on PATH.
    #[error("program '{program}' not found{}", if program.contains('/') { "" } else { " on PATH" })]
    NotFound {
        /// The program as given.
        program: String,
        /// What to do about it.
        hint: String,
    },
    /// The program exists but could not be started (permissions, bad format).
    #[error("cannot start '{program}': {source}")]
    Spawn {
        /// The program as given.
        program: String,
        /// The OS error, kept whole (its kind tells permissions from a bad format).
        #[source]
        source: std::io::Error,
    },
    /// The caller passed something wrong.
    #[error("{0}")]
    Usage(String),
    /// The command exited non-zero (or was killed by a signal).
    #[error("`{command}` exited with code {code}{}", tail_suffix(.tail))]
    Failed {
        /// The command line (never holds secrets: they go through env or stdin).
        command: String,
        /// Exit code (128 + n when killed by signal n).
        code: i32,
        /// The last lines of stderr (of stdout when stderr was empty).
        tail: Vec<String>,
    },
    /// The command ran past its timeout and was stopped.
    #[error("`{command}` timed out after {} and was stopped{}", duration::format(*.after), tail_suffix(.tail))]
    Timeout {
        /// The command line.
        command: String,
        /// The limit.
        after: Duration,
        /// The last lines of stderr.
        tail: Vec<String>,
    },
    /// A background process did not print its readiness line in time; it was stopped.
    #[error(
        "`{command}` was not ready after {} (waiting for a line matching {pattern}){}",
        duration::format(*.after),
        tail_suffix(.tail)
    )]
    NotReady {
        /// The command line.
        command: String,
        /// The readiness timeout.
        after: Duration,
        /// The awaited line.
        pattern: String,
        /// The last lines of its output.
        tail: Vec<String>,
    },
    /// A background process was still running when a wait for it ran out.
    #[error("`{command}` (pid {pid}) was still running after {}", duration::format(*.after))]
    StillRunning {
        /// The command line.
        command: String,
        /// Its pid.
        pid: u32,
        /// How long we waited.
        after: Duration,
    },
    /// A pid's process does not run what it was expected to: the pid was reused, or is wrong.
    #[error(
        "pid {pid} runs `{command}`, whose command line does not contain '{want}': not stopping it (was the pid reused?)"
    )]
    NotOurs {
        /// The pid.
        pid: u32,
        /// The text its command line should contain.
        want: String,
        /// Its command line (cut to 200 characters).
        command: String,
    },
    /// A process that leads no process group: proc::start did not start it, and stopping its
    /// group would hit others.
    #[error(
        "pid {pid} does not lead its own process group (it is in group {pgrp}), so proc::start did not start it: not stopping it"
    )]
    NotGroupLeader {
        /// The pid.
        pid: u32,
        /// The group it is in.
        pgrp: i32,
    },
    /// The run (or an enclosing scope) was cancelled; the command was stopped.
    #[error("cancelled")]
    Cancelled,
    /// Something the command was asked about does not exist (an image, a label).
    #[error("{0}")]
    Missing(String),
    /// The command's output could not be understood.
    #[error("{0}")]
    Parse(String),
    /// A local file (a temp config) could not be written.
    #[error("{0}")]
    Io(String),
    /// A bug in kmsctl.
    #[error("{0}")]
    Internal(String),
}

impl ProcError {
    /// The same error with `scrub` applied to quoted output (a child may echo a secret back).
    pub fn redacted(self, scrub: impl Fn(&str) -> String) -> Self {
        let clean = |t: Vec<String>| t.iter().map(|l| scrub(l)).collect();
        match self {
            Self::Failed { command, code, tail } => Self::Failed { command, code, tail: clean(tail) },
            Self::Timeout { command, after, tail } => Self::Timeout { command, after, tail: clean(tail) },
            Self::NotReady { command, after, pattern, tail } => {
                Self::NotReady { command, after, pattern, tail: clean(tail) }
            }
            other => other,
        }
    }
}

fn tail_suffix(tail: &[String]) -> String {
    match tail {
        [] => String::new(),
        [one] => format!(": {one}"),
        many => format!(":\n{}", many.join("\n")),
    }
}

impl HostFailure for ProcError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } | Self::Spawn { .. } => ErrorKind::Unavailable,
            Self::Usage(_) => ErrorKind::Usage,
            Self::Failed { .. } => ErrorKind::Failed,
            Self::Timeout { .. } | Self::NotReady { .. } | Self::StillRunning { .. } => ErrorKind::Timeout,
            Self::NotOurs { .. } | Self::NotGroupLeader { .. } => ErrorKind::Conflict,
            Self::Cancelled => ErrorKind::Cancelled,
            Self::Missing(_) => ErrorKind::NotFound,
            Self::Parse(_) => ErrorKind::Parse,
            Self::Io(_) => ErrorKind::Io,
            Self::Internal(_) => ErrorKind::Internal,
        }
    }
    fn details(&self) -> Map {
        let mut m = Map::new();
        match self {
            Self::NotFound { program, .. } | Self::Spawn { program, .. } => {
                m.insert("program".into(), program.clone().into());
            }
            Self::Failed { command, code, tail } => {
                m.insert("command".into(), command.clone().into());
                m.insert("code".into(), (*code as INT).into());
                m.insert("stderr".into(), tail.join("\n").into());
            }
            Self::Timeout { command, tail, .. } | Self::NotReady { command, tail, .. } => {
                m.insert("command".into(), command.clone().into());
                m.insert("stderr".into(), tail.join("\n").into());
            }
            Self::NotOurs { pid, command, .. } => {
                m.insert("pid".into(), (*pid as INT).into());
                m.insert("command".into(), command.clone().into());
            }
            Self::NotGroupLeader { pid, .. } => {
                m.insert("pid".into(), (*pid as INT).into());
            }
            _ => {}
        }
        m
    }
    fn hint(&self) -> Option<String> {
        match self {
            Self::NotFound { hint, .. } => Some(hint.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_quotes_the_last_stderr_lines() {
        let one = ProcError::Failed { command: "kind get clusters".into(), code: 1, tail: vec!["boom".into()] };
        assert_eq!(one.to_string(), "`kind get clusters` exited with code 1: boom");
        let two = ProcError::Failed { command: "x".into(), code: 2, tail: vec!["a".into(), "b".into()] };
        assert_eq!(two.to_string(), "`x` exited with code 2:\na\nb");
        assert_eq!(two.kind(), ErrorKind::Failed);
        assert_eq!(two.details()["code"].as_int().unwrap(), 2);
    }
}
