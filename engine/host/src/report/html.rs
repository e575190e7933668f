//! `report.html`: one self-contained file (no network: the style, the script and the run's
//! data are inline) that draws the run's timeline, waits, failures and decisions in a browser.
//!
//! A plain string template: the page is a shell, and its script builds everything from the
//! data, so there is nothing to escape but the data's way out of its `<script>` element.

use super::model::RunReport;

const TEMPLATE: &str = include_str!("report.html");
const CSS: &str = include_str!("report.css");
const JS: &str = include_str!("report.js");

/// The page for a run.
pub(crate) fn render(r: &RunReport) -> String {
    let data = serde_json::to_string(r).unwrap_or_else(|_| "{}".into());
    let title = format!("kmsctl run {}", if r.playbook.is_empty() { "" } else { &r.playbook });
    TEMPLATE
        .replace("{{title}}", &escape_html(&title))
        .replace("{{css}}", CSS)
        .replace("{{js}}", JS)
        // Last: the data may hold any text, `{{js}}` included.
        .replace("{{data}}", &script_safe(&data))
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// JSON inside `<script>`: no `<` (so no `</script>` or `<!--`) and no line separators, as
/// JSON escapes.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c").replace('\u{2028}', "\\u2028").replace('\u{2029}', "\\u2029")
}

#[cfg(test)]
mod tests {
    use super::super::model::{RunReport, tests::deploy};

    #[test]
    fn the_page_is_self_contained_and_its_data_cannot_close_its_script() {
        let mut r = RunReport::build(&deploy());
        r.playbook = "</script><script>alert(1)</script>".into();
        let page = super::render(&r);
        assert!(!page.contains("<script>alert(1)"), "{page}");
        assert!(page.contains("\\u003c/script>\\u003cscript>alert(1)"));
        assert!(page.contains("&lt;/script&gt;"), "the title is escaped");
        for remote in ["http://", "https://", "src=", "href=", "@import"] {
            assert!(!page.contains(remote), "the report loads nothing ({remote})");
        }
        assert_eq!(page.matches("<script").count(), 2, "the data and the script, both inline");
    }
}
