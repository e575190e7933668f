//! `data`: YAML, JSON, TOML, base64, deep merge and path lookup.

use super::{BuiltModule, ModuleBuilder, NativeModule};
use crate::ctx::HostCtx;
use crate::error::{ErrorKind, Failure, to_rhai, usage_err};
use crate::secret::Secret;
use crate::value::{Reveal, from_json, to_json};
use base64::Engine as _;
use rhai::{Array, Dynamic, EvalAltResult, Map};

/// The `data` module.
pub(crate) struct Data;

use crate::error::ScriptResult as R;

fn parse_err(what: &str, e: impl std::fmt::Display) -> Box<EvalAltResult> {
    to_rhai(&Failure::new(ErrorKind::Parse, format!("{what}: {e}")))
}

/// Parse YAML with one document.
pub(crate) fn from_yaml(text: &str) -> Result<serde_json::Value, String> {
    let mut docs = from_yaml_all(text)?;
    match docs.len() {
        0 => Ok(serde_json::Value::Null),
        1 => Ok(docs.remove(0)),
        n => Err(format!("expected one YAML document, found {n} (use from_yaml_all)")),
    }
}

/// Parse every document of a YAML stream (empty documents are skipped).
pub fn from_yaml_all(text: &str) -> Result<Vec<serde_json::Value>, String> {
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(text).map_err(|e| e.to_string())?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Render JSON as YAML.
pub(crate) fn to_yaml(v: &serde_json::Value) -> Result<String, String> {
    serde_saphyr::to_string(v).map_err(|e| e.to_string())
}

/// Parse a TOML document (a table); dates and times become their RFC 3339 text.
pub(crate) fn from_toml(text: &str) -> Result<serde_json::Value, String> {
    fn conv(v: toml::Value) -> serde_json::Value {
        match v {
            toml::Value::String(s) => s.into(),
            toml::Value::Integer(i) => i.into(),
            toml::Value::Float(f) => serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into),
            toml::Value::Boolean(b) => b.into(),
            toml::Value::Datetime(d) => d.to_string().into(),
            toml::Value::Array(a) => a.into_iter().map(conv).collect(),
            toml::Value::Table(t) => t.into_iter().map(|(k, v)| (k, conv(v))).collect(),
        }
    }
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string().trim_end().to_string())?;
    Ok(conv(toml::Value::Table(table)))
}

/// Render a map as TOML (TOML has no null: a `()` anywhere is refused, naming its key).
pub(crate) fn to_toml(v: &serde_json::Value) -> Result<String, String> {
    if !v.is_object() {
        return Err("to_toml: a TOML document is a map".into());
    }
    fn check(v: &serde_json::Value, path: &str) -> Result<(), String> {
        match v {
            serde_json::Value::Null => Err(format!("to_toml: {path} is () and TOML has no null")),
            serde_json::Value::Array(a) => {
                a.iter().enumerate().try_for_each(|(i, x)| check(x, &format!("{path}[{i}]")))
            }
            serde_json::Value::Object(m) => m
                .iter()
                .try_for_each(|(k, x)| check(x, &if path.is_empty() { k.clone() } else { format!("{path}.{k}") })),
            _ => Ok(()),
        }
    }
    check(v, "")?;
    toml::to_string(v).map_err(|e| format!("to_toml: {e}"))
}

/// Helm's merge on script values, leaving every leaf as it is (a secret stays a secret; a JSON
/// round trip would mask it).
pub(crate) fn merge_values(base: Dynamic, over: Dynamic) -> Dynamic {
    if !(base.is_map() && over.is_map()) {
        return over;
    }
    let mut b = base.cast::<Map>();
    for (k, v) in over.cast::<Map>() {
        if v.is_unit() {
            b.remove(&k);
        } else {
            let merged = match b.remove(&k) {
                Some(old) => merge_values(old, v),
                None => v,
            };
            b.insert(k, merged);
        }
    }
    Dynamic::from_map(b)
}

/// Look up `a.b.0.c` in a value.
pub(crate) fn lookup<'a>(v: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.').filter(|s| !s.is_empty()).try_fold(v, |cur, key| match cur {
        serde_json::Value::Object(m) => m.get(key),
        serde_json::Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn json(v: &Dynamic) -> R<serde_json::Value> {
    to_json(v, Reveal::Mask).map_err(usage_err)
}

impl NativeModule for Data {
    fn name(&self) -> &'static str {
        "data"
    }
    fn build(&self, ctx: &HostCtx) -> BuiltModule {
        let mut b = ModuleBuilder::new(
            ctx,
            self.name(),
            "YAML, JSON, base64, deep merge and path lookup. Secrets inside values render as \"***\".",
        );
        b.func("from_yaml", &["text: string", "any"], "Parse a YAML document.", |t: &str| -> R<Dynamic> {
            from_yaml(t).map(from_json).map_err(|e| parse_err("invalid YAML", e))
        })
        .reads();
        b.func(
            "from_yaml_all",
            &["text: string", "array"],
            "Parse every document of a YAML stream.",
            |t: &str| -> R<Array> {
                from_yaml_all(t)
                    .map(|d| d.into_iter().map(from_json).collect())
                    .map_err(|e| parse_err("invalid YAML", e))
            },
        )
        .reads();
        b.func("to_yaml", &["value: any", "string"], "Render a value as YAML.", |v: Dynamic| -> R<String> {
            to_yaml(&json(&v)?).map_err(usage_err)
        })
        .reads();
        b.func(
            "from_toml",
            &["text: string", "map"],
            "Parse a TOML document (dates as RFC 3339 text).",
            |t: &str| -> R<Dynamic> { from_toml(t).map(from_json).map_err(|e| parse_err("invalid TOML", e)) },
        )
        .reads();
        b.func(
            "to_toml",
            &["value: map", "string"],
            "Render a map as TOML (no () values: TOML has no null).",
            |v: Dynamic| -> R<String> { to_toml(&json(&v)?).map_err(usage_err) },
        )
        .reads();
        b.func(
            "matches",
            &["text: string", "pattern: string", "bool"],
            "Does a regular expression (Rust `regex` syntax, unanchored) match somewhere in the text?",
            |t: &str, p: &str| -> R<bool> {
                let re =
                    regex::Regex::new(p).map_err(|e| usage_err(format!("data::matches: bad pattern {p:?}: {e}")))?;
                Ok(re.is_match(t))
            },
        )
        .reads();
        b.func("from_json", &["text: string", "any"], "Parse JSON.", |t: &str| -> R<Dynamic> {
            serde_json::from_str(t).map(from_json).map_err(|e| parse_err("invalid JSON", e))
        })
        .reads();
        b.func("to_json", &["value: any", "string"], "Render a value as compact JSON.", |v: Dynamic| -> R<String> {
            Ok(json(&v)?.to_string())
        })
        .reads();
        b.func(
            "to_json_pretty",
            &["value: any", "string"],
            "Render a value as indented JSON.",
            |v: Dynamic| -> R<String> {
                serde_json::to_string_pretty(&json(&v)?).map_err(|e| usage_err(e.to_string()))
            },
        )
        .reads();
        b.func("base64_encode", &["text: string", "string"], "Base64-encode text.", |t: &str| {
            base64::engine::general_purpose::STANDARD.encode(t)
        })
        .reads();
        let c = ctx.clone();
        b.func(
            "base64_encode",
            &["text: Secret", "Secret"],
            "Base64-encode a secret: the result is a secret too.",
            move |t: Secret| c.secret(base64::engine::general_purpose::STANDARD.encode(t.expose())),
        )
        .reads();
        b.func(
            "base64_decode",
            &["text: string", "string"],
            "Decode base64 to text (UTF-8).",
            |t: &str| -> R<String> {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(t.trim())
                    .map_err(|e| parse_err("invalid base64", e))?;
                String::from_utf8(bytes)
                    .map_err(|_| parse_err("invalid base64", "the decoded bytes are not UTF-8 text"))
            },
        )
        .reads();
        b.func(
            "merge",
            &["base: map", "override: map", "map"],
            "Deep-merge `override` into `base` (maps merge, other values replace, `()` removes a key).",
            |a: Dynamic, o: Dynamic| -> Dynamic { merge_values(a, o) },
        )
        .reads();
        b.func(
            "get",
            &["value: any", "path: string", "any"],
            "The value at a dotted path (`status.conditions.0.type`), or `()`.",
            |v: Dynamic, p: &str| -> R<Dynamic> {
                Ok(lookup(&json(&v)?, p).cloned().map(from_json).unwrap_or(Dynamic::UNIT))
            },
        )
        .reads();
        b.func(
            "get",
            &["value: any", "path: string", "default: any", "any"],
            "The value at a dotted path, or `default` when missing.",
            |v: Dynamic, p: &str, d: Dynamic| -> R<Dynamic> {
                Ok(lookup(&json(&v)?, p).cloned().map(from_json).unwrap_or(d))
            },
        )
        .reads();
        b.func("keys_sorted", &["value: map", "array"], "The keys of a map, sorted.", |m: Map| -> Array {
            m.keys().map(|k| Dynamic::from(k.to_string())).collect()
        })
        .reads();
        b.func(
            "closest",
            &["word: string", "candidates: array", "string"],
            "The candidate closest to `word` if one is close enough to suggest (did-you-mean), else `()`.",
            |w: &str, c: Array| -> Dynamic {
                let names: Vec<String> = c.iter().map(crate::value::display).collect();
                crate::suggest::suggest(w, names.iter().map(String::as_str))
                    .map(|s| Dynamic::from(s.to_string()))
                    .unwrap_or(Dynamic::UNIT)
            },
        )
        .reads();
        b.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_follows_helm_rules() {
        let base = from_json(json!({"a": {"b": 1, "c": [1, 2]}, "keep": true, "drop": 1}));
        let merged = merge_values(base, from_json(json!({"a": {"b": 2, "c": [3]}, "drop": null, "new": "x"})));
        let out = to_json(&merged, Reveal::Mask).unwrap();
        assert_eq!(out, json!({"a": {"b": 2, "c": [3]}, "keep": true, "new": "x"}));
    }

    #[test]
    fn merge_keeps_secrets_secret() {
        let mut over = Map::new();
        over.insert("url".into(), Dynamic::from(Secret::new("https://write?token=planted")));
        let merged = merge_values(from_json(json!({"url": "", "user": "u"})), Dynamic::from_map(over));
        let m = merged.cast::<Map>();
        assert!(m["url"].is::<Secret>(), "still a secret");
        assert_eq!(m["url"].clone().cast::<Secret>().expose(), "https://write?token=planted");
    }

    #[test]
    fn lookup_walks_maps_and_arrays() {
        let v = json!({"status": {"conditions": [{"type": "Ready"}]}});
        assert_eq!(lookup(&v, "status.conditions.0.type"), Some(&json!("Ready")));
        assert_eq!(lookup(&v, "status.nope"), None);
    }

    #[test]
    fn toml_round_trips_and_names_what_it_cannot_hold() {
        let text = "name = \"perf\"\nwhen = 2026-12-01T00:00:00Z\n\n[[scenario]]\nop = \"decrypt\"\nparallel = 8\nratio = 0.5\n";
        let v = from_toml(text).unwrap();
        assert_eq!(
            v,
            json!({"name": "perf", "when": "2026-12-01T00:00:00Z", "scenario": [{"op": "decrypt", "parallel": 8, "ratio": 0.5}]})
        );
        let back = to_toml(&json!({"name": "perf", "scenario": [{"op": "decrypt", "parallel": 8}]})).unwrap();
        assert_eq!(from_toml(&back).unwrap(), json!({"name": "perf", "scenario": [{"op": "decrypt", "parallel": 8}]}));
        assert_eq!(to_toml(&json!({"a": {"b": [1, null]}})).unwrap_err(), "to_toml: a.b[1] is () and TOML has no null");
        assert!(to_toml(&json!([1])).unwrap_err().contains("is a map"));
        let bad = from_toml("a = [1,\n").unwrap_err();
        assert!(bad.contains("line 1") || bad.contains("1:"), "{bad}");
    }

    #[test]
    fn yaml_streams_skip_empty_documents() {
        let docs = from_yaml_all("a: 1\n---\n---\nb: [1, 2]\n").unwrap();
        assert_eq!(docs, vec![json!({"a": 1}), json!({"b": [1, 2]})]);
        assert!(from_yaml("a: 1\n---\nb: 2\n").unwrap_err().contains("from_yaml_all"));
        assert!(from_yaml("a: [1\n").is_err());
    }
}

/// Bad input (issue #12): Helm's merge rules hold for any values, and TOML and YAML text
/// parse or are refused, never panic.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::from),
            "[a-z]{0,6}".prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            proptest::collection::vec(any::<i64>().prop_map(Value::from), 0..3).prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            proptest::collection::btree_map("[a-c]", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect()))
        })
    }

    fn map() -> impl Strategy<Value = Value> {
        proptest::collection::btree_map("[a-c]", value(), 0..4).prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    fn merged(a: &Value, b: &Value) -> Value {
        crate::value::to_json(&merge_values(from_json(a.clone()), from_json(b.clone())), Reveal::Mask).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn merging_follows_helms_rules(a in map(), b in map()) {
            prop_assert_eq!(&merged(&a, &serde_json::json!({})), &a);
            prop_assert_eq!(&merged(&a, &a), &a);
            let m = merged(&a, &b);
            for (k, bv) in b.as_object().unwrap() {
                let av = a.get(k);
                match (av, bv) {
                    (Some(Value::Object(_)), Value::Object(_)) => prop_assert!(m[k].is_object()),
                    _ => prop_assert_eq!(&m[k], bv, "{} comes from the override", k),
                }
            }
            for (k, av) in a.as_object().unwrap() {
                if b.get(k).is_none() { prop_assert_eq!(&m[k], av, "{} is kept", k); }
            }
        }

        #[test]
        fn toml_and_yaml_text_parse_or_are_refused(text in "[ -~\n]{0,64}") {
            let _ = from_toml(&text);
            let _ = from_yaml_all(&text);
        }

        #[test]
        fn maps_round_trip_through_toml(m in map()) {
            let text = to_toml(&m).unwrap();
            prop_assert_eq!(from_toml(&text).unwrap(), m);
        }
    }
}
