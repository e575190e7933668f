//! Script values to and from JSON, with secrets masked unless the caller asks to expose them.

use crate::secret::{MASK, Secret};
use rhai::{Array, Dynamic, Map};
use serde_json::Value;

/// Whether [`to_json`] reveals secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reveal {
    /// Secrets become `"***"` (output, logs, plans).
    Mask,
    /// Secrets become their value (a 0600 values file, an API request body).
    Expose,
}

/// Convert a script value to JSON.
pub fn to_json(d: &Dynamic, reveal: Reveal) -> Result<Value, String> {
    if d.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = d.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = d.as_int() {
        return Ok(Value::from(i));
    }
    if let Ok(f) = d.as_float() {
        return serde_json::Number::from_f64(f).map(Value::Number).ok_or_else(|| format!("{f} is not a JSON number"));
    }
    if d.is_string() {
        return Ok(Value::String(d.clone().into_string().unwrap_or_default()));
    }
    if let Ok(c) = d.as_char() {
        return Ok(Value::String(c.to_string()));
    }
    if let Some(s) = d.clone().try_cast::<Secret>() {
        return Ok(Value::String(match reveal {
            Reveal::Mask => MASK.to_string(),
            Reveal::Expose => s.expose().to_string(),
        }));
    }
    if d.is_array() {
        let a = d.read_lock::<Array>().ok_or("array is locked")?;
        return a.iter().map(|x| to_json(x, reveal)).collect::<Result<Vec<_>, _>>().map(Value::Array);
    }
    if d.is_map() {
        let m = d.read_lock::<Map>().ok_or("map is locked")?;
        let mut o = serde_json::Map::new();
        for (k, v) in m.iter() {
            o.insert(k.to_string(), to_json(v, reveal)?);
        }
        return Ok(Value::Object(o));
    }
    if d.is_blob() {
        let b = d.read_lock::<rhai::Blob>().ok_or("blob is locked")?;
        return Ok(Value::Array(b.iter().map(|x| Value::from(*x)).collect()));
    }
    Err(format!("a {} cannot be turned into data", d.type_name()))
}

/// Convert JSON to a script value. Integers that fit become `int`, other numbers `float`.
pub fn from_json(v: Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => b.into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().unwrap_or(f64::NAN).into(),
        },
        Value::String(s) => s.into(),
        Value::Array(a) => Dynamic::from_array(a.into_iter().map(from_json).collect()),
        Value::Object(o) => {
            let mut m = Map::new();
            for (k, v) in o {
                m.insert(k.into(), from_json(v));
            }
            Dynamic::from_map(m)
        }
    }
}

/// Format a script value for output: strings as they are, secrets as `***`, collections as
/// compact JSON (with secrets masked), everything else as Rhai prints it.
pub fn display(d: &Dynamic) -> String {
    if d.is_string() {
        return d.clone().into_string().unwrap_or_default();
    }
    if d.is::<Secret>() {
        return MASK.to_string();
    }
    if (d.is_array() || d.is_map())
        && let Ok(j) = to_json(d, Reveal::Mask)
    {
        return j.to_string();
    }
    d.to_string()
}

/// Does this value (or anything inside it) hold a secret?
pub fn contains_secret(d: &Dynamic) -> bool {
    if d.is::<Secret>() {
        return true;
    }
    if d.is_array() {
        return d.read_lock::<Array>().is_some_and(|a| a.iter().any(contains_secret));
    }
    if d.is_map() {
        return d.read_lock::<Map>().is_some_and(|m| m.values().any(contains_secret));
    }
    false
}

/// `s` on one line (whitespace runs become one space), cut to `max` characters with `…`: for
/// messages quoted in summaries and step lines.
pub fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut t: String = flat.chars().take(max).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_data_and_masks_secrets() {
        let mut m = Map::new();
        m.insert("n".into(), 3_i64.into());
        m.insert("pw".into(), Dynamic::from(Secret::new("pa55word")));
        m.insert("list".into(), Dynamic::from_array(vec!["a".into(), 1.5_f64.into(), Dynamic::UNIT]));
        let d = Dynamic::from_map(m);
        assert!(contains_secret(&d));
        let masked = to_json(&d, Reveal::Mask).unwrap();
        assert_eq!(masked, serde_json::json!({"n": 3, "pw": "***", "list": ["a", 1.5, null]}));
        let exposed = to_json(&d, Reveal::Expose).unwrap();
        assert_eq!(exposed["pw"], "pa55word");
        let back = from_json(masked.clone());
        assert_eq!(to_json(&back, Reveal::Mask).unwrap(), masked);
    }
}
