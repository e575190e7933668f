//! `data`: YAML, JSON, base64, deep merge and path lookup.

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
    fn yaml_streams_skip_empty_documents() {
        let docs = from_yaml_all("a: 1\n---\n---\nb: [1, 2]\n").unwrap();
        assert_eq!(docs, vec![json!({"a": 1}), json!({"b": [1, 2]})]);
        assert!(from_yaml("a: 1\n---\nb: 2\n").unwrap_err().contains("from_yaml_all"));
        assert!(from_yaml("a: [1\n").is_err());
    }
}
