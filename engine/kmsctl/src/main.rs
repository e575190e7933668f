//! kmsctl: Kubernetes deployments as editable Rhai playbooks.
//!
//! A thin binary over the engine in `kmsctl-host`: parse the command line, pick the native
//! modules, dispatch, and exit with the documented code.

fn main() {
    std::process::exit(kmsctl::main());
}
