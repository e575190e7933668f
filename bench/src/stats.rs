//! Summaries of repeated measurements, and their formatting.

use std::time::Duration;

/// Median, p90, min and max of a set of measurements, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Summary {
    /// Median (the mean of the middle two for an even count).
    pub median: f64,
    /// 90th percentile (nearest rank).
    pub p90: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

/// Summarize measurements in milliseconds (at least one).
pub(crate) fn summarize(values: &[f64]) -> Summary {
    assert!(!values.is_empty(), "nothing measured");
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    let p90 = v[(n * 9).div_ceil(10).max(1) - 1];
    Summary { median, p90, min: v[0], max: v[n - 1] }
}

/// A duration in milliseconds.
pub(crate) fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Milliseconds for humans: "42.1 ms" below 10 s, "12.34 s" above.
pub(crate) fn ms(x: f64) -> String {
    if x.abs() < 10_000.0 { format!("{x:.1} ms") } else { format!("{:.2} s", x / 1000.0) }
}

/// Seconds, two decimals: "12.34 s".
pub(crate) fn secs(x_ms: f64) -> String {
    format!("{:.2} s", x_ms / 1000.0)
}

/// Print a markdown table.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
    println!("| {} |", header.join(" | "));
    let align: Vec<&str> = header.iter().enumerate().map(|(i, _)| if i == 0 { "---" } else { "---:" }).collect();
    println!("|{}|", align.join("|"));
    for r in rows {
        println!("| {} |", r.join(" | "));
    }
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries() {
        let s = summarize(&[5.0, 1.0, 3.0]);
        assert_eq!((s.median, s.p90, s.min, s.max), (3.0, 5.0, 1.0, 5.0));
        let s = summarize(&(1..=20).map(f64::from).collect::<Vec<_>>());
        assert_eq!((s.median, s.p90), (10.5, 18.0));
        assert_eq!(ms(12.34), "12.3 ms");
        assert_eq!(ms(12_345.0), "12.35 s");
    }
}
