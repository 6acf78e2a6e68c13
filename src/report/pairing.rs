//! How much pairing by seed buys: for a row against a baseline, over the training seeds both
//! ran, how alike their validation losses move from seed to seed. With `a_s`, `b_s` the two
//! rows' losses at seed `s` and `d_s = 100·(a_s − b_s)/b_s` the paired change (percent of the
//! baseline's loss, the claims' unit):
//!
//! ```text
//! ρ       = corr(a, b)                               Pearson, 95% Fisher-z interval:
//!           tanh(atanh ρ ± z₀.₉₇₅ / √(n − 3))
//! sd_d    = sd(d)                                    its 90% upper limit sd·√((n−1)/χ²₀.₁,ₙ₋₁)
//! ratio   = var(a − b) / (var(a) + var(b))           paired variance over what independent
//!                                                    seeds would give; 95% percentile bootstrap
//!                                                    over seeds (10,000 resamples, fixed seed)
//! ```
//!
//! A ratio below 1 (ρ above 0 for rows of like spread) is what pairing saves: the seeds a
//! paired design needs scale with it. The pilot of the "+0.3%" decision reads its design from
//! these (docs/results-tiny/pilot-rule.md).

use super::runs::{RunData, baselines, variants};
use super::stats::{Spread, sd_upper};
use crate::rng::Rng;
use crate::table::Table;

/// The pairing of one row with one baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Pairing {
    pub subject: String,
    pub baseline: String,
    /// Seeds both rows ran.
    pub n: usize,
    pub rho: f64,
    /// 95% Fisher-z interval of ρ; `None` below 4 seeds.
    pub rho_ci: Option<(f64, f64)>,
    /// sd of the paired change, percent, and its 90% upper limit.
    pub sd: f64,
    pub sd_upper: Option<f64>,
    pub ratio: f64,
    /// 95% bootstrap interval of the ratio.
    pub ratio_ci: (f64, f64),
}

/// Bootstrap resamples of the ratio's interval.
pub const RESAMPLES: usize = 10_000;

fn var(xs: &[f64]) -> f64 {
    Spread::of(xs).map_or(0.0, |s| s.sd * s.sd)
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let (sa, sb) = (Spread::of(a).unwrap(), Spread::of(b).unwrap());
    let n = a.len() as f64;
    let cov = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - sa.mean) * (y - sb.mean))
        .sum::<f64>()
        / (n - 1.0);
    cov / (sa.sd * sb.sd)
}

fn ratio(a: &[f64], b: &[f64]) -> f64 {
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    var(&d) / (var(a) + var(b))
}

/// The pairing of the losses `a` (the row) and `b` (the baseline), seed for seed, its names
/// left empty; `None` with fewer than 3 seeds or a row without spread.
pub fn pairing(a: &[f64], b: &[f64]) -> Option<Pairing> {
    let n = a.len();
    if n < 3 || b.len() != n || var(a) == 0.0 || var(b) == 0.0 {
        return None;
    }
    let rho = pearson(a, b);
    let rho_ci = (n >= 4).then(|| {
        use statrs::distribution::{ContinuousCDF, Normal};
        let z = Normal::new(0.0, 1.0).unwrap().inverse_cdf(0.975) / ((n - 3) as f64).sqrt();
        let centre = rho.clamp(-0.999_999, 0.999_999).atanh();
        ((centre - z).tanh(), (centre + z).tanh())
    });
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| 100.0 * (x - y) / y).collect();
    let sd = Spread::of(&d)?.sd;
    let mut rng = Rng::new(0x5eed_9a1d);
    let mut ratios: Vec<f64> = (0..RESAMPLES)
        .filter_map(|_| {
            let pick: Vec<usize> = (0..n).map(|_| rng.below(n)).collect();
            let ra: Vec<f64> = pick.iter().map(|&i| a[i]).collect();
            let rb: Vec<f64> = pick.iter().map(|&i| b[i]).collect();
            let r = ratio(&ra, &rb);
            r.is_finite().then_some(r)
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
    Some(Pairing {
        subject: String::new(),
        baseline: String::new(),
        n,
        rho,
        rho_ci,
        sd,
        sd_upper: sd_upper(sd, n, 0.90),
        ratio: ratio(a, b),
        ratio_ci: (at(0.025), at(0.975)),
    })
}

/// Every row against every baseline, over their common seeds (3 or more).
pub fn pairings(runs: &[RunData]) -> Vec<Pairing> {
    let variants = variants(runs);
    let mut out = vec![];
    for base in baselines(&variants) {
        for v in variants.iter().filter(|v| v.name != base.name) {
            let (mut a, mut b) = (vec![], vec![]);
            for r in &v.runs {
                let other = base.runs.iter().find(|o| o.seed == r.seed);
                if let (Some(x), Some(y)) = (r.val_loss(), other.and_then(|o| o.val_loss())) {
                    a.push(x);
                    b.push(y);
                }
            }
            if let Some(p) = pairing(&a, &b) {
                out.push(Pairing {
                    subject: v.name.clone(),
                    baseline: base.name.clone(),
                    ..p
                });
            }
        }
    }
    out
}

/// The pairings as the report's table.
pub fn table(runs: &[RunData]) -> Table {
    let mut t = Table::new(
        &[
            "row vs baseline",
            "seeds",
            "ρ [95% CI]",
            "sd of the change, % (90% upper)",
            "paired ÷ unpaired variance [95% CI]",
        ],
        1,
    );
    for p in pairings(runs) {
        t.rows.push(vec![
            format!("{} vs {}", p.subject, p.baseline),
            p.n.to_string(),
            match p.rho_ci {
                Some((lo, hi)) => format!("{:+.2} [{lo:+.2}, {hi:+.2}]", p.rho),
                None => format!("{:+.2}", p.rho),
            },
            match p.sd_upper {
                Some(up) => format!("{:.2} ({up:.2})", p.sd),
                None => format!("{:.2}", p.sd),
            },
            format!("{:.2} [{:.2}, {:.2}]", p.ratio, p.ratio_ci.0, p.ratio_ci.1),
        ]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_that_move_together_pair_and_rows_that_do_not_pair_less() {
        // b = a shifted: perfectly paired, the paired variance far below the unpaired.
        let a = [1.0, 1.2, 0.9, 1.4, 1.1, 1.3];
        let b: Vec<f64> = a.iter().map(|x| x + 0.05).collect();
        let p = pairing(&a, &b).unwrap();
        let (lo, hi) = p.ratio_ci;
        assert!((p.rho - 1.0).abs() < 1e-9, "{}", p.rho);
        assert!(p.rho_ci.unwrap().0 > 0.9);
        assert!(
            p.ratio < 1e-9 && hi < 1e-6 && lo >= 0.0,
            "{} [{lo}, {hi}]",
            p.ratio
        );
        // b = a reversed about its mean: ρ = −1, the paired variance twice the unpaired.
        let b: Vec<f64> = a.iter().map(|x| 2.4 - x).collect();
        let p = pairing(&a, &b).unwrap();
        assert!(
            (p.rho + 1.0).abs() < 1e-9 && (p.ratio - 2.0).abs() < 1e-9,
            "{p:?}"
        );
        // The sd of the change, in percent of the baseline's loss.
        let b = [1.0; 3];
        assert!(
            pairing(&[1.0, 1.1, 1.2], &b).is_none(),
            "a baseline without spread"
        );
        let p = pairing(&[1.0, 1.1, 1.2], &[1.0, 1.0, 1.01]).unwrap();
        assert!(p.sd > 0.0 && p.sd_upper.unwrap() > p.sd);
        assert!(pairing(&a[..2], &a[..2]).is_none(), "fewer than 3 seeds");
    }

    #[test]
    fn the_fisher_interval_matches_its_formula() {
        // n = 7: atanh ρ ± z₀.₉₇₅/√4.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        let b = [2.0, 1.0, 4.0, 3.0, 7.0, 5.0, 6.0];
        let p = pairing(&a, &b).unwrap();
        let (rho, (lo, hi)) = (p.rho, p.rho_ci.unwrap());
        // ρ by hand: Σ(a−ā)(b−b̄) = 23, Σ(a−ā)² = Σ(b−b̄)² = 28.
        assert!((rho - 23.0 / 28.0).abs() < 1e-12, "{rho}");
        let z = 1.959_963_985 / 2.0;
        assert!((lo - (rho.atanh() - z).tanh()).abs() < 1e-6);
        assert!((hi - (rho.atanh() + z).tanh()).abs() < 1e-6);
    }
}
