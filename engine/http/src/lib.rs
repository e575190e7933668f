//! kmsctl's `http` and `prom` modules: one HTTP request, measured — what a health gate or a
//! canary's analysis asks of an endpoint (its status, its latency, a field of its JSON body) —
//! and the Prometheus HTTP API, typed (instant and range queries).
//!
//! The plain Rust ([`request`]) knows nothing of Rhai; `module` adapts it. One client per run
//! (connection reuse across checks), rustls with the platform's roots, no redirects followed
//! silently beyond reqwest's default of 10.

mod client;
mod error;
mod module;
mod prom;

pub use client::{Request, Response, request};
pub use error::HttpError;
pub use module::{Http, Prom};
pub use prom::{Answer, QueryResult, Range, Sample, Series, query};
