//! Layering parameter values: default < environment < values files < command line.

use super::{ParamError, ParamSpec, ParamType, ParamValue, RunArgs, Source};
use rhai::Dynamic;
use std::collections::BTreeMap;

/// The validated parameters of a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Resolved {
    /// Value (or `None` when unset and optional) and where it came from, by name.
    pub values: BTreeMap<String, (Option<ParamValue>, Source)>,
}

impl Resolved {
    /// The value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&ParamValue> {
        self.values.get(name).and_then(|(v, _)| v.as_ref())
    }
}

/// Resolve every parameter. `env` looks up environment variables; `files` are the parsed
/// values files (path, content) in command-line order. Reports every problem at once.
pub(crate) fn resolve(
    specs: &[ParamSpec],
    args: &RunArgs,
    env: &dyn Fn(&str) -> Option<String>,
    files: &[(String, Dynamic)],
) -> Result<Resolved, Vec<ParamError>> {
    let mut errors = Vec::new();
    let mut out = Resolved::default();
    for spec in specs {
        let mut value = spec.default.clone().map(|v| (v, Source::Default));
        // Environment: the compatibility names first, so KMSCTL_<NAME> wins over them.
        for var in spec.env.iter().rev().chain(std::iter::once(&spec.env_var())) {
            if let Some(text) = env(var).filter(|t| !t.is_empty()) {
                match spec.parse_text(&text) {
                    Ok(v) => value = Some((v, Source::Env(var.clone()))),
                    Err(e) => errors.push(ParamError::new(format!("{e} (from ${var})"), None)),
                }
            }
        }
        for (path, doc) in files {
            let Some(map) = doc.read_lock::<rhai::Map>() else {
                continue;
            };
            let hit = map.iter().find(|(k, _)| k.replace('-', "_") == spec.name);
            if let Some((_, d)) = hit {
                match spec.parse_data(d) {
                    Ok(v) => value = Some((v, Source::ValuesFile(path.clone()))),
                    Err(e) => errors.push(ParamError::new(format!("{e} (in {path})"), None)),
                }
            }
        }
        let mut list_acc: Option<ParamValue> = None;
        for raw in args.params.iter().filter(|r| r.name == spec.name) {
            match spec.parse_text(&raw.text) {
                // Repeated list flags accumulate.
                Ok(v) => {
                    let v = match (list_acc.take(), v) {
                        (Some(ParamValue::List(mut a)), ParamValue::List(b)) => {
                            a.extend(b);
                            ParamValue::List(a)
                        }
                        (Some(ParamValue::IntList(mut a)), ParamValue::IntList(b)) => {
                            a.extend(b);
                            ParamValue::IntList(a)
                        }
                        (_, v) => v,
                    };
                    if matches!(spec.ty, ParamType::List | ParamType::IntList) {
                        list_acc = Some(v.clone());
                    }
                    value = Some((v, Source::CommandLine));
                }
                Err(e) => errors.push(ParamError::new(e, Some(raw.arg))),
            }
        }
        match value {
            Some((v, src)) => {
                out.values.insert(spec.name.clone(), (Some(v), src));
            }
            None if spec.required => {
                let doc = if spec.doc.is_empty() { String::new() } else { format!(": {}", spec.doc) };
                errors.push(
                    ParamError::new(
                        format!("missing required parameter {} ({}{doc})", spec.flag(), spec.ty.describe()),
                        None,
                    )
                    .help(format!(
                        "pass {} VALUE, --set {}=VALUE, a values file, or ${}",
                        spec.flag(),
                        spec.name,
                        spec.env_var()
                    )),
                );
            }
            None => {
                out.values.insert(spec.name.clone(), (None, Source::Default));
            }
        }
    }
    for (path, doc) in files {
        match doc.read_lock::<rhai::Map>() {
            Some(map) => {
                for k in map.keys() {
                    if !specs.iter().any(|s| s.name == k.replace('-', "_")) {
                        let names = specs.iter().map(|s| s.name.as_str());
                        let hint = crate::suggest::suggest(&k.replace('-', "_"), names)
                            .map(|s| format!(" (did you mean '{s}'?)"))
                            .unwrap_or_default();
                        errors.push(ParamError::new(format!("{path}: unknown parameter '{k}'{hint}"), None));
                    }
                }
            }
            None => {
                errors.push(ParamError::new(format!("{path}: a values file must be a map of parameter: value"), None))
            }
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}
