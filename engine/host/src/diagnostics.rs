//! Errors rendered for people: file, line, column, a source snippet, and the call chain
//! playbook → stdlib → native, one frame per level.

use crate::error::ErrorKind;
use crate::sources::Sources;
use crate::value::display;
use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, Severity, SourceCode};
use rhai::{EvalAltResult, Position};
use std::fmt;

/// A problem found before running: nothing ran.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum CompileError {
    /// A file could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// Display path.
        path: String,
        /// OS error.
        message: String,
    },
    /// A syntax error.
    #[error("{message}")]
    Parse {
        /// File.
        source_name: String,
        /// Where.
        pos: Position,
        /// What.
        message: String,
    },
    /// An import that resolves to nothing.
    #[error("unknown module \"{path}\"")]
    UnknownModule {
        /// Importing file.
        source_name: String,
        /// Where.
        pos: Position,
        /// The import string.
        path: String,
        /// What exists instead.
        help: String,
    },
    /// An import whose path is computed at run time.
    #[error("import paths must be string literals")]
    DynamicImport {
        /// File.
        source_name: String,
        /// Where.
        pos: Position,
    },
    /// Modules importing each other.
    #[error("import cycle: {}", cycle.join(" → "))]
    ImportCycle {
        /// The files in the cycle.
        cycle: Vec<String>,
    },
    /// A bad `params()` declaration.
    #[error("{message}")]
    Params {
        /// File.
        source_name: String,
        /// What.
        message: String,
    },
    /// A call to a function that does not exist, or a bad parameter reference.
    #[error("{message}")]
    Lint {
        /// File.
        source_name: String,
        /// Where.
        pos: Position,
        /// What.
        message: String,
        /// Suggestion.
        help: Option<String>,
    },
}

impl CompileError {
    /// As a report.
    pub(crate) fn to_diag(&self, sources: &Sources) -> ScriptDiag {
        let msg = self.to_string();
        let at = |src: &str, pos: Position, label: &str| {
            ScriptDiag::new("kmsctl::compile", msg.clone()).at(sources, src, pos, label)
        };
        match self {
            Self::Io { .. } | Self::ImportCycle { .. } => ScriptDiag::new("kmsctl::compile", msg),
            Self::Parse { source_name, pos, message } if message.starts_with("Undefined variable") => {
                at(source_name, *pos, "here").help(
                    "functions see only their arguments: pass the value in, read a module constant as global::NAME, \
                     or a parameter as param::name",
                )
            }
            Self::Parse { source_name, pos, .. } => at(source_name, *pos, "here"),
            Self::UnknownModule { source_name, pos, help, .. } => {
                at(source_name, *pos, "imported here").help(help.clone())
            }
            Self::DynamicImport { source_name, pos } => {
                at(source_name, *pos, "not a literal").help("write the path as a string: import \"std/kms\" as kms;")
            }
            Self::Params { source_name, .. } => ScriptDiag::new("kmsctl::params", format!("{source_name}: {msg}")),
            Self::Lint { source_name, pos, help, .. } => {
                let d = at(source_name, *pos, "here");
                match help {
                    Some(h) => d.help(h.clone()),
                    None => d,
                }
            }
        }
    }
}

/// A rendered-ready diagnostic with optional source, label, help and related frames.
#[derive(Debug, Clone)]
pub struct ScriptDiag {
    code: Option<String>,
    severity: Severity,
    message: String,
    source: Option<NamedSource<String>>,
    span: Option<(usize, usize)>,
    label: Option<String>,
    help: Option<String>,
    related: Vec<ScriptDiag>,
}

impl ScriptDiag {
    /// A diagnostic with a code (`kmsctl::timeout`) and message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: Some(code.into()),
            severity: Severity::Error,
            message: message.into(),
            source: None,
            span: None,
            label: None,
            help: None,
            related: Vec::new(),
        }
    }

    /// A call-chain frame: a note without a code.
    pub fn frame(message: impl Into<String>) -> Self {
        Self { code: None, severity: Severity::Advice, ..Self::new("", message) }
    }

    /// Point at `pos` in the file `name`.
    pub(crate) fn at(mut self, sources: &Sources, name: &str, pos: Position, label: &str) -> Self {
        if let Some(text) = sources.get(name) {
            let start = offset(&text, pos);
            self.span = Some((start, token_len(&text[start..])));
            self.source = Some(NamedSource::new(name, text.to_string()).with_language("rhai"));
            self.label = Some(label.to_string());
        } else if let (Some(l), Some(c)) = (pos.line(), pos.position()) {
            self.message = format!("{} ({name}:{l}:{c})", self.message);
        }
        self
    }

    /// Point at a span of a text (the command line).
    pub fn at_text(mut self, name: &str, text: &str, span: (usize, usize), label: &str) -> Self {
        self.source = Some(NamedSource::new(name, text.to_string()));
        self.span = Some(span);
        self.label = Some(label.to_string());
        self
    }

    /// Add a help line.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Add a related frame.
    pub fn related(mut self, frame: ScriptDiag) -> Self {
        self.related.push(frame);
        self
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where it points, then where each related frame points, innermost first: `(file, line,
    /// column)`, both from 1 (a CI annotation's `file=,line=,col=`).
    pub fn locations(&self) -> Vec<(String, usize, usize)> {
        let own = match (&self.source, self.span) {
            (Some(src), Some((start, _))) => {
                let text = src.inner();
                let before = &text[..start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                Some((src.name().to_string(), line, col))
            }
            _ => None,
        };
        own.into_iter().chain(self.related.iter().flat_map(ScriptDiag::locations)).collect()
    }

    /// Where it points, for ordering: the source's name and the offset (none sort first).
    pub(crate) fn place(&self) -> (String, usize) {
        (self.source.as_ref().map(|s| s.name().to_string()).unwrap_or_default(), self.span.map_or(0, |s| s.0))
    }

    /// Render for a terminal (`color`) or a log file.
    pub fn render(&self, color: bool) -> String {
        let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_context_lines(1)
            .with_show_related_as_nested(true);
        let mut out = String::new();
        let _ = handler.render_report(&mut out, self);
        out
    }
}

impl fmt::Display for ScriptDiag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ScriptDiag {}

impl Diagnostic for ScriptDiag {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.code.as_ref().map(|c| Box::new(c) as Box<dyn fmt::Display>)
    }
    fn severity(&self) -> Option<Severity> {
        Some(self.severity)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let (start, len) = self.span?;
        Some(Box::new(std::iter::once(LabeledSpan::new(self.label.clone(), start, len))))
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        if self.related.is_empty() {
            return None;
        }
        Some(Box::new(self.related.iter().map(|r| r as &dyn Diagnostic)))
    }
}

/// Byte offset of a Rhai position (1-based line, 1-based character column).
pub(crate) fn offset(src: &str, pos: Position) -> usize {
    let (Some(line), col) = (pos.line(), pos.position()) else {
        return 0;
    };
    let mut off = 0;
    for (i, l) in src.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let c = col.unwrap_or(1).saturating_sub(1);
            return off + l.char_indices().nth(c).map(|(b, _)| b).unwrap_or(l.trim_end().len());
        }
        off += l.len();
    }
    src.len()
}

fn token_len(rest: &str) -> usize {
    let n = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').map(char::len_utf8).sum();
    if n == 0 { rest.chars().next().map(char::len_utf8).unwrap_or(0) } else { n }
}

/// What a failed run reports: the diagnostic and the error kind (for the exit code).
pub(crate) struct RunFailure {
    /// The report.
    pub diag: ScriptDiag,
    /// The category.
    pub kind: ErrorKind,
    /// The run was terminated (cancelled), not failed by the script or a native call.
    pub terminated: bool,
}

/// Limits named in messages when a script hits one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LimitNames {
    /// Max operations.
    pub operations: u64,
    /// Max call depth.
    pub call_levels: usize,
    /// Max string length in bytes.
    pub string_size: usize,
    /// Max array length.
    pub array_size: usize,
    /// Max map size.
    pub map_size: usize,
}

/// Explain a runtime error: the innermost failure with its snippet, then one frame per call
/// level (innermost first). `import_target(importer, path)` maps an import to the file name.
///
/// A `usage` error raised inside the stdlib (`is_stdlib`) is about the arguments its caller
/// gave: it points at the innermost call from outside the stdlib, and the stdlib lines where it
/// was raised follow as frames.
pub(crate) fn runtime_failure(
    err: &EvalAltResult,
    entry: &str,
    sources: &Sources,
    limits: LimitNames,
    import_target: &dyn Fn(&str, &str) -> Option<String>,
    is_stdlib: &dyn Fn(&str) -> bool,
) -> RunFailure {
    let mut frames: Vec<(String, Position, String)> = Vec::new();
    let mut cur = entry.to_string();
    let mut e = err;
    loop {
        match e {
            EvalAltResult::ErrorInFunctionCall(name, src, inner, pos) => {
                frames.push((cur.clone(), *pos, format!("in call to {}", fn_display(name))));
                if !src.is_empty() {
                    cur = src.to_string();
                }
                e = inner;
            }
            EvalAltResult::ErrorInModule(path, inner, pos) => {
                frames.push((cur.clone(), *pos, format!("while importing \"{path}\"")));
                if let Some(t) = import_target(&cur, path) {
                    cur = t;
                }
                e = inner;
            }
            _ => break,
        }
    }
    let (kind, message, help) = leaf(e, limits);
    let terminated = matches!(e, EvalAltResult::ErrorTerminated(..));
    let code = format!("kmsctl::{kind}");
    let mut at = (cur, e.position());
    let mut inside = Vec::new();
    if kind == ErrorKind::Usage
        && is_stdlib(&at.0)
        && let Some(i) = frames.iter().rposition(|(src, pos, _)| !is_stdlib(src) && !pos.is_none())
    {
        // frames[i] is the user's call into the stdlib; what lies below it becomes context.
        let (src, pos, _) = frames[i].clone();
        inside = frames.split_off(i + 1);
        inside.reverse();
        inside.insert(0, (at.0.clone(), at.1, "raised here".into()));
        frames.truncate(i);
        at = (src, pos);
    }
    let mut diag = ScriptDiag::new(code, message).at(sources, &at.0, at.1, kind.as_str());
    if let Some(h) = help {
        diag = diag.help(h);
    }
    for (src, pos, label) in inside {
        let line = pos.line().unwrap_or(0);
        diag = diag.related(ScriptDiag::frame(format!("inside {src}:{line}")).at(sources, &src, pos, &label));
    }
    for (src, pos, label) in frames.into_iter().rev() {
        if pos.is_none() {
            continue;
        }
        let line = pos.line().unwrap_or(0);
        diag = diag.related(ScriptDiag::frame(format!("called from {src}:{line}")).at(sources, &src, pos, &label));
    }
    RunFailure { diag, kind, terminated }
}

fn fn_display(name: &str) -> String {
    if name.starts_with("anon$") { "a closure".into() } else { format!("{name}()") }
}

fn leaf(e: &EvalAltResult, limits: LimitNames) -> (ErrorKind, String, Option<String>) {
    use EvalAltResult as E;
    match e {
        E::ErrorRuntime(v, _) => {
            if let Some(m) = v.read_lock::<rhai::Map>() {
                let kind = m.get("kind").map(|k| ErrorKind::parse(&k.to_string())).unwrap_or(ErrorKind::Script);
                let message = m.get("message").map(display).unwrap_or_else(|| display(v));
                let hint = m.get("hint").map(display);
                return (kind, message, hint);
            }
            (ErrorKind::Script, display(v), None)
        }
        E::ErrorTerminated(v, _) => {
            let reason = v
                .read_lock::<rhai::Map>()
                .and_then(|m| m.get("reason").map(|r| r.to_string()))
                .unwrap_or_else(|| v.to_string());
            (ErrorKind::Cancelled, format!("run stopped: {reason}"), None)
        }
        E::ErrorTooManyOperations(_) => (
            ErrorKind::Script,
            format!("the script exceeded its limit of {} operations", limits.operations),
            Some("look for a loop that never ends; waits belong in wait:: functions, which cost no operations".into()),
        ),
        E::ErrorStackOverflow(_) => (
            ErrorKind::Script,
            format!("the script exceeded the call depth limit of {}", limits.call_levels),
            Some("look for a function that calls itself without end".into()),
        ),
        E::ErrorDataTooLarge(what, _) => {
            let limit = if what.contains("string") {
                format!("{} bytes", limits.string_size)
            } else if what.contains("array") {
                format!("{} items", limits.array_size)
            } else {
                format!("{} entries", limits.map_size)
            };
            (ErrorKind::Script, format!("{what} exceeds its size limit of {limit}"), None)
        }
        E::ErrorTooManyModules(_) => (ErrorKind::Script, "too many modules loaded".into(), None),
        E::ErrorTooManyVariables(_) => (ErrorKind::Script, "too many variables".into(), None),
        E::ErrorPropertyNotFound(text, _) => {
            let (name, help) = text.split_once('\n').unwrap_or((text, ""));
            let help = if help.is_empty() { None } else { Some(help.to_string()) };
            (ErrorKind::Script, format!("this map has no property '{name}'"), help)
        }
        E::ErrorVariableNotFound(name, _) if name.starts_with("param::") => (
            ErrorKind::Script,
            format!("unknown parameter {name}"),
            Some("parameters are declared in the playbook's params() function".into()),
        ),
        other => (ErrorKind::Script, crate::error::without_position(&other.to_string()).to_string(), None),
    }
}
