//! The run as the report sees it: the event stream folded into steps with their times, the
//! phases drawn on them, what each wait waited for, the failure reports, decisions, errors.
//! Everything the HTML, the Markdown summary and the JUnit file show comes from here, so they
//! agree, and this is the part a unit test can check without a browser.

use crate::events::{Event, EventBody, Level, Outcome, StepKind};
use serde::Serialize;
use std::collections::HashMap;

/// How many log lines each step keeps (its last ones).
const STEP_LOG_LINES: usize = 30;

/// The whole run.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct RunReport {
    /// The playbook as given.
    pub playbook: String,
    /// Wall-clock start (RFC 3339).
    pub started_at: String,
    /// How it ended (`None`: it is still running).
    pub outcome: Option<Outcome>,
    /// The process exit code.
    pub exit_code: Option<i32>,
    /// Wall time, in milliseconds.
    pub duration_ms: u64,
    /// The resolved parameters, secrets masked.
    pub params: serde_json::Value,
    /// Every step, in start order.
    pub steps: Vec<Step>,
    /// Phases reported after the fact (Helm processes, hooks).
    pub phases: Vec<Phase>,
    /// Failure reports.
    pub failures: Vec<Failure>,
    /// Decisions (canary promotions and rollbacks).
    pub decisions: Vec<Decision>,
    /// The run's errors (the uncaught one, or every compile and parameter error).
    pub errors: Vec<ErrorInfo>,
    /// Warnings and errors logged, in order.
    pub warnings: Vec<LogLine>,
    /// Resources the run's cleanup closed.
    pub closed: Vec<String>,
    /// Warnings past [`WARNINGS`], counted but not kept.
    pub warnings_left_out: usize,
    /// Where each step is in `steps`.
    #[serde(skip)]
    index: HashMap<u64, usize>,
}

/// How many warnings the report keeps (a run that warns in a loop stays small).
const WARNINGS: usize = 1000;

/// One step.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Step {
    /// Its id.
    pub id: u64,
    /// The enclosing step.
    pub parent: Option<u64>,
    /// Its name.
    pub name: String,
    /// The parallel task it ran in.
    pub label: Option<String>,
    /// What kind of step.
    pub kind: StepKind,
    /// What it worked on (a wait's objects).
    pub detail: Option<String>,
    /// When it started, in milliseconds since the run started.
    pub start_ms: u64,
    /// When it ended (`None`: never, as far as the events say).
    pub end_ms: Option<u64>,
    /// How it ended.
    pub outcome: Option<Outcome>,
    /// Its error, if it failed.
    pub error: Option<String>,
    /// The last progress line it reported (a wait: what was still pending).
    pub progress: Option<String>,
    /// Its last log lines.
    pub logs: Vec<LogLine>,
}

impl Step {
    /// How long it took (up to `now` when it never ended).
    pub(crate) fn duration_ms(&self, now: u64) -> u64 {
        self.end_ms.unwrap_or(now).saturating_sub(self.start_ms)
    }
}

/// A log line.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct LogLine {
    /// When, in milliseconds since the run started.
    pub at_ms: u64,
    /// Severity.
    pub level: Level,
    /// The parallel task.
    pub label: Option<String>,
    /// The text.
    pub message: String,
}

/// A phase of a native call.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Phase {
    /// The step it belongs to.
    pub step: Option<u64>,
    /// The parallel task.
    pub label: Option<String>,
    /// What it was.
    pub name: String,
    /// Helm or hook.
    pub kind: StepKind,
    /// Start, in milliseconds since the run started.
    pub start_ms: u64,
    /// End, likewise.
    pub end_ms: u64,
    /// How it ended.
    pub outcome: Outcome,
}

/// A failure report.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Failure {
    /// The step it belongs to.
    pub step: Option<u64>,
    /// The parallel task.
    pub label: Option<String>,
    /// `Kind namespace/name`.
    pub object: String,
    /// Why it blocked.
    pub reason: String,
    /// The short summary.
    pub summary: String,
    /// Where its files are.
    pub dir: Option<String>,
    /// The report.
    pub report: serde_json::Value,
}

/// A decision.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Decision {
    /// When, in milliseconds since the run started.
    pub at_ms: u64,
    /// The step it was taken in.
    pub step: Option<u64>,
    /// The parallel task.
    pub label: Option<String>,
    /// What about.
    pub subject: String,
    /// What.
    pub decision: String,
    /// Why.
    pub reason: String,
}

/// An error of the run.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ErrorInfo {
    /// Its kind.
    pub kind: String,
    /// One line.
    pub message: String,
    /// The whole report.
    pub diagnostic: String,
    /// Where it points.
    pub file: Option<String>,
    /// Line there.
    pub line: Option<usize>,
    /// Column there.
    pub col: Option<usize>,
}

impl RunReport {
    /// Fold the events of a run (in order) into its report.
    #[cfg(test)]
    pub(crate) fn build(events: &[Event]) -> Self {
        let mut r = RunReport::default();
        events.iter().for_each(|e| r.apply(e));
        r
    }

    /// Fold in the run's next event. What it keeps is bounded by the run's structure (its
    /// steps, phases, failures), not by how much it logs: each step's last lines, the last
    /// progress line, the first [`WARNINGS`] warnings.
    pub(crate) fn apply(&mut self, ev: &Event) {
        let r = self;
        let index = &mut r.index;
        if r.started_at.is_empty()
            && let Ok(ts) = ev.ts.parse::<jiff::Timestamp>()
        {
            let back = jiff::SignedDuration::from_millis(i64::try_from(ev.elapsed_ms).unwrap_or(0));
            r.started_at = ts.checked_sub(back).unwrap_or(ts).to_string();
        }
        let at = ev.elapsed_ms;
        r.duration_ms = r.duration_ms.max(at);
        match &ev.body {
            EventBody::RunStarted { playbook, params } => {
                r.playbook = playbook.clone();
                r.params = params.clone();
            }
            EventBody::StepStarted { id, parent, name, label, kind, detail } => {
                index.insert(*id, r.steps.len());
                r.steps.push(Step {
                    id: *id,
                    parent: *parent,
                    name: name.clone(),
                    label: label.clone(),
                    kind: *kind,
                    detail: detail.clone(),
                    start_ms: at,
                    end_ms: None,
                    outcome: None,
                    error: None,
                    progress: None,
                    logs: Vec::new(),
                });
            }
            EventBody::StepFinished { id, outcome, error, .. } => {
                if let Some(s) = index.get(id).map(|&i| &mut r.steps[i]) {
                    s.end_ms = Some(at.max(s.start_ms));
                    s.outcome = Some(*outcome);
                    s.error.clone_from(error);
                }
            }
            EventBody::Progress { step, message } => {
                if let Some(s) = step.and_then(|id| index.get(&id)).map(|&i| &mut r.steps[i]) {
                    s.progress = Some(message.clone());
                }
            }
            EventBody::Log { level, message, step, label, .. } => {
                let line = LogLine { at_ms: at, level: *level, label: label.clone(), message: message.clone() };
                if *level >= Level::Warn {
                    if r.warnings.len() < WARNINGS {
                        r.warnings.push(line.clone());
                    } else {
                        r.warnings_left_out += 1;
                    }
                }
                if let Some(s) = step.and_then(|id| index.get(&id)).map(|&i| &mut r.steps[i]) {
                    s.logs.push(line);
                    if s.logs.len() > STEP_LOG_LINES {
                        s.logs.remove(0);
                    }
                }
            }
            EventBody::Phase { step, label, name, kind, start_ms, duration_ms, outcome } => r.phases.push(Phase {
                step: *step,
                label: label.clone(),
                name: name.clone(),
                kind: *kind,
                start_ms: *start_ms,
                end_ms: start_ms + duration_ms,
                outcome: *outcome,
            }),
            EventBody::Failure { step, label, object, reason, summary, dir, report } => r.failures.push(Failure {
                step: *step,
                label: label.clone(),
                object: object.clone(),
                reason: reason.clone(),
                summary: summary.clone(),
                dir: dir.clone(),
                report: report.clone(),
            }),
            EventBody::Decision { step, label, subject, decision, reason } => r.decisions.push(Decision {
                at_ms: at,
                step: *step,
                label: label.clone(),
                subject: subject.clone(),
                decision: decision.clone(),
                reason: reason.clone(),
            }),
            EventBody::Error { kind, message, diagnostic, file, line, col } => r.errors.push(ErrorInfo {
                kind: kind.clone(),
                message: message.clone(),
                diagnostic: diagnostic.clone(),
                file: file.clone(),
                line: *line,
                col: *col,
            }),
            EventBody::Plan { .. } => {}
            EventBody::RunFinished { outcome, exit_code, duration_ms, closed, .. } => {
                r.outcome = Some(*outcome);
                r.exit_code = Some(*exit_code);
                r.duration_ms = *duration_ms;
                r.closed.clone_from(closed);
            }
        }
    }

    /// The step with this id.
    pub(crate) fn step(&self, id: u64) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// How deep a step is (0: top level).
    pub(crate) fn depth(&self, s: &Step) -> usize {
        let mut d = 0;
        let mut p = s.parent;
        while let Some(id) = p {
            d += 1;
            p = self.step(id).and_then(|s| s.parent);
        }
        d
    }

    /// Is `id` the step `ancestor` or inside it?
    pub(crate) fn within(&self, id: u64, ancestor: u64) -> bool {
        let mut cur = Some(id);
        while let Some(c) = cur {
            if c == ancestor {
                return true;
            }
            cur = self.step(c).and_then(|s| s.parent);
        }
        false
    }

    /// The failure reports of a step and the steps inside it.
    pub(crate) fn failures_in(&self, id: u64) -> Vec<&Failure> {
        self.failures.iter().filter(|f| f.step.is_some_and(|s| self.within(s, id))).collect()
    }

    /// The names of a step's ancestors, outermost first.
    pub(crate) fn path(&self, s: &Step) -> Vec<&str> {
        let mut names = Vec::new();
        let mut p = s.parent;
        while let Some(id) = p {
            let Some(a) = self.step(id) else { break };
            names.push(a.name.as_str());
            p = a.parent;
        }
        names.reverse();
        names
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::events::{Capture, Events};
    use crate::secret::Redactor;

    /// A small parallel deploy: two parties, each a helm phase and a wait, one failing with a
    /// report; then the run's error.
    pub(crate) fn deploy() -> Vec<Event> {
        let cap = Capture::default();
        let ev = Events::new(vec![Box::new(cap.clone())], Redactor::new());
        ev.emit(EventBody::RunStarted {
            playbook: "deploy.rhai".into(),
            params: serde_json::json!({"namespace": "kms"}),
        });
        let deploy = ev.step_started("deploy 2 parties", None, None);
        for p in 1..=2 {
            let label = format!("party-{p}");
            let task = ev.step_started_as(&label, Some(deploy), Some(&label), StepKind::Task, None);
            ev.emit(EventBody::Phase {
                step: Some(task),
                label: Some(label.clone()),
                name: format!("helm upgrade kms-core-{p}"),
                kind: StepKind::Helm,
                start_ms: 0,
                duration_ms: 5,
                outcome: Outcome::Ok,
            });
            let wait = ev.step_started_as(
                &format!("wait for release kms-core-{p}"),
                Some(task),
                Some(&label),
                StepKind::Wait,
                Some("StatefulSet kms/a, Service kms/b".into()),
            );
            ev.progress(Some(wait), "0/2 ready; waiting for StatefulSet kms/a");
            if p == 2 {
                ev.emit(EventBody::Failure {
                    step: Some(wait),
                    label: Some(label.clone()),
                    object: "Pod kms/kms-core-2-0".into(),
                    reason: "CreateContainerConfigError: configmap \"x\" not found".into(),
                    summary: "Pod kms/kms-core-2-0: CreateContainerConfigError".into(),
                    dir: None,
                    report: serde_json::json!({"pods": []}),
                });
                ev.log(Level::Error, "the party failed", Some(wait), Some(&label));
                ev.step_finished(wait, Outcome::Failed, Some("wait failed".into()));
                ev.step_finished(task, Outcome::Failed, Some("wait failed".into()));
            } else {
                ev.step_finished(wait, Outcome::Ok, None);
                ev.step_finished(task, Outcome::Ok, None);
            }
        }
        ev.step_finished(deploy, Outcome::Failed, Some("wait failed".into()));
        ev.emit(EventBody::Error {
            kind: "failed".into(),
            message: "wait failed".into(),
            diagnostic: "× wait failed".into(),
            file: Some("deploy.rhai".into()),
            line: Some(3),
            col: Some(5),
        });
        ev.run_finished(Outcome::Failed, 1, Vec::new());
        cap.events()
    }

    #[test]
    fn steps_phases_waits_and_failures_are_folded_from_the_events() {
        let r = RunReport::build(&deploy());
        assert_eq!(r.outcome, Some(Outcome::Failed));
        assert_eq!(r.exit_code, Some(1));
        let tasks: Vec<&str> = r.steps.iter().filter(|s| s.kind == StepKind::Task).map(|s| s.name.as_str()).collect();
        assert_eq!(tasks, ["party-1", "party-2"]);
        let wait = r.steps.iter().find(|s| s.kind == StepKind::Wait).unwrap();
        assert_eq!(wait.detail.as_deref(), Some("StatefulSet kms/a, Service kms/b"));
        assert_eq!(wait.progress.as_deref(), Some("0/2 ready; waiting for StatefulSet kms/a"));
        assert_eq!(r.phases.len(), 2);
        assert_eq!(r.phases[0].label.as_deref(), Some("party-1"));
        assert_eq!(r.failures.len(), 1);
        let party2 = r.steps.iter().find(|s| s.name == "party-2").unwrap();
        assert_eq!(r.failures_in(party2.id).len(), 1);
        assert_eq!(r.path(party2), ["deploy 2 parties"]);
        assert_eq!(r.errors[0].line, Some(3));
        assert_eq!(r.warnings.len(), 1);
    }
}
