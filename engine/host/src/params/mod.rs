//! Playbook parameters: declared by the playbook, given on the command line, in values files
//! or the environment, validated before anything runs.
//!
//! A playbook declares them in a `params()` function that returns an array of maps:
//!
//! ```rhai
//! fn params() {[
//!     #{ name: "num_parties", type: "int", default_value: 4, min: 1, doc: "How many parties" },
//!     #{ name: "target", type: "enum", values: ["kind-local", "aws-perf"], default_value: "kind-local" },
//! ]}
//! ```
//!
//! Scripts read the values as `param::num_parties`. Everything here is pure: argv, the
//! environment and values files come in as data, so the rules are table-tested.

mod args;
mod complete;
mod declared;
mod help;
mod resolve;
mod spec;

pub(crate) use args::{RESERVED, RESERVED_FOR_LATER, RunArgs, Source, parse_args};
pub(crate) use complete::candidates;
pub(crate) use declared::{declared, validate};
pub(crate) use help::render_help;
pub(crate) use resolve::{Resolved, resolve};
pub(crate) use spec::{ParamSpec, ParamType, parse_specs};

use std::time::Duration;

/// A validated parameter value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ParamValue {
    /// A string (or a secret string, per the spec).
    String(String),
    /// An integer.
    Int(i64),
    /// A flag.
    Bool(bool),
    /// A duration and the text it was written as.
    Duration(Duration, String),
    /// A list of strings.
    List(Vec<String>),
    /// A list of integers.
    IntList(Vec<i64>),
}

/// A bad parameter: what, and where on the command line (an index into the arguments).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ParamError {
    /// The message, naming the parameter.
    pub message: String,
    /// Index of the offending argument, if it came from the command line.
    pub arg: Option<usize>,
    /// A hint (allowed values, a suggestion).
    pub help: Option<String>,
}

impl ParamError {
    fn new(message: impl Into<String>, arg: Option<usize>) -> Self {
        Self { message: message.into(), arg, help: None }
    }
    fn help(mut self, h: impl Into<String>) -> Self {
        self.help = Some(h.into());
        self
    }
}

/// `num_parties` → `num-parties`.
pub(crate) fn kebab(name: &str) -> String {
    name.replace('_', "-")
}

#[cfg(test)]
mod tests;

/// Parameter errors, each pointing into the command line when it came from there.
/// The values `masked` names (secret, or of an unknown flag) and any registered secret are
/// masked before the spans are measured, so the pointers stay right.
pub(crate) fn diags(
    errors: &[ParamError],
    program: &str,
    args: &[String],
    masked: &[(usize, usize)],
    redactor: &crate::secret::Redactor,
) -> Vec<crate::diagnostics::ScriptDiag> {
    let mut line = format!("kmsctl run {program}");
    let mut spans = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let a = match masked.iter().find(|(m, _)| *m == i) {
            Some((_, from)) => format!("{}{}", a.get(..*from).unwrap_or_default(), crate::secret::MASK),
            None => redactor.redact(a).into_owned(),
        };
        line.push(' ');
        spans.push((line.len(), a.len().max(1)));
        line.push_str(&a);
    }
    errors
        .iter()
        .map(|e| {
            let mut d = crate::diagnostics::ScriptDiag::new("kmsctl::params", e.message.clone());
            if let Some(span) = e.arg.and_then(|i| spans.get(i)) {
                d = d.at_text("command line", &line, *span, "here");
            }
            match &e.help {
                Some(h) => d.help(h.clone()),
                None => d,
            }
        })
        .collect()
}
