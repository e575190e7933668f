//! GitHub Actions workflow commands: `::group::`, `::error file=,line=,col=::` and
//! `::warning::` lines on stderr, which the runner turns into folded groups and annotations on
//! the playbook's lines.
//!
//! The escaping is the runner's own (`%`, CR and LF in messages; also `:` and `,` in
//! properties); an unescaped newline would end the annotation at its first line.

/// Running under GitHub Actions (`GITHUB_ACTIONS=true`).
pub(crate) fn detected() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// A message of a workflow command.
fn data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// A property value of a workflow command.
fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Where an annotation points, and its title.
#[derive(Debug, Default)]
pub(crate) struct At<'a> {
    /// A path relative to the repository.
    pub file: Option<&'a str>,
    /// From 1.
    pub line: Option<usize>,
    /// From 1.
    pub col: Option<usize>,
    /// The annotation's title (the error's kind).
    pub title: Option<&'a str>,
}

/// `::error file=F,line=L,col=C,title=T::message` (or `warning`, `notice`).
pub(crate) fn annotation(level: &str, at: &At<'_>, message: &str) -> String {
    let mut props = Vec::new();
    if let Some(f) = at.file {
        props.push(format!("file={}", property(f)));
    }
    if let Some(l) = at.line {
        props.push(format!("line={l}"));
    }
    if let Some(c) = at.col {
        props.push(format!("col={c}"));
    }
    if let Some(t) = at.title {
        props.push(format!("title={}", property(t)));
    }
    let props = if props.is_empty() { String::new() } else { format!(" {}", props.join(",")) };
    format!("::{level}{props}::{}", data(message))
}

/// `::group::name`: the lines up to `::endgroup::` fold under it.
pub(crate) fn group(name: &str) -> String {
    format!("::group::{}", data(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_points_into_the_playbook_with_its_properties_escaped() {
        let at =
            At { file: Some("playbooks/a,b:c.rhai"), line: Some(12), col: Some(5), title: Some("kmsctl::timeout") };
        assert_eq!(
            annotation("error", &at, "wait timed out: 50% ready\nStatefulSet kms/kms-core-1\r"),
            "::error file=playbooks/a%2Cb%3Ac.rhai,line=12,col=5,title=kmsctl%3A%3Atimeout::wait timed out: 50%25 ready%0AStatefulSet kms/kms-core-1%0D"
        );
    }

    #[test]
    fn an_annotation_without_a_place_has_no_properties() {
        assert_eq!(annotation("warning", &At::default(), "a: b, c"), "::warning::a: b, c");
    }

    #[test]
    fn a_group_name_stays_on_one_line() {
        assert_eq!(group("deploy\n13 parties"), "::group::deploy%0A13 parties");
    }
}
