//! Playbooks fail loudly where they would silently do the wrong thing: a misspelled map key is
//! an error (before the run when it can be known, at its line otherwise), optional reads are
//! explicit, and stdlib functions check their options like native ones.

use crate::harness::kmsctl;

/// The issue's example: it used to print `release: '-1'`.
const TYPO: &str = r#"
let cfg = #{ namespace: "x", release_prefix: "kms-core" };
let name = `${cfg.release_prefx}-1`;
print(`release: '${name}'`);
"#;

#[test]
fn a_misspelled_key_of_a_map_literal_is_refused_before_anything_runs() {
    let r = kmsctl().file("p.rhai", TYPO).args(["run", "p.rhai"]).code(2).run();
    assert!(!r.stderr.contains("release: '-1'"), "nothing ran:\n{}", r.stderr);
    insta::assert_snapshot!(r.stderr_normalized());
}

#[test]
fn check_flags_a_misspelled_key_of_a_map_literal() {
    let r = kmsctl().file("p.rhai", TYPO).args(["check", "p.rhai"]).code(2).run();
    assert!(r.stderr.contains("cfg has no key 'release_prefx'"), "{}", r.stderr);
    assert!(r.stderr.contains("did you mean cfg.release_prefix?"), "{}", r.stderr);
}

/// Each function is its own scope. Regression: every function's body was walked as part of
/// every other's (rhai's `clone_functions_only_filtered` keeps all functions when it starts
/// empty), so a literal declared in two functions was never checked, and a parameter of one
/// function was read as another's literal.
#[test]
fn check_scopes_map_literals_by_function() {
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            fn a() { let cfg = #{ namespace: "x" }; cfg.namespace }
            fn b() { let cfg = #{ release_prefix: "kms" }; cfg.release_prefx }
            fn c(opts) { opts.anything }
            fn d() { let opts = #{ timeout: "5m" }; opts.timeout }
            "#,
        )
        .args(["check", "p.rhai"])
        .code(2)
        .run();
    assert!(r.stderr.contains("cfg has no key 'release_prefx'"), "b's typo is found:\n{}", r.stderr);
    assert!(!r.stderr.contains("'anything'"), "c's parameter is not d's literal:\n{}", r.stderr);
    assert_eq!(r.stderr.matches("has no key").count(), 1, "{}", r.stderr);
}

/// Where the keys cannot be known before running (the map comes from a function), the read
/// fails at its line, naming the keys the map has.
#[test]
fn a_misspelled_key_read_at_run_time_names_the_closest_key() {
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            fn config() { #{ namespace: "x", release_prefix: "kms-core" } }
            let cfg = config();
            print(`release: '${cfg.release_prefx}-1'`);
            "#,
        )
        .args(["run", "p.rhai"])
        .code(1)
        .run();
    assert!(!r.stderr.contains("release: '-1'"), "the line did not print:\n{}", r.stderr);
    insta::assert_snapshot!(r.stderr_normalized());
}

#[test]
fn optional_reads_are_explicit() {
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "data" as data;
            let pod = data::from_json(`{"metadata": {"name": "p"}, "status": {}}`);
            let fresh = data::from_json(`{"metadata": {"name": "q"}}`);
            let cfg = data::from_json(`{"namespace": "x"}`);
            print(`phase: ${type_of(pod.status?.phase)} ${type_of(fresh.status?.phase)} ${type_of(fresh?.status)}`);
            print(`timeout: ${cfg.timeout ?? "20m"} has: ${"timeout" in cfg} get: ${type_of(cfg.get("timeout"))}`);
            cfg.timeout = "5m";
            print(`set: ${cfg.timeout}`);
            "#,
        )
        .args(["run", "p.rhai"])
        .code(0)
        .run();
    assert!(r.stderr.contains("phase: () () ()"), "{}", r.stderr);
    assert!(r.stderr.contains("timeout: 20m has: false get: ()"), "{}", r.stderr);
    assert!(r.stderr.contains("set: 5m"), "{}", r.stderr);
}

#[test]
fn a_stdlib_function_refuses_an_unknown_option_with_the_closest_one() {
    let r = kmsctl()
        .file("p.rhai", "import \"std/kms\" as kms;\nkms::pod_name(#{ namespce: \"x\" }, 1);\n")
        .args(["run", "p.rhai"])
        .code(1)
        .run();
    insta::assert_snapshot!(r.stderr_normalized());
}

/// Every stdlib function that takes an options map (a parameter named `cfg` or `options`)
/// refuses an unknown key, listing the valid ones, and names the closest one for a near miss.
/// Found by reading the stdlib, so a new function cannot be forgotten.
#[test]
fn every_stdlib_function_refuses_an_unknown_option_and_names_the_closest() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../stdlib");
    let fn_re = regex::Regex::new(r"(?m)^(?:private\s+)?fn\s+(\w+)\(([^)]*)\)").unwrap();
    let mut checked = Vec::new();
    for entry in walk(std::path::Path::new(root)) {
        let text = std::fs::read_to_string(&entry).unwrap();
        let module = entry.strip_prefix(root).unwrap().with_extension("").display().to_string();
        for c in fn_re.captures_iter(&text) {
            if c[0].starts_with("private") {
                continue;
            }
            let params: Vec<&str> = c[2].split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
            let Some(at) = params.iter().position(|p| *p == "cfg" || *p == "options") else { continue };
            let call = |opts: &str| {
                let args: Vec<String> =
                    (0..params.len()).map(|i| if i == at { opts.to_string() } else { "()".into() }).collect();
                format!("import \"std/{module}\" as m;\nm::{}({});\n", &c[1], args.join(", "))
            };
            let r = kmsctl().file("p.rhai", &call("#{ zzz_not_an_option: 1 }")).args(["run", "p.rhai"]).run();
            let what = format!("std/{module}::{}", &c[1]);
            assert!(r.stderr.contains("unknown option 'zzz_not_an_option'"), "{what}:\n{}", r.stderr);
            let first = r.stderr.split("options are ").nth(1).and_then(|l| l.split([',', '\n']).next());
            let first = first.unwrap_or_else(|| panic!("{what} lists no options:\n{}", r.stderr)).trim().to_string();
            let near_miss = format!("{}x", &first[..first.len() - 1]);
            let r = kmsctl().file("p.rhai", &call(&format!("#{{ {near_miss}: 1 }}"))).args(["run", "p.rhai"]).run();
            assert!(r.stderr.contains(&format!("did you mean '{first}'?")), "{what} ({near_miss}):\n{}", r.stderr);
            checked.push(what);
        }
    }
    assert!(checked.iter().any(|f| f == "std/kms::deploy"), "found no stdlib functions: {checked:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "rhai") {
            out.push(p);
        }
    }
    out.sort();
    out
}
