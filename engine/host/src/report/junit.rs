//! `--junit FILE`: the run as a JUnit report, one test case per step, so CI's test view lists
//! each step with its time and a failed one with its error and failure report.

use super::model::{RunReport, Step};
use crate::events::Outcome;
use crate::events::StepKind;
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// The JUnit XML of a run.
pub(crate) fn render(r: &RunReport) -> String {
    let name = if r.playbook.is_empty() { "kmsctl run".to_string() } else { r.playbook.clone() };
    let mut suite = TestSuite::new(name.as_str());
    for s in in_tree_order(&r.steps) {
        let mut status = match s.outcome {
            Some(Outcome::Ok) => TestCaseStatus::success(),
            Some(Outcome::Cancelled) | None => {
                let mut st = TestCaseStatus::skipped();
                st.set_message("cancelled");
                st
            }
            Some(Outcome::Failed) => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                let error = s.error.clone().unwrap_or_else(|| "failed".into());
                st.set_message(error.lines().next().unwrap_or_default());
                let mut text = error;
                for f in r.failures_in(s.id) {
                    text.push_str(&format!("\n\n{}", f.summary));
                    if let Some(d) = &f.dir {
                        text.push_str(&format!("\nfailure report: {d}"));
                    }
                }
                st.set_description(text);
                st
            }
        };
        if let (Some(Outcome::Failed), Some(kind)) = (s.outcome, r.errors.first()) {
            status.set_type(kind.kind.as_str());
        }
        let mut case = TestCase::new(s.name.as_str(), status);
        let path = r.path(s);
        case.set_classname(if path.is_empty() { name.clone() } else { format!("{name}: {}", path.join(" / ")) });
        case.set_time(Duration::from_millis(s.duration_ms(r.duration_ms)));
        if !s.logs.is_empty() {
            let lines: Vec<String> = s.logs.iter().map(|l| l.message.clone()).collect();
            case.set_system_out(lines.join("\n"));
        }
        suite.add_test_case(case);
    }
    // The run itself: a failure outside every step (a compile error, a parameter, an
    // uncaught error at the top level) still fails the report.
    let mut run = match r.errors.first() {
        None => TestCaseStatus::success(),
        Some(e) => {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            st.set_message(e.message.as_str()).set_type(e.kind.as_str()).set_description(e.diagnostic.as_str());
            st
        }
    };
    if r.errors.is_empty() && r.outcome == Some(Outcome::Cancelled) {
        run = TestCaseStatus::skipped();
        run.set_message("cancelled");
    }
    let mut case = TestCase::new("run", run);
    case.set_classname(name.as_str()).set_time(Duration::from_millis(r.duration_ms));
    suite.add_test_case(case);
    suite.set_time(Duration::from_millis(r.duration_ms));
    let mut report = Report::new("kmsctl");
    report.set_time(Duration::from_millis(r.duration_ms)).add_test_suite(suite);
    report.to_string().unwrap_or_default()
}

/// The steps depth first, each one's children in start order — except the parallel tasks of one
/// step, which start in any order and are listed by their labels (`party-2` before `party-10`),
/// so that the same run gives the same report.
fn in_tree_order(steps: &[Step]) -> Vec<&Step> {
    fn natural(s: &str) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            let text: String = rest.chars().take_while(|c| !c.is_ascii_digit()).collect();
            rest = &rest[text.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            rest = &rest[digits.len()..];
            out.push((text, digits.parse().unwrap_or(0)));
        }
        out
    }
    fn visit<'a>(parent: Option<u64>, steps: &'a [Step], out: &mut Vec<&'a Step>) {
        let mut kids: Vec<(usize, &Step)> = steps.iter().enumerate().filter(|(_, s)| s.parent == parent).collect();
        let first_task = kids.iter().find(|(_, s)| s.kind == StepKind::Task).map(|(i, _)| *i);
        kids.sort_by_key(|(i, s)| match (s.kind == StepKind::Task, first_task) {
            (true, Some(f)) => (f, natural(s.label.as_deref().unwrap_or(&s.name))),
            _ => (*i, Vec::new()),
        });
        for (_, s) in kids {
            out.push(s);
            visit(Some(s.id), steps, out);
        }
    }
    let mut out = Vec::with_capacity(steps.len());
    visit(None, steps, &mut out);
    // A step whose parent never started (not expected) still gets its case.
    for s in steps {
        if !out.iter().any(|o| o.id == s.id) {
            out.push(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::model::{RunReport, tests::deploy};

    #[test]
    fn one_test_case_per_step_and_failures_carry_their_report() {
        let xml = super::render(&RunReport::build(&deploy()));
        let xml = regex::Regex::new(r#"time="[0-9.]+""#).unwrap().replace_all(&xml, r#"time="T""#);
        insta::assert_snapshot!(xml);
    }
}
