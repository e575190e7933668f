//! The readiness engine: is an object ready, still progressing, or failed?
//!
//! [`rules`] decides from an object's JSON alone (kstatus semantics, with its gaps fixed: Jobs
//! must complete, LoadBalancers need an address, crashing pods fail their workload fast). The
//! waiter watches objects and re-assesses on every change.

pub mod rules;
pub mod waiter;

pub use waiter::{Predicate, Progress, Target, WaitFailure, WaitOptions, labels_match, wait, wait_with};
