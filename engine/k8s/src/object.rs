//! Reading the common fields of an object held as JSON.

use serde_json::Value;

/// `apiVersion`, `kind`, namespace and name of an object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct ObjRef {
    /// `apps/v1`.
    pub api_version: String,
    /// `StatefulSet`.
    pub kind: String,
    /// Namespace (`None` for cluster-scoped objects).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ObjRef {
    /// The reference of an object.
    pub fn of(obj: &Value) -> Self {
        Self {
            api_version: str_at(obj, &["apiVersion"]).unwrap_or_default().to_string(),
            kind: str_at(obj, &["kind"]).unwrap_or_default().to_string(),
            namespace: str_at(obj, &["metadata", "namespace"]).map(str::to_string),
            name: str_at(obj, &["metadata", "name"]).unwrap_or_default().to_string(),
        }
    }
}

impl std::fmt::Display for ObjRef {
    /// `StatefulSet kms/kms-core-1-core`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// The value at a path of keys.
pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(k))
}

/// A string at a path.
pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).and_then(Value::as_str)
}

/// An integer at a path.
pub fn int_at(v: &Value, path: &[&str]) -> Option<i64> {
    at(v, path).and_then(Value::as_i64)
}

/// The condition of `type` in `status.conditions`, if present.
pub fn condition<'a>(obj: &'a Value, ty: &str) -> Option<&'a Value> {
    at(obj, &["status", "conditions"])?.as_array()?.iter().find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
}

/// Is the condition of `type` present with `status == want`?
pub fn condition_is(obj: &Value, ty: &str, want: &str) -> bool {
    condition(obj, ty).and_then(|c| c.get("status")).and_then(Value::as_str) == Some(want)
}
