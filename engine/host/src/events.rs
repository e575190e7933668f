//! The run's event stream: steps, logs, warnings, errors, the final summary.
//!
//! Everything a run reports goes through [`Events`], which stamps, redacts and fans out to the
//! sinks (human view, `--output json`, the artifacts file). Redaction happens here, once, so no
//! sink can leak a secret.

use crate::secret::Redactor;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Log severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Detail for debugging playbooks; hidden in the human view unless verbose.
    Debug,
    /// Normal progress.
    Info,
    /// Something the user should look at.
    Warn,
    /// A failure being reported.
    Error,
}

/// How a step or run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Finished.
    Ok,
    /// Raised an error.
    Failed,
    /// Stopped by cancellation.
    Cancelled,
}

/// What a step is: the playbook's own, a parallel task, or a phase of a native call. The run
/// report draws each kind differently (a task is a lane of the timeline, a wait or a Helm
/// phase a segment on it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// `log::step` (and anything not said otherwise).
    #[default]
    Step,
    /// One task of `parallel` / `parallel_map`.
    Task,
    /// A wait of the readiness engine, or another native wait (EKS ACTIVE).
    Wait,
    /// A Helm process (install, upgrade).
    Helm,
    /// A Helm hook (a Job or other object run by Helm around the release).
    Hook,
}

/// One step in the end-of-run summary.
#[derive(Clone, Debug, Serialize)]
pub struct StepRecord {
    /// Step id, unique in the run.
    pub id: u64,
    /// Enclosing step.
    pub parent: Option<u64>,
    /// Name given by the playbook.
    pub name: String,
    /// Label of the parallel task it ran in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// What kind of step.
    pub kind: StepKind,
    /// Outcome, `None` while running.
    pub outcome: Option<Outcome>,
    /// Duration in milliseconds, once finished.
    pub duration_ms: Option<u64>,
    /// Error message if it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    started: Option<Instant>,
}

/// A place in a file a log line is about.
#[derive(Clone, Debug, Serialize)]
pub struct SourceAt {
    /// The file, as given (relative to the working directory for CI annotations).
    pub file: String,
    /// Line, from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// Column, from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub col: Option<usize>,
}

/// What happened.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventBody {
    /// The run begins (after parameters were validated).
    RunStarted {
        /// Playbook path.
        playbook: String,
        /// Resolved parameters (secrets masked).
        params: serde_json::Value,
    },
    /// A step began.
    StepStarted {
        /// Step id.
        id: u64,
        /// Enclosing step.
        parent: Option<u64>,
        /// Step name.
        name: String,
        /// Parallel task label.
        #[serde(skip_serializing_if = "Option::is_none")]
        label: Option<String>,
        /// What kind of step.
        kind: StepKind,
        /// What it works on, when its name does not say it all (a wait's objects).
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// A phase of a native call that is reported once it is over, with its own times (a Helm
    /// process, a hook Helm ran): not a step of the tree, a segment of the run report's
    /// timeline.
    Phase {
        /// The step it belongs to.
        #[serde(skip_serializing_if = "Option::is_none")]
        step: Option<u64>,
        /// Parallel task label.
        #[serde(skip_serializing_if = "Option::is_none")]
        label: Option<String>,
        /// What it was (`helm upgrade kms-core-3`, `hook Job kms-core-init`).
        name: String,
        /// [`StepKind::Helm`] or [`StepKind::Hook`].
        kind: StepKind,
        /// When it started, in milliseconds since the run started.
        start_ms: u64,
        /// How long it took.
        duration_ms: u64,
        /// How it ended.
        outcome: Outcome,
    },
    /// A failure report was collected (a failed or timed-out wait): the report itself,
    /// secrets scrubbed, for the run report and CI to show inline.
    Failure {
        /// The step it belongs to (the failed wait).
        #[serde(skip_serializing_if = "Option::is_none")]
        step: Option<u64>,
        /// Parallel task label.
        #[serde(skip_serializing_if = "Option::is_none")]
        label: Option<String>,
        /// The blocking object, `Kind namespace/name`.
        object: String,
        /// Why it blocked.
        reason: String,
        /// The short summary printed in the log.
        summary: String,
        /// Where its files were written under the artifacts directory.
        #[serde(skip_serializing_if = "Option::is_none")]
        dir: Option<String>,
        /// The whole report (its JSON).
        report: serde_json::Value,
    },
    /// A decision the playbook took and why (a canary promoted or rolled back).
    Decision {
        /// The step it belongs to.
        #[serde(skip_serializing_if = "Option::is_none")]
        step: Option<u64>,
        /// Parallel task label.
        #[serde(skip_serializing_if = "Option::is_none")]
        label: Option<String>,
        /// What was decided about (`canary kms-core`).
        subject: String,
        /// The decision (`promote`, `rollback`, `continue`).
        decision: String,
        /// Why.
        reason: String,
    },
    /// A step ended.
    StepFinished {
        /// Step id.
        id: u64,
        /// Step name.
        name: String,
        /// Outcome.
        outcome: Outcome,
        /// Duration in milliseconds.
        duration_ms: u64,
        /// Error message, if it failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A log line.
    Log {
        /// Severity.
        level: Level,
        /// Text.
        message: String,
        /// Step it belongs to.
        #[serde(skip_serializing_if = "Option::is_none")]
        step: Option<u64>,
        /// Parallel task label.
        #[serde(skip_serializing_if = "Option::is_none")]
        label: Option<String>,
        /// The file (and line, column) it is about: a lint finding (`log::annotate`), which CI
        /// shows on that line.
        #[serde(skip_serializing_if = "Option::is_none")]
        at: Option<SourceAt>,
    },
    /// Where a long operation stands (a wait: what is still pending and why).
    Progress {
        /// The step it belongs to.
        #[serde(skip_serializing_if = "Option::is_none")]
        step: Option<u64>,
        /// One line.
        message: String,
    },
    /// The run failed; `diagnostic` is the rendered report.
    Error {
        /// Error kind (`timeout`, `not_found`, ..., `compile`, `params`).
        kind: String,
        /// One-line message.
        message: String,
        /// The full human report, without colour.
        diagnostic: String,
        /// The file it points into (the playbook, or a module it imports), when it does.
        #[serde(skip_serializing_if = "Option::is_none")]
        file: Option<String>,
        /// Line in `file`, from 1.
        #[serde(skip_serializing_if = "Option::is_none")]
        line: Option<usize>,
        /// Column in `line`, from 1.
        #[serde(skip_serializing_if = "Option::is_none")]
        col: Option<usize>,
    },
    /// `--plan`: the whole plan, once, before the run ends.
    Plan {
        /// The plan ([`crate::plan::PlanReport`]), secrets masked.
        plan: serde_json::Value,
    },
    /// The run ended.
    RunFinished {
        /// Outcome.
        outcome: Outcome,
        /// Process exit code.
        exit_code: i32,
        /// Wall time in milliseconds.
        duration_ms: u64,
        /// Every step, in start order.
        steps: Vec<StepRecord>,
        /// Resources closed by cleanup at the end (port-forwards, background processes).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        closed: Vec<String>,
    },
}

impl EventBody {
    fn scrub(&mut self, r: &Redactor) {
        match self {
            Self::RunStarted { playbook, params } => {
                r.scrub(playbook);
                r.scrub_json(params);
            }
            Self::StepStarted { name, label, detail, .. } => {
                r.scrub(name);
                label.iter_mut().for_each(|l| r.scrub(l));
                detail.iter_mut().for_each(|d| r.scrub(d));
            }
            Self::Phase { name, label, .. } => {
                r.scrub(name);
                label.iter_mut().for_each(|l| r.scrub(l));
            }
            Self::Failure { label, object, reason, summary, dir, report, .. } => {
                label.iter_mut().for_each(|l| r.scrub(l));
                r.scrub(object);
                r.scrub(reason);
                r.scrub(summary);
                dir.iter_mut().for_each(|d| r.scrub(d));
                r.scrub_json(report);
            }
            Self::Decision { label, subject, decision, reason, .. } => {
                label.iter_mut().for_each(|l| r.scrub(l));
                r.scrub(subject);
                r.scrub(decision);
                r.scrub(reason);
            }
            Self::StepFinished { name, error, .. } => {
                r.scrub(name);
                error.iter_mut().for_each(|e| r.scrub(e));
            }
            Self::Log { message, label, at, .. } => {
                r.scrub(message);
                label.iter_mut().for_each(|l| r.scrub(l));
                if let Some(a) = at {
                    r.scrub(&mut a.file);
                }
            }
            Self::Progress { message, .. } => r.scrub(message),
            Self::Error { kind, message, diagnostic, file, .. } => {
                r.scrub(kind);
                r.scrub(message);
                r.scrub(diagnostic);
                file.iter_mut().for_each(|f| r.scrub(f));
            }
            Self::Plan { plan } => r.scrub_json(plan),
            Self::RunFinished { steps, closed, .. } => {
                closed.iter_mut().for_each(|c| r.scrub(c));
                for s in steps {
                    r.scrub(&mut s.name);
                    s.error.iter_mut().for_each(|e| r.scrub(e));
                    s.label.iter_mut().for_each(|l| r.scrub(l));
                }
            }
        }
    }
}

/// A stamped event.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// Wall-clock time, RFC 3339.
    pub ts: String,
    /// Milliseconds since the run started.
    pub elapsed_ms: u64,
    /// The event itself.
    #[serde(flatten)]
    pub body: EventBody,
}

/// Somewhere events go.
pub trait Sink: Send + Sync {
    /// Handle one (already redacted) event.
    fn emit(&self, event: &Event);
    /// The run is over: flush and tear down (clear progress bars).
    fn finish(&self) {}
    /// Run `f` with this sink off the terminal (live spinners cleared and held), so `f` can
    /// talk to the user there.
    fn suspend(&self, f: &mut dyn FnMut()) {
        f()
    }
}

/// The run's event bus.
#[derive(Clone)]
pub struct Events(Arc<Inner>);

struct Inner {
    sinks: Vec<Box<dyn Sink>>,
    redactor: Redactor,
    started: Instant,
    started_at: jiff::Timestamp,
    next_step: AtomicU64,
    steps: Mutex<Vec<StepRecord>>,
}

impl Events {
    /// A bus writing to `sinks`, scrubbing with `redactor`.
    pub fn new(sinks: Vec<Box<dyn Sink>>, redactor: Redactor) -> Self {
        Self(Arc::new(Inner {
            sinks,
            redactor,
            started: Instant::now(),
            started_at: jiff::Timestamp::now(),
            next_step: AtomicU64::new(1),
            steps: Mutex::new(Vec::new()),
        }))
    }

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.0.started.elapsed()
    }

    /// Stamp, redact and dispatch an event.
    pub fn emit(&self, mut body: EventBody) {
        body.scrub(&self.0.redactor);
        let ev = Event { ts: jiff::Timestamp::now().to_string(), elapsed_ms: self.elapsed().as_millis() as u64, body };
        for s in &self.0.sinks {
            s.emit(&ev);
        }
    }

    /// Open a step; returns its id.
    pub fn step_started(&self, name: &str, parent: Option<u64>, label: Option<&str>) -> u64 {
        self.step_started_as(name, parent, label, StepKind::Step, None)
    }

    /// Open a step of a given kind, with what it works on; returns its id.
    pub fn step_started_as(
        &self,
        name: &str,
        parent: Option<u64>,
        label: Option<&str>,
        kind: StepKind,
        detail: Option<String>,
    ) -> u64 {
        let id = self.0.next_step.fetch_add(1, Ordering::Relaxed);
        self.0.steps.lock().expect("steps lock").push(StepRecord {
            id,
            parent,
            name: name.to_string(),
            label: label.map(str::to_string),
            kind,
            outcome: None,
            duration_ms: None,
            error: None,
            started: Some(Instant::now()),
        });
        self.emit(EventBody::StepStarted {
            id,
            parent,
            name: name.to_string(),
            label: label.map(str::to_string),
            kind,
            detail,
        });
        id
    }

    /// Milliseconds from the run's start to the wall-clock time `t` (0 before it): a phase
    /// another program timed (a Helm hook's start) placed on the run's clock.
    pub fn ms_since_start(&self, t: jiff::Timestamp) -> u64 {
        let span = t.duration_since(self.0.started_at);
        u64::try_from(span.as_millis()).unwrap_or(0)
    }

    /// Close a step.
    pub fn step_finished(&self, id: u64, outcome: Outcome, error: Option<String>) {
        let (name, duration_ms) = {
            let mut steps = self.0.steps.lock().expect("steps lock");
            let Some(rec) = steps.iter_mut().find(|s| s.id == id) else {
                return;
            };
            let ms = rec.started.map(|t| t.elapsed().as_millis() as u64).unwrap_or(0);
            rec.outcome = Some(outcome);
            rec.duration_ms = Some(ms);
            rec.error = error.clone();
            (rec.name.clone(), ms)
        };
        self.emit(EventBody::StepFinished { id, name, outcome, duration_ms, error });
    }

    /// A log line.
    pub fn log(&self, level: Level, message: impl Into<String>, step: Option<u64>, label: Option<&str>) {
        self.emit(EventBody::Log { level, message: message.into(), step, label: label.map(str::to_string), at: None });
    }

    /// A log line about a place in a file (a lint finding).
    pub fn log_at(
        &self,
        level: Level,
        message: impl Into<String>,
        at: SourceAt,
        step: Option<u64>,
        label: Option<&str>,
    ) {
        self.emit(EventBody::Log {
            level,
            message: message.into(),
            step,
            label: label.map(str::to_string),
            at: Some(at),
        });
    }

    /// The id of the last step started (0: none yet).
    pub(crate) fn last_step(&self) -> u64 {
        self.0.next_step.load(Ordering::Relaxed).saturating_sub(1)
    }

    /// All steps so far, in start order.
    pub fn steps(&self) -> Vec<StepRecord> {
        self.0.steps.lock().expect("steps lock").clone()
    }

    /// Report progress of the calling step.
    pub fn progress(&self, step: Option<u64>, message: impl Into<String>) {
        self.emit(EventBody::Progress { step, message: message.into() });
    }

    /// Close any steps still open (as cancelled) and emit the run summary.
    pub fn run_finished(&self, outcome: Outcome, exit_code: i32, closed: Vec<String>) {
        let open: Vec<u64> = self.steps().iter().filter(|s| s.outcome.is_none()).map(|s| s.id).rev().collect();
        for id in open {
            self.step_finished(id, Outcome::Cancelled, None);
        }
        self.emit(EventBody::RunFinished {
            outcome,
            exit_code,
            duration_ms: self.elapsed().as_millis() as u64,
            steps: self.steps(),
            closed,
        });
        for s in &self.0.sinks {
            s.finish();
        }
    }

    /// The redactor this bus scrubs with.
    pub fn redactor(&self) -> &Redactor {
        &self.0.redactor
    }

    /// Run `f` with every sink off the terminal ([`Sink::suspend`]); events emitted meanwhile
    /// wait for it.
    pub(crate) fn suspend(&self, f: &mut dyn FnMut()) {
        fn nest(sinks: &[Box<dyn Sink>], f: &mut dyn FnMut()) {
            match sinks.split_first() {
                None => f(),
                Some((s, rest)) => s.suspend(&mut || nest(rest, f)),
            }
        }
        nest(&self.0.sinks, f)
    }
}

/// A sink that keeps events in memory, for tests.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<Vec<Event>>>);

#[cfg(test)]
impl Capture {
    /// Everything captured so far.
    pub(crate) fn events(&self) -> Vec<Event> {
        self.0.lock().expect("capture lock").clone()
    }
}

#[cfg(test)]
impl Sink for Capture {
    fn emit(&self, event: &Event) {
        self.0.lock().expect("capture lock").push(event.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_redacted_before_any_sink_sees_them() {
        let r = Redactor::new();
        r.secret("s3cr3t-value");
        let cap = Capture::default();
        let ev = Events::new(vec![Box::new(cap.clone())], r);
        let id = ev.step_started("use s3cr3t-value", None, Some("s3cr3t-value"));
        ev.log(Level::Info, "token=s3cr3t-value", Some(id), None);
        ev.step_finished(id, Outcome::Failed, Some("bad s3cr3t-value".into()));
        ev.run_finished(Outcome::Failed, 1, Vec::new());
        let text = serde_json::to_string(&cap.events()).unwrap();
        assert!(!text.contains("s3cr3t-value"), "{text}");
        assert_eq!(text.matches("***").count(), 8, "{text}");
    }

    #[test]
    fn run_finished_closes_open_steps_as_cancelled() {
        let cap = Capture::default();
        let ev = Events::new(vec![Box::new(cap.clone())], Redactor::new());
        ev.step_started("outer", None, None);
        ev.run_finished(Outcome::Cancelled, 130, Vec::new());
        let steps = ev.steps();
        assert_eq!(steps[0].outcome, Some(Outcome::Cancelled));
        let last = cap.events().pop().unwrap();
        assert!(matches!(last.body, EventBody::RunFinished { exit_code: 130, .. }));
    }
}
