//! The kmsctl host: a Rhai runtime for deployment playbooks.
//!
//! A playbook is compiled with everything it imports ([`program`]), its parameters are
//! declared by the playbook and validated before anything runs ([`params`]), and it runs on its
//! own thread while native functions do async work on a shared tokio runtime ([`ctx`]),
//! cancellable by Ctrl-C, `--timeout`, `wait::timeout` and `parallel` ([`task`]). Everything a
//! run reports goes through one redacting event bus ([`events`]) to the human view or JSON
//! lines ([`ui`]); failures are rendered with source snippets and the call chain
//! ([`diagnostics`]) and mapped to documented exit codes ([`error::ExitCode`]).
//!
//! Native modules implement [`modules::NativeModule`]; this crate provides `log`, `wait`,
//! `data`, `fs`, `env` and `time`, and other crates add `k8s`, `helm`, `aws`, `proc`.

pub mod check;
pub mod ctx;
pub mod diagnostics;
pub mod duration;
pub mod engine;
pub mod error;
pub mod events;
pub mod modules;
pub mod parallel;
pub mod params;
pub mod program;
pub mod run;
pub mod secret;
pub mod task;
pub mod ui;
pub mod value;

pub use ctx::{HostCtx, Mode, Settings};
pub use error::{ErrorKind, ExitCode, Failure, HostFailure};
pub use modules::NativeModule;
pub use modules::opts::Opts;
pub use run::{Host, Terminal};
pub use secret::Secret;
