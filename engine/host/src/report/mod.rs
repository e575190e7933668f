//! The run report: what is left of a run once it is over, for people and for CI.
//!
//! [`Recorder`] is a sink that folds every (already redacted) event of the run into its report
//! as it comes, and when the run ends writes from it, into the artifacts directory (`--artifacts`, default
//! `kmsctl-artifacts`): `report.html` (a self-contained page with the timeline of the steps and
//! parallel tasks, their Helm, wait and hook phases, what each wait waited for, failures with
//! their reports, decisions), `summary.md` and `run.log` (every log line); `events.jsonl` too
//! when no `--artifacts` was given (with it, the file is written as the run goes). With
//! `--junit FILE`, a JUnit report; under GitHub Actions the summary is appended to
//! `$GITHUB_STEP_SUMMARY`. They all come from one model ([`model::RunReport`]), so they agree.

mod html;
mod junit;
mod markdown;
mod model;

use crate::events::{Event, EventBody, Level, Sink};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

/// Where the recorder writes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Outputs {
    /// The artifacts directory.
    pub artifacts: PathBuf,
    /// Also write `events.jsonl` there (no other sink streams it).
    pub events_jsonl: bool,
    /// `--junit FILE`.
    pub junit: Option<PathBuf>,
    /// `$GITHUB_STEP_SUMMARY` under GitHub Actions.
    pub step_summary: Option<PathBuf>,
}

/// Folds the run's events into its report as they come, streams `run.log` (and
/// `events.jsonl` without `--artifacts`), and writes the report, the summary and the JUnit file
/// at the run's end.
pub(crate) struct Recorder {
    state: Mutex<State>,
    out: Outputs,
}

#[derive(Default)]
struct State {
    report: model::RunReport,
    /// `run.log` and `events.jsonl`, opened with the first event (a `--help` run leaves none).
    files: Option<(LineFile, Option<LineFile>)>,
}

/// A file written line by line; the first error is kept to report once, at the end.
struct LineFile {
    path: PathBuf,
    w: Result<std::io::BufWriter<std::fs::File>, std::io::Error>,
}

impl LineFile {
    fn create(path: PathBuf) -> Self {
        let w = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| std::fs::File::create(&path))
            .map(std::io::BufWriter::new);
        Self { path, w }
    }

    fn line(&mut self, text: &str) {
        if let Ok(w) = &mut self.w
            && let Err(e) = writeln!(w, "{text}")
        {
            self.w = Err(e);
        }
    }

    fn close(self) -> Result<(), (PathBuf, std::io::Error)> {
        self.w.and_then(|mut w| w.flush()).map_err(|e| (self.path, e))
    }
}

impl Recorder {
    /// A recorder writing to `out`.
    pub(crate) fn new(out: Outputs) -> Self {
        Self { state: Mutex::new(State::default()), out }
    }

    fn write_all(&self, r: &model::RunReport) -> Result<(), (PathBuf, std::io::Error)> {
        let dir = &self.out.artifacts;
        std::fs::create_dir_all(dir).map_err(|e| (dir.clone(), e))?;
        let write = |p: PathBuf, text: &str| std::fs::write(&p, text).map_err(|e| (p, e));
        write(dir.join("report.html"), &html::render(r))?;
        let summary = markdown::render(r);
        write(dir.join("summary.md"), &summary)?;
        if let Some(p) = &self.out.junit {
            if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| (parent.to_path_buf(), e))?;
            }
            write(p.clone(), &junit::render(r))?;
        }
        if let Some(p) = &self.out.step_summary {
            let appended = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .and_then(|mut f| f.write_all(format!("{summary}\n").as_bytes()));
            appended.map_err(|e| (p.clone(), e))?;
        }
        Ok(())
    }
}

/// A log event as `run.log` lines: `+12.3s [party-3] warning: ...`.
fn log_lines(e: &Event, out: &mut LineFile) {
    let EventBody::Log { level, message, label, .. } = &e.body else { return };
    let tag = match level {
        Level::Debug => "debug: ",
        Level::Info => "",
        Level::Warn => "warning: ",
        Level::Error => "error: ",
    };
    let label = label.as_deref().map(|l| format!("[{l}] ")).unwrap_or_default();
    for (i, line) in message.lines().enumerate() {
        let lead = if i == 0 { format!("{label}{tag}") } else { " ".repeat(label.len() + tag.len()) };
        out.line(&format!("+{:.1}s {lead}{line}", e.elapsed_ms as f64 / 1000.0));
    }
}

impl Sink for Recorder {
    fn emit(&self, event: &Event) {
        let mut st = self.state.lock().expect("recorder lock");
        st.report.apply(event);
        let (log, events) = st.files.get_or_insert_with(|| {
            let dir = &self.out.artifacts;
            (
                LineFile::create(dir.join("run.log")),
                self.out.events_jsonl.then(|| LineFile::create(dir.join("events.jsonl"))),
            )
        });
        log_lines(event, log);
        if let (Some(f), Ok(line)) = (events, serde_json::to_string(event)) {
            f.line(&line);
        }
    }

    fn finish(&self) {
        let (report, files) = {
            let mut st = self.state.lock().expect("recorder lock");
            (std::mem::take(&mut st.report), st.files.take())
        };
        let mut result = self.write_all(&report);
        if let Some((log, events)) = files {
            result = result.and(log.close()).and(events.map_or(Ok(()), LineFile::close));
        }
        if let Err((path, e)) = result {
            // The run is over and its views are closed: stderr is all that is left.
            eprintln!("warning: cannot write {}: {e}", path.display());
        }
    }
}
