//! Diagnostics: source snippets, line and column, the call chain across files, exit codes.

use crate::harness::kmsctl;

#[test]
fn a_syntax_error_in_an_imported_stdlib_module() {
    let r = kmsctl()
        .file("stdlib/kms.rhai", "fn values(n) {\n    let x = #{ parties: n ;\n    x\n}\n")
        .file("p.rhai", "import \"std/kms\" as kms;\nlet v = kms::values(4);\n")
        .args(["run", "p.rhai", "--stdlib-dir", "stdlib"])
        .code(2)
        .run();
    insta::assert_snapshot!(r.stderr_normalized());
}

#[test]
fn a_runtime_error_three_calls_deep() {
    let r = kmsctl()
        .file(
            "stdlib/config.rhai",
            r#"
            import "data" as data;

            fn parse(text) {
                data::from_yaml(text)
            }

            fn load(text) {
                let cfg = parse(text);
                cfg.parties
            }
            "#,
        )
        .file(
            "p.rhai",
            r#"
            import "std/config" as config;

            fn parties() {
                config::load("parties: [1, 2")
            }

            let n = parties();
            "#,
        )
        .args(["run", "p.rhai", "--stdlib-dir", "stdlib"])
        .code(1)
        .run();
    insta::assert_snapshot!(r.stderr_normalized());
}

#[test]
fn an_unknown_native_function_is_caught_before_running() {
    let r = kmsctl()
        .file(
            "p.rhai",
            "import \"log\" as log;\nimport \"fs\" as fs;\nfs::write(\"ran.txt\", \"x\");\nlog::inf(\"hello\");\n",
        )
        .args(["run", "p.rhai"])
        .code(2)
        .run();
    insta::assert_snapshot!(r.stderr_normalized());
    assert!(!r.path().join("ran.txt").exists());
}

#[test]
fn an_unknown_module_lists_what_exists() {
    let r = kmsctl()
        .file("stdlib/kms.rhai", "fn x() {}\n")
        .file("stdlib/nodes.rhai", "fn y() {}\n")
        .file("p.rhai", "import \"std/node\" as x;\nimport \"k9s\" as k;\n")
        .args(["run", "p.rhai", "--stdlib-dir", "stdlib"])
        .code(2)
        .run();
    // The list of native modules grows with the product, and the help wraps with its length;
    // the snapshot is about the shape: the help on one line, the list left out.
    let help = regex::Regex::new(r#"native modules: [^"]*"std/<name>", files as "\./path""#).expect("regex");
    let list = regex::Regex::new(r"native modules: [a-z0-9, ]+;").expect("regex");
    let text = r.stderr_normalized();
    let flat = help.replace(&text, |c: &regex::Captures| {
        let one_line = c[0].split_whitespace().collect::<Vec<_>>().join(" ");
        list.replace(&one_line, "native modules: [list];").into_owned()
    });
    insta::assert_snapshot!(flat);
}

#[test]
fn an_undeclared_parameter_is_caught_before_running() {
    let r = kmsctl()
        .file("p.rhai", "fn params() {[ #{ name: \"num_parties\", type: \"int\", default_value: 4 } ]}\nlet n = param::num_partys;\n")
        .args(["run", "p.rhai"])
        .code(2).run();
    insta::assert_snapshot!(r.stderr_normalized());
}

#[test]
fn runaway_recursion_names_the_limit() {
    let r = kmsctl().file("p.rhai", "fn down(n) { down(n + 1) }\ndown(0);\n").args(["run", "p.rhai"]).code(1).run();
    assert!(r.stderr.contains("the script exceeded the call depth limit of 96"), "{}", r.stderr);
}

#[test]
fn an_endless_loop_names_the_operations_limit() {
    let r = kmsctl().file("p.rhai", "let i = 0;\nloop { i += 1; }\n").args(["run", "p.rhai"]).code(1).run();
    assert!(r.stderr.contains("the script exceeded its limit of 50000000 operations"), "{}", r.stderr);
    assert!(r.stderr.contains("look for a loop that never ends"), "{}", r.stderr);
}

#[test]
fn size_limits_name_the_limit() {
    for (script, want) in [
        ("let s = \"x\";\nloop { s += s; }\n", "Length of string exceeds its size limit of 67108864 bytes"),
        ("let a = [0];\nloop { a += a; }\n", "Size of array/BLOB exceeds its size limit of 1000000 items"),
        ("let m = #{ a: 1 };\nloop { m = #{ x: m, y: m }; }\n", "Size of object map exceeds its size limit of 5000000"),
    ] {
        let r = kmsctl().file("p.rhai", script).args(["run", "p.rhai"]).code(1).run();
        assert!(r.stderr.contains(want), "{}", r.stderr);
    }
}

#[test]
fn the_error_kind_picks_the_exit_code() {
    for (kind, code) in [("timeout", 3), ("unavailable", 4), ("auth", 4), ("failed", 1), ("whatever", 1)] {
        let r = kmsctl()
            .file("p.rhai", &format!("throw #{{ kind: \"{kind}\", message: \"boom\" }};\n"))
            .args(["run", "p.rhai"])
            .code(code)
            .run();
        assert!(r.stderr.contains("boom"));
    }
    kmsctl().file("p.rhai", "throw \"plain\";\n").args(["run", "p.rhai"]).code(1).run();
}

#[test]
fn host_errors_are_catchable_values_with_kind_and_message() {
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "env" as env;
            import "log" as log;
            try {
                env::require("KMSCTL_TEST_SURELY_UNSET");
            } catch (e) {
                log::info(`caught kind=${e.kind} message=${e.message}`);
            }
            "#,
        )
        .args(["run", "p.rhai"])
        .code(0)
        .run();
    assert!(
        r.stderr.contains("caught kind=not_found message=environment variable KMSCTL_TEST_SURELY_UNSET is not set"),
        "{}",
        r.stderr
    );
}

#[test]
fn json_output_reports_the_error_as_an_event() {
    let r = kmsctl()
        .file("p.rhai", "throw #{ kind: \"failed\", message: \"it broke\" };\n")
        .args(["run", "p.rhai", "--output", "json"])
        .code(1)
        .run();
    let ev = r.events();
    let err = ev.iter().find(|e| e["event"] == "error").expect("an error event");
    assert_eq!(err["kind"], "failed");
    assert_eq!(err["message"], "it broke");
    assert!(err["diagnostic"].as_str().unwrap().contains("p.rhai:1:1"));
    let last = ev.last().unwrap();
    assert_eq!((last["event"].as_str(), last["exit_code"].as_i64()), (Some("run_finished"), Some(1)));
}

#[test]
fn playbook_relative_imports_resolve_and_cycles_are_refused() {
    let r = kmsctl()
        .file("pb/lib/a.rhai", "import \"./b\" as b;\nfn f() { b::g() }\n")
        .file("pb/lib/b.rhai", "fn g() { 42 }\n")
        .file("pb/p.rhai", "import \"./lib/a\" as a;\nimport \"log\" as log;\nlog::info(`got ${a::f()}`);\n")
        .args(["run", "pb/p.rhai"])
        .code(0)
        .run();
    assert!(r.stderr.contains("got 42"), "{}", r.stderr);

    let r = kmsctl()
        .file("lib/a.rhai", "import \"./b\" as b;\n")
        .file("lib/b.rhai", "import \"./a\" as a;\n")
        .file("p.rhai", "import \"./lib/a\" as a;\n")
        .args(["run", "p.rhai"])
        .code(2)
        .run();
    assert!(r.stderr.contains("import cycle: lib/a.rhai → lib/b.rhai → lib/a.rhai"), "{}", r.stderr);
}
