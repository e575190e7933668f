//! kmsctl's `k8s` module: Kubernetes for playbooks.
//!
//! The plain async Rust lives in the submodules and is usable without Rhai: [`client`]
//! (kubeconfig, contexts, context guards), [`apply`] (server-side apply with discovery and
//! ordering), [`objects`] (get, list, patch, delete, namespaces, secrets), [`readiness`] (the
//! watch-based readiness engine; its rules are pure functions over JSON), [`report`] (the
//! failure report written when a wait fails), [`logs`], [`exec`], [`portforward`]. The Rhai
//! adapter is [`module`].

pub mod apply;
pub mod client;
pub mod error;
pub mod exec;
pub mod logs;
pub mod module;
pub mod object;
pub mod objects;
pub mod portforward;
pub mod readiness;
pub mod report;

pub use error::K8sError;
pub use module::K8s;
