//! `parallel(tasks, options)` and `parallel_map(items, f, options)`: run script closures
//! concurrently.
//!
//! Each task runs on its own OS thread (Rhai is synchronous; native calls block on the shared
//! tokio runtime), as a step named by its label, in a child cancellation scope. The first
//! failure cancels the others and is the error `parallel` throws; results come back in order.

use crate::ctx::{HostCtx, terminated};
use crate::error::{ErrorKind, Failure, to_rhai, usage_err};
use crate::error::{is_terminated, short_message};
use crate::events::{Outcome, StepKind};
use crate::task::{self, CancelReason, TaskState};
use rhai::{Array, Dynamic, FnPtr, Map, NativeCallContext};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::ScriptResult as R;
use crate::modules::opts::Opts;

/// One unit of work: a label, a closure and the arguments to call it with.
type Task = (String, FnPtr, Vec<Dynamic>);

pub(crate) const OPTIONS: &[&str] = &["max", "labels", "fail_fast"];

fn labels(o: &Opts, n: usize, default: impl Fn(usize) -> String) -> R<Vec<String>> {
    let labels: Vec<String> = match o.get("labels") {
        Some(_) => o.strings("labels")?,
        None => (0..n).map(default).collect(),
    };
    if labels.len() != n {
        return Err(o.usage(format!("{} labels for {n} tasks", labels.len())));
    }
    Ok(labels)
}

/// Run `tasks` (an array of closures, or a map of label → closure) concurrently.
/// Options: `max` (concurrency, default all), `labels` (for an array), `fail_fast` (default true).
pub(crate) fn parallel(ctx: &HostCtx, ncc: &NativeCallContext, tasks: Dynamic, opts: &Map) -> R<Dynamic> {
    let o = Opts::new(opts, "parallel", OPTIONS)?;
    if tasks.is_map() {
        let items = tasks
            .cast::<Map>()
            .into_iter()
            .map(|(k, v)| closure(v, &k).map(|f| (k.to_string(), f, Vec::new())))
            .collect::<R<_>>()?;
        return run(ctx, ncc, items, &o, true);
    }
    if !tasks.is_array() {
        return Err(usage_err(format!("parallel: expected an array or a map of closures, got {}", tasks.type_name())));
    }
    let a = tasks.cast::<Array>();
    let labels = labels(&o, a.len(), |i| format!("task-{}", i + 1))?;
    let items = a.into_iter().zip(labels).map(|(v, l)| closure(v, &l).map(|f| (l, f, Vec::new()))).collect::<R<_>>()?;
    run(ctx, ncc, items, &o, false)
}

/// Call `f(item)` for every item concurrently; results in order. Labels default to the items.
/// Passing the item as an argument avoids the closure-capture trap of building tasks in a loop.
pub(crate) fn parallel_map(ctx: &HostCtx, ncc: &NativeCallContext, items: Array, f: FnPtr, opts: &Map) -> R<Dynamic> {
    let o = Opts::new(opts, "parallel_map", OPTIONS)?;
    let labels = labels(&o, items.len(), |i| crate::value::display(&items[i]))?;
    let tasks = items.into_iter().zip(labels).map(|(item, l)| (l, f.clone(), vec![item])).collect();
    run(ctx, ncc, tasks, &o, false)
}

fn run(ctx: &HostCtx, ncc: &NativeCallContext, items: Vec<Task>, o: &Opts, as_map: bool) -> R<Dynamic> {
    let n = items.len();
    let max = match o.int("max")? {
        Some(m) if m >= 1 => m as usize,
        Some(_) => return Err(o.usage("max must be an integer >= 1")),
        None => n.max(1),
    };
    // A plan waits for nothing, and one task after another gives it the playbook's order.
    let max = if ctx.mode().is_plan() { 1 } else { max };
    let fail_fast = o.bool("fail_fast", true)?;

    let parent = task::current().unwrap_or_else(|| TaskState { scope: ctx.root().clone(), step: None, label: None });
    let group = parent.scope.child();
    let results: Vec<Mutex<Option<R<Dynamic>>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let first_err: Mutex<Option<usize>> = Mutex::new(None);
    let next = AtomicUsize::new(0);

    let mark = ctx.mode().is_plan().then(|| ctx.defer_open());
    std::thread::scope(|s| {
        for _ in 0..max.min(n) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n {
                        break;
                    }
                    let (label, f, args) = &items[i];
                    if group.is_cancelled() {
                        *results[i].lock().expect("results lock") = Some(Err(terminated(&group)));
                        continue;
                    }
                    let full: Arc<str> = match &parent.label {
                        Some(p) => format!("{p}/{label}").into(),
                        None => label.as_str().into(),
                    };
                    if mark.is_some() {
                        ctx.defer_task(i);
                    }
                    let id = ctx.events().step_started_as(label, parent.step, Some(&full), StepKind::Task, None);
                    let state = TaskState { scope: group.child(), step: Some(id), label: Some(full) };
                    let r = task::with_task(state, || f.call_raw(ncc, None, args.clone()));
                    match &r {
                        Ok(_) => ctx.events().step_finished(id, Outcome::Ok, None),
                        Err(e) if is_terminated(e) => ctx.events().step_finished(id, Outcome::Cancelled, None),
                        Err(e) => {
                            ctx.events().step_finished(id, Outcome::Failed, Some(short_message(e)));
                            if fail_fast {
                                let mut first = first_err.lock().expect("error lock");
                                if first.is_none() {
                                    *first = Some(i);
                                    group.cancel(CancelReason::SiblingFailed);
                                }
                            }
                        }
                    }
                    *results[i].lock().expect("results lock") = Some(r);
                }
            });
        }
    });

    // Plan mode: what the tasks deferred (their renders) ends here; a failure is its task's.
    for (i, e) in mark.map(|m| ctx.defer_close(m)).unwrap_or_default() {
        // A render stopped because a sibling failed (or Ctrl-C) is not the group's error.
        if is_terminated(&e) {
            continue;
        }
        let mut slot = results[i].lock().expect("results lock");
        if !matches!(*slot, Some(Err(_))) {
            *slot = Some(Err(e));
            let mut first = first_err.lock().expect("error lock");
            if fail_fast && first.is_none_or(|f| i < f) {
                *first = Some(i);
            }
        }
    }
    if parent.scope.is_cancelled() {
        return Err(terminated(&parent.scope));
    }
    let mut results: Vec<R<Dynamic>> =
        results.into_iter().map(|m| m.into_inner().expect("results lock").unwrap_or(Ok(Dynamic::UNIT))).collect();
    if let Some(i) = first_err.into_inner().expect("error lock") {
        return std::mem::replace(&mut results[i], Ok(Dynamic::UNIT));
    }
    let failed: Vec<(String, String)> = items
        .iter()
        .zip(&results)
        .filter_map(|((l, ..), r)| r.as_ref().err().map(|e| (l.clone(), short_message(e))))
        .collect();
    if !failed.is_empty() {
        let mut errors = Map::new();
        for (l, m) in &failed {
            errors.insert(l.as_str().into(), m.clone().into());
        }
        let list: Vec<String> = failed.iter().map(|(l, m)| format!("{l}: {m}")).collect();
        return Err(to_rhai(
            &Failure::new(ErrorKind::Failed, format!("{} of {n} tasks failed: {}", failed.len(), list.join("; ")))
                .with_detail("errors", errors),
        ));
    }
    let values = results.into_iter().map(|r| r.unwrap_or_default());
    if as_map {
        let mut m = Map::new();
        for ((l, ..), v) in items.iter().zip(values) {
            m.insert(l.as_str().into(), v);
        }
        Ok(Dynamic::from_map(m))
    } else {
        Ok(Dynamic::from_array(values.collect()))
    }
}

fn closure(v: Dynamic, label: &str) -> R<FnPtr> {
    let t = v.type_name();
    v.try_cast::<FnPtr>()
        .ok_or_else(|| usage_err(format!("parallel: task '{label}' is a {t}, not a closure like || work()")))
}
