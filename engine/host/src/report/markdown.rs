//! The end-of-run summary as Markdown: `summary.md` in the artifacts directory, and under
//! GitHub Actions appended to `$GITHUB_STEP_SUMMARY`, where it is the job's summary page.

use super::model::RunReport;
use crate::duration;
use crate::events::Outcome;
use std::fmt::Write as _;
use std::time::Duration;

fn mark(o: Option<Outcome>) -> &'static str {
    match o {
        Some(Outcome::Ok) => "✅",
        Some(Outcome::Failed) => "❌",
        Some(Outcome::Cancelled) => "⊘",
        None => "…",
    }
}

/// A table cell: one line, no column break.
fn cell(s: &str) -> String {
    s.lines().next().unwrap_or_default().replace('|', "\\|")
}

fn took(ms: u64) -> String {
    duration::format(Duration::from_millis(ms))
}

/// A fenced block that no line of `text` can close.
fn fenced(text: &str) -> String {
    let mut fence = "```".to_string();
    while text.contains(&fence) {
        fence.push('`');
    }
    format!("{fence}text\n{}\n{fence}\n", text.trim_end())
}

/// The summary: the outcome, the steps two levels deep with their times, the error and the
/// failure reports (folded).
pub(crate) fn render(r: &RunReport) -> String {
    let mut out = String::new();
    let what = match r.outcome {
        Some(Outcome::Ok) => "finished",
        Some(Outcome::Failed) => "failed",
        Some(Outcome::Cancelled) => "was stopped",
        None => "did not finish",
    };
    let playbook = if r.playbook.is_empty() { "kmsctl run" } else { &r.playbook };
    let _ = writeln!(out, "## {} `{playbook}` {what} in {}\n", mark(r.outcome), took(r.duration_ms));
    let shown: Vec<_> = r.steps.iter().filter(|s| r.depth(s) <= 1).collect();
    if !shown.is_empty() {
        out.push_str("| | Step | Duration | Error |\n|---|---|---:|---|\n");
        for s in shown {
            let indent = if r.depth(s) == 1 { "&nbsp;&nbsp;" } else { "" };
            let _ = writeln!(
                out,
                "| {} | {indent}{} | {} | {} |",
                mark(s.outcome),
                cell(&s.name),
                took(s.duration_ms(r.duration_ms)),
                cell(s.error.as_deref().unwrap_or_default())
            );
        }
        out.push('\n');
    }
    for e in &r.errors {
        let at = match (&e.file, e.line) {
            (Some(f), Some(l)) => format!(" (`{f}:{l}`)"),
            _ => String::new(),
        };
        let _ = writeln!(out, "**Error** `{}`{at}: {}\n", e.kind, cell(&e.message));
        out.push_str(&fenced(&e.diagnostic));
        out.push('\n');
    }
    for f in &r.failures {
        let label = f.label.as_deref().map(|l| format!("[{l}] ")).unwrap_or_default();
        let _ = writeln!(out, "<details><summary>{label}{}: {}</summary>\n", html(&f.object), html(&cell(&f.reason)));
        out.push_str(&fenced(&f.summary));
        if let Some(d) = &f.dir {
            let _ = writeln!(out, "\nfiles: `{d}`");
        }
        out.push_str("\n</details>\n\n");
    }
    for d in &r.decisions {
        let _ = writeln!(out, "- **{}**: {} — {}", cell(&d.subject), cell(&d.decision), cell(&d.reason));
    }
    out
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::super::model::{RunReport, tests::deploy};

    #[test]
    fn the_summary_lists_steps_the_error_and_the_failure_reports() {
        let md = super::render(&RunReport::build(&deploy()));
        let md = regex::Regex::new(r"\d+(\.\d+)?(ms|s)\b").unwrap().replace_all(&md, "[t]");
        insta::assert_snapshot!(md);
    }
}
