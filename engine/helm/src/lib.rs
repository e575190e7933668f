//! kmsctl's `helm` module: real Helm releases (hooks, history, rollback) through the helm
//! binary, with kmsctl's readiness engine and failure reports instead of Helm's silent wait.
//!
//! `cli` finds helm, detects v3 or v4 once and runs it through `kmsctl-proc` (its own process
//! group, stopped gracefully on cancellation). `values` writes values to 0600 files: nothing
//! from a values map ever reaches argv. `release` reads helm's JSON. `ops` is upgrade,
//! uninstall, rollback, history and friends, including the recovery of releases left
//! `pending-*`. `deps` decides whether a local chart's dependencies must be built, and copies
//! the chart to build them in a private directory. `lint` reads `helm lint`'s report into
//! findings with file and line; `ops` also packages and pushes charts. `module` is the Rhai adapter.

mod cli;
mod deps;
mod error;
mod lint;
mod module;
mod ops;
mod release;
mod values;

pub use error::HelmError;
pub use module::Helm;
