//! `kmsctl run --diff`: what applying objects would change, object by object. Each object is
//! server-side applied as a dry run (so defaults, admission and merges are the server's own)
//! and compared with the live object; both are stripped of what changes on every write
//! (managedFields, resourceVersion, uid, timestamps, generation, status) and Secret values are
//! masked — as `***` when equal, `*** (changed)` when not, so a changed secret shows without
//! showing it.

use crate::apply::{self, ApplyOptions};
use crate::client::Cluster;
use crate::error::K8sError;
use crate::json::{ObjRef, str_at};
use crate::objects::{self, Query};
use serde_json::Value;

/// The diffs of a set of objects.
#[derive(Debug, Default)]
pub(crate) struct Diffs {
    /// Unified diffs of the objects that would change, one after another.
    pub(crate) text: String,
    /// How many would change.
    pub(crate) changed: usize,
}

/// Dry-run `objects` (as [`apply::planned`] gave them, in order) and compare each with the
/// live one. An object the server refuses in a dry run (its namespace does not exist yet) is
/// compared as the playbook wrote it, with the reason in its header.
pub(crate) async fn apply_diffs(cluster: &Cluster, objects: &[Value], opts: &ApplyOptions) -> Result<Diffs, K8sError> {
    let dry = ApplyOptions { dry_run: true, ..opts.clone() };
    let mut out = Diffs::default();
    for obj in objects {
        let live = live(cluster, obj).await?;
        let (after, why) = match apply::apply(cluster, vec![obj.clone()], &dry).await {
            Ok(mut v) => (v.remove(0), None),
            Err(e @ (K8sError::Unreachable(..) | K8sError::Auth(..))) => return Err(e),
            Err(e) => (obj.clone(), Some(e.to_string())),
        };
        add(&mut out, obj, live, Some(after), why);
    }
    Ok(out)
}

/// What deleting the object would change: the live object, gone.
pub(crate) async fn delete_diff(cluster: &Cluster, q: &Query, name: &str) -> Result<Diffs, K8sError> {
    let mut out = Diffs::default();
    if let Some(live) = objects::get(cluster, q, name).await? {
        let r = live.clone();
        add(&mut out, &r, Some(live), None, None);
    }
    Ok(out)
}

/// The live object, or `None` (also when the cluster does not serve its kind yet).
async fn live(cluster: &Cluster, obj: &Value) -> Result<Option<Value>, K8sError> {
    let r = ObjRef::of(obj);
    let q = Query {
        api_version: Some(r.api_version.clone()),
        kind: r.kind.clone(),
        namespace: r.namespace.clone(),
        ..Default::default()
    };
    match objects::get(cluster, &q, &r.name).await {
        Ok(v) => Ok(v),
        Err(K8sError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn add(out: &mut Diffs, obj: &Value, before: Option<Value>, after: Option<Value>, why: Option<String>) {
    let (mut before, mut after) = (before.map(clean), after.map(clean));
    mask_secrets(before.as_mut(), after.as_mut());
    let yaml =
        |v: &Option<Value>| v.as_ref().map(|v| serde_saphyr::to_string(v).unwrap_or_default()).unwrap_or_default();
    let (a, b) = (yaml(&before), yaml(&after));
    if a == b {
        return;
    }
    out.changed += 1;
    let what = ObjRef::of(obj).to_string();
    let diff = similar::TextDiff::from_lines(&a, &b);
    let (old, new) = (
        if before.is_some() { format!("live {what}") } else { "/dev/null".into() },
        if after.is_some() { format!("planned {what}") } else { "/dev/null".into() },
    );
    match why {
        // The usual case of a first deploy: the namespace is one the run would create first.
        Some(w) if w.contains("namespaces \"") && w.contains("not found") => {
            out.text.push_str(&format!("# {what}: its namespace does not exist yet; compared as written\n"))
        }
        Some(w) => out.text.push_str(&format!("# {what}: the server refused the dry run ({w}); compared as written\n")),
        None => {}
    }
    out.text.push_str(&diff.unified_diff().context_radius(3).header(&old, &new).to_string());
}

/// Drop what every write changes and nobody writes.
fn clean(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
    }
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink"] {
            meta.remove(k);
        }
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
            a.remove("deployment.kubernetes.io/revision");
            if a.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    v
}

/// Secret values as `***`, or `*** (changed)` on the side where they differ.
fn mask_secrets(before: Option<&mut Value>, after: Option<&mut Value>) {
    let is_secret = |v: &Option<&mut Value>| v.as_ref().is_some_and(|v| str_at(v, &["kind"]) == Some("Secret"));
    if !is_secret(&before) && !is_secret(&after) {
        return;
    }
    let old: Option<Value> = before.as_ref().map(|v| (**v).clone());
    for (side, other) in [(before, None), (after, old)] {
        let Some(side) = side else { continue };
        for key in ["data", "stringData"] {
            let theirs = other.as_ref().and_then(|o| o.get(key)).cloned();
            if let Some(m) = side.get_mut(key).and_then(Value::as_object_mut) {
                for (k, v) in m.iter_mut() {
                    let same = theirs.as_ref().and_then(|t| t.get(k)).is_none_or(|t| t == v);
                    *v = Value::String(if same { "***".into() } else { "*** (changed)".into() });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn noise_is_removed_and_a_changed_secret_shows_without_its_value() {
        let live = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n",
            "resourceVersion": "7", "uid": "u", "managedFields": [{"manager": "x"}]},
            "data": {"same": "c2FtZQ==", "token": "b2xk"}});
        let planned = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n",
            "resourceVersion": "8", "uid": "u"}, "data": {"same": "c2FtZQ==", "token": "bmV3"}});
        let mut out = Diffs::default();
        add(&mut out, &planned, Some(live.clone()), Some(planned.clone()), None);
        assert_eq!(out.changed, 1);
        assert!(!out.text.contains("b2xk") && !out.text.contains("bmV3"), "{}", out.text);
        assert!(!out.text.contains("resourceVersion") && !out.text.contains("managedFields"), "{}", out.text);
        assert!(
            out.text.contains("-  token: '***'")
                || out.text.contains("-  token: \"***\"")
                || out.text.contains("-  token: ***"),
            "{}",
            out.text
        );
        assert!(
            out.text.contains("+  token: '*** (changed)'")
                || out.text.contains("+  token: \"*** (changed)\"")
                || out.text.contains("+  token: *** (changed)"),
            "{}",
            out.text
        );
        let mut same = Diffs::default();
        add(&mut same, &live, Some(live.clone()), Some(live.clone()), None);
        assert_eq!((same.changed, same.text.as_str()), (0, ""));
    }
}
