//! `kmsctl docs`: the committed API reference is what the binary generates, and `--check`
//! names every file that differs.

use crate::harness::kmsctl;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// CI's staleness check: docs/api must be regenerated (`kmsctl docs`) when a native function,
/// its options or doc, or a stdlib doc comment changes.
#[test]
fn the_committed_api_reference_is_up_to_date() {
    let r = kmsctl()
        .args(["docs", "--check", "--out", &format!("{ROOT}/docs/api"), "--stdlib-dir", &format!("{ROOT}/stdlib")])
        .run();
    assert_eq!(r.code, 0, "{}\nregenerate with: cargo run -- docs --stdlib-dir stdlib", r.stderr);
}

#[test]
fn docs_list_every_module_with_its_functions_options_and_definitions() {
    let r = kmsctl().args(["docs", "--out", "api"]).code(0).run();
    let read = |p: &str| std::fs::read_to_string(r.path().join("api").join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let k8s = read("k8s.md");
    assert!(k8s.contains("### `k8s::connect`"), "{k8s}");
    assert!(k8s.contains("Cluster.apply(manifest: any, options: map) -> array"), "{k8s}");
    // The keys kc.apply's body accepts, from its registration.
    assert!(
        k8s.contains("Options: `namespace`, `labels`, `field_manager`, `force`, `dry_run`, `wait`, `timeout`."),
        "{k8s}"
    );
    let index = read("README.md");
    for m in [
        "k8s", "helm", "aws", "proc", "kind", "docker", "tls", "http", "prom", "wait", "log", "data", "fs", "env",
        "time",
    ] {
        assert!(index.contains(&format!("[`{m}`]({m}.md)")), "{m} missing from the index:\n{index}");
        read(&format!("{m}.md"));
        let defs = read(&format!("definitions/{m}.d.rhai"));
        assert!(defs.starts_with(&format!("module {m};")), "{defs}");
    }
    // The stdlib, from its doc comments; private functions stay out.
    let canary = read("std/canary.md");
    assert!(canary.contains("### `canary::run`"), "{canary}");
    assert!(canary.contains("Release `options.images`"), "{canary}");
    assert!(index.contains("[`std/canary`](std/canary.md)"), "{index}");
    let globals = read("definitions/__static__.d.rhai");
    // Methods and the host's globals are global functions to an editor.
    assert!(globals.contains("fn apply(kc: Cluster, manifest: any, options: map) -> array;"), "{globals}");
    assert!(globals.contains("fn parallel(tasks: array|map, options: map) -> array|map;"), "{globals}");
    let std_defs = read("definitions/std.canary.d.rhai");
    assert!(std_defs.contains("/// Release `options.images`"), "{std_defs}");
    assert!(std_defs.contains("fn run(kc: ?, name: ?, options: ?) -> ?;"), "{std_defs}");
    assert!(!std_defs.contains("anon$"), "closures are not API: {std_defs}");
    assert!(read("globals.md").contains("### `parallel`"));
}

#[test]
fn docs_check_names_stale_missing_and_extra_files_and_changes_nothing() {
    let r = kmsctl().args(["docs", "--out", "api"]).code(0).run();
    let api = r.path().join("api");
    std::fs::write(api.join("k8s.md"), "old\n").unwrap();
    std::fs::remove_file(api.join("helm.md")).unwrap();
    std::fs::write(api.join("gone.md"), "x\n").unwrap();
    let r = r.again().args(["docs", "--check", "--out", "api"]).code(1).run();
    assert!(r.stderr.contains("api/k8s.md is out of date"), "{}", r.stderr);
    assert!(r.stderr.contains("api/helm.md is missing"), "{}", r.stderr);
    assert!(r.stderr.contains("api/gone.md is not generated any more"), "{}", r.stderr);
    assert!(r.stderr.contains("run `kmsctl docs`"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(api.join("k8s.md")).unwrap(), "old\n");
    // Writing brings it back in line, removing what is not generated any more.
    let r = r.again().args(["docs", "--out", "api"]).code(0).run();
    let r = r.again().args(["docs", "--check", "--out", "api"]).code(0).run();
    assert!(!r.path().join("api/gone.md").exists());
}
