//! Proof that the local test environment is real: kube-rs, helm and moto/EKS against it.
//!
//! Every test here needs `scripts/testenv/testenv.sh up` (see `crate::testenv`): it skips
//! without it, and fails under `TESTENV_REQUIRED=1`. Each test works in its own namespace,
//! release and EKS cluster name, so they run in parallel.

mod aws;
mod helm;
mod nodes;
mod rehearsal;
mod report;
mod stages;
