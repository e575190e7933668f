//! The human view on stderr.
//!
//! On a terminal (and not in CI) running steps are spinners, indented by depth, and finished
//! steps scroll above them as `✓ name 2.1s`. Elsewhere every change is a plain line, with
//! GitHub Actions groups and error annotations when running under Actions.

use super::github::{self, At};
use crate::duration;
use crate::events::{Event, EventBody, Level, Outcome, Sink, StepRecord};
use console::style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

/// How the human view draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HumanStyle {
    /// Spinners on a terminal.
    Live,
    /// Plain lines (not a terminal, or CI).
    Plain,
}

impl HumanStyle {
    /// Live on an interactive stderr outside CI, plain otherwise.
    pub(crate) fn detect() -> Self {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
        if !ci && console::Term::stderr().is_term() { Self::Live } else { Self::Plain }
    }
}

struct StepView {
    name: String,
    depth: usize,
    bar: Option<ProgressBar>,
    /// Plain mode: the last progress line printed and when, to print changes only, and at
    /// most every few seconds.
    last_progress: Option<(String, std::time::Instant)>,
}

/// The human sink.
pub(crate) struct Human {
    style: HumanStyle,
    verbose: bool,
    github: bool,
    mp: MultiProgress,
    steps: Mutex<HashMap<u64, StepView>>,
}

impl Human {
    /// A human view; `verbose` shows debug logs.
    pub(crate) fn new(style: HumanStyle, verbose: bool) -> Self {
        let mp = MultiProgress::with_draw_target(match style {
            HumanStyle::Live => ProgressDrawTarget::stderr_with_hz(10),
            HumanStyle::Plain => ProgressDrawTarget::hidden(),
        });
        Self {
            style,
            verbose,
            github: style == HumanStyle::Plain && github::detected(),
            mp,
            steps: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, text: &str) {
        match self.style {
            HumanStyle::Live => {
                let _ = self.mp.println(text);
            }
            HumanStyle::Plain => {
                let mut e = std::io::stderr().lock();
                let _ = writeln!(e, "{text}");
            }
        }
    }

    fn depth_of(steps: &HashMap<u64, StepView>, id: Option<u64>) -> usize {
        id.and_then(|i| steps.get(&i)).map(|s| s.depth + 1).unwrap_or(0)
    }

    fn summary(&self, steps: &[StepRecord], outcome: Outcome, total_ms: u64) {
        if steps.is_empty() {
            return;
        }
        let depth = |s: &StepRecord| {
            let mut d = 0;
            let mut p = s.parent;
            while let Some(pid) = p {
                d += 1;
                p = steps.iter().find(|x| x.id == pid).and_then(|x| x.parent);
            }
            d
        };
        let shown: Vec<(usize, &StepRecord)> = steps.iter().map(|s| (depth(s), s)).filter(|(d, _)| *d <= 1).collect();
        let width = shown.iter().map(|(d, s)| d * 2 + s.name.chars().count()).max().unwrap_or(0);
        let head = match outcome {
            Outcome::Ok => style("Summary").green().bold(),
            Outcome::Failed => style("Summary").red().bold(),
            Outcome::Cancelled => style("Summary").yellow().bold(),
        };
        self.line(&format!("\n{head} ({})", duration::format(Duration::from_millis(total_ms))));
        for (d, s) in shown {
            let indent = "  ".repeat(d);
            let pad = width - d * 2;
            let dur = s.duration_ms.map(|m| duration::format(Duration::from_millis(m))).unwrap_or_default();
            let err = s.error.as_deref().map(|e| format!("  {}", first_line(e))).unwrap_or_default();
            self.line(&format!("  {indent}{} {:<pad$}  {dur:>8}{err}", mark(s.outcome), s.name));
        }
    }
}

fn mark(o: Option<Outcome>) -> console::StyledObject<&'static str> {
    match o {
        Some(Outcome::Ok) => style("✓").green(),
        Some(Outcome::Failed) => style("✗").red(),
        Some(Outcome::Cancelled) => style("⊘").yellow(),
        None => style("…").dim(),
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

impl Sink for Human {
    fn emit(&self, ev: &Event) {
        let mut steps = self.steps.lock().expect("human lock");
        match &ev.body {
            // The plan itself goes to stdout, rendered by the binary.
            EventBody::RunStarted { .. } | EventBody::Plan { .. } => {}
            EventBody::StepStarted { id, parent, name, .. } => {
                let depth = Self::depth_of(&steps, *parent);
                let indent = "  ".repeat(depth);
                let bar = match self.style {
                    HumanStyle::Live => {
                        let pb = self.mp.add(ProgressBar::new_spinner());
                        pb.set_style(
                            ProgressStyle::with_template("{prefix}{spinner:.cyan} {msg} {elapsed:.dim}")
                                .expect("valid template"),
                        );
                        pb.set_prefix(indent);
                        pb.set_message(name.clone());
                        pb.enable_steady_tick(Duration::from_millis(100));
                        Some(pb)
                    }
                    HumanStyle::Plain => {
                        if self.github && depth == 0 {
                            self.line(&github::group(name));
                        }
                        self.line(&format!("{indent}{} {name}", style("▶").cyan()));
                        None
                    }
                };
                steps.insert(*id, StepView { name: name.clone(), depth, bar, last_progress: None });
            }
            EventBody::StepFinished { id, outcome, duration_ms, error, .. } => {
                let Some(view) = steps.get_mut(id) else {
                    return;
                };
                if let Some(pb) = view.bar.take() {
                    pb.finish_and_clear();
                    self.mp.remove(&pb);
                }
                let dur = duration::format(Duration::from_millis(*duration_ms));
                let err = match (outcome, error) {
                    (Outcome::Failed, Some(e)) => format!(": {}", style(first_line(e)).red()),
                    _ => String::new(),
                };
                self.line(&format!(
                    "{}{} {} {}{err}",
                    "  ".repeat(view.depth),
                    mark(Some(*outcome)),
                    view.name,
                    style(dur).dim()
                ));
                if self.github && view.depth == 0 {
                    self.line("::endgroup::");
                }
            }
            EventBody::Log { level, message, step, label, at } => {
                if *level == Level::Debug && !self.verbose {
                    return;
                }
                let indent = "  ".repeat(Self::depth_of(&steps, *step));
                let prefix =
                    label.as_deref().map(|l| format!("{} ", style(format!("[{l}]")).dim())).unwrap_or_default();
                let tag = match level {
                    Level::Debug => format!("{} ", style("debug:").dim()),
                    Level::Info => String::new(),
                    Level::Warn => format!("{} ", style("warning:").yellow().bold()),
                    Level::Error => format!("{} ", style("error:").red().bold()),
                };
                for (i, l) in message.lines().enumerate() {
                    let lead = if i == 0 {
                        format!("{prefix}{tag}")
                    } else {
                        " ".repeat(console::measure_text_width(&prefix))
                    };
                    self.line(&format!("{indent}{lead}{l}"));
                }
                if self.github {
                    let place = at.as_ref().map(|a| At { file: Some(&a.file), line: a.line, col: a.col, title: None });
                    match (level, place) {
                        (Level::Warn, p) => self.line(&github::annotation("warning", &p.unwrap_or_default(), message)),
                        (Level::Error, Some(p)) => self.line(&github::annotation("error", &p, message)),
                        (Level::Info, Some(p)) => self.line(&github::annotation("notice", &p, message)),
                        _ => {}
                    }
                }
            }
            EventBody::Progress { step, message } => {
                let Some(view) = step.and_then(|s| steps.get_mut(&s)) else { return };
                match &view.bar {
                    Some(pb) => pb.set_message(format!("{} {}", view.name, style(format!("— {message}")).dim())),
                    None => {
                        let due = view
                            .last_progress
                            .as_ref()
                            .is_none_or(|(m, t)| m != message && t.elapsed() >= Duration::from_secs(3));
                        if due {
                            self.line(&format!("{}  {} {message}", "  ".repeat(view.depth), style("…").dim()));
                            view.last_progress = Some((message.clone(), std::time::Instant::now()));
                        }
                    }
                }
            }
            EventBody::Error { kind, message, file, line, col, .. } => {
                if self.github {
                    let title = format!("kmsctl::{kind}");
                    let at = At { file: file.as_deref(), line: *line, col: *col, title: Some(&title) };
                    self.line(&github::annotation("error", &at, message));
                }
            }
            EventBody::Decision { subject, decision, reason, step, .. } => {
                let indent = "  ".repeat(Self::depth_of(&steps, *step));
                self.line(&format!("{indent}{} {subject}: {decision} — {reason}", style("decision:").cyan().bold()));
            }
            // Drawn by the run report; the failure's summary is already in the log.
            EventBody::Phase { .. } | EventBody::Failure { .. } => {}
            EventBody::RunFinished { outcome, duration_ms, steps: records, closed, .. } => {
                drop(steps);
                self.summary(records, *outcome, *duration_ms);
                for c in closed {
                    self.line(&format!("  {} {c}", style("closed:").dim()));
                }
            }
        }
    }

    fn finish(&self) {
        let _ = self.mp.clear();
    }

    fn suspend(&self, f: &mut dyn FnMut()) {
        match self.style {
            HumanStyle::Live => self.mp.suspend(f),
            HumanStyle::Plain => f(),
        }
    }
}
