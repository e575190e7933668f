//! kmsctl's `proc`, `kind` and `docker` modules: external programs for playbooks.
//!
//! Playbooks need CLIs the toolkit drove from bash (kind, docker, cargo) and long-running
//! helpers (a deploy in block mode, a local server), without bash's failure modes: no shell
//! string interpolation, no secrets on argv, no child left running after Ctrl-C. The plain
//! async Rust is in [`run`] (one command), [`background`] (processes that outlive the call),
//! [`group`] (stopping a whole process group) and the CLI wrappers [`kind`] and [`docker`];
//! [`module`] holds the Rhai adapters.

pub mod background;
pub mod capture;
pub mod docker;
pub mod error;
pub mod group;
pub mod kind;
pub mod module;
pub mod run;
pub mod tool;

pub use error::ProcError;
pub use module::docker::Docker;
pub use module::kind::Kind;
pub use module::proc::Proc;
