//! kmsctl's `k8s` module: Kubernetes for playbooks.
//!
//! Three layers, as in kube-rs, each usable without the one above:
//! - pure logic over JSON objects, no I/O and no Rhai: the readiness rules ([`assess`],
//!   [`pod_blocker`]), which pods a workload owns, where a wait stands, and the failure
//!   report's rendering ([`FailureReport::summary`]);
//! - plain async Rust on kube: connecting ([`Cluster`]), server-side apply, objects, logs,
//!   exec, port-forwards, pod metrics and the usage sampler, the watch-based waiter ([`wait`]) and collecting a report
//!   ([`FailureReport::collect`]);
//! - the Rhai adapter ([`K8s`], [`ClusterHandle`]): argument conversion and registration only.
//!
//! Modules are private; this is the surface other crates use.
#![warn(unreachable_pub)]

mod apply;
mod client;
mod diff;
mod error;
mod exec;
mod follow;
mod gate;
mod json;
mod logs;
mod metrics;
mod module;
mod objects;
mod portforward;
mod readiness;
mod report;

/// Durations in messages, as scripts write them (`5m`, `1h30m`): the host's format.
pub(crate) use kmsctl_host::duration::format as format_duration;

pub use apply::{is_cluster_scoped, parse_manifests};
pub use client::{Cluster, ConnectOptions};
pub use error::{Details, K8sError};
pub use gate::{GATE_ANNOTATION, GATE_CONFIGMAP_PREFIX, GateAction, answer_gate};
pub use json::ObjRef;
pub use module::{ClusterHandle, K8s};
pub use readiness::{
    Assessment, Health, Progress, RuleOptions, Target, WaitFailure, WaitOptions, WatchStats, assess, pod_blocker, wait,
};
pub use report::{ClaimReport, ConditionLine, ContainerReport, EventLine, FailureReport, LogTail, PodReport};
