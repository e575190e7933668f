//! kmsctl's `aws` module: the AWS a Kubernetes deployment on EKS needs, without the aws CLI.
//!
//! Playbooks describe and wait for EKS clusters and node groups, reach a cluster's API server as
//! the same `Cluster` the k8s module works on, write kubeconfigs for helm and kubectl, move TLS
//! material through S3 and check who they run as. The CLI needs no aws binary because EKS tokens
//! are minted in-process ([`token`]) and served to every Kubernetes client by kmsctl's own exec
//! credential plugin ([`cli`], `kmsctl eks token`).
//!
//! The plain async Rust is usable without Rhai: [`config`] (region, profile, assume-role),
//! [`eks`], [`s3`], [`sts`]. The Rhai adapter is [`module`].

pub mod cli;
pub mod config;
pub mod eks;
pub mod error;
pub mod module;
pub mod s3;
pub mod sts;
pub mod token;

pub use error::AwsError;
pub use module::Aws;
