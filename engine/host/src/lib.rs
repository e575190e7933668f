//! The kmsctl host: a Rhai runtime for deployment playbooks.
//!
//! A playbook is compiled with everything it imports (`program`), its parameters are
//! declared by the playbook and validated before anything runs (`params`), and it runs on its
//! own thread while native functions do async work on a shared tokio runtime ([`HostCtx`]),
//! cancellable by Ctrl-C, `--timeout`, `wait::timeout` and `parallel` ([`CancelScope`]). Everything a
//! run reports goes through one redacting event bus ([`Events`]) to the human view or JSON
//! lines (`ui`); failures are rendered with source snippets and the call chain
//! (`diagnostics`) and mapped to documented exit codes ([`ExitCode`]).
//!
//! Native modules implement [`NativeModule`]; this crate provides `log`, `wait`,
//! `data`, `fs`, `env` and `time`, and other crates add `k8s`, `helm`, `aws`, `proc`, `tls`.

mod check;
mod ctx;
mod diagnostics;
pub mod docs;
pub mod duration;
mod engine;
mod error;
mod events;
mod modules;
mod parallel;
mod params;
pub mod plan;
mod program;
mod report;
mod run;
mod secret;
mod sources;
mod suggest;
mod task;
mod ui;
pub mod value;
mod watch;

pub use ctx::{CleanupId, DeferredFn, FailureInfo, HostCtx, NativeStep, Settings, terminated};
pub use error::{
    ErrorKind, ExitCode, Failure, HostFailure, ScriptResult, is_terminated, short_message, to_rhai, usage_err,
};
pub use events::{Events, Level, Outcome, StepKind};
pub use modules::data::from_yaml_all;
pub use modules::opts::Opts;
pub use modules::{BuiltModule, Declare, DeclaredOptions, ModuleBuilder, NativeModule};
pub use plan::{Effect, Mode, PlannedObject, PlannedOp};
pub use run::{Checked, Host, Ran, RunError};
pub use secret::{Redactor, Secret};
pub use task::CancelScope;
pub use watch::WatchError;
