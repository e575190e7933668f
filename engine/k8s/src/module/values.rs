//! Script values to and from the crate's JSON: manifests in, objects out (Secret data stays
//! secret), errors as catchable maps.

use std::collections::BTreeMap;

use kmsctl_host::value::{Reveal, from_json, to_json};
use kmsctl_host::{ErrorKind, HostCtx, HostFailure, Opts, usage_err};
use rhai::{Array, Dynamic, Map};
use serde_json::Value;

use super::{ClusterHandle, R, err};
use crate::apply;
use crate::error::K8sError;
use crate::json::str_at;
use crate::objects;

impl HostFailure for K8sError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Config(_) | Self::Usage(_) => ErrorKind::Usage,
            Self::Unreachable(_) => ErrorKind::Unavailable,
            Self::Auth(_) => ErrorKind::Auth,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Conflict(_) => ErrorKind::Conflict,
            Self::Rejected(_) | Self::Failed { .. } => ErrorKind::Failed,
            Self::Timeout { .. } => ErrorKind::Timeout,
        }
    }

    /// `object`, `report` and `finalizers`, when the error has them.
    fn details(&self) -> Map {
        let mut m = Map::new();
        let (Self::Failed { details, .. } | Self::Timeout { details, .. }) = self else { return m };
        if let Some(o) = &details.object {
            m.insert("object".into(), o.clone().into());
        }
        if let Some(r) = &details.report {
            m.insert("report".into(), r.display().to_string().into());
        }
        if let Some(f) = &details.finalizers {
            m.insert("finalizers".into(), Dynamic::from_array(f.iter().map(|f| f.clone().into()).collect()));
        }
        m
    }
}

/// Objects to scripts: Secret data stays secret (and its decoded values are redacted too).
pub(super) fn to_script(ctx: &HostCtx, mut v: Value) -> Dynamic {
    use base64::Engine as _;
    if str_at(&v, &["kind"]) == Some("Secret") {
        let mut secrets = Map::new();
        if let Some(data) = v.get_mut("data").and_then(Value::as_object_mut) {
            for (k, val) in std::mem::take(data) {
                let enc = val.as_str().unwrap_or_default().to_string();
                if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(&enc) {
                    ctx.secret(String::from_utf8_lossy(&raw).into_owned());
                }
                secrets.insert(k.into(), Dynamic::from(ctx.secret(enc)));
            }
        }
        let mut d = from_json(v);
        if let Some(mut m) = d.write_lock::<Map>() {
            m.insert("data".into(), Dynamic::from_map(secrets));
        }
        return d;
    }
    from_json(v)
}

/// Objects to scripts, as an array.
pub(super) fn to_script_all(ctx: &HostCtx, objects: Vec<Value>) -> Array {
    objects.into_iter().map(|v| to_script(ctx, v)).collect()
}

/// Manifests from a script: YAML text, an object map, or an array of them.
pub(super) fn manifests(v: &Dynamic) -> R<Vec<Value>> {
    if v.is_string() {
        return apply::parse_manifests(&v.to_string()).map_err(err);
    }
    if v.is_array() {
        let mut out = Vec::new();
        for item in v.read_lock::<Array>().expect("array").iter() {
            out.extend(manifests(item)?);
        }
        return Ok(out);
    }
    if v.is_map() {
        return Ok(vec![to_json(v, Reveal::Expose).map_err(usage_err)?]);
    }
    Err(usage_err(format!("expected YAML text, an object map or an array of them, got {}", v.type_name())))
}

/// The manifests of a YAML or JSON file, or of every such file of a directory (in name order).
pub(super) fn read_manifests(path: &std::path::Path) -> R<Vec<Value>> {
    let read = |p: &std::path::Path| -> R<Vec<Value>> {
        let text = std::fs::read_to_string(p).map_err(|e| usage_err(format!("{}: {e}", p.display())))?;
        apply::parse_manifests(&text).map_err(|e| usage_err(format!("{}: {e}", p.display())))
    };
    if !path.is_dir() {
        return read(path);
    }
    let mut files: Vec<_> = std::fs::read_dir(path)
        .map_err(|e| usage_err(format!("{}: {e}", path.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        out.extend(read(&f)?);
    }
    Ok(out)
}

/// A label value Kubernetes accepts: 63 characters of alphanumerics, `-`, `_`, `.`.
pub(super) fn label_value(s: &str) -> String {
    let v: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '-' }).take(63).collect();
    v.trim_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}

/// The options of `kc.secret(..)` and `kc.config_map(..)`.
pub(super) const DATA_OBJECT_OPTS: &[&str] = &["labels", "type", "files"];

/// `kc.secret(..)` and `kc.config_map(..)`: values (strings or secrets) and files, applied.
pub(super) fn data_object(kc: &ClusterHandle, kind: &str, ns: &str, name: &str, data: &Map, o: &Map) -> R<Dynamic> {
    let func = if kind == "Secret" { "secret" } else { "config_map" };
    let oo = Opts::new(o, func, DATA_OBJECT_OPTS)?;
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in data {
        let s = to_json(v, Reveal::Expose).map_err(usage_err)?;
        values.insert(k.to_string(), s.as_str().map(str::to_string).unwrap_or_else(|| s.to_string()));
    }
    if let Some(files) = oo.get("files").and_then(|f| f.read_lock::<Map>().map(|m| m.clone())) {
        for (k, p) in files {
            let path = kc.ctx.resolve_path(&p.to_string());
            let text = std::fs::read_to_string(&path).map_err(|e| usage_err(format!("{}: {e}", path.display())))?;
            if kind == "Secret" {
                kc.ctx.secret(text.clone());
            }
            values.insert(k.to_string(), text);
        }
    }
    let doc = objects::data_object(kind, ns, name, &values, oo.str("type")?.as_deref());
    let mut opts = Map::new();
    if let Some(l) = o.get("labels") {
        opts.insert("labels".into(), l.clone());
    }
    let mut applied = kc.apply_docs(vec![doc], &opts, "apply")?;
    Ok(applied.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_what_kubernetes_accepts() {
        assert_eq!(label_value("deploy"), "deploy");
        assert_eq!(label_value("my playbook!"), "my-playbook");
        assert_eq!(label_value(&"x".repeat(70)).len(), 63);
    }
}
