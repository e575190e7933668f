//! `kc.wait(..)` and the waits of `apply` and `helm::upgrade`: script targets and options in,
//! a step with live progress out, and on failure the report on the terminal and on disk.

use std::time::Duration;

use kmsctl_host::value::{Reveal, display, from_json, to_json};
use kmsctl_host::{FailureInfo, Level, Opts, StepKind, short_message, usage_err};
use rhai::{Array, Dynamic, FnPtr, Map, NativeCallContext};
use serde_json::Value;

use super::{ClusterHandle, R, err};
use crate::error::K8sError;
use crate::json::{ObjRef, str_at};
use crate::objects::{self, Query};
use crate::readiness::{self, Assessment, Health, Predicate, Progress, RuleOptions, Target, WaitOptions};
use crate::report::FailureReport;

impl ClusterHandle {
    /// Script values (objects, `#{kind, name}`, `#{kind, selector, min}`) as wait targets.
    pub(super) fn targets(&self, v: &Dynamic) -> R<Vec<Target>> {
        let items: Vec<Dynamic> =
            if v.is_array() { v.read_lock::<Array>().expect("array").clone() } else { vec![v.clone()] };
        let mut json = Vec::new();
        for item in items {
            if !item.is_map() {
                return Err(usage_err(format!(
                    "k8s wait: a target is an object, #{{kind, name}} or #{{kind, selector}}, got {}",
                    item.type_name()
                )));
            }
            json.push(to_json(&item, Reveal::Mask).map_err(usage_err)?);
        }
        self.targets_json(&json, None)
    }

    /// Targets from objects or references given as JSON, with apiVersion and namespace filled
    /// in; `default_namespace` applies to namespaced kinds that name none (a Helm release's).
    fn targets_json(&self, items: &[Value], default_namespace: Option<&str>) -> R<Vec<Target>> {
        let mut out = Vec::new();
        for json in items {
            let kind = str_at(json, &["kind"])
                .map(str::to_string)
                .ok_or_else(|| usage_err("k8s wait: a target needs a kind"))?;
            let api_version = str_at(json, &["apiVersion"]).or(str_at(json, &["api_version"])).map(str::to_string);
            let namespace = str_at(json, &["metadata", "namespace"])
                .or(str_at(json, &["namespace"]))
                .or(default_namespace)
                .map(str::to_string);
            let q = Query { api_version, kind: kind.clone(), namespace, ..Default::default() };
            let cluster = self.cluster.clone();
            let (api_version, namespace) = self.ctx.block_on(async move {
                let (_, ar, namespaced) = objects::api_for(&cluster, &q).await?;
                let ns = namespaced.then(|| q.namespace.unwrap_or_else(|| cluster.default_namespace().to_string()));
                Ok::<_, K8sError>((ar.api_version, ns))
            })?;
            if let Some(selector) = str_at(json, &["selector"]) {
                let min = json.get("min").and_then(Value::as_u64).unwrap_or(1) as usize;
                out.push(Target::Selector { api_version, kind, namespace, selector: selector.to_string(), min });
            } else {
                let name = str_at(json, &["metadata", "name"])
                    .or(str_at(json, &["name"]))
                    .ok_or_else(|| usage_err(format!("k8s wait: the {kind} target has no name (or selector)")))?;
                out.push(Target::Object(ObjRef { api_version, kind, namespace, name: name.to_string() }));
            }
        }
        Ok(out)
    }

    /// Wait until `objects` (JSON manifests or references) are ready, as a step with live
    /// progress and a failure report: what `helm::upgrade` uses for a release's objects.
    /// Namespaced objects that name no namespace are looked for in `default_namespace`.
    ///
    /// # Errors
    ///
    /// A script error: `failed` or `timeout` with `object` and `report`, a usage error for
    /// an object without kind or name, or the run's cancellation.
    pub fn wait_values(&self, objects: &[Value], default_namespace: Option<&str>, wo: WaitOptions) -> R<Vec<Value>> {
        if self.planning() {
            return Ok(objects.to_vec());
        }
        let targets = self.targets_json(objects, default_namespace)?;
        self.wait_targets(targets, wo, None, true)
    }

    /// Wait as a step with live progress; on failure log the report's summary and write it.
    pub(super) fn wait_targets(
        &self,
        targets: Vec<Target>,
        wo: WaitOptions,
        predicate: Option<(&NativeCallContext, &FnPtr)>,
        report: bool,
    ) -> R<Vec<Value>> {
        let what = wo.what.clone().unwrap_or_else(|| match targets.as_slice() {
            [one] => one.to_string(),
            many => format!("{} objects", many.len()),
        });
        let detail = match targets.as_slice() {
            [_] => None,
            // The run report lists them; a wait on 1,000 objects names the first few.
            many => {
                let mut names: Vec<String> = many.iter().take(20).map(ToString::to_string).collect();
                if many.len() > 20 {
                    names.push(format!("and {} more", many.len() - 20));
                }
                Some(names.join(", "))
            }
        };
        let step = self.ctx.open_step(&format!("wait for {what}"), StepKind::Wait, detail);
        let cluster = self.cluster.clone();
        let mut script_rule = predicate.map(|(ncc, fp)| {
            move |obj: &Value| -> Result<Option<Assessment>, String> {
                let r: Dynamic =
                    fp.call_within_context(ncc, (from_json(obj.clone()),)).map_err(|e| short_message(&e))?;
                Ok(Some(predicate_result(&r)))
            }
        });
        let result = self.ctx.block_on(async {
            let mut progress = |p: &Progress| step.progress(p.summary(3));
            let rule = script_rule.as_mut().map(|f| f as &mut Predicate<'_>);
            match readiness::wait_with(&cluster, &targets, &wo, rule, &mut progress).await {
                Ok(v) => Ok(Ok(v)),
                Err(f) => {
                    // Collected now, while the cluster state is fresh.
                    let collected = match (&f.blocking, report) {
                        (Some(b), true) => Some(FailureReport::collect(cluster.client(), b, &f.reason).await),
                        _ => None,
                    };
                    Ok::<_, K8sError>(Err((f, collected)))
                }
            }
        });
        let r = match result {
            Ok(Ok(objs)) => Ok(objs),
            Ok(Err((failure, collected))) => {
                let mut e = failure.into_error();
                if let Some(rep) = collected
                    && let (Some(dir), Some(details)) = (self.report(&rep, step.id()), e.details_mut())
                {
                    details.report = Some(dir);
                }
                Err(err(e))
            }
            Err(e) => Err(e),
        };
        step.finish(&r);
        r
    }

    /// Log a report's summary and write it under the artifacts dir; returns where.
    /// The report also goes to the event stream whole, for the run report and CI.
    fn report(&self, rep: &FailureReport, step: u64) -> Option<std::path::PathBuf> {
        for line in rep.summary().lines() {
            self.ctx.log(Level::Error, line.to_string());
        }
        let written = self.ctx.artifacts_dir().and_then(|d| rep.write(&d.join("failures"), self.ctx.redactor()));
        let dir = match written {
            Ok(dir) => {
                self.ctx.log(Level::Error, format!("failure report: {}", dir.display()));
                Some(dir)
            }
            Err(io) => {
                self.ctx.log(Level::Warn, format!("could not write the failure report: {io}"));
                None
            }
        };
        if let Ok(report) = rep.scrubbed(self.ctx.redactor()) {
            self.ctx.failure_report(
                Some(step),
                FailureInfo {
                    object: rep.object.to_string(),
                    reason: rep.reason.clone(),
                    summary: rep.summary(),
                    dir: dir.clone(),
                    report,
                },
            );
        }
        dir
    }
}

/// A predicate returns `true`/`false`, or `#{ ready, failed, message }`.
fn predicate_result(r: &Dynamic) -> Assessment {
    if let Ok(b) = r.as_bool() {
        return if b {
            Assessment::ready("predicate holds")
        } else {
            Assessment::progressing("waiting for the predicate")
        };
    }
    if let Some(m) = r.read_lock::<Map>() {
        let flag = |k: &str| m.get(k).and_then(|v| v.as_bool().ok()).unwrap_or(false);
        let message = m.get("message").map(display).unwrap_or_default();
        let health = if flag("failed") {
            Health::Failed
        } else if flag("ready") {
            Health::Ready
        } else {
            Health::Progressing
        };
        return Assessment { health, message };
    }
    Assessment::progressing("waiting for the predicate")
}

/// The options of `kc.wait`.
pub(super) const WAIT_OPTS: &[&str] =
    &["timeout", "per_object_timeout", "fail_fast", "what", "predicate", "unschedulable_grace", "report"];

/// `kc.wait`'s options, and whether to write a failure report.
pub(super) fn wait_options(opts: &Map) -> R<(WaitOptions, bool)> {
    let o = Opts::new(opts, "wait", WAIT_OPTS)?;
    let mut rules = RuleOptions::default();
    if let Some(g) = o.duration("unschedulable_grace")? {
        rules.unschedulable_grace = g;
    }
    Ok((
        WaitOptions {
            timeout: o.duration("timeout")?.unwrap_or(Duration::from_secs(300)),
            per_object_timeout: o.duration("per_object_timeout")?,
            fail_fast: o.bool("fail_fast", true)?,
            rules,
            what: o.str("what")?,
        },
        o.bool("report", true)?,
    ))
}
