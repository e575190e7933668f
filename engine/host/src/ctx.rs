//! The per-run host context every native function captures.
//!
//! It owns the bridge from Rhai's synchronous calls to async Rust: [`HostCtx::block_on`] runs
//! a future on the run's tokio runtime while racing the calling thread's cancellation scope,
//! so every native call is cancellable by Ctrl-C, `--timeout`, `wait::timeout` and `parallel`.

use crate::error::{HostFailure, to_rhai};
use crate::events::{EventBody, Events, Level, Outcome, StepKind};
use crate::plan::{Mode, Plan, PlannedOp};
use crate::secret::{Redactor, Secret};
use crate::task::{self, CancelReason, CancelScope};
use futures::future::BoxFuture;
use rhai::{Dynamic, EvalAltResult, Map, Position};
use std::future::Future;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The artifacts directory when `--artifacts` names none.
pub(crate) const DEFAULT_ARTIFACTS: &str = "kmsctl-artifacts";

/// Settings native modules read.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Directory of the playbook; relative paths in `fs` resolve against it.
    pub playbook_dir: PathBuf,
    /// The playbook's name (file stem), for ownership labels.
    pub playbook: String,
    /// Where failure reports, logs and `events.jsonl` go.
    pub artifacts: Option<PathBuf>,
    /// `--context`: the kube context to use.
    pub context: Option<String>,
    /// Show debug logs.
    pub verbose: bool,
    /// Run, or plan (`--plan`).
    pub mode: Mode,
}

type CleanupFn = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// The host context of one run. Cheap to clone.
#[derive(Clone)]
pub struct HostCtx(Arc<Inner>);

/// A registered cleanup hook: its id, name and work.
type Hook = (u64, String, CleanupFn);

struct Inner {
    rt: tokio::runtime::Handle,
    root: CancelScope,
    events: Events,
    settings: Settings,
    /// The hooks, and whether they have run (`run_cleanup` took them).
    cleanup: Mutex<(Vec<Hook>, bool)>,
    next_cleanup: AtomicU64,
    plan: Plan,
    manifests: Mutex<std::collections::HashSet<String>>,
    deferred: Mutex<Deferred>,
}

/// Work to finish after a call returned.
pub type DeferredFn = Box<dyn FnOnce() -> Result<(), Box<EvalAltResult>> + Send>;

/// Plan mode's deferred work ([`HostCtx::defer`]): the open `parallel` groups' current task
/// (innermost last), and the work, each with the task of its group that deferred it.
#[derive(Default)]
struct Deferred {
    groups: Vec<usize>,
    work: Vec<(usize, DeferredFn)>,
}

/// Identifies a registered cleanup hook, to remove it once its resource is closed normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanupId(u64);

impl HostCtx {
    /// A context on runtime `rt` with root scope `root`.
    pub fn new(rt: tokio::runtime::Handle, root: CancelScope, events: Events, settings: Settings) -> Self {
        Self(Arc::new(Inner {
            rt,
            root,
            events,
            settings,
            cleanup: Mutex::new((Vec::new(), false)),
            next_cleanup: AtomicU64::new(1),
            plan: Plan::default(),
            manifests: Mutex::default(),
            deferred: Mutex::default(),
        }))
    }

    /// The tokio runtime handle.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.0.rt
    }

    /// The run's root cancellation scope.
    pub fn root(&self) -> &CancelScope {
        &self.0.root
    }

    /// The cancellation scope of the calling thread (the root when none is set).
    pub fn scope(&self) -> CancelScope {
        task::current().map(|t| t.scope).unwrap_or_else(|| self.0.root.clone())
    }

    /// The event bus.
    pub fn events(&self) -> &Events {
        &self.0.events
    }

    /// The redactor.
    pub fn redactor(&self) -> &Redactor {
        self.0.events.redactor()
    }

    /// Settings.
    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// Run or plan.
    pub fn mode(&self) -> Mode {
        self.0.settings.mode
    }

    /// The operations recorded so far (plan mode).
    pub fn plan(&self) -> &Plan {
        &self.0.plan
    }

    /// Record what a mutating function would do (plan mode), attributed to the calling
    /// thread's step and task, secrets scrubbed; also shown as a log line of that step.
    /// Returns its sequence number, for [`HostCtx::record_again`].
    pub fn record(&self, mut op: PlannedOp) -> usize {
        let t = task::current();
        op.step = t.as_ref().and_then(|t| t.step);
        op.label = t.as_ref().and_then(|t| t.label.as_deref().map(str::to_string));
        op.started_after = Some(self.0.events.last_step());
        let line = format!("plan: {} {}", op.action, op.target);
        let seq = self.0.plan.push(op, self.redactor());
        self.log(Level::Info, line);
        seq
    }

    /// Complete the operation recorded as `seq` (its place in the plan is kept): what a
    /// render [`HostCtx::defer`]red found.
    pub fn record_again(&self, seq: usize, op: PlannedOp) {
        self.0.plan.replace(seq, op, self.redactor());
    }

    /// Plan mode: finish `work` once the enclosing `parallel` group's tasks have all run
    /// (they run one after another, for the plan's order; what they defer, such as the helm
    /// renders of their releases, runs meanwhile). An error of `work` fails the task that
    /// deferred it. Outside a group, or in a run, `work` runs now.
    ///
    /// # Errors
    /// `work`'s, when it runs now.
    pub fn defer(&self, work: DeferredFn) -> Result<(), Box<EvalAltResult>> {
        let mut d = self.0.deferred.lock().unwrap_or_else(|e| e.into_inner());
        match d.groups.last().copied() {
            Some(task) if self.mode().is_plan() => {
                d.work.push((task, work));
                Ok(())
            }
            _ => {
                drop(d);
                work()
            }
        }
    }

    /// A plan-mode `parallel` group opens: returns the mark [`HostCtx::defer_close`] takes.
    pub(crate) fn defer_open(&self) -> usize {
        let mut d = self.0.deferred.lock().unwrap_or_else(|e| e.into_inner());
        d.groups.push(0);
        d.work.len()
    }

    /// The group's task `i` runs now.
    pub(crate) fn defer_task(&self, i: usize) {
        if let Some(t) = self.0.deferred.lock().unwrap_or_else(|e| e.into_inner()).groups.last_mut() {
            *t = i;
        }
    }

    /// The group's tasks have run: finish what they deferred, in order; the failures by task.
    pub(crate) fn defer_close(&self, mark: usize) -> Vec<(usize, Box<EvalAltResult>)> {
        let work = {
            let mut d = self.0.deferred.lock().unwrap_or_else(|e| e.into_inner());
            d.groups.pop();
            let at = mark.min(d.work.len());
            d.work.split_off(at)
        };
        work.into_iter().filter_map(|(task, w)| w().err().map(|e| (task, e))).collect()
    }

    /// Write a rendered manifest of the plan to `plan/<name>.yaml` under the artifacts
    /// directory (`<name>-2.yaml`, ... when the name was used before; secrets scrubbed);
    /// returns its path relative to it.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn plan_manifest(&self, name: &str, text: &str) -> std::io::Result<String> {
        let safe: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' })
            .collect();
        let rel = {
            let mut used = self.0.manifests.lock().unwrap_or_else(|e| e.into_inner());
            let mut rel = format!("plan/{safe}.yaml");
            let mut n = 1;
            while !used.insert(rel.clone()) {
                n += 1;
                rel = format!("plan/{safe}-{n}.yaml");
            }
            rel
        };
        let path = self.artifact_path(&rel)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, self.redactor().redact(text).as_bytes())?;
        Ok(rel)
    }

    /// Create a secret registered for redaction.
    pub fn secret(&self, value: impl Into<Arc<str>>) -> Secret {
        self.redactor().secret(value)
    }

    /// Log a line attributed to the calling thread's step and label.
    pub fn log(&self, level: Level, message: impl Into<String>) {
        let t = task::current();
        self.0.events.log(level, message, t.as_ref().and_then(|t| t.step), t.as_ref().and_then(|t| t.label.as_deref()));
    }

    /// Log a line about a place in a file (a lint finding): CI shows it on that line.
    pub fn log_at(&self, level: Level, message: impl Into<String>, at: crate::events::SourceAt) {
        let t = task::current();
        self.0.events.log_at(
            level,
            message,
            at,
            t.as_ref().and_then(|t| t.step),
            t.as_ref().and_then(|t| t.label.as_deref()),
        );
    }

    /// Resolve a path relative to the playbook directory.
    pub fn resolve_path(&self, p: &str) -> PathBuf {
        let path = Path::new(p);
        if path.is_absolute() { path.to_path_buf() } else { self.0.settings.playbook_dir.join(path) }
    }

    /// Run `fut` to completion on the runtime, racing the calling thread's cancellation scope.
    /// Errors become catchable script errors; cancellation becomes an uncatchable termination.
    ///
    /// Pass an `async` block: it is polled inside the runtime, so timers and sockets work even
    /// from `parallel` worker threads.
    pub fn block_on<T, E, F>(&self, fut: F) -> Result<T, Box<EvalAltResult>>
    where
        F: Future<Output = Result<T, E>>,
        E: HostFailure,
    {
        let out = self.blocking(|scope| async move {
            tokio::select! {
                biased;
                _ = scope.cancelled() => None,
                r = fut => Some(r),
            }
        })?;
        match out {
            None => Err(terminated(&self.scope())),
            Some(r) => r.map_err(|e| to_rhai(&e)),
        }
    }

    /// Like [`HostCtx::block_on`], but the future is handed the calling thread's cancellation
    /// scope and is NOT dropped when it is cancelled: it must watch the scope itself and wind
    /// down cleanly (stop a child gracefully, recover state). A cancellation is still reported
    /// as the uncatchable termination once it returns.
    pub fn block_on_graceful<T, E, F>(&self, make: impl FnOnce(CancelScope) -> F) -> Result<T, Box<EvalAltResult>>
    where
        F: Future<Output = Result<T, E>>,
        E: HostFailure,
    {
        let scope = self.scope();
        let out = self.blocking(make)?;
        if scope.is_cancelled() {
            return Err(terminated(&scope));
        }
        out.map_err(|e| to_rhai(&e))
    }

    /// The one place a script thread blocks on the runtime: refuse a cancelled scope and a
    /// nested call (a script closure run from inside a native call, e.g. a wait predicate,
    /// must not block again: tokio would panic), then drive `make(scope)` to completion.
    fn blocking<F: Future>(&self, make: impl FnOnce(CancelScope) -> F) -> Result<F::Output, Box<EvalAltResult>> {
        let scope = self.scope();
        if scope.is_cancelled() {
            return Err(terminated(&scope));
        }
        if IN_BLOCK_ON.with(|b| b.replace(true)) {
            return Err(crate::error::usage_err(
                "this function cannot be called here: it would block inside another native call (e.g. a wait predicate)",
            ));
        }
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                IN_BLOCK_ON.with(|b| b.set(false));
            }
        }
        let _reset = Reset;
        let _enter = self.0.rt.enter();
        Ok(self.0.rt.block_on(make(scope)))
    }

    /// Open a step of a native function's own (e.g. `wait for 13 objects`, of kind
    /// [`StepKind::Wait`], with the objects as `detail`), nested under the calling script's
    /// current step and labelled like its task. Give it progress lines while it works and
    /// finish it with the call's result.
    pub fn open_step(&self, name: &str, kind: StepKind, detail: Option<String>) -> NativeStep {
        let t = task::current();
        let events = self.0.events.clone();
        let id = events.step_started_as(
            name,
            t.as_ref().and_then(|t| t.step),
            t.as_ref().and_then(|t| t.label.as_deref()),
            kind,
            detail,
        );
        NativeStep { events, id }
    }

    /// Report a phase of the calling native function once it is over (a Helm process, a hook
    /// Helm ran), attributed to the calling script's step and task: `start_ms` and
    /// `duration_ms` on the run's clock ([`Events::elapsed`], [`Events::ms_since_start`]).
    pub fn phase(&self, name: impl Into<String>, kind: StepKind, start_ms: u64, duration_ms: u64, outcome: Outcome) {
        let t = task::current();
        self.0.events.emit(EventBody::Phase {
            step: t.as_ref().and_then(|t| t.step),
            label: t.and_then(|t| t.label.as_deref().map(str::to_string)),
            name: name.into(),
            kind,
            start_ms,
            duration_ms,
            outcome,
        });
    }

    /// Report a collected failure report (`report`: its JSON), attributed to `step` (the
    /// failed wait) and the calling task: the run report and CI show it inline.
    pub fn failure_report(&self, step: Option<u64>, failure: FailureInfo) {
        let t = task::current();
        self.0.events.emit(EventBody::Failure {
            step: step.or(t.as_ref().and_then(|t| t.step)),
            label: t.and_then(|t| t.label.as_deref().map(str::to_string)),
            object: failure.object,
            reason: failure.reason,
            summary: failure.summary,
            dir: failure.dir.map(|d| d.display().to_string()),
            report: failure.report,
        });
    }

    /// Record a decision the playbook took and why (a canary promoted or rolled back).
    pub fn decision(&self, subject: String, decision: String, reason: String) {
        let t = task::current();
        self.0.events.emit(EventBody::Decision {
            step: t.as_ref().and_then(|t| t.step),
            label: t.and_then(|t| t.label.as_deref().map(str::to_string)),
            subject,
            decision,
            reason,
        });
    }

    /// A logger for other threads (a child's output, a background task) that attributes lines
    /// to the step and task label of the script call that created it.
    pub fn logger(&self) -> Arc<dyn Fn(Level, String) + Send + Sync> {
        let t = task::current();
        let step = t.as_ref().and_then(|t| t.step);
        let label = t.and_then(|t| t.label);
        let events = self.0.events.clone();
        Arc::new(move |level, msg| events.log(level, msg, step, label.as_deref()))
    }

    /// The artifacts directory (`--artifacts`, default `kmsctl-artifacts`), created if needed.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn artifacts_dir(&self) -> std::io::Result<PathBuf> {
        let dir = self.0.settings.artifacts.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_ARTIFACTS));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// `rel` under the artifacts directory (created if needed). Refuses a path that would land
    /// outside it: absolute, or with `..`.
    ///
    /// # Errors
    /// Such a path ([`std::io::ErrorKind::InvalidInput`]), or the directory cannot be created.
    pub fn artifact_path(&self, rel: &str) -> std::io::Result<PathBuf> {
        let inside = Path::new(rel).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if rel.is_empty() || !inside {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("'{rel}' must be a relative path inside the artifacts directory"),
            ));
        }
        Ok(self.artifacts_dir()?.join(rel))
    }

    /// Sleep, cancellably.
    pub fn sleep(&self, d: Duration) -> Result<(), Box<EvalAltResult>> {
        self.block_on(async move {
            tokio::time::sleep(d).await;
            Ok::<_, crate::error::Failure>(())
        })
    }

    /// Register work that must run when the run ends, however it ends (stop a child process,
    /// close a port-forward, remove a private file). Hooks run all at once. A hook registered
    /// once they have run (a task still starting a child as the run ends) runs at once, so
    /// nothing started late outlives the run.
    pub fn on_cleanup(
        &self,
        name: impl Into<String>,
        f: impl FnOnce() -> BoxFuture<'static, ()> + Send + 'static,
    ) -> CleanupId {
        let id = self.0.next_cleanup.fetch_add(1, Ordering::Relaxed);
        let mut cleanup = self.0.cleanup.lock().expect("cleanup lock");
        if cleanup.1 {
            drop(cleanup);
            self.0.rt.spawn(f());
        } else {
            cleanup.0.push((id, name.into(), Box::new(f)));
        }
        CleanupId(id)
    }

    /// Forget a hook whose resource was closed normally.
    pub fn remove_cleanup(&self, id: CleanupId) {
        self.0.cleanup.lock().expect("cleanup lock").0.retain(|(i, ..)| *i != id.0);
    }

    /// Names of the registered hooks, oldest first.
    pub fn cleanup_names(&self) -> Vec<String> {
        self.0.cleanup.lock().expect("cleanup lock").0.iter().map(|(_, n, _)| n.clone()).collect()
    }

    /// Run every cleanup hook at once, all within `budget`: after Ctrl-C the run must end in
    /// two seconds however many children and port-forwards it has.
    pub async fn run_cleanup(&self, budget: Duration) {
        let hooks: Vec<_> = {
            let mut cleanup = self.0.cleanup.lock().expect("cleanup lock");
            cleanup.1 = true;
            std::mem::take(&mut cleanup.0)
        };
        let deadline = tokio::time::Instant::now() + budget;
        let late =
            futures::future::join_all(hooks.into_iter().map(|(_, name, f)| async move {
                tokio::time::timeout_at(deadline, f()).await.is_err().then_some(name)
            }))
            .await;
        for name in late.into_iter().flatten() {
            self.0.events.log(Level::Warn, format!("cleanup '{name}' did not finish in time"), None, None);
        }
    }
}

/// A failure report as the run report shows it ([`HostCtx::failure_report`]).
#[derive(Clone, Debug)]
pub struct FailureInfo {
    /// The blocking object, `Kind namespace/name`.
    pub object: String,
    /// Why it blocked.
    pub reason: String,
    /// The few lines the log shows.
    pub summary: String,
    /// Where its files were written.
    pub dir: Option<PathBuf>,
    /// The whole report as JSON, secrets already scrubbed.
    pub report: serde_json::Value,
}

/// A step opened by a native function ([`HostCtx::open_step`]). Cheap to clone into the
/// future that reports progress.
#[derive(Clone)]
pub struct NativeStep {
    events: Events,
    id: u64,
}

impl NativeStep {
    /// The step's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Show what the step is waiting for now.
    pub fn progress(&self, message: impl Into<String>) {
        self.events.progress(Some(self.id), message);
    }

    /// Close the step with the outcome of `result`: ok, cancelled, or failed with its message.
    pub fn finish<T>(self, result: &Result<T, Box<EvalAltResult>>) {
        match result {
            Ok(_) => self.events.step_finished(self.id, Outcome::Ok, None),
            Err(e) if crate::error::is_terminated(e) => self.events.step_finished(self.id, Outcome::Cancelled, None),
            Err(e) => self.events.step_finished(self.id, Outcome::Failed, Some(crate::error::short_message(e))),
        }
    }
}

thread_local! {
    static IN_BLOCK_ON: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The value carried by a termination: `#{reason, scope}`.
pub(crate) fn termination_value(scope: &CancelScope) -> Dynamic {
    let reason = scope.reason().unwrap_or(CancelReason::Interrupted);
    let mut m = Map::new();
    m.insert("reason".into(), reason.as_str().into());
    if let CancelReason::Timeout(id) = reason {
        m.insert("scope".into(), (id as rhai::INT).into());
    }
    Dynamic::from_map(m)
}

/// The uncatchable termination error for a cancelled scope.
pub fn terminated(scope: &CancelScope) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorTerminated(termination_value(scope), Position::NONE))
}

#[cfg(test)]
pub(crate) mod testing {
    //! A context for unit tests: a real runtime, events captured.
    use super::*;
    use crate::events::Capture;

    /// A runtime and a context on it.
    pub(crate) fn ctx() -> (tokio::runtime::Runtime, HostCtx, Capture) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let cap = Capture::default();
        let events = Events::new(vec![Box::new(cap.clone())], Redactor::new());
        let ctx = HostCtx::new(rt.handle().clone(), CancelScope::root(), events, Settings::default());
        (rt, ctx, cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_blocked_call_stops_when_its_scope_is_cancelled() {
        let (_rt, ctx, _) = testing::ctx();
        let root = ctx.root().clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            root.cancel(CancelReason::Interrupted);
        });
        let t = Instant::now();
        let err = ctx.sleep(Duration::from_secs(30)).unwrap_err();
        assert!(t.elapsed() < Duration::from_secs(2));
        assert!(matches!(*err, EvalAltResult::ErrorTerminated(..)));
        assert!(!err.is_catchable());
    }

    /// Regression: hooks ran one after another, each bounded by 300 ms after Ctrl-C, so a run
    /// with many children or port-forwards took longer than the two seconds it promises.
    #[test]
    fn cleanup_hooks_run_at_once_within_one_bound_and_removed_ones_do_not() {
        let (rt, ctx, cap) = testing::ctx();
        let done = Arc::new(Mutex::new(Vec::new()));
        for n in 0..20 {
            let d = done.clone();
            let id = ctx.on_cleanup(format!("slow {n}"), move || {
                Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    d.lock().unwrap().push(n);
                })
            });
            if n == 7 {
                ctx.remove_cleanup(id);
            }
        }
        ctx.on_cleanup("stuck", || Box::pin(std::future::pending()));
        let t = Instant::now();
        rt.block_on(ctx.run_cleanup(Duration::from_millis(300)));
        let took = t.elapsed();
        assert!(took < Duration::from_millis(450), "cleanup took {took:?}");
        let mut done = done.lock().unwrap().clone();
        done.sort();
        assert_eq!(done, (0..20).filter(|n| *n != 7).collect::<Vec<_>>());
        let warned: Vec<String> = cap
            .events()
            .into_iter()
            .filter_map(|e| match e.body {
                crate::events::EventBody::Log { message, .. } => Some(message),
                _ => None,
            })
            .collect();
        assert_eq!(warned, ["cleanup 'stuck' did not finish in time"]);
    }

    /// Regression: a child started by a task after the run's cleanup had run (a parallel branch
    /// still calling helm as the run ended) registered a hook nobody ran, and outlived the run.
    #[test]
    fn a_hook_registered_after_the_cleanup_ran_runs_at_once() {
        let (rt, ctx, _) = testing::ctx();
        rt.block_on(ctx.run_cleanup(Duration::from_millis(100)));
        let (tx, rx) = std::sync::mpsc::channel();
        ctx.on_cleanup("late child", move || Box::pin(async move { tx.send(()).unwrap() }));
        rx.recv_timeout(Duration::from_secs(2)).expect("the late hook ran");
        assert!(ctx.cleanup_names().is_empty());
    }
}
