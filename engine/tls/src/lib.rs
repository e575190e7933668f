//! kmsctl's `tls` module: the KMS parties' TLS certificates, made in-process.
//!
//! It replaces the toolkit's `cargo run --bin kms-gen-tls-certs -- --ca-names <pods..>
//! --wildcard`, which needed the KMS repository and a Rust toolchain on the deploying machine:
//! per party an ECDSA P-256 key and a self-signed end-entity certificate, and the bundle of all
//! of them that every party trusts. Keys come back as [`kmsctl_host::Secret`]s, so they never
//! print. The plain Rust ([`party_certs`], [`describe`]) knows nothing of Rhai; `module` adapts
//! it.

mod certs;
mod error;
mod module;

pub use certs::{
    CertInfo, DEFAULT_DAYS, MAX_DAYS, PartyCert, PartyCerts, PartyOptions, check_name, describe, describe_all,
    party_certs,
};
pub use error::TlsError;
pub use module::Tls;
