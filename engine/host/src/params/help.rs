//! `kmsctl run PLAYBOOK --help`.

use super::{ParamSpec, ParamType, ParamValue, RESERVED};
use std::fmt::Write;

fn show(v: &ParamValue) -> String {
    match v {
        ParamValue::String(s) if s.is_empty() => "\"\"".into(),
        ParamValue::String(s) => s.clone(),
        ParamValue::Int(i) => i.to_string(),
        ParamValue::Bool(b) => b.to_string(),
        ParamValue::Duration(_, t) => t.clone(),
        ParamValue::List(l) => l.join(","),
        ParamValue::IntList(l) => l.iter().map(i64::to_string).collect::<Vec<_>>().join(","),
    }
}

/// The help text for a playbook: its doc comment, parameters and the run options.
pub(crate) fn render_help(playbook: &str, doc: &str, specs: &[ParamSpec]) -> String {
    let mut o = String::new();
    let doc = doc.trim();
    if !doc.is_empty() {
        let _ = writeln!(o, "{doc}\n");
    }
    let _ = writeln!(o, "Usage: kmsctl run {playbook} [PARAMETERS] [OPTIONS]\n");
    if specs.is_empty() {
        let _ = writeln!(o, "This playbook declares no parameters.\n");
    } else {
        let _ = writeln!(o, "Parameters:");
        for s in specs {
            let head = match &s.ty {
                ParamType::Bool => {
                    let mut h = format!("{} / --no-{}", s.flag(), super::kebab(&s.name));
                    for off in &s.off_aliases {
                        h.push_str(&format!(" / --{off}"));
                    }
                    h
                }
                t => format!("{} <{}>", s.flag(), t.metavar()),
            };
            let _ = writeln!(o, "  {head}");
            let mut notes = Vec::new();
            if s.required {
                notes.push("required".to_string());
            }
            if let Some(d) = &s.default
                && !(s.ty == ParamType::Bool && *d == ParamValue::Bool(false))
            {
                notes.push(format!("default: {}", if s.secret { "***".into() } else { show(d) }));
            }
            if let (Some(lo), Some(hi)) = (s.min, s.max) {
                notes.push(format!("{lo}..={hi}"));
            } else if let Some(lo) = s.min {
                notes.push(format!(">= {lo}"));
            } else if let Some(hi) = s.max {
                notes.push(format!("<= {hi}"));
            }
            if s.secret {
                notes.push("secret".into());
            }
            let mut envs = vec![s.env_var()];
            envs.extend(s.env.iter().cloned());
            notes.push(format!("env: {}", envs.join(", ")));
            for a in &s.aliases {
                notes.push(format!("alias: --{a}"));
            }
            let doc = if s.doc.is_empty() { String::new() } else { format!("{} ", s.doc) };
            let _ = writeln!(o, "        {doc}[{}]", notes.join("] ["));
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "Options:");
    for r in RESERVED {
        let short = r.short.map(|c| format!("-{c}, ")).unwrap_or_default();
        let head = match r.value {
            Some(v) => format!("{short}--{} <{v}>", r.name),
            None => format!("{short}--{}", r.name),
        };
        let _ = writeln!(o, "  {head:<28} {}", r.doc);
    }
    let _ = writeln!(o, "\nLater sources win: default < environment < --values files < --set and flags.");
    o
}
