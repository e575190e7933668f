//! `--plan` for the cluster handle: the mutating methods record what they would send (the
//! objects as they would be applied, their manifest under the artifacts directory) and return
//! what the real call would; reads of an offline cluster see an empty one; waits succeed at
//! once. Kept here so the methods themselves stay one line longer, not one branch per method.

use kmsctl_host::{PlannedObject, PlannedOp};
use rhai::{Array, Dynamic};
use serde_json::{Value, json};

use super::values::to_script_all;
use super::{ClusterHandle, R};
use crate::apply::{self, ApplyOptions, MANAGED_BY};
use crate::json::{ObjRef, str_at};

impl ClusterHandle {
    /// `--plan`: changes are recorded, not made.
    pub(super) fn planning(&self) -> bool {
        self.ctx.mode().is_plan()
    }

    /// `--plan` without `--against-cluster`: reads see an empty cluster.
    pub(super) fn offline(&self) -> bool {
        self.cluster.is_offline()
    }

    /// Record an operation on `objects`, with their manifest written (secrets masked) under
    /// the artifacts directory as `name`.
    pub(super) fn record_objects(
        &self,
        action: &str,
        name: &str,
        objects: &[Value],
        ao: &ApplyOptions,
        note: Option<String>,
    ) -> R<()> {
        let target = match objects.len() {
            0..=3 => objects.iter().map(|o| ObjRef::of(o).to_string()).collect::<Vec<_>>().join(", "),
            n => format!("{n} objects"),
        };
        let op = self.op_on(action, target, name, objects, ao, note)?;
        self.ctx.record(op);
        Ok(())
    }

    /// `--diff`: how applying `objects` would change the cluster (`None` in a plan).
    fn diffs(&self, objects: &[Value], ao: &ApplyOptions) -> R<Option<crate::diff::Diffs>> {
        if !self.ctx.mode().is_diff() {
            return Ok(None);
        }
        Ok(Some(self.ctx.block_on(crate::diff::apply_diffs(&self.cluster, objects, ao))?))
    }

    /// What another module would send to this cluster (a Helm release's rendered objects),
    /// whose render ends later: the operation takes its place in the plan now; returns it for
    /// [`ClusterHandle::record_rendered_at`].
    pub fn reserve_rendered(&self, action: &str, target: String) -> usize {
        self.ctx.record(PlannedOp::new(action, target))
    }

    /// Complete the operation [`ClusterHandle::reserve_rendered`] placed: `target` names it,
    /// the manifest goes to the artifacts directory as `file`.
    ///
    /// # Errors
    /// The manifest cannot be written.
    pub fn record_rendered_at(
        &self,
        seq: usize,
        action: &str,
        target: String,
        file: &str,
        objects: &[Value],
        note: Option<String>,
    ) -> R<()> {
        // What another tool owns keeps its labels, and its fields: under a field manager of its
        // own the dry run changes what the manifest sets and leaves what only that tool set
        // (Helm's release labels and annotations), so a field the chart no longer sets is not
        // shown as removed.
        let ao = ApplyOptions { field_manager: "kmsctl-diff".into(), mark_managed: false, ..Default::default() };
        let op = self.op_on(action, target, file, objects, &ao, note)?;
        self.ctx.record_again(seq, op);
        Ok(())
    }

    /// An operation on `objects`: their manifest written (secrets masked) under the artifacts
    /// directory as `name`, and under `--diff` what applying them with `ao` would change.
    fn op_on(
        &self,
        action: &str,
        target: String,
        name: &str,
        objects: &[Value],
        ao: &ApplyOptions,
        note: Option<String>,
    ) -> R<PlannedOp> {
        let mut op = PlannedOp::new(action, target).objects(objects.iter().map(planned_object).collect());
        if !objects.is_empty() {
            let path = self
                .ctx
                .plan_manifest(name, &manifest_text(objects))
                .map_err(|e| kmsctl_host::usage_err(format!("cannot write the plan's manifest {name}: {e}")))?;
            op = op.manifest(path);
        }
        if let Some(n) = note {
            op = op.note(n);
        }
        if let Some(d) = self.diffs(objects, ao)? {
            op = op.diff(d.text, d.changed);
        }
        Ok(op)
    }

    /// `kc.apply(..)` in plan mode: the objects as they would be applied, recorded.
    pub(super) fn plan_apply(&self, docs: Vec<Value>, ao: &ApplyOptions, func: &str) -> R<Array> {
        let objects = self.ctx.block_on(apply::planned(&self.cluster, docs, ao))?;
        let name = match objects.as_slice() {
            [one] => format!("{func}-{}", object_file_name(one)),
            _ => func.to_string(),
        };
        self.record_objects(&format!("k8s {func}"), &name, &objects, ao, None)?;
        Ok(to_script_all(&self.ctx, objects))
    }

    /// An operation on one object that is no manifest (delete, patch): recorded by name.
    pub(super) fn record_one(
        &self,
        action: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        note: Option<String>,
    ) -> R<()> {
        let obj = PlannedObject { kind: kind.to_string(), namespace: namespace.map(str::to_string), name: name.into() };
        let target = match namespace {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        };
        let mut op = PlannedOp::new(action, target).objects(vec![obj]);
        if let Some(n) = note {
            op = op.note(n);
        }
        if self.ctx.mode().is_diff() && action == "k8s delete" {
            let q = crate::objects::Query {
                kind: kind.to_string(),
                namespace: namespace.map(str::to_string),
                ..Default::default()
            };
            let d = self.ctx.block_on(crate::diff::delete_diff(&self.cluster, &q, name))?;
            op = op.diff(d.text, d.changed);
        }
        self.ctx.record(op);
        Ok(())
    }

    /// The object a planned namespace change returns: as it would be created.
    pub(super) fn planned_namespace(&self, name: &str, labels: &std::collections::BTreeMap<String, String>) -> Value {
        let mut l: serde_json::Map<String, Value> = labels.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
        l.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name, "labels": l } })
    }

    /// `kc.wait(..)` in plan mode: at once, with the targets as given (nothing was applied to
    /// become ready).
    pub(super) fn plan_wait(&self, targets: &Dynamic) -> Array {
        if targets.is_array() { targets.clone().into_array().unwrap_or_default() } else { vec![targets.clone()] }
    }

    /// Whether `kind` `name` exists, for the notes of a plan against the cluster; `None`
    /// offline.
    pub(super) fn exists(&self, q: &crate::objects::Query, name: &str) -> R<Option<bool>> {
        if self.offline() {
            return Ok(None);
        }
        let found = self.ctx.block_on(crate::objects::get(&self.cluster, q, name))?;
        Ok(Some(found.is_some()))
    }
}

/// Kind, namespace and name of an object.
fn planned_object(v: &Value) -> PlannedObject {
    let r = ObjRef::of(v);
    PlannedObject { kind: r.kind, namespace: r.namespace, name: r.name }
}

/// `configmap-kms-test-name` (lower case, for file names).
pub(super) fn object_file_name(v: &Value) -> String {
    let r = ObjRef::of(v);
    let mut s = r.kind.to_lowercase();
    if let Some(ns) = r.namespace {
        s = format!("{s}-{ns}");
    }
    format!("{s}-{}", r.name)
}

/// Objects as a multi-document YAML, Secret values masked (a Secret's `data` is base64, which
/// the run's redactor would not recognise).
pub(crate) fn manifest_text(objects: &[Value]) -> String {
    let mut out = String::new();
    for o in objects {
        let mut o = o.clone();
        mask_secret(&mut o);
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&o).unwrap_or_else(|e| format!("# cannot render: {e}\n")));
    }
    out
}

/// Replace every value of a Secret's `data` and `stringData` with `***`.
pub(crate) fn mask_secret(o: &mut Value) {
    if str_at(o, &["kind"]) != Some("Secret") {
        return;
    }
    for key in ["data", "stringData"] {
        if let Some(m) = o.get_mut(key).and_then(Value::as_object_mut) {
            for v in m.values_mut() {
                *v = Value::String("***".into());
            }
        }
    }
}
