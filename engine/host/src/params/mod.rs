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
mod help;
mod resolve;
mod spec;

pub use args::{RESERVED, RESERVED_FOR_LATER, RawArg, RunArgs, RunOption, Source, parse_args};
pub use help::render_help;
pub use resolve::{Resolved, resolve};
pub use spec::{ParamSpec, ParamType, parse_specs};

use std::time::Duration;

/// A validated parameter value.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
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
pub struct ParamError {
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
pub fn kebab(name: &str) -> String {
    name.replace('_', "-")
}

/// The closest of `candidates` to `input`, if close enough to suggest.
pub fn suggest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(input, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests;
