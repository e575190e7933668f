//! kmsctl's `aws` module: the AWS a Kubernetes deployment on EKS needs, without the aws CLI.
//!
//! Playbooks describe and wait for EKS clusters and node groups, reach a cluster's API server as
//! the same `Cluster` the k8s module works on, write kubeconfigs for helm and kubectl, move TLS
//! material through S3 and check who they run as. The CLI needs no aws binary because EKS tokens
//! are minted in-process (`token`) and served to every Kubernetes client by kmsctl's own exec
//! credential plugin ([`eks_token`], `kmsctl eks token`).
//!
//! The plain async Rust ([`config`]: region, profile, assume-role; [`eks`], [`s3`], [`sts`])
//! knows nothing of Rhai and is the public API; `module` adapts it.

mod cli;
pub mod config;
pub mod eks;
mod error;
mod module;
pub mod s3;
pub mod sts;
mod token;

pub use cli::{TokenRequest, eks_token};
pub use error::AwsError;
pub use module::Aws;
