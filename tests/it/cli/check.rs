//! `kmsctl check`: every file, every error, and the project's own playbooks and examples.

use crate::harness::kmsctl;

#[test]
fn check_reports_every_error_in_every_file() {
    let r = kmsctl()
        .file("pb/a.rhai", "import \"log\" as log;\nlog::inf(\"x\");\n")
        .file("pb/b.rhai", "let x = ;\n")
        .file("pb/c.rhai", "fn f() { undefined_fn(1) }\nlet y = [1].lenn();\n")
        .file("pb/ok.rhai", "import \"log\" as log;\nlog::info(\"fine\");\n")
        .args(["check", "pb"])
        .code(2)
        .run();
    insta::assert_snapshot!(r.stderr_normalized());
}

#[test]
fn check_passes_a_clean_tree() {
    let r = kmsctl()
        .file("pb/ok.rhai", "import \"log\" as log;\nlog::info(\"fine\");\n")
        .args(["check", "pb"])
        .code(0)
        .run();
    assert_eq!(r.stderr, "checked 1 file: ok\n");
}

/// The repository's playbooks, examples, bench playbook and stdlib must always compile and lint clean.
#[test]
fn the_project_playbooks_examples_and_stdlib_pass_check() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    kmsctl()
        .args(["check", "--stdlib-dir"])
        .args([
            format!("{root}/stdlib"),
            format!("{root}/playbooks"),
            format!("{root}/examples"),
            format!("{root}/bench/deploy.rhai"),
            format!("{root}/stdlib"),
        ])
        .code(0)
        .run();
}

#[test]
fn version_prints_the_version() {
    let r = kmsctl().args(["version"]).code(0).run();
    assert_eq!(r.stdout, format!("kmsctl {}\n", env!("CARGO_PKG_VERSION")));
}

/// Every native type that one module returns and another module's methods take, read from the
/// modules' own signatures. A value keeps its methods wherever it goes (the engine registers
/// methods globally), and each such pair has an end-to-end test that uses the value without
/// importing the module of its methods; a new pair fails here until it gets one.
#[test]
fn every_type_that_crosses_modules_has_a_test_without_the_import() {
    use kmsctl_host::{CancelScope, Events, HostCtx, NativeModule, Redactor, Settings};
    use std::collections::BTreeSet;
    // (returned by, type, methods in) → the test that covers it.
    let covered: BTreeSet<(&str, &str, &str)> = [
        // aws::playbook::a_cluster_from_eks_connect_has_its_methods_without_importing_k8s
        ("aws", "Cluster", "k8s"),
    ]
    .into();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ctx = HostCtx::new(
        rt.handle().clone(),
        CancelScope::root(),
        Events::new(vec![], Redactor::new()),
        Settings::default(),
    );
    // The binary's modules (engine/kmsctl/src/cli.rs); the core ones return no such types.
    let modules: Vec<Box<dyn NativeModule>> = vec![
        Box::new(kmsctl_k8s::K8s),
        Box::new(kmsctl_helm::Helm),
        Box::new(kmsctl_proc::Proc),
        Box::new(kmsctl_proc::Kind),
        Box::new(kmsctl_proc::Docker),
        Box::new(kmsctl_aws::Aws),
        Box::new(kmsctl_tls::Tls),
    ];
    let sigs = |m: &rhai::Module| m.gen_fn_signatures_with_mapper(|s| s.into()).collect::<Vec<String>>();
    let mut returns = Vec::new();
    let mut methods = Vec::new();
    for m in &modules {
        let built = m.build(&ctx);
        for s in sigs(&built.functions) {
            if let Some((_, ret)) = s.rsplit_once(" -> ") {
                returns.push((m.name(), ret.trim().to_string()));
            }
        }
        for s in sigs(&built.methods) {
            let first = s.split_once('(').and_then(|(_, rest)| rest.split([',', ')']).next()).unwrap_or("");
            if let Some((_, ty)) = first.split_once(':') {
                methods.push((m.name(), ty.trim().to_string()));
            }
        }
    }
    let found: BTreeSet<(&str, &str, &str)> = returns
        .iter()
        .flat_map(|(from, ty)| {
            methods.iter().filter(move |(to, t)| t == ty && to != from).map(move |(to, _)| (*from, ty.as_str(), *to))
        })
        .collect();
    assert!(found.contains(&("aws", "Cluster", "k8s")), "the signatures were not read: {returns:?} {methods:?}");
    assert_eq!(found, covered, "a type crosses modules without a test that uses it without the import");
}

/// An options map literal with a key the function does not take is found before anything runs,
/// from the keys each native function declares: qualified calls by `run` too, methods and
/// globals by `check`.
#[test]
fn unknown_option_keys_are_flagged_with_a_suggestion() {
    let r = kmsctl()
        .file(
            "pb/opts.rhai",
            r#"
            import "k8s" as k8s;
            import "helm" as helm;
            let kc = k8s::connect(#{ contxt: "kind-kms" });
            kc.apply(#{}, #{ namspace: "x", wait: true });
            helm::upgrade(kc, "r", "chart", #{ namespace: "x", valuez: #{} });
            let done = parallel([|| 1], #{ mx: 2 });
            kc.get("Pod", "p", #{ namespace: "x" });
            "#,
        )
        .args(["check", "pb"])
        .code(2)
        .run();
    insta::assert_snapshot!(r.stderr_normalized());
}

#[test]
fn run_refuses_an_unknown_option_key_of_a_qualified_call_before_anything_runs() {
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "fs" as fs;
            import "wait" as wait;
            fs::write("ran.txt", "yes");
            wait::retry(|| 1, #{ attemps: 3 });
            "#,
        )
        .args(["run", "p.rhai"])
        .code(2)
        .run();
    assert!(r.stderr.contains("wait::retry: unknown option 'attemps'"), "{}", r.stderr);
    assert!(r.stderr.contains("did you mean 'attempts'?"), "{}", r.stderr);
    assert!(!r.path().join("ran.txt").exists(), "the playbook ran");
}
