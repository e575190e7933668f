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

    /// Remember a secret's value for scrubbing.
    pub fn register(&self, s: &Secret) {
        if s.expose().len() < MIN_REDACTED_LEN {
            return;
        }
        let mut all = self.0.write().expect("redactor lock");
        if !all.iter().any(|v| **v == *s.expose()) {
            all.push(s.0.clone());
            // Longest first, so a secret that contains another is masked whole.
            all.sort_by_key(|v| std::cmp::Reverse(v.len()));
        }
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
}
