//! Errors as scripts, exit codes and users see them.
//!
//! Each module keeps its own small `thiserror` type; they all implement [`HostFailure`], which
//! gives a stable [`ErrorKind`]. At the Rhai boundary a failure becomes a catchable
//! `#{kind, message, ...}` map ([`to_rhai`]); at the CLI edge a kind becomes an [`ExitCode`].

use rhai::{Dynamic, EvalAltResult, Map, Position};
use std::fmt;

/// What a native function returns to a script: a value, or a (catchable or terminating) error.
pub type ScriptResult<T> = Result<T, Box<EvalAltResult>>;

/// The stable category of a failure. Scripts see it as `e.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A function was called with bad arguments.
    Usage,
    /// The object, file, release or variable does not exist.
    NotFound,
    /// The change conflicts with the current state.
    Conflict,
    /// A deadline passed before the work finished.
    Timeout,
    /// The awaited thing failed (a Job failed, a command exited non-zero, a pod crashed).
    Failed,
    /// Reading or writing a local file failed.
    Io,
    /// Data could not be parsed (YAML, JSON, base64).
    Parse,
    /// Credentials were refused.
    Auth,
    /// A cluster, service or tool could not be reached or is missing.
    Unavailable,
    /// The run was cancelled.
    Cancelled,
    /// A bug in kmsctl.
    Internal,
    /// The script threw a value itself.
    Script,
}

impl ErrorKind {
    /// The name scripts compare against, e.g. `"not_found"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Usage => "usage",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Timeout => "timeout",
            Self::Failed => "failed",
            Self::Io => "io",
            Self::Parse => "parse",
            Self::Auth => "auth",
            Self::Unavailable => "unavailable",
            Self::Cancelled => "cancelled",
            Self::Internal => "internal",
            Self::Script => "script",
        }
    }

    /// Parse a kind name; unknown names are [`ErrorKind::Script`].
    pub fn parse(s: &str) -> Self {
        match s {
            "usage" => Self::Usage,
            "not_found" => Self::NotFound,
            "conflict" => Self::Conflict,
            "timeout" => Self::Timeout,
            "failed" => Self::Failed,
            "io" => Self::Io,
            "parse" => Self::Parse,
            "auth" => Self::Auth,
            "unavailable" => Self::Unavailable,
            "cancelled" => Self::Cancelled,
            "internal" => Self::Internal,
            _ => Self::Script,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error a native function can hand to a script.
pub trait HostFailure: std::error::Error + Send + Sync + 'static {
    /// Its category.
    fn kind(&self) -> ErrorKind;
    /// Extra fields for the script's error map (e.g. `object`, `exit_code`).
    fn details(&self) -> Map {
        Map::new()
    }
    /// A one-line hint shown under the error.
    fn hint(&self) -> Option<String> {
        None
    }
}

/// A plain failure with a kind and a message, for errors that need no type of their own.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// Category.
    pub kind: ErrorKind,
    /// Human message.
    pub message: String,
    /// Optional hint.
    pub hint: Option<String>,
    /// Extra fields.
    pub details: Map,
}

impl Failure {
    /// A failure of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), hint: None, details: Map::new() }
    }
    /// A [`ErrorKind::Usage`] failure: the caller passed something wrong.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }
    /// Add a detail field.
    pub fn with_detail(mut self, key: &str, value: impl Into<Dynamic>) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }
}

impl HostFailure for Failure {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
    fn details(&self) -> Map {
        self.details.clone()
    }
    fn hint(&self) -> Option<String> {
        self.hint.clone()
    }
}

/// Turn a host failure into a catchable Rhai error: `#{kind, message, hint?, ...details}`.
/// The position is left empty so Rhai fills in the call site.
pub fn to_rhai(e: &dyn HostFailure) -> Box<EvalAltResult> {
    let mut map = e.details();
    map.insert("kind".into(), e.kind().as_str().into());
    map.insert("message".into(), e.to_string().into());
    if let Some(h) = e.hint() {
        map.insert("hint".into(), h.into());
    }
    Box::new(EvalAltResult::ErrorRuntime(map.into(), Position::NONE))
}

/// Shorthand for a usage error at the Rhai boundary.
pub fn usage_err(message: impl Into<String>) -> Box<EvalAltResult> {
    to_rhai(&Failure::usage(message))
}

/// The process exit codes, documented in the README: one table for the whole tool.
#[derive(Debug)]
pub struct ExitCode;

impl ExitCode {
    /// The playbook finished.
    pub const OK: i32 = 0;
    /// The playbook failed at run time (an uncaught error, a failed wait or command).
    pub const FAILURE: i32 = 1;
    /// Bad input: command line, parameters, a compile or check error. Nothing ran.
    pub const USAGE: i32 = 2;
    /// A deadline passed: a wait timed out or `--timeout` expired.
    pub const TIMEOUT: i32 = 3;
    /// The environment is not usable: a cluster, cloud API or tool is unreachable or refused us.
    pub const UNAVAILABLE: i32 = 4;
    /// `--diff`: the playbook would change the cluster (0: it would not).
    pub const CHANGES: i32 = 5;
    /// Interrupted (Ctrl-C or SIGTERM); cleanup ran.
    pub const CANCELLED: i32 = 130;

    /// The exit code for an uncaught error of `kind`.
    pub fn for_kind(kind: ErrorKind) -> i32 {
        match kind {
            ErrorKind::Timeout => Self::TIMEOUT,
            ErrorKind::Unavailable | ErrorKind::Auth => Self::UNAVAILABLE,
            ErrorKind::Cancelled => Self::CANCELLED,
            _ => Self::FAILURE,
        }
    }
}

/// The message of a script error, without positions, for logs and step summaries.
pub fn short_message(e: &EvalAltResult) -> String {
    let mut e = e;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _) | EvalAltResult::ErrorInModule(_, inner, _) = e {
        e = inner;
    }
    match e {
        EvalAltResult::ErrorRuntime(v, _) => match v.read_lock::<Map>() {
            Some(m) => m.get("message").map(crate::value::display).unwrap_or_else(|| crate::value::display(v)),
            None => crate::value::display(v),
        },
        EvalAltResult::ErrorTerminated(..) => "cancelled".to_string(),
        // The engine's missing-property error carries its help after a newline.
        EvalAltResult::ErrorPropertyNotFound(text, _) => {
            format!("this map has no property '{}'", text.split('\n').next().unwrap_or(text))
        }
        other => without_position(&other.to_string()).to_string(),
    }
}

/// Rhai appends ` (line 3, position 7)` to error messages; diagnostics show positions
/// themselves.
pub(crate) fn without_position(msg: &str) -> &str {
    match msg.rfind(" (line ") {
        Some(i) if msg.ends_with(')') => &msg[..i],
        _ => msg,
    }
}

/// Is this a cancellation (uncatchable termination), possibly wrapped in call frames?
pub fn is_terminated(e: &EvalAltResult) -> bool {
    matches!(e.unwrap_inner(), EvalAltResult::ErrorTerminated(..))
}
