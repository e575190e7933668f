//! Secret values: they print as `***` everywhere, and every output path scrubs them.
//!
//! Two layers: the [`Secret`] type never formats its content, and the run-wide [`Redactor`]
//! replaces any registered secret text that still reaches an output (a tool's stderr echoing a
//! value, an API error quoting it).

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, RwLock};

/// What a secret prints as.
pub(crate) const MASK: &str = "***";

/// A secret string. `Display` and `Debug` print [`MASK`]; only host code calls [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wrap a value. Register it with the run's [`Redactor`] too (see [`Redactor::secret`]).
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Self(value.into())
    }
    /// The real value, for host code that hands it to a file, an API or a child's stdin.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

/// Values shorter than this are not scrubbed from text: masking every `a` would wreck output,
/// and such values are not secret in practice.
pub(crate) const MIN_REDACTED_LEN: usize = 4;

/// The run-wide set of secret values, used to scrub every string that leaves the process.
#[derive(Clone, Default)]
pub struct Redactor(Arc<RwLock<Vec<Arc<str>>>>);

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the values.
        let n = self.0.read().map(|v| v.len()).unwrap_or(0);
        write!(f, "Redactor({n} secrets)")
    }
}

impl Redactor {
    /// A fresh, empty redactor.
    pub fn new() -> Self {
        Self::default()
    }

    /// Create a [`Secret`] and remember its value for scrubbing.
    pub fn secret(&self, value: impl Into<Arc<str>>) -> Secret {
        let s = Secret::new(value);
        self.register(&s);
        s
    }

    /// Remember a secret's value for scrubbing, and the forms it takes once a tool or a
    /// template has quoted it (see [`forms`]).
    pub fn register(&self, s: &Secret) {
        if s.expose().len() < MIN_REDACTED_LEN {
            return;
        }
        let mut all = self.0.write().expect("redactor lock");
        for form in forms(s.expose()) {
            if !all.iter().any(|v| **v == *form) {
                all.push(form.into());
            }
        }
        // Longest first, so a secret that contains another is masked whole.
        all.sort_by_key(|v| std::cmp::Reverse(v.len()));
    }

    /// `text` with every registered secret value replaced by [`MASK`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let all = self.0.read().expect("redactor lock");
        if !all.iter().any(|v| text.contains(&**v)) {
            return Cow::Borrowed(text);
        }
        let mut out = text.to_string();
        for v in all.iter() {
            if out.contains(&**v) {
                out = out.replace(&**v, MASK);
            }
        }
        Cow::Owned(out)
    }

    /// Redact a string in place.
    pub fn scrub(&self, text: &mut String) {
        if let Cow::Owned(s) = self.redact(text) {
            *text = s;
        }
    }

    /// Redact every string inside a JSON value, in place.
    pub fn scrub_json(&self, v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => self.scrub(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| self.scrub_json(x)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|x| self.scrub_json(x)),
            _ => {}
        }
    }
}

/// The texts a secret value shows up as in output: itself; escaped in a JSON, Go (`%q`, Helm's
/// `quote`) or YAML double-quoted string; doubled quotes of a YAML single-quoted one; its base64
/// (a Secret's `data`, Helm's `b64enc`); and, for a multi-line value such as a private key, each
/// line (a YAML block scalar re-indents them).
fn forms(value: &str) -> Vec<String> {
    use base64::Engine as _;
    let json = serde_json::to_string(value).expect("a string serializes");
    let json = json[1..json.len() - 1].to_string();
    // Go's encoding/json (Helm's toJson) also escapes <, > and &.
    let go_json = json.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026");
    let mut out = vec![value.to_string(), json, go_json, value.replace('\'', "''")];
    let lines: Vec<String> = out
        .iter()
        .filter(|f| f.contains('\n'))
        .flat_map(|f| f.lines().map(|l| l.trim().to_string()).collect::<Vec<_>>())
        .filter(|l| l.len() >= MIN_REDACTED_LEN)
        .collect();
    out.extend(lines);
    out.push(base64::engine::general_purpose::STANDARD.encode(value));
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_formats_its_value() {
        let s = Secret::new("hunter2-password");
        assert_eq!(format!("{s} {s:?} {:?}", Some(&s)), "*** *** Some(***)");
    }

    #[test]
    fn redactor_scrubs_registered_values_longest_first() {
        let r = Redactor::new();
        r.secret("token-abc");
        r.secret("token-abc-extended");
        r.secret("abc"); // too short to scrub
        assert_eq!(r.redact("x token-abc-extended y token-abc abc"), "x *** y *** abc");
        let mut j = serde_json::json!({"a": ["token-abc"], "b": {"c": "ok"}});
        r.scrub_json(&mut j);
        assert_eq!(j, serde_json::json!({"a": ["***"], "b": {"c": "ok"}}));
    }

    /// Regression: a secret holding a quote, a backslash or a newline leaked wherever a tool
    /// or a template had escaped it (a JSON report, a `quote`d Helm value, a YAML block).
    #[test]
    fn a_secret_is_scrubbed_in_the_forms_tools_quote_it_in() {
        let r = Redactor::new();
        r.secret("pa\"ss\\wo'rd\nsecond-line");
        r.secret("x<y>&z-token");
        for text in [
            r#"{"token":"pa\"ss\\wo'rd\nsecond-line"}"#,
            "address = \"pa\\\"ss\\\\wo'rd\\nsecond-line\"",
            "a: 'pa\"ss\\wo''rd\n  second-line'",
            "token: cGEic3Ncd28ncmQKc2Vjb25kLWxpbmU=",
            "key: |\n    pa\"ss\\wo'rd\n    second-line\n",
            r#"{"k":"x\u003cy\u003e\u0026z-token"}"#,
        ] {
            let out = r.redact(text);
            for part in ["pa", "wo", "second-line", "cGEic3", "z-token"] {
                assert!(!out.contains(part), "{part} left in {out:?} (from {text:?})");
            }
        }
    }
}
