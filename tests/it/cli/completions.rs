//! Shell completion of a playbook's own parameters, in the real shells' completion machinery
//! where it can run without a terminal (bash's completion function, fish's `complete -C`).

use crate::harness::{bin, kmsctl};
use std::process::Command;

/// The playbook's flags, their enum values, and the run options; nothing after a flag that
/// takes a free value (the shell completes files there).
#[test]
fn complete_params_offers_the_playbooks_flags_and_enum_values() {
    let r = kmsctl().file("deploy.rhai", super::DEPLOY).args(["complete-params", "deploy.rhai"]).code(0).run();
    let words: Vec<&str> = r.stdout.lines().collect();
    for w in [
        "--target",
        "--namespace",
        "--core-tag",
        "--num-parties",
        "--cleanup",
        "--no-cleanup",
        "--disable-tls",
        "--values",
        "--plan",
    ] {
        assert!(words.contains(&w), "{w} missing: {words:?}");
    }
    let r = r.again().args(["complete-params", "deploy.rhai", "--prev", "--target"]).code(0).run();
    assert_eq!(r.stdout, "kind-local\nkind-ci\naws-ci\naws-perf\n");
    let r = r.again().args(["complete-params", "deploy.rhai", "--prev", "--namespace"]).code(0).run();
    assert_eq!(r.stdout, "");
    let r = r.again().args(["complete-params", "deploy.rhai", "--prev", "--target", "--shell", "fish"]).code(0).run();
    assert!(r.stdout.starts_with("kind-local\tWhere to deploy\n"), "{}", r.stdout);
    let r = r.again().args(["complete-params", "deploy.rhai", "--shell", "zsh"]).code(0).run();
    assert!(r.stdout.lines().any(|l| l == "--target:Where to deploy"), "{}", r.stdout);
}

/// A playbook that does not compile (or is not there) completes nothing and prints no error
/// into the user's command line.
#[test]
fn complete_params_of_a_broken_playbook_is_silent() {
    let r = kmsctl().file("bad.rhai", "let x = ;\n").args(["complete-params", "bad.rhai"]).code(0).run();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("", ""));
    let r = r.again().args(["complete-params", "missing.rhai"]).code(0).run();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("", ""));
}

/// Is the shell installed? scripts/test installs zsh and fish (scripts/lib.sh's ensure_debs);
/// under `TESTENV_REQUIRED=1` (scripts/test, CI) a missing one fails the test instead.
fn have(shell: &str) -> bool {
    if Command::new(shell).arg("--version").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    assert_ne!(
        std::env::var("TESTENV_REQUIRED").as_deref(),
        Ok("1"),
        "{shell} is missing: scripts/test installs it (apt-get install {shell})"
    );
    eprintln!("skipped: {shell} is not installed (scripts/test installs it)");
    false
}

/// A directory with `kmsctl` on PATH (the binary under test), the DEPLOY playbook, and the
/// completion script for `shell`.
fn setup(shell: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink(bin(), bin_dir.join("kmsctl")).unwrap();
    std::fs::write(dir.path().join("deploy.rhai"), crate::harness::unindent(super::DEPLOY)).unwrap();
    let script = Command::new(bin()).args(["completions", shell]).output().unwrap();
    assert!(script.status.success());
    std::fs::write(dir.path().join(format!("kmsctl.{shell}")), script.stdout).unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    (dir, std::path::PathBuf::from(path))
}

/// What bash's completion function for kmsctl offers for the words typed so far (the last one
/// being completed).
fn bash_complete(words: &[&str]) -> Vec<String> {
    let (dir, path) = setup("bash");
    let list = words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" ");
    let script = format!(
        "source ./kmsctl.bash\nCOMP_WORDS=({list})\nCOMP_CWORD={}\nCOMP_LINE=\"${{COMP_WORDS[*]}}\"\nCOMP_POINT=${{#COMP_LINE}}\n\
         _kmsctl_playbook kmsctl \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        words.len() - 1
    );
    let out = Command::new("bash").arg("-c").arg(script).current_dir(dir.path()).env("PATH", path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
}

#[test]
fn bash_completes_a_playbooks_parameters_and_enum_values() {
    let got = bash_complete(&["kmsctl", "run", "deploy.rhai", "--n"]);
    assert_eq!(got, ["--namespace", "--num-parties", "--no-cleanup", "--no-enable-tls"]);
    let got = bash_complete(&["kmsctl", "run", "deploy.rhai", "--target", "kind"]);
    assert_eq!(got, ["kind-local", "kind-ci"]);
    // Subcommands still come from clap's part of the script.
    let got = bash_complete(&["kmsctl", "ch"]);
    assert_eq!(got, ["check"]);
}

/// fish completes non-interactively: `complete -C` prints what a TAB would offer.
#[test]
fn fish_completes_a_playbooks_parameters_and_enum_values() {
    if !have("fish") {
        return;
    }
    let (dir, path) = setup("fish");
    let complete = |line: &str| -> String {
        let script = format!("source ./kmsctl.fish; complete -C '{line}'");
        let out =
            Command::new("fish").arg("-c").arg(script).current_dir(dir.path()).env("PATH", &path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let got = complete("kmsctl run deploy.rhai --core");
    assert!(got.lines().any(|l| l == "--core-tag\tCore image tag"), "{got}");
    let got = complete("kmsctl run deploy.rhai --deployment-type ");
    // fish sorts what it offers.
    let values: Vec<&str> = got.lines().map(|l| l.split('\t').next().unwrap_or_default()).collect();
    assert_eq!(values, ["centralized", "centralizedWithEnclave", "threshold", "thresholdWithEnclave"], "{got}");
}

/// zsh cannot complete without a terminal; its script must at least parse, hook the playbook
/// function in ahead of clap's, and keep clap's `_kmsctl` for everything else.
#[test]
fn the_zsh_script_parses_and_dispatches_to_the_playbook_hook() {
    let (dir, path) = setup("zsh");
    let text = std::fs::read_to_string(dir.path().join("kmsctl.zsh")).unwrap();
    assert!(text.starts_with("#compdef kmsctl"), "{text}");
    assert!(text.contains("compdef _kmsctl_playbook kmsctl"), "{text}");
    assert!(text.contains("    _kmsctl_playbook \"$@\""), "{text}");
    if !have("zsh") {
        return;
    }
    let out =
        Command::new("zsh").args(["-n", "kmsctl.zsh"]).current_dir(dir.path()).env("PATH", path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
