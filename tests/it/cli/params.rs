//! Parameters: pointed errors (snapshots), nothing runs on bad input, help.

use super::DEPLOY;
use crate::harness::kmsctl;

fn deploy(args: &[&str]) -> crate::harness::Run {
    kmsctl().file("deploy.rhai", DEPLOY).args(["run", "deploy.rhai"]).args(args).run()
}

#[test]
fn the_toolkit_flags_reach_the_script() {
    let r = deploy(&[
        "--target",
        "aws-perf",
        "--namespace",
        "kms-ci",
        "--core-tag",
        "v1",
        "--num-parties",
        "13",
        "--cleanup",
        "--disable-tls",
    ]);
    r.code(0);
    assert!(r.stderr.contains("aws-perf kms-ci threshold v1 13 true false"), "{}", r.stderr);
}

#[test]
fn bad_enum_lists_the_allowed_values() {
    let r = deploy(&["--core-tag", "v1", "--deployment-type", "treshold"]);
    r.code(2);
    insta::assert_snapshot!(r.stderr_normalized());
}

#[test]
fn a_non_integer_is_refused() {
    let r = deploy(&["--core-tag", "v1", "--num-parties", "abc"]);
    r.code(2);
    insta::assert_snapshot!(r.stderr_normalized());
}

#[test]
fn a_flag_missing_its_value_says_so() {
    let r = deploy(&["--core-tag", "v1", "--namespace"]);
    r.code(2);
    insta::assert_snapshot!(r.stderr_normalized());
}

#[test]
fn an_unknown_parameter_suggests_the_closest() {
    let r = deploy(&["--core-tag", "v1", "--num-partys", "3"]);
    r.code(2);
    insta::assert_snapshot!(r.stderr_normalized());
}

#[test]
fn a_missing_required_parameter_names_its_sources() {
    let r = deploy(&[]);
    r.code(2);
    insta::assert_snapshot!(r.stderr_normalized());
}

#[test]
fn every_error_is_reported_and_nothing_runs() {
    let r = kmsctl()
        .file("deploy.rhai", DEPLOY)
        .file("values.yaml", "num_partys: 3\n")
        .args(["run", "deploy.rhai", "--values", "values.yaml", "--num-parties", "0", "--target", "gke", "--bogus"])
        .code(2)
        .run();
    insta::assert_snapshot!(r.stderr_normalized());
    assert!(!r.path().join("ran.txt").exists(), "the playbook must not run on bad parameters");
}

#[test]
fn values_files_env_and_flags_layer() {
    let r = kmsctl()
        .file("deploy.rhai", DEPLOY)
        .file("values.yaml", "namespace: from-file\nnum-parties: 7\ncore_tag: v9\n")
        .env("KMSCTL_TARGET", "kind-ci")
        .env("KMSCTL_NAMESPACE", "from-env")
        .args(["run", "deploy.rhai", "-f", "values.yaml", "--set", "cleanup=true"])
        .code(0)
        .run();
    assert!(r.stderr.contains("kind-ci from-file threshold v9 7 true false"), "{}", r.stderr);
}

#[test]
fn help_lists_the_playbook_parameters() {
    let r = deploy(&["--help"]);
    r.code(0);
    insta::assert_snapshot!(r.stdout);
    assert!(!r.path().join("ran.txt").exists());
}
