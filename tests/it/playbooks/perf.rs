//! The nightly perf run (perf-run.rhai, std/kms/perf, std/argo): the scenarios expanded into the
//! workflow without a cluster here; the Argo runs themselves on the simulated cluster with the
//! test environment's workflow stand-in (`tests/it/playbooks/perf.rs` end-to-end tests).

use super::root;
use crate::harness::kmsctl;
use crate::k8s::logged;

/// A script run with the repo's stdlib and no cluster, in a temp dir with the test KMS repo.
fn script(text: &str) -> crate::harness::Run {
    let root = root();
    kmsctl()
        .env("KUBECONFIG", "/nonexistent")
        .env("KMSCTL_STDLIB_DIR", &format!("{root}/stdlib"))
        .tree("kms", std::path::Path::new(&format!("{root}/tests/kms-repo")))
        .file("p.rhai", text)
        .args(["run", "p.rhai", "--output", "json"])
        .run()
}

#[test]
fn the_scenarios_become_the_workflows_dag_with_the_images_filled_in() {
    let r = script(
        r#"
        import "data" as data;
        import "fs" as fs;
        import "log" as log;
        import "std/kms/perf" as perf;
        let wf = perf::workflow(
            fs::read_yaml(fs::from_cwd("kms/ci/perf-testing/argo-workflow/perf-workflow.yaml")),
            data::from_toml(fs::read(fs::from_cwd("kms/ci/perf-testing/perf-scenarios.toml"))),
            #{ vars: #{ "<client-version>": "v0.14.0" } });
        log::info(`wf: ${data::to_json(wf)}`);
        "#,
    );
    r.code(0);
    let wf: serde_json::Value = serde_json::from_str(&logged(&r.events(), "wf: ")).expect("json");
    let dag = wf["spec"]["templates"].as_array().unwrap().iter().find(|t| t["name"] == "perf").expect("perf template");
    let tasks: Vec<String> = dag["dag"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let args: Vec<String> = t["arguments"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| format!("{}={}", p["name"].as_str().unwrap(), p["value"].as_str().unwrap()))
                .collect();
            format!("{} <- {} [{}]", t["name"].as_str().unwrap(), t["dependencies"], args.join(" "))
        })
        .collect();
    assert_eq!(
        tasks,
        [
            "insecure-key-gen <- null [command=insecure-key-gen requests=1 parallel=1]",
            r#"warmup-public-decrypt <- ["insecure-key-gen"] [command=public-decrypt requests=1 parallel=1]"#,
            r#"public-decrypt <- ["warmup-public-decrypt"] [command=public-decrypt requests=20 parallel=4]"#,
            r#"user-decrypt <- ["insecure-key-gen"] [command=user-decrypt requests=20 parallel=4]"#,
        ]
    );
    let client = wf["spec"]["templates"].as_array().unwrap().iter().find(|t| t["name"] == "client").unwrap();
    assert_eq!(client["container"]["image"], "hub.zama.org/ghcr/zama-ai/kms/core-client:v0.14.0");
}

#[test]
fn a_scenario_that_depends_on_no_scenario_is_refused_naming_it() {
    let r = script(
        r#"
        import "std/kms/perf" as perf;
        let template = #{ kind: "Workflow", spec: #{ templates: [#{ name: "perf", dag: #{ tasks: [] } }] } };
        perf::workflow(template, #{ scenario: [#{ name: "a", command: "x", depends: ["keygen"] }] }, #{});
        "#,
    );
    r.code(1);
    let e = r.events().into_iter().find(|e| e["event"] == "error").expect("error");
    assert_eq!(e["message"], r#"perf::workflow: scenario 'a' depends on 'keygen', which is not a scenario (["a"])"#);
}

#[test]
fn a_workflow_parameter_the_workflow_does_not_declare_is_refused_before_anything_is_submitted() {
    // No cluster at all (the handle is `()`): the parameter check comes before any request.
    let r = script(
        r#"
        import "std/argo" as argo;
        let wf = #{ apiVersion: "argoproj.io/v1alpha1", kind: "Workflow", metadata: #{ name: "w" },
            spec: #{ arguments: #{ parameters: [#{ name: "key-id", value: "" }] }, templates: [] } };
        argo::submit((), wf, #{ namespace: "kms-ci", run: "perf", parameters: #{ "keyid": "1" } });
        "#,
    );
    r.code(1);
    let e = r.events().into_iter().find(|e| e["event"] == "error").expect("error");
    assert_eq!(
        e["message"],
        r#"argo: the workflow declares no parameter 'keyid' (did you mean 'key-id'?); it declares ["key-id"]"#
    );
}

#[test]
fn perf_run_help_documents_its_own_parameters_beside_deploys() {
    let root = root();
    let r = kmsctl()
        .env("KMSCTL_STDLIB_DIR", &format!("{root}/stdlib"))
        .args(["run", &format!("{root}/playbooks/perf-run.rhai"), "--help"])
        .code(0)
        .run();
    for flag in [
        "--skip-deploy",
        "--workflow ",
        "--scenarios",
        "--workflow-param",
        "--gate-exclude",
        "--workflow-timeout",
        "--sample-interval",
        "--keep",
        "--core-tag",
        "--num-parties",
    ] {
        assert!(r.stdout.contains(flag), "{flag} is documented:\n{}", r.stdout);
    }
}
