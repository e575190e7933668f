//! The kmsctl binary on playbooks in temp dirs: parameters, diagnostics, the runtime, secrets,
//! `check`. No cluster needed.

mod check;
mod completions;
mod diagnostics;
mod docs;
mod params;
mod runtime;
mod secrets;
mod strict;
mod watch;

/// A playbook declaring a subset of deploy.sh's flags, used by several tests.
pub(crate) const DEPLOY: &str = r#"
    //! Deploy the KMS (a test stand-in that only logs).

    fn params() {[
        #{ name: "target", type: "enum", values: ["kind-local", "kind-ci", "aws-ci", "aws-perf"], default_value: "kind-local", doc: "Where to deploy" },
        #{ name: "namespace", default_value: "kms-test", doc: "Namespace" },
        #{ name: "deployment_type", type: "enum", values: ["threshold", "centralized", "thresholdWithEnclave", "centralizedWithEnclave"], default_value: "threshold" },
        #{ name: "core_tag", required: true, doc: "Core image tag" },
        #{ name: "num_parties", type: "int", default_value: 4, min: 1 },
        #{ name: "cleanup", type: "bool" },
        #{ name: "enable_tls", type: "bool", off_aliases: ["disable-tls"] },
    ]}

    import "log" as log;
    import "fs" as fs;

    fs::write("ran.txt", "yes");
    log::info(`${param::target} ${param::namespace} ${param::deployment_type} ${param::core_tag} ${param::num_parties} ${param::cleanup} ${param::enable_tls}`);
"#;
