//! Reading objects held as JSON: the readiness rules, the waiter and the failure report all
//! work on `serde_json::Value` (any kind, custom resources included), so the few field
//! accessors they share live here once.

use serde_json::Value;

/// `apiVersion`, `kind`, namespace and name: enough to find an object again and to name it in
/// messages (`StatefulSet kms/kms-core-1-core`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ObjRef {
    /// The API group and version, e.g. `apps/v1` (`v1` for the core group).
    pub api_version: String,
    /// The kind, e.g. `StatefulSet`.
    pub kind: String,
    /// The namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
}

impl ObjRef {
    /// The reference of an object given as JSON; missing fields become empty strings.
    pub fn of(obj: &Value) -> Self {
        Self {
            api_version: str_at(obj, &["apiVersion"]).unwrap_or_default().to_string(),
            kind: str_at(obj, &["kind"]).unwrap_or_default().to_string(),
            namespace: str_at(obj, &["metadata", "namespace"]).map(str::to_string),
            name: name_of(obj).to_string(),
        }
    }
}

impl std::fmt::Display for ObjRef {
    /// `StatefulSet kms/kms-core-1-core`, or `Namespace kms` for cluster-scoped objects.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// The value at a path of keys.
pub(crate) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(k))
}

/// A string at a path.
pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

/// An integer at a path.
pub(crate) fn int_at(v: &Value, path: &[&str]) -> Option<i64> {
    at(v, path).and_then(Value::as_i64)
}

/// The API group of an `apiVersion` (`""` for the core group's `v1`).
pub(crate) fn api_group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// `metadata.name`, empty when missing.
pub(crate) fn name_of(obj: &Value) -> &str {
    str_at(obj, &["metadata", "name"]).unwrap_or_default()
}

/// The condition of `type` in `status.conditions`, if present.
pub(crate) fn condition<'a>(obj: &'a Value, ty: &str) -> Option<&'a Value> {
    at(obj, &["status", "conditions"])?.as_array()?.iter().find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
}

/// Is the condition of `type` present with `status == want`?
pub(crate) fn condition_is(obj: &Value, ty: &str, want: &str) -> bool {
    condition(obj, ty).and_then(|c| c.get("status")).and_then(Value::as_str) == Some(want)
}

/// Is `metadata.deletionTimestamp` set?
pub(crate) fn is_terminating(obj: &Value) -> bool {
    at(obj, &["metadata", "deletionTimestamp"]).is_some_and(|v| !v.is_null())
}

pub(crate) use kmsctl_host::value::one_line;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_line_flattens_and_cuts() {
        assert_eq!(one_line("  a\n  b  ", 10), "a b");
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line("é".repeat(4).as_str(), 4), "éééé");
    }

    #[test]
    fn references_name_objects() {
        let o = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "kms"}});
        assert_eq!(ObjRef::of(&o).to_string(), "StatefulSet kms/db");
        assert_eq!(ObjRef::of(&json!({"kind": "Namespace", "metadata": {"name": "kms"}})).to_string(), "Namespace kms");
    }
}
