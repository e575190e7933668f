//! The readiness engine: is an object ready, still progressing, or failed?
//!
//! Pure parts decide from JSON alone: [`rules`] (one object, kstatus semantics with its gaps
//! fixed), `ownership` (which pods a workload runs) and `targets` (a wait's targets over a
//! snapshot of what is watched). The `waiter` is the I/O: the cluster's shared `watches`
//! feeding reflector stores, re-assessed on every change.

mod ownership;
pub(crate) mod rules;
mod targets;
mod waiter;
pub(crate) mod watches;

pub(crate) use ownership::{owner_ref, owns, pod_selector};
pub use rules::{Assessment, Health, RuleOptions, assess, pod_blocker};
pub(crate) use targets::Predicate;
pub use targets::{Progress, Target, WaitFailure, WaitOptions};
pub use waiter::wait;
pub(crate) use waiter::wait_with;
pub use watches::WatchStats;
