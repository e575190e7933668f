//! "Did you mean …?" for every name a user can misspell: parameters, options, map keys,
//! functions, modules. One scorer, so all suggestions agree.

/// The closest of `candidates` to `input`, if close enough to suggest.
pub(crate) fn suggest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(input, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
