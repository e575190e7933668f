//! Options maps of native functions (`kc.apply(m, #{ namespace: "x" })`): unknown keys are
//! refused with a suggestion, and each typed getter names the function and key in its error.

use crate::duration;
use crate::error::usage_err;
use crate::secret::Secret;
use crate::value::{Reveal, display, to_json};
use rhai::{Array, Dynamic, EvalAltResult, Map};
use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::ScriptResult as R;

/// A function's options map.
pub struct Opts<'a> {
    map: &'a Map,
    func: &'a str,
}

impl<'a> Opts<'a> {
    /// Check `map` against the keys `func` accepts.
    pub fn new(map: &'a Map, func: &'a str, allowed: &[&str]) -> R<Self> {
        for k in map.keys() {
            if !allowed.contains(&k.as_str()) {
                let hint = crate::suggest::suggest(k, allowed.iter().copied())
                    .map(|s| format!(" (did you mean '{s}'?)"))
                    .unwrap_or_default();
                return Err(usage_err(format!(
                    "{func}: unknown option '{k}'{hint}; options are {}",
                    allowed.join(", ")
                )));
            }
        }
        Ok(Self { map, func })
    }

    /// A usage error about this function.
    pub fn usage(&self, msg: impl std::fmt::Display) -> Box<EvalAltResult> {
        usage_err(format!("{}: {msg}", self.func))
    }

    /// The raw value (`()` counts as absent).
    pub fn get(&self, k: &str) -> Option<&Dynamic> {
        self.map.get(k).filter(|v| !v.is_unit())
    }

    /// Text: a string, or a number or flag written as text. Secrets are refused (this option
    /// would be shown or put on a command line).
    pub fn str(&self, k: &str) -> R<Option<String>> {
        match self.get(k) {
            None => Ok(None),
            Some(v) if v.is::<Secret>() => Err(self.usage(format!("{k} must not be a secret"))),
            Some(v) if v.is_string() || v.is_int() || v.is_float() || v.is_bool() => Ok(Some(display(v))),
            Some(v) => Err(self.usage(format!("{k} must be a string, got {}", v.type_name()))),
        }
    }

    /// Text that may be secret (a password), exposed for the host to hand on privately.
    pub fn exposed(&self, k: &str) -> R<Option<String>> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => match to_json(v, Reveal::Expose).map_err(|e| self.usage(format!("{k}: {e}")))? {
                serde_json::Value::String(s) => Ok(Some(s)),
                _ => Err(self.usage(format!("{k} must be a string or a secret, got {}", v.type_name()))),
            },
        }
    }

    /// A flag.
    pub fn bool(&self, k: &str, default: bool) -> R<bool> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => v.as_bool().map_err(|t| self.usage(format!("{k} must be true or false, got {t}"))),
        }
    }

    /// An integer.
    pub fn int(&self, k: &str) -> R<Option<i64>> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v.as_int().map(Some).map_err(|t| self.usage(format!("{k} must be an integer, got {t}"))),
        }
    }

    /// A duration (`"5m"`, seconds).
    pub fn duration(&self, k: &str) -> R<Option<Duration>> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => duration::from_dynamic(v).map(Some).map_err(|e| self.usage(format!("{k}: {e}"))),
        }
    }

    /// A string or an array of strings.
    pub fn strings(&self, k: &str) -> R<Vec<String>> {
        match self.get(k) {
            None => Ok(Vec::new()),
            Some(v) if v.is_array() => {
                let a = v.read_lock::<Array>().ok_or_else(|| self.usage(format!("{k} is locked")))?;
                a.iter()
                    .map(|x| {
                        if x.is::<Secret>() {
                            Err(self.usage(format!("{k} must not hold secrets")))
                        } else {
                            Ok(display(x))
                        }
                    })
                    .collect()
            }
            Some(_) => Ok(self.str(k)?.into_iter().collect()),
        }
    }

    /// A map of strings (labels).
    pub fn str_map(&self, k: &str) -> R<BTreeMap<String, String>> {
        match self.get(k) {
            None => Ok(BTreeMap::new()),
            Some(v) => match v.read_lock::<Map>() {
                Some(m) => Ok(m.iter().map(|(k, v)| (k.to_string(), display(v))).collect()),
                None => Err(self.usage(format!("{k} must be a map of strings, got {}", v.type_name()))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused_with_a_suggestion() {
        let mut m = Map::new();
        m.insert("namespce".into(), "x".into());
        let e = Opts::new(&m, "k8s::apply", &["namespace", "labels"]).err().unwrap();
        assert!(
            e.to_string().contains(
                "k8s::apply: unknown option 'namespce' (did you mean 'namespace'?); options are namespace, labels"
            ),
            "{e}"
        );
    }

    #[test]
    fn typed_getters_name_the_function_and_key() {
        let mut m = Map::new();
        m.insert("n".into(), "many".into());
        m.insert("t".into(), "5m".into());
        m.insert("pw".into(), Dynamic::from(Secret::new("hunter2")));
        m.insert("l".into(), Dynamic::from_array(vec!["a".into(), 2_i64.into()]));
        let o = Opts::new(&m, "f", &["n", "t", "pw", "l"]).unwrap();
        assert!(o.int("n").unwrap_err().to_string().contains("f: n must be an integer"));
        assert_eq!(o.duration("t").unwrap(), Some(Duration::from_secs(300)));
        assert!(o.str("pw").unwrap_err().to_string().contains("f: pw must not be a secret"));
        assert_eq!(o.exposed("pw").unwrap().as_deref(), Some("hunter2"));
        assert_eq!(o.strings("l").unwrap(), ["a", "2"]);
        assert!(o.bool("absent", true).unwrap());
    }
}
