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

/// Steps: the key generation, then a warmup and a decrypt at once. `@WARM@` / `@DEC@` label the
/// two steps' pods for the tests' kwok stages (a failing one); the workflow takes `key-id`.
const WORKFLOW: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: perf-test-}
spec:
  entrypoint: main
  activeDeadlineSeconds: 120
  arguments:
    parameters: [{name: key-id, value: none}]
  templates:
  - name: main
    steps:
    - - {name: insecure-key-gen, template: keygen}
    - - {name: warmup-decrypt, template: warmup}
      - {name: public-decrypt, template: decrypt}
  - name: keygen
    container: {image: core-client:test, command: [kms-core-client, insecure-key-gen]}
    outputs:
      parameters: [{name: request-id, valueFrom: {path: /tmp/request-id, default: req-0042}}]
  - name: warmup
    metadata: {labels: {testenv.kmsctl/stage: "@WARM@"}}
    container: {image: core-client:test, command: [kms-core-client, public-decrypt, --warmup]}
  - name: decrypt
    metadata: {labels: {testenv.kmsctl/stage: "@DEC@"}}
    container: {image: core-client:test, command: [kms-core-client, public-decrypt, "{{workflow.parameters.key-id}}"]}
"#;

/// Run WORKFLOW (with `key-id`) through std/argo, gate it excluding `exclude`, and log the
/// gate, the output parameter and the decrypt pod's command.
const RUN_AND_GATE: &str = r#"
    import "k8s" as k8s;
    import "log" as log;
    import "data" as data;
    import "std/argo" as argo;
    let kc = k8s::connect();
    let r = argo::run(kc, "wf.yaml", #{ namespace: "@NS@", run: "@RUN@", parameters: #{ "key-id": "@KEY@" }, echo: false });
    let g = argo::gate(kc, r, #{ exclude: @EXCLUDE@ });
    log::info(`phase: ${r.phase}`);
    log::info(`gate: ${data::to_json(#{ passed: g.passed, failed: g.failed.map(|n| n.display_name), excluded: g.excluded.map(|n| n.display_name), reports: g.failed.map(|n| n.report != ()) })}`);
    log::info(`request-id: ${argo::output(r, "insecure-key-gen", "request-id")}`);
    let pod = r.nodes.filter(|n| n.display_name == "public-decrypt")[0].pod;
    log::info(`decrypt: ${data::to_json(kc.get("Pod", pod, #{ namespace: "@NS@" }).spec.containers[0].command)}`);
    import "fs" as fs;
    fs::artifact("junit.xml", argo::junit(r, g));
"#;

struct Gated {
    phase: String,
    gate: serde_json::Value,
    request_id: String,
    decrypt: serde_json::Value,
    junit: String,
}

async fn run_and_gate(
    env: &crate::testenv::TestEnv,
    ns: &str,
    stages: (&str, &str),
    key: &str,
    exclude: &str,
) -> Gated {
    let root = root();
    let wf = WORKFLOW.replace("@WARM@", stages.0).replace("@DEC@", stages.1);
    let k = crate::k8s::playbook(
        env,
        RUN_AND_GATE,
        &[("NS", ns), ("RUN", "gate-test"), ("KEY", key), ("EXCLUDE", exclude)],
    )
    .env("KMSCTL_STDLIB_DIR", &format!("{root}/stdlib"))
    .file("wf.yaml", &wf);
    let r = crate::k8s::finish(k).await;
    r.code(0);
    let ev = r.events();
    Gated {
        phase: logged(&ev, "phase: "),
        gate: serde_json::from_str(&logged(&ev, "gate: ")).expect("gate json"),
        request_id: logged(&ev, "request-id: "),
        decrypt: serde_json::from_str(&logged(&ev, "decrypt: ")).expect("command json"),
        junit: crate::k8s::artifact(&r.path(), "junit.xml"),
    }
}

/// A passing workflow is gated green; its output parameter, read by node name, is passed to a
/// second run of it, whose decrypt step gets it (and that run replaces the first: same run
/// label, one workflow left).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_workflow_is_gated_green_and_its_output_feeds_the_next_one() {
    use kube::api::{Api, DynamicObject, ListParams};
    let env = crate::testenv::testenv!();
    let ns = env.namespace("argo-pass").await;
    let first = run_and_gate(&env, &ns.name, ("none-1", "none-2"), "none", "()").await;
    assert_eq!(first.phase, "Succeeded");
    assert_eq!(first.gate, serde_json::json!({"passed": true, "failed": [], "excluded": [], "reports": []}));
    assert_eq!(first.request_id, "req-0042");
    assert!(first.junit.contains(r#"tests="3" failures="0" skipped="0""#), "{}", first.junit);
    let second = run_and_gate(&env, &ns.name, ("none-1", "none-2"), &first.request_id, "()").await;
    assert_eq!(second.phase, "Succeeded");
    assert_eq!(second.decrypt, serde_json::json!(["kms-core-client", "public-decrypt", "req-0042"]));
    let gvk = kube::api::GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Workflow");
    let ar = kube::api::ApiResource::from_gvk_with_plural(&gvk, "workflows");
    let wfs = Api::<DynamicObject>::namespaced_with(env.client.clone(), &ns.name, &ar);
    let left = wfs.list(&ListParams::default().labels("kmsctl.io/argo-run=gate-test")).await.expect("list");
    assert_eq!(left.items.len(), 1, "a re-run replaces its workflow");
}

/// A failing step fails the gate, named, with its pod's failure report; the same failure in a
/// step the gate excludes (`warmup`) does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_node_fails_the_gate_unless_it_is_excluded() {
    let env = crate::testenv::testenv!();
    let ns = env.namespace("argo-fail").await;
    let (fail, _cleanup) = crate::k8s::pod_stage(&env, "argo-fail", 0, crate::k8s::FAILED_STATUS).await;
    let failed = run_and_gate(&env, &ns.name, ("none", &fail), "none", r#""warmup|reqid-above""#).await;
    assert_eq!(failed.phase, "Failed");
    assert_eq!(
        failed.gate,
        serde_json::json!({"passed": false, "failed": ["public-decrypt"], "excluded": [], "reports": [true]})
    );
    assert!(
        failed.junit.contains(r#"<testcase classname="#) && failed.junit.contains("<failure message=\"Failed"),
        "{}",
        failed.junit
    );

    let (warm, _cleanup2) = crate::k8s::pod_stage(&env, "argo-warm", 0, crate::k8s::FAILED_STATUS).await;
    let excluded = run_and_gate(&env, &ns.name, (&warm, "none"), "none", r#""warmup|reqid-above""#).await;
    assert_eq!(excluded.phase, "Failed", "the workflow itself failed");
    assert_eq!(
        excluded.gate,
        serde_json::json!({"passed": true, "failed": [], "excluded": ["warmup-decrypt"], "reports": []})
    );
    assert!(excluded.junit.contains("<skipped message=\"excluded: Failed\"/>"), "{}", excluded.junit);
}

/// Regression: in rehearsal the perf workflow ends within the second its "before" snapshot was
/// taken, and the deltas refused a zero window, failing perf-run. Counters are still compared;
/// the rate is `-`. A snapshot older than the "before" one is still refused.
#[test]
fn network_deltas_within_one_second_have_no_rate_but_their_counters() {
    let snap = |at: u64, rx: u64| {
        (
            format!("phase\tx\ncaptured_unix\t{at}\n"),
            format!(
                "pod\tinterface\tcounter\tvalue\nkms-core-1-core-1\teth0\trx_bytes\t{rx}\nkms-core-1-core-1\teth0\ttx_bytes\t0\n"
            ),
        )
    };
    let run = |after: u64| {
        let (b_sum, b_cnt) = snap(100, 1000);
        let (a_sum, a_cnt) = snap(after, 3048);
        kmsctl()
            .env("KMSCTL_STDLIB_DIR", &format!("{}/stdlib", root()))
            .file("d/before-perf/summary.txt", &b_sum)
            .file("d/before-perf/pod-interface-counters.tsv", &b_cnt)
            .file("d/after-perf/summary.txt", &a_sum)
            .file("d/after-perf/pod-interface-counters.tsv", &a_cnt)
            .file("p.rhai", r#"import "std/kms/netdiag" as n; n::delta("d", "before-perf", "after-perf", "eth0");"#)
            .args(["run", "p.rhai"])
            .run()
    };
    let same = run(100);
    same.code(0);
    let traffic = std::fs::read_to_string(same.path().join("d/after-perf/traffic.tsv")).unwrap();
    assert!(traffic.contains("kms-core-1-core-1\t0.0\t0.0\t-\t0\t0"), "{traffic}");
    let delta = std::fs::read_to_string(same.path().join("d/after-perf/pod-interface-counter-delta.tsv")).unwrap();
    assert!(delta.contains("kms-core-1-core-1\teth0\trx_bytes\t1000\t3048\t2048"), "{delta}");
    let earlier = run(99);
    earlier.code(1);
    assert!(
        earlier.stderr.contains("snapshot after-perf (99) is earlier than before-perf (100)"),
        "{}",
        earlier.stderr
    );
}
