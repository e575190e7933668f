//! Reading `helm lint`'s report into findings a CI can annotate: helm prints one
//! `[SEVERITY] <where>: <message>` per finding (messages may go on over indented lines), and
//! names the template and line only inside the message (`parse error at
//! (kms-core/templates/x.yaml:3)`, `kms-core/templates/x.yaml:6:15`). Helm 3 and 4 print the same.

/// How bad a finding is, as helm ranks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Severity {
    /// `[INFO]`: a recommendation (`icon is recommended`).
    Info,
    /// `[WARNING]`: fails the lint with `strict`.
    Warning,
    /// `[ERROR]`: fails the lint.
    Error,
}

impl Severity {
    /// `error`, `warning`, `info`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

/// One thing `helm lint` reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Finding {
    /// Its severity.
    pub severity: Severity,
    /// The file, relative to the chart directory (`templates/x.yaml`,
    /// `charts/coordinator/templates/y.yaml` for a subchart's), or an absolute path for a
    /// values file outside the chart; `None` when helm names only a directory or nothing.
    pub file: Option<String>,
    /// The line in that file, when helm gives one that is the file's own (not a line of a
    /// rendered template).
    pub line: Option<u32>,
    /// The column, when helm gives one.
    pub column: Option<u32>,
    /// helm's message, its continuation lines joined with newlines.
    pub message: String,
}

/// The findings of `helm lint`'s output for the chart named `chart` (its Chart.yaml `name`).
/// `stderr` is read for what helm reports there instead: a values file it cannot parse.
pub(crate) fn parse(chart: &str, stdout: &str, stderr: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut current: Option<(Severity, String, Vec<String>)> = None;
    let flush = |c: &mut Option<(Severity, String, Vec<String>)>, out: &mut Vec<Finding>| {
        if let Some((severity, rest, more)) = c.take() {
            out.push(finding(chart, severity, &rest, &more));
        }
    };
    for line in stdout.lines() {
        if let Some((severity, rest)) = start(line) {
            flush(&mut current, &mut out);
            current = Some((severity, rest.to_string(), Vec::new()));
        } else if line.starts_with("==> Linting ") || line.contains(" chart(s) linted, ") {
            flush(&mut current, &mut out);
        } else if let Some((_, _, more)) = current.as_mut()
            && !line.trim().is_empty()
        {
            more.push(line.trim().to_string());
        }
    }
    flush(&mut current, &mut out);
    out.extend(stderr.lines().filter_map(values_file_error));
    out
}

fn start(line: &str) -> Option<(Severity, &str)> {
    [("[ERROR] ", Severity::Error), ("[WARNING] ", Severity::Warning), ("[INFO] ", Severity::Info)]
        .into_iter()
        .find_map(|(p, s)| line.strip_prefix(p).map(|rest| (s, rest)))
}

fn finding(chart: &str, severity: Severity, rest: &str, more: &[String]) -> Finding {
    // `templates/x.yaml: message`, or `: message` when helm names nothing.
    let (place, first) = match rest.split_once(": ") {
        Some((p, m)) if !p.contains(' ') => (p, m),
        _ => match rest.strip_prefix(':') {
            Some(m) => ("", m.trim_start()),
            None => ("", rest),
        },
    };
    let mut message = first.trim().to_string();
    for m in more {
        message.push('\n');
        message.push_str(m);
    }
    if let Some((file, line, column)) = template_location(chart, &message) {
        return Finding { severity, file: Some(file), line: Some(line), column, message };
    }
    let file = (!place.is_empty() && !place.ends_with('/')).then(|| place.to_string());
    // A YAML error's line is the file's own for values and Chart.yaml; in a template it is a
    // line of the rendered output, which is not where to point.
    let own_yaml = file.as_deref().is_some_and(|f| !f.starts_with("templates/") && !f.contains("/templates/"));
    let line = if own_yaml { yaml_line(&message) } else { None };
    Finding { severity, file, line, column: None, message }
}

/// `<chart>/<path>:<line>[:<column>]` inside a message: the path relative to the chart.
fn template_location(chart: &str, message: &str) -> Option<(String, u32, Option<u32>)> {
    let prefix = format!("{chart}/");
    let mut from = 0;
    while let Some(i) = message[from..].find(&prefix).map(|i| i + from) {
        from = i + prefix.len();
        let before = message[..i].chars().next_back();
        if before.is_some_and(|c| !matches!(c, '(' | ' ' | '"' | '\n')) {
            continue;
        }
        let rest = &message[from..];
        let end = rest.find(|c: char| c == ':' || c == ')' || c.is_whitespace()).unwrap_or(rest.len());
        let (path, after) = rest.split_at(end);
        let Some(nums) = after.strip_prefix(':') else { continue };
        let digits = |s: &str| s.chars().take_while(char::is_ascii_digit).collect::<String>();
        let Ok(line) = digits(nums).parse() else { continue };
        let tail = &nums[digits(nums).len()..];
        let column = tail.strip_prefix(':').and_then(|c| digits(c).parse().ok());
        if !path.is_empty() {
            return Some((path.to_string(), line, column));
        }
    }
    None
}

/// `... yaml: line 159: ...` → 159.
fn yaml_line(message: &str) -> Option<u32> {
    let i = message.find("yaml: line ")? + "yaml: line ".len();
    message[i..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
}

/// helm's `Error: failed to parse <file>: ...` for a values file given with `-f`.
fn values_file_error(line: &str) -> Option<Finding> {
    let rest = line.strip_prefix("Error: failed to parse ")?;
    let (file, message) = rest.split_once(": ")?;
    Some(Finding {
        severity: Severity::Error,
        file: Some(file.to_string()),
        line: yaml_line(message),
        column: None,
        message: message.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(severity: Severity, file: Option<&str>, line: Option<u32>, column: Option<u32>, message: &str) -> Finding {
        Finding { severity, file: file.map(str::to_string), line, column, message: message.to_string() }
    }

    // What helm v4.3.1 and v3.22.0 print (captured from the stand-in chart with one fault each).
    #[test]
    fn a_template_parse_error_names_its_file_and_line() {
        let out = "==> Linting /tmp/lintc\n[INFO] Chart.yaml: icon is recommended\n\
                   [ERROR] templates/: parse error at (kms-core/templates/bad.yaml:1): function \"nope\" not defined\n\n";
        assert_eq!(
            parse("kms-core", out, "Error: 1 chart(s) linted, 1 chart(s) failed\n"),
            [
                f(Severity::Info, Some("Chart.yaml"), None, None, "icon is recommended"),
                f(
                    Severity::Error,
                    Some("templates/bad.yaml"),
                    Some(1),
                    None,
                    "parse error at (kms-core/templates/bad.yaml:1): function \"nope\" not defined"
                ),
            ]
        );
    }

    #[test]
    fn an_execution_error_goes_on_over_indented_lines_with_a_column() {
        let out = "==> Linting /tmp/lintc\n[ERROR] templates/: kms-core/templates/bad.yaml:6:15\n  executing \
                   \"kms-core/templates/bad.yaml\" at <.Values.nothere.x>:\n    nil pointer evaluating interface {}.x\n\n";
        let got = parse("kms-core", out, "");
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].file.as_deref(), got[0].line, got[0].column),
            (Some("templates/bad.yaml"), Some(6), Some(15))
        );
        assert!(got[0].message.ends_with("at <.Values.nothere.x>:\nnil pointer evaluating interface {}.x"));
    }

    #[test]
    fn a_subcharts_template_is_named_under_charts() {
        let out = "[ERROR] templates/: parse error at (umbrella/charts/coordinator/templates/cm.yaml:4): bad\n";
        let got = parse("umbrella", out, "");
        assert_eq!((got[0].file.as_deref(), got[0].line), (Some("charts/coordinator/templates/cm.yaml"), Some(4)));
    }

    #[test]
    fn yaml_lines_count_in_values_files_not_in_rendered_templates() {
        let out = "[ERROR] values.yaml: unable to parse YAML: error converting YAML to JSON: yaml: line 159: mapping values are not allowed in this context\n\
                   [ERROR] templates/bad.yaml: unable to parse YAML: error converting YAML to JSON: yaml: line 5: mapping values are not allowed in this context\n\
                   [ERROR] : unable to load chart\n\tcannot load values.yaml: x\n";
        let got = parse("kms-core", out, "");
        assert_eq!((got[0].file.as_deref(), got[0].line), (Some("values.yaml"), Some(159)));
        assert_eq!((got[1].file.as_deref(), got[1].line), (Some("templates/bad.yaml"), None));
        assert_eq!(
            (got[2].file.as_deref(), got[2].message.as_str()),
            (None, "unable to load chart\ncannot load values.yaml: x")
        );
    }

    #[test]
    fn warnings_and_a_values_file_helm_cannot_parse() {
        let out = "[WARNING] templates/bad.yaml: extensions/v1beta1 Ingress is deprecated in v1.14+\n";
        let err = "Error: failed to parse /ci/v.yaml: cannot unmarshal yaml document: error converting YAML to JSON: yaml: line 1: did not find expected node content\n";
        let got = parse("kms-core", out, err);
        assert_eq!(
            got[0],
            f(
                Severity::Warning,
                Some("templates/bad.yaml"),
                None,
                None,
                "extensions/v1beta1 Ingress is deprecated in v1.14+"
            )
        );
        assert_eq!(
            (got[1].severity, got[1].file.as_deref(), got[1].line),
            (Severity::Error, Some("/ci/v.yaml"), Some(1))
        );
    }

    #[test]
    fn a_mention_of_another_chart_is_not_a_location() {
        let out = "[ERROR] templates/: the my-kms-core/templates/x.yaml:3 thing\n";
        assert_eq!(parse("kms-core", out, "")[0].file, None);
    }
}
