//! Durations as playbooks write them: `"90s"`, `"5m"`, `"1h30m"`, `"500ms"`, or an integer
//! number of seconds.

use rhai::Dynamic;
use std::time::Duration;

/// Parse a duration written by a human. Bare integers are seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("an empty duration".into());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let d: jiff::SignedDuration = t.parse().map_err(|_| format!("'{text}' is not a duration like 90s, 5m or 1h30m"))?;
    d.try_into().map_err(|_| format!("'{text}' is negative"))
}

/// Format a duration compactly: `1h 30m`, `5m`, `2.5s`, `120ms`.
pub fn format(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    if d < Duration::from_secs(60) {
        let s = d.as_secs_f64();
        return if s.fract() < 0.05 { format!("{s:.0}s") } else { format!("{s:.1}s") };
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = Vec::new();
    if h > 0 {
        out.push(format!("{h}h"));
    }
    if m > 0 {
        out.push(format!("{m}m"));
    }
    if s > 0 {
        out.push(format!("{s}s"));
    }
    out.join(" ")
}

/// Read a duration from a script value: a string like `"5m"`, an integer (seconds) or a
/// float (seconds).
pub fn from_dynamic(v: &Dynamic) -> Result<Duration, String> {
    if let Some(s) = v.clone().try_cast::<rhai::ImmutableString>() {
        return parse(&s);
    }
    if let Ok(i) = v.as_int() {
        return u64::try_from(i).map(Duration::from_secs).map_err(|_| format!("{i} is a negative duration"));
    }
    if let Ok(f) = v.as_float() {
        return Duration::try_from_secs_f64(f).map_err(|_| format!("{f} is not a valid duration"));
    }
    Err(format!("expected a duration like \"5m\" or a number of seconds, got {}", v.type_name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_playbooks_use() {
        for (text, secs) in [
            ("90s", 90.0),
            ("5m", 300.0),
            ("1h30m", 5400.0),
            ("1h 30m", 5400.0),
            ("1200s", 1200.0),
            ("1200", 1200.0),
            ("500ms", 0.5),
            ("2h", 7200.0),
        ] {
            assert_eq!(parse(text).unwrap().as_secs_f64(), secs, "{text}");
        }
    }

    #[test]
    fn rejects_nonsense_with_an_example() {
        let e = parse("5 minutes please").unwrap_err();
        assert!(e.contains("like 90s, 5m or 1h30m"), "{e}");
        assert!(parse("").is_err());
        assert!(parse("-5m").is_err());
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format(Duration::from_millis(120)), "120ms");
        assert_eq!(format(Duration::from_millis(2500)), "2.5s");
        assert_eq!(format(Duration::from_secs(5400)), "1h 30m");
        assert_eq!(format(Duration::from_secs(1200)), "20m");
    }
}
