//! kmsctl integration tests, one binary.
//!
//! `cli` drives the kmsctl binary on playbooks in temp dirs. Modules that need the local test
//! environment (`scripts/testenv/testenv.sh up`) get it from `testenv`; under
//! `TESTENV_REQUIRED=1` (CI) a missing environment fails them instead of skipping.

mod aws;
mod cli;
mod cluster;
mod faults;
mod harness;
mod helm;
mod k8s;
mod plan;
mod playbooks;
mod report;
mod security;
mod testenv;
mod tools;
