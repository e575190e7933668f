//! Output front ends: the human view (a live tree on a terminal, plain lines in CI) and
//! `--output json` (one event per line on stdout).

mod github;
mod human;
mod json;

pub(crate) use github::detected as github_actions;
pub(crate) use human::{Human, HumanStyle};
pub(crate) use json::JsonLines;

/// `--output`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum OutputMode {
    /// Progress and logs for people, on stderr.
    #[default]
    Human,
    /// One JSON event per line on stdout.
    Json,
}

impl std::str::FromStr for OutputMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "human" => Ok(Self::Human),
            "json" => Ok(Self::Json),
            other => Err(format!("--output must be human or json, got '{other}'")),
        }
    }
}
