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
        .run();
    r.code(2);
    insta::assert_snapshot!(r.stderr_normalized());
}

#[test]
fn check_passes_a_clean_tree() {
    let r = kmsctl().file("pb/ok.rhai", "import \"log\" as log;\nlog::info(\"fine\");\n").args(["check", "pb"]).run();
    r.code(0);
    assert_eq!(r.stderr, "checked 1 file: ok\n");
}

/// The repository's playbooks, examples and stdlib must always compile and lint clean.
#[test]
fn the_project_playbooks_examples_and_stdlib_pass_check() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let r = kmsctl()
        .args(["check", "--stdlib-dir"])
        .args([
            format!("{root}/stdlib"),
            format!("{root}/playbooks"),
            format!("{root}/examples"),
            format!("{root}/stdlib"),
        ])
        .run();
    r.code(0);
}

#[test]
fn version_prints_the_version() {
    let r = kmsctl().args(["version"]).run();
    r.code(0);
    assert_eq!(r.stdout, format!("kmsctl {}\n", env!("CARGO_PKG_VERSION")));
}
