//! The adapter against what the README promises: every `helm` function its paragraph names is
//! registered, in every documented form (with and without the optional arguments), and every
//! registered function is named there.

use std::collections::BTreeSet;

use kmsctl_host::{CancelScope, Events, Redactor};

use super::*;

/// The README's paragraph on the `helm` module.
fn readme_paragraph() -> &'static str {
    let readme = include_str!("../../../../README.md");
    let start = readme.find("**`helm`** runs").expect("the README documents the helm module");
    let rest = &readme[start..];
    &rest[..rest.find("\n\n").unwrap_or(rest.len())]
}

/// Every `` `name(args)` `` of the paragraph (`helm::` dropped), with its argument counts:
/// `dependency_build(chart[, opts])` gives 1 and 2.
fn documented_forms(text: &str) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    for span in text.split('`').skip(1).step_by(2) {
        let Some(open) = span.find('(') else { continue };
        let name = span[..open].trim_start_matches("helm::");
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let Some(close) = span.rfind(')') else { continue };
        let args = &span[open + 1..close];
        let required = args.split('[').next().unwrap_or("").split(',').filter(|a| !a.trim().is_empty()).count();
        let optional = args.matches("[,").count() + usize::from(args.starts_with('['));
        out.push((name.to_string(), (required..=required + optional).collect()));
    }
    out
}

/// Every `` `name` `` of the paragraph that could be a function.
fn documented_names(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(|s| s.split('(').next().unwrap_or("").trim_start_matches("helm::").to_string())
        .collect()
}

fn registered() -> Vec<(String, usize)> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ctx = HostCtx::new(
        rt.handle().clone(),
        CancelScope::root(),
        Events::new(Vec::new(), Redactor::new()),
        Default::default(),
    );
    let module = Helm.build(&ctx);
    module
        .functions
        .gen_fn_signatures_with_mapper(Into::into)
        .filter_map(|s: String| {
            let (name, rest) = s.split_once('(')?;
            let params = rest.split(')').next().unwrap_or("");
            Some((name.to_string(), params.split(", ").filter(|p| !p.is_empty()).count()))
        })
        .collect()
}

#[test]
fn the_readme_parses_into_forms() {
    let forms = documented_forms("`dependency_build(chart[, opts])`, `rollback(kc, release, revision)`, `[#{name}]`");
    assert_eq!(forms, [("dependency_build".to_string(), vec![1, 2]), ("rollback".to_string(), vec![3])]);
    let names: BTreeSet<String> = documented_forms(readme_paragraph()).into_iter().map(|(n, _)| n).collect();
    for n in ["upgrade", "rollback", "dependency_build", "dependency_update"] {
        assert!(names.contains(n), "{n} is not documented: {names:?}");
    }
}

#[test]
fn every_documented_form_is_registered() {
    let registered = registered();
    let mut missing = Vec::new();
    for (name, arities) in documented_forms(readme_paragraph()) {
        for n in arities {
            if !registered.iter().any(|(r, a)| *r == name && *a == n) {
                missing.push(format!("{name} with {n} arguments"));
            }
        }
    }
    assert!(missing.is_empty(), "documented in the README but not registered: {missing:?}");
}

#[test]
fn every_registered_function_is_documented() {
    let names = documented_names(readme_paragraph());
    let undocumented: BTreeSet<String> =
        registered().into_iter().map(|(n, _)| n).filter(|n| !names.contains(n)).collect();
    assert!(undocumented.is_empty(), "registered but not in the README's helm paragraph: {undocumented:?}");
}
