//! The adapter against what the README promises: every `k8s` function and `Cluster` method it
//! documents exists in every documented form (with and without the optional arguments).

use std::collections::BTreeSet;

use kmsctl_host::{CancelScope, Events, Redactor};
use rhai::{Dynamic, Engine, EvalAltResult, Scope};

use super::*;

/// The README's paragraph on the `k8s` module.
fn readme_paragraph() -> &'static str {
    let readme = include_str!("../../../../README.md");
    let start = readme.find("**`k8s`** —").expect("the README documents the k8s module");
    let rest = &readme[start..];
    &rest[..rest.find("\n\n").unwrap_or(rest.len())]
}

/// Every `` `name(args)` `` of the paragraph, with its argument lists: `get(kind, name[, opts])`
/// gives `get` with `[kind, name]` and `[kind, name, opts]`.
fn documented_forms(text: &str) -> Vec<(String, Vec<Vec<String>>)> {
    let mut out = Vec::new();
    for span in text.split('`').skip(1).step_by(2) {
        let Some(open) = span.find('(') else { continue };
        let name = &span[..open];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let Some(close) = span.rfind(')') else { continue };
        out.push((name.to_string(), argument_lists(&span[open + 1..close])));
    }
    out
}

/// `a, b[, c[, d]]` → `[[a, b], [a, b, c], [a, b, c, d]]`. A `[` that starts the list or is
/// followed by `,` opens an optional tail; any other bracket is part of an argument (`[cmd...]`).
fn argument_lists(args: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = args.chars().collect();
    let (mut lists, mut current, mut arg) = (Vec::new(), Vec::new(), String::new());
    let mut depth = 0;
    let push = |arg: &mut String, current: &mut Vec<String>| {
        let a = arg.trim().trim_start_matches(',').trim().to_string();
        if !a.is_empty() {
            current.push(a);
        }
        arg.clear();
    };
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '[' if depth == 0 && (i == 0 || chars.get(i + 1) == Some(&',')) => {
                push(&mut arg, &mut current);
                lists.push(current.clone());
            }
            ']' if depth == 0 => push(&mut arg, &mut current),
            ',' if depth == 0 => push(&mut arg, &mut current),
            '(' | '[' | '{' => {
                depth += 1;
                arg.push(c);
            }
            ')' | ']' | '}' => {
                depth -= 1;
                arg.push(c);
            }
            c => arg.push(c),
        }
    }
    push(&mut arg, &mut current);
    lists.push(current);
    lists
}

/// A value of the kind the README's argument name stands for.
fn sample(arg: &str) -> &'static str {
    match arg {
        a if a.starts_with("#{") => "#{}",
        "opts" => "#{}",
        "kind" => "\"ConfigMap\"",
        "name" | "pod" | "ns" => "\"x\"",
        "target" => "\"svc/x\"",
        "targets" => "#{ kind: \"ConfigMap\", name: \"x\", namespace: \"x\" }",
        "path" => "\"no-such-file.yaml\"",
        "patterns" => "[\"*\"]",
        "yaml | map | array" => "\"\"",
        "data" | "patch" => "#{}",
        "[cmd...]" => "[\"true\"]",
        other => panic!("the README names an argument `{other}`: add a sample value for it here"),
    }
}

/// A context on a runtime of its own (multi-threaded: `block_on` through a handle drives no I/O
/// on a current-thread one); the caller keeps it entered while it builds clients.
fn ctx() -> (tokio::runtime::Runtime, HostCtx) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let events = Events::new(Vec::new(), Redactor::new());
    // What the calls write (a sampler's file) goes to a temp dir, not into the source tree.
    let artifacts = std::env::temp_dir().join(format!("kmsctl-k8s-module-tests-{}", std::process::id()));
    let settings = kmsctl_host::Settings { artifacts: Some(artifacts), ..Default::default() };
    let ctx = HostCtx::new(rt.handle().clone(), CancelScope::root(), events, settings);
    (rt, ctx)
}

#[test]
fn the_readme_parses_into_forms() {
    assert_eq!(argument_lists("kind, name[, opts]"), [vec!["kind", "name"], vec!["kind", "name", "opts"]]);
    assert_eq!(argument_lists("[opts]"), [vec![], vec!["opts"]]);
    assert_eq!(
        argument_lists("pod, [cmd...][, #{stdin}]"),
        [vec!["pod", "[cmd...]"], vec!["pod", "[cmd...]", "#{stdin}"]]
    );
    assert_eq!(argument_lists("target, #{port[, local_port]}"), [vec!["target", "#{port[, local_port]}"]]);
    assert_eq!(argument_lists(""), [Vec::<String>::new()]);
    let names: BTreeSet<String> = documented_forms(readme_paragraph()).into_iter().map(|(n, _)| n).collect();
    for n in ["k8s::connect", "list", "events", "delete", "logs", "exec", "patch", "wait", "port_forward"] {
        assert!(names.contains(n), "{n} is not documented: {names:?}");
    }
}

/// Every documented method form dispatches: calls reach the (unreachable) cluster or fail on
/// their arguments, never with "function not found".
#[test]
fn every_documented_form_is_registered() {
    let (rt, ctx) = ctx();
    let _entered = rt.enter();
    let module = K8s.build(&ctx);
    let signatures: Vec<String> = module.functions.gen_fn_signatures_with_mapper(Into::into).collect();
    let mut engine = Engine::new();
    engine.register_static_module("k8s", module.functions.into());
    engine.register_global_module(module.methods.into());
    let mut scope = Scope::new();
    scope.push("kc", ClusterHandle::new(Cluster::unreachable(), ctx.clone()));

    let mut missing = Vec::new();
    for (name, lists) in documented_forms(readme_paragraph()) {
        for args in lists {
            if let Some(func) = name.strip_prefix("k8s::") {
                // Connecting would read the developer's kubeconfig: check the signature instead.
                let arity = |s: &String| {
                    s.split_once('(')
                        .map(|(_, p)| p.split(')').next().unwrap_or("").split(", ").filter(|p| !p.is_empty()).count())
                };
                if !signatures.iter().any(|s| s.starts_with(&format!("{func}(")) && arity(s) == Some(args.len())) {
                    missing.push(format!("{name}({})", args.join(", ")));
                }
                continue;
            }
            let call = format!("kc.{name}({})", args.iter().map(|a| sample(a)).collect::<Vec<_>>().join(", "));
            // Success, or a host error (a catchable `#{kind, message}`) from inside the call.
            match engine.eval_with_scope::<Dynamic>(&mut scope, &call) {
                Ok(_) => {}
                Err(e) if matches!(e.unwrap_inner(), EvalAltResult::ErrorRuntime(v, _) if v.is_map()) => {}
                Err(e) => missing.push(format!("{call}: {e}")),
            }
        }
    }
    assert!(missing.is_empty(), "documented in the README but not registered:\n{}", missing.join("\n"));
}

/// Both forms of a method share one body: the short one is the long one with `#{}`.
#[test]
fn short_forms_behave_as_empty_options() {
    let (rt, ctx) = ctx();
    let _entered = rt.enter();
    let mut engine = Engine::new();
    let module = K8s.build(&ctx);
    engine.register_static_module("k8s", module.functions.into());
    engine.register_global_module(module.methods.into());
    let mut scope = Scope::new();
    scope.push("kc", ClusterHandle::new(Cluster::unreachable(), ctx.clone()));
    let message = |script: &str| -> String {
        let e = engine.eval_with_scope::<Dynamic>(&mut scope.clone(), script).expect_err(script);
        kmsctl_host::short_message(&e)
    };
    assert_eq!(message(r#"kc.list("Pod")"#), message(r#"kc.list("Pod", #{})"#));
    assert_eq!(message(r#"kc.events("Pod", "x")"#), message(r#"kc.events("Pod", "x", #{})"#));
    assert!(message(r#"kc.logs("p", #{ tial: 1 })"#).contains("unknown option 'tial' (did you mean 'tail'?)"));
}
