//! Shell completion of a playbook's own parameters: `kmsctl run playbooks/deploy.rhai --<TAB>`.
//! The shell scripts `kmsctl completions` prints ask `kmsctl complete-params PLAYBOOK`, which
//! compiles the playbook (nothing runs) and answers from its declared parameters.

use super::{ParamSpec, ParamType, RESERVED, kebab};

/// What to offer after `prev` (the word before the one being completed): an enum parameter's
/// values after its flag; nothing after another flag that takes a value (the shell then
/// completes files); otherwise every flag. Each as (word, description).
pub(crate) fn candidates(specs: &[ParamSpec], prev: Option<&str>) -> Vec<(String, String)> {
    if let Some(flag) = prev.and_then(|p| p.strip_prefix("--")) {
        if let Some(s) = specs.iter().find(|s| s.flag_names().any(|n| n == flag)) {
            match &s.ty {
                ParamType::Enum(v) => return v.iter().map(|x| (x.clone(), s.doc.clone())).collect(),
                ParamType::Bool => {}
                _ => return Vec::new(),
            }
        } else if RESERVED.iter().any(|o| o.name == flag && o.value.is_some()) {
            return Vec::new();
        }
    }
    let mut out = Vec::new();
    for s in specs {
        let doc = if s.doc.is_empty() { s.ty.describe() } else { s.doc.clone() };
        for n in s.flag_names() {
            out.push((format!("--{n}"), doc.clone()));
        }
        if s.ty == ParamType::Bool {
            out.push((format!("--no-{}", kebab(&s.name)), format!("not: {doc}")));
            for off in &s.off_aliases {
                out.push((format!("--{off}"), format!("not: {doc}")));
            }
        }
    }
    for o in RESERVED {
        out.push((format!("--{}", o.name), o.doc.to_string()));
    }
    out
}
