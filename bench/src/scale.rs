//! The `scale` scenario: the kmsctl deploy flow (bench/deploy.rhai: every party's release at
//! once, each watched until ready, then the init release) at 1, 4, 13, 50 and 100 parties, one
//! namespace per run: wall time, API requests while it ran (every client: kmsctl, its helm
//! processes, the controllers), and kmsctl's own peak RSS; then how each grows with the party
//! count, as the exponent of a least-squares fit on log-log (1 is linear).

use std::path::PathBuf;

use crate::deploy::{Sample, kmsctl_flow};
use crate::env::{Env, Result};

/// Run the scenario and print its table.
pub(crate) async fn run(kmsctl: PathBuf, sizes: &[usize], runs: usize) -> Result<()> {
    let env = Env::connect(kmsctl).await?;
    let out = scenario(&env, sizes, runs.max(1)).await;
    env.cleanup().await;
    out
}

/// One size's runs: (wall ms, requests, peak KiB) each.
struct Point {
    parties: usize,
    wall: Vec<f64>,
    requests: Vec<f64>,
    peak_kb: Vec<f64>,
}

async fn scenario(env: &Env, sizes: &[usize], runs: usize) -> Result<()> {
    let mut points = Vec::new();
    for &n in sizes {
        let mut p = Point { parties: n, wall: Vec::new(), requests: Vec::new(), peak_kb: Vec::new() };
        for round in 1..=runs {
            let before = env.total_requests().await?;
            let s: Sample = kmsctl_flow(env, n).await?;
            let after = env.total_requests().await?;
            eprintln!(
                "[bench] scale {n} parties, run {round}/{runs}: {:.2} s, {} requests",
                s.wall / 1000.0,
                after - before
            );
            p.wall.push(s.wall);
            p.requests.push(after - before);
            p.peak_kb.push(s.own_peak_kb.unwrap_or_default() as f64);
        }
        points.push(p);
    }
    print(&points, runs);
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    crate::stats::summarize(v).median
}

/// The slope of log(y) against log(x), least squares.
pub(crate) fn exponent(xy: &[(f64, f64)]) -> f64 {
    let pts: Vec<(f64, f64)> = xy.iter().filter(|(x, y)| *x > 0.0 && *y > 0.0).map(|(x, y)| (x.ln(), y.ln())).collect();
    let n = pts.len() as f64;
    let (sx, sy) = pts.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = pts.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + (x - mx) * (y - my), b + (x - mx) * (x - mx)));
    if den == 0.0 { f64::NAN } else { num / den }
}

fn print(points: &[Point], runs: usize) {
    println!("\n### Scale: kmsctl run bench/deploy.rhai by party count (median of {runs})\n");
    println!(
        "| parties | wall | per party | API requests (all clients) | per party | kmsctl peak RSS | growth from the previous size: wall, requests, RSS |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---|");
    let mut previous: Option<(f64, f64, f64, f64)> = None;
    for p in points {
        let (w, r, m) = (median(&p.wall), median(&p.requests), median(&p.peak_kb));
        let n = p.parties as f64;
        let growth = match previous {
            Some((pn, pw, pr, pm)) => {
                let e = |a: f64, b: f64| exponent(&[(pn, a), (n, b)]);
                format!("n^{:.2}, n^{:.2}, n^{:.2}", e(pw, w), e(pr, r), e(pm, m))
            }
            None => String::new(),
        };
        println!(
            "| {} | {:.2} s | {:.0} ms | {:.0} | {:.0} | {:.0} MB | {growth} |",
            p.parties,
            w / 1000.0,
            w / n,
            r,
            r / n,
            m / 1024.0
        );
        previous = Some((n, w, r, m));
    }
    let fit =
        |f: &dyn Fn(&Point) -> f64| exponent(&points.iter().map(|p| (p.parties as f64, f(p))).collect::<Vec<_>>());
    println!(
        "\nGrowth exponents (log-log least squares over all sizes; 1 = linear): wall {:.2}, requests {:.2}, peak RSS {:.2}.",
        fit(&|p| median(&p.wall)),
        fit(&|p| median(&p.requests)),
        fit(&|p| median(&p.peak_kb))
    );
}

#[cfg(test)]
mod tests {
    use super::exponent;

    #[test]
    fn the_exponent_of_a_power_law_is_its_power() {
        let linear: Vec<(f64, f64)> = [1.0, 4.0, 13.0, 50.0, 100.0].iter().map(|x| (*x, 3.0 * x)).collect();
        assert!((exponent(&linear) - 1.0).abs() < 1e-9);
        let square: Vec<(f64, f64)> = [1.0, 4.0, 13.0].iter().map(|x| (*x, x * x)).collect();
        assert!((exponent(&square) - 2.0).abs() < 1e-9);
        let flat: Vec<(f64, f64)> = [1.0, 10.0].iter().map(|x| (*x, 5.0)).collect();
        assert!(exponent(&flat).abs() < 1e-9);
    }
}
