//! kmsctl's `proc`, `kind` and `docker` modules: external programs for playbooks.
//!
//! Playbooks need CLIs the toolkit drove from bash (kind, docker, cargo) and long-running
//! helpers (a deploy in block mode, a local server), without bash's failure modes: no shell
//! string interpolation, no secrets on argv, no child left running after Ctrl-C. The plain
//! async Rust is in `run` (one command: [`start`], [`Running::finish`]), `background`
//! (processes that outlive the call, or the run when detached), `group` (stopping a whole
//! process group, guarded against pid reuse), `pids` (processes of earlier runs, by pid and
//! command line) and the CLI wrappers `kind` and `docker`; `module` holds the Rhai adapters. helm
//! runs through [`start`] too, so every child of kmsctl is stopped the same way.

mod background;
mod capture;
mod docker;
mod error;
mod group;
mod kind;
mod module;
mod pids;
mod run;
mod tool;

pub use error::ProcError;
pub use module::docker::Docker;
pub use module::kind::Kind;
pub use module::proc::Proc;
pub use module::supervise;
pub use run::{Running, Spec, Text, start};
