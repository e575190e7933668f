//! kmsctl's command line as a library: the binary is one call to [`main`], and the integration
//! tests build the same `main` into a binary of their own (`tests/helpers/kmsctl-dup.rs`).

mod cli;
mod completions;

pub use cli::main;
