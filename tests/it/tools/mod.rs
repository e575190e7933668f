//! The `proc`, `kind` and `docker` modules, through the kmsctl binary.
//!
//! `proc` tests run real programs (sh, sleep, cat, env, printf) and check processes by PID.
//! No container engine runs on test machines, so the `kind` and `docker` tests put recording
//! fakes of those CLIs first on PATH ([`fake`]) and assert the exact command lines kmsctl built.

mod docker;
mod fake;
mod kind;
mod proc;
