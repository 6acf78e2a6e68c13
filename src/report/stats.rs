//! Statistics across seeds: mean and standard deviation, Student's t confidence interval of a
//! mean (of paired differences, when the samples are paired by seed), and the verdict of an
//! interval against a claimed band.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Mean and sample standard deviation of `n` values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 for one value.
    pub sd: f64,
}

impl Spread {
    pub fn of(xs: &[f64]) -> Option<Spread> {
        let n = xs.len();
        if n == 0 {
            return None;
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        let sd = if n > 1 {
            (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Some(Spread { n, mean, sd })
    }
}

/// A two-sided confidence interval of a mean.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub n: usize,
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    /// The `level` (e.g. 0.95) t-interval of the mean of `xs`: `mean ± t(level, n−1)·sd/√n`.
    /// `None` for fewer than two values: one seed gives no interval.
    pub fn t(xs: &[f64], level: f64) -> Option<Interval> {
        let s = Spread::of(xs)?;
        if s.n < 2 {
            return None;
        }
        let t = StudentsT::new(0.0, 1.0, (s.n - 1) as f64)
            .ok()?
            .inverse_cdf(0.5 + level / 2.0);
        let half = t * s.sd / (s.n as f64).sqrt();
        Some(Interval {
            n: s.n,
            mean: s.mean,
            lo: s.mean - half,
            hi: s.mean + half,
        })
    }

    /// Welch's `level` interval of `mean(a) − mean(b)`, for two samples whose runs did not
    /// draw their weights the same way (nothing pairs them): the standard error
    /// `sqrt(s_a²/n_a + s_b²/n_b)`, and Welch–Satterthwaite's degrees of freedom. `None` unless
    /// each sample has two values and they are not all equal.
    pub fn welch(a: &[f64], b: &[f64], level: f64) -> Option<Interval> {
        let (sa, sb) = (Spread::of(a)?, Spread::of(b)?);
        if sa.n < 2 || sb.n < 2 {
            return None;
        }
        let (va, vb) = (sa.sd.powi(2) / sa.n as f64, sb.sd.powi(2) / sb.n as f64);
        let df =
            (va + vb).powi(2) / (va.powi(2) / (sa.n - 1) as f64 + vb.powi(2) / (sb.n - 1) as f64);
        let t = StudentsT::new(0.0, 1.0, df)
            .ok()?
            .inverse_cdf(0.5 + level / 2.0);
        let (mean, half) = (sa.mean - sb.mean, t * (va + vb).sqrt());
        Some(Interval {
            n: sa.n + sb.n,
            mean,
            lo: mean - half,
            hi: mean + half,
        })
    }

    /// A quantity measured without seed-to-seed noise (a byte count from a formula).
    pub fn exact(value: f64) -> Interval {
        Interval {
            n: 1,
            mean: value,
            lo: value,
            hi: value,
        }
    }
}

/// The exact (Clopper–Pearson) `level` interval of a proportion seen `k` times in `n` trials.
/// `None` for no trials.
pub fn clopper_pearson(k: usize, n: usize, level: f64) -> Option<(f64, f64)> {
    use statrs::distribution::Beta;
    if n == 0 || k > n {
        return None;
    }
    let tail = (1.0 - level) / 2.0;
    let (k, n) = (k as f64, n as f64);
    let lo = if k == 0.0 {
        0.0
    } else {
        Beta::new(k, n - k + 1.0).ok()?.inverse_cdf(tail)
    };
    let hi = if k == n {
        1.0
    } else {
        Beta::new(k + 1.0, n - k).ok()?.inverse_cdf(1.0 - tail)
    };
    Some((lo, hi))
}

/// The range of values a claim allows; either end may be open.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Band {
    pub lo: f64,
    pub hi: f64,
}

impl Band {
    pub const fn between(lo: f64, hi: f64) -> Band {
        Band { lo, hi }
    }
    pub const fn above(lo: f64) -> Band {
        Band {
            lo,
            hi: f64::INFINITY,
        }
    }
    pub const fn below(hi: f64) -> Band {
        Band {
            lo: f64::NEG_INFINITY,
            hi,
        }
    }
    pub fn bounded(&self) -> bool {
        self.lo.is_finite() && self.hi.is_finite()
    }
}

/// What a measurement says about a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// Equivalence shown: the 90% interval lies inside a bounded band (two one-sided tests at
    /// 5%), or the one-sided 95% bound lies past a one-sided band's edge.
    Consistent,
    /// The 95% interval lies wholly outside the band.
    Contradicted,
    /// Neither: no interval (one seed), or one too wide to tell.
    Inconclusive,
    /// The measurement would contradict the claim, but was taken in a setting unlike the
    /// paper's (another machine, batch or context), so it says nothing against the paper.
    NotReproducedHere,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Consistent => "consistent",
            Verdict::Contradicted => "contradicted",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotReproducedHere => "not reproduced here",
        })
    }
}

/// The rule, in words, as the report states it.
pub const RULE: &str = "**consistent** where the 90% interval lies inside a bounded band (two \
    one-sided tests at 5%: equivalence shown), or the one-sided 95% bound lies past the edge of a \
    one-sided band; **contradicted** where the 95% interval lies wholly outside the band; \
    **inconclusive** otherwise, and always with a single value (one seed). Two claims whose bands \
    do not overlap can never both be consistent.";

/// The verdict of a measurement with 90% interval `i90` and 95% interval `i95` (`None`: one
/// value) on a claim whose values lie in `band` ([`RULE`]).
pub fn verdict(i90: Option<Interval>, i95: Option<Interval>, band: Band) -> Verdict {
    let (Some(i90), Some(i95)) = (i90, i95) else {
        return Verdict::Inconclusive;
    };
    let contradicted = if band.bounded() {
        i95.hi < band.lo || i95.lo > band.hi
    } else {
        // A one-sided band is open: "better than" excludes "equal".
        i95.hi <= band.lo || i95.lo >= band.hi
    };
    let consistent = if band.bounded() {
        i90.lo >= band.lo && i90.hi <= band.hi
    } else {
        i90.lo > band.lo && i90.hi < band.hi
    };
    if contradicted {
        Verdict::Contradicted
    } else if consistent {
        Verdict::Consistent
    } else {
        Verdict::Inconclusive
    }
}

/// The verdict of the sample `xs` on `band` ([`verdict`] on its 90% and 95% t-intervals).
pub fn judge(xs: &[f64], band: Band) -> Verdict {
    verdict(Interval::t(xs, 0.90), Interval::t(xs, 0.95), band)
}

/// The power of the equivalence rule (two one-sided t-tests at `alpha` each, the 90% interval
/// inside `band` for alpha 0.05) with `n` paired values whose true mean is `mean` and whose sd is
/// `sd`. Exact up to quadrature: given the sample sd `s`, the rule holds when the sample mean
/// lies in `(lo + t·s/√n, hi − t·s/√n)` (`t` the `1 − alpha` quantile of Student's t with
/// `n − 1` degrees of freedom), which a normal mean with sd `σ/√n` does with a probability of two
/// Φ's; that is averaged over `s`, whose `(n − 1)s²/σ²` is chi-square with `n − 1` degrees of
/// freedom, at the midpoints of 4,000 bins of equal probability. 0 below two values or for a
/// band open on one side (use [`one_sided_power`]).
pub fn tost_power(mean: f64, sd: f64, n: usize, band: Band, alpha: f64) -> f64 {
    if !band.bounded() {
        return 0.0;
    }
    over_sample_sd(sd, n, alpha, |half, se, z| {
        let (lo, hi) = (band.lo + half, band.hi - half);
        if lo >= hi {
            0.0
        } else {
            z.cdf((hi - mean) / se) - z.cdf((lo - mean) / se)
        }
    })
}

/// The power of a one-sided t-test at `alpha` that the mean lies past `edge` (above it when
/// `above`), with `n` values of true mean `mean` and sd `sd`: the same quadrature over the
/// sample sd as [`tost_power`].
pub fn one_sided_power(mean: f64, sd: f64, n: usize, edge: f64, above: bool, alpha: f64) -> f64 {
    over_sample_sd(sd, n, alpha, |cut, se, z| {
        if above {
            1.0 - z.cdf((edge + cut - mean) / se)
        } else {
            z.cdf((edge - cut - mean) / se)
        }
    })
}

/// The mean over the sample sd `s` of `given(t·s/√n, σ/√n, Φ)`, the probability that a test
/// passes given `s` (`t` the `1 − alpha` quantile of Student's t with `n − 1` degrees of
/// freedom): `(n − 1)s²/σ²` is chi-square with `n − 1` degrees of freedom, taken at the
/// midpoints of 4,000 bins of equal probability. 0 below two values or for no spread.
fn over_sample_sd(
    sd: f64,
    n: usize,
    alpha: f64,
    given: impl Fn(f64, f64, &statrs::distribution::Normal) -> f64,
) -> f64 {
    use statrs::distribution::{ChiSquared, Normal};
    if n < 2 || sd <= 0.0 {
        return 0.0;
    }
    let df = (n - 1) as f64;
    let (Ok(t), Ok(chi), Ok(z)) = (
        StudentsT::new(0.0, 1.0, df),
        ChiSquared::new(df),
        Normal::new(0.0, 1.0),
    ) else {
        return 0.0;
    };
    let t = t.inverse_cdf(1.0 - alpha);
    let root_n = (n as f64).sqrt();
    let se = sd / root_n;
    const BINS: usize = 4000;
    (0..BINS)
        .map(|i| {
            let s = sd * (chi.inverse_cdf((i as f64 + 0.5) / BINS as f64) / df).sqrt();
            given(t * s / root_n, se, &z)
        })
        .sum::<f64>()
        / BINS as f64
}

/// The least `n` (from 2 up to `max`) at which [`tost_power`] reaches `target`; `None` where no
/// `n` up to `max` does (a true mean outside the band never does).
pub fn tost_sample_size(mean: f64, sd: f64, band: Band, target: f64, max: usize) -> Option<usize> {
    // Power rises with n: bisect for the first n past the target.
    let reaches = |n: usize| tost_power(mean, sd, n, band, 0.05) >= target;
    if !reaches(max) {
        return None;
    }
    let (mut lo, mut hi) = (1, max);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if reaches(mid) { hi = mid } else { lo = mid }
    }
    Some(hi)
}

/// The one-sided `level` upper confidence limit of a standard deviation `sd` estimated from `n`
/// values: `sd·√((n − 1)/χ²)`, χ² the `1 − level` quantile with `n − 1` degrees of freedom.
pub fn sd_upper(sd: f64, n: usize, level: f64) -> Option<f64> {
    use statrs::distribution::ChiSquared;
    if n < 2 {
        return None;
    }
    let df = (n - 1) as f64;
    let q = ChiSquared::new(df).ok()?.inverse_cdf(1.0 - level);
    Some(sd * (df / q).sqrt())
}

/// McNemar's exact test of paired yes/no outcomes: `only_a` pairs where only the first failed,
/// `only_b` where only the second did (the pairs where both or neither failed say nothing of a
/// difference); the two-sided p-value, `min(1, 2·P(X ≤ min))` with X ~ Binomial(only_a +
/// only_b, 1/2). 1 with no discordant pair.
pub fn mcnemar_exact(only_a: usize, only_b: usize) -> f64 {
    let n = only_a + only_b;
    let k = only_a.min(only_b);
    let mut tail = 0.0;
    let mut choose = 1.0f64; // C(n, i)
    for i in 0..=k {
        if i > 0 {
            choose *= (n - i + 1) as f64 / i as f64;
        }
        tail += choose;
    }
    (2.0 * tail * 0.5f64.powi(n as i32)).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welch_of_equal_spreads_has_the_pooled_degrees_of_freedom() {
        // sd 1 each, n 3 each: df = 4, se = sqrt(2/3); t(0.975, 4) = 2.776445 (tables).
        let i = Interval::welch(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0], 0.95).unwrap();
        let half = 2.776445 * (2.0f64 / 3.0).sqrt();
        assert!((i.mean + 3.0).abs() < 1e-12, "{i:?}");
        assert!((i.lo - (-3.0 - half)).abs() < 1e-5, "{i:?}");
        assert!((i.hi - (-3.0 + half)).abs() < 1e-5, "{i:?}");
        // Unequal spreads: the noisier sample sets the width, and df falls below n_a + n_b − 2.
        let wide = Interval::welch(&[1.0, 2.0, 3.0], &[0.0, 5.0, 10.0, 15.0], 0.95).unwrap();
        assert!(wide.hi - wide.lo > 2.0 * 2.776445 * (1.0f64 / 3.0 + 125.0 / 12.0).sqrt());
        assert_eq!(Interval::welch(&[1.0], &[1.0, 2.0], 0.95), None);
    }

    #[test]
    fn mcnemar_exact_of_known_counts() {
        // 0 against 5 discordant pairs: 2 · (1/2)^5 = 0.0625; 1 against 6: 2 · 8/128 = 0.125
        // (scipy.stats.binomtest(1, 7).pvalue gives 0.125 too).
        assert!((mcnemar_exact(0, 5) - 0.0625).abs() < 1e-12);
        assert!((mcnemar_exact(6, 1) - 0.125).abs() < 1e-12);
        assert_eq!(mcnemar_exact(3, 3), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
    }

    /// The share of `trials` simulated samples of `n` normal values (true `mean`, `sd`) on which
    /// the 90% t-interval lies inside `band`: the rule as the report applies it.
    fn simulated_tost(mean: f64, sd: f64, n: usize, band: Band, trials: usize) -> f64 {
        let mut rng = crate::rng::Rng::new(41);
        let mut draws = vec![0.0f32; n];
        let hits = (0..trials)
            .filter(|_| {
                rng.fill_normal(&mut draws, sd);
                let xs: Vec<f64> = draws.iter().map(|&d| mean + d as f64).collect();
                let i = Interval::t(&xs, 0.90).unwrap();
                i.lo >= band.lo && i.hi <= band.hi
            })
            .count();
        hits as f64 / trials as f64
    }

    #[test]
    fn tost_power_agrees_with_a_simulation_of_the_rule() {
        // The "+0.3%" claim: band [-0.7, 1.3]; the tiny study's sd 1.54.
        let band = Band::between(-0.7, 1.3);
        for (mean, n) in [(0.3, 10), (0.3, 22), (0.88, 39), (0.88, 85), (0.5, 6)] {
            let formula = tost_power(mean, 1.54, n, band, 0.05);
            // 20,000 trials: a binomial sd of at most 0.35 percentage points.
            let sim = simulated_tost(mean, 1.54, n, band, 20_000);
            assert!(
                (formula - sim).abs() < 0.02,
                "mean {mean}, n {n}: formula {formula:.4}, simulation {sim:.4}"
            );
        }
    }

    #[test]
    fn sample_sizes_for_eighty_percent_power_match_the_textbook_figures() {
        let band = Band::between(-0.7, 1.3);
        // A true change at the paper's +0.3%, sd 1.54: about 22 pairs; at +0.88%: about 85.
        let at_paper = tost_sample_size(0.3, 1.54, band, 0.8, 1000).unwrap();
        assert!((21..=23).contains(&at_paper), "{at_paper}");
        let at_observed = tost_sample_size(0.88, 1.54, band, 0.8, 1000).unwrap();
        assert!((83..=87).contains(&at_observed), "{at_observed}");
        assert!(tost_power(0.3, 1.54, at_paper, band, 0.05) >= 0.8);
        assert!(tost_power(0.3, 1.54, at_paper - 1, band, 0.05) < 0.8);
        // Outside the band no n reaches it.
        assert_eq!(tost_sample_size(1.5, 1.54, band, 0.8, 1000), None);
        // The 90% upper limit of an sd of 1.54 from 10 values.
        let up = sd_upper(1.54, 10, 0.90).unwrap();
        assert!((up - 2.26).abs() < 0.01, "{up}");
    }

    #[test]
    fn one_sided_power_grows_with_the_distance_past_the_edge() {
        let p = |mean, n| one_sided_power(mean, 5.0, n, 0.0, true, 0.05);
        // At the edge a one-sided 5% test rejects 5% of the time.
        assert!((p(0.0, 10) - 0.05).abs() < 0.002, "{}", p(0.0, 10));
        assert!(p(4.5, 10) > p(2.0, 10) && p(4.5, 20) > p(4.5, 10));
        assert!(p(4.5, 10) > 0.8, "{}", p(4.5, 10));
    }

    #[test]
    fn spread_and_t_interval_of_a_known_sample() {
        // 2, 4, 6: mean 4, sd 2; t(0.975, 2) = 4.302653; half-width 4.302653 * 2 / sqrt(3).
        let s = Spread::of(&[2.0, 4.0, 6.0]).unwrap();
        assert_eq!((s.n, s.mean, s.sd), (3, 4.0, 2.0));
        let i = Interval::t(&[2.0, 4.0, 6.0], 0.95).unwrap();
        let half = 4.302653 * 2.0 / 3f64.sqrt();
        assert!((i.lo - (4.0 - half)).abs() < 1e-5, "{i:?}");
        assert!((i.hi - (4.0 + half)).abs() < 1e-5, "{i:?}");
        // Two values: t(0.975, 1) = 12.7062.
        let i = Interval::t(&[1.0, 3.0], 0.95).unwrap();
        let half = 12.706205 * 2f64.sqrt() / 2f64.sqrt();
        assert!((i.hi - (2.0 + half)).abs() < 1e-4, "{i:?}");
        assert_eq!(Interval::t(&[1.0], 0.95), None);
        assert_eq!(Spread::of(&[5.0]).unwrap().sd, 0.0);
        assert_eq!(Spread::of(&[]), None);
    }

    /// An interval as both the 90% and the 95% one.
    fn at(lo: f64, hi: f64) -> Option<Interval> {
        Some(Interval {
            n: 3,
            mean: (lo + hi) / 2.0,
            lo,
            hi,
        })
    }

    #[test]
    fn verdicts_on_synthetic_results() {
        let band = Band::between(3.0, 5.0);
        let v = |lo, hi| verdict(at(lo, hi), at(lo, hi), band);
        assert_eq!(v(3.5, 4.5), Verdict::Consistent);
        // Its mean outside the band: meeting the band is not agreeing with it.
        assert_eq!(v(4.5, 6.0), Verdict::Inconclusive, "overlaps");
        assert_eq!(
            v(3.0, 5.0),
            Verdict::Consistent,
            "the band's edges belong to it"
        );
        assert_eq!(v(-2.0, 1.0), Verdict::Contradicted);
        assert_eq!(v(5.1, 5.2), Verdict::Contradicted);
        assert_eq!(v(0.0, 9.0), Verdict::Inconclusive, "too wide");
        assert_eq!(verdict(None, None, band), Verdict::Inconclusive, "one seed");
        let exact = Some(Interval::exact(45.0));
        assert_eq!(
            verdict(exact, exact, Band::between(40.0, 50.0)),
            Verdict::Consistent
        );
        // The 90% interval inside, the 95% one reaching out: still consistent (TOST at 5%).
        assert_eq!(
            verdict(at(3.2, 4.8), at(2.9, 5.1), band),
            Verdict::Consistent
        );
        let better = Band::above(0.0);
        let b = |lo, hi| verdict(at(lo, hi), at(lo, hi), better);
        assert_eq!(b(0.1, 0.4), Verdict::Consistent);
        assert_eq!(b(-0.1, 0.4), Verdict::Inconclusive);
        assert_eq!(b(-0.4, -0.1), Verdict::Contradicted);
        assert_eq!(b(0.0, 0.0), Verdict::Contradicted, "equal is not better");
    }

    #[test]
    fn no_sample_is_consistent_with_two_disjoint_bands() {
        let mut rng = crate::rng::Rng::new(24);
        let mut uniform = |lo: f64, hi: f64| lo + (hi - lo) * rng.below(1_000_000) as f64 / 1e6;
        let mut decided = 0;
        for _ in 0..20_000 {
            let n = 2 + (uniform(0.0, 12.0) as usize);
            let centre = uniform(-3.0, 3.0);
            let spread = uniform(0.0, 2.0);
            let xs: Vec<f64> = (0..n).map(|_| centre + uniform(-spread, spread)).collect();
            let a_lo = uniform(-4.0, 2.0);
            let a = Band::between(a_lo, a_lo + uniform(0.1, 3.0));
            let b_lo = a.hi + uniform(0.0, 2.0);
            let bands = [
                a,
                Band::between(b_lo, b_lo + uniform(0.1, 3.0)),
                Band::above(a.hi),
            ];
            for other in &bands[1..] {
                let both = judge(&xs, a) == Verdict::Consistent
                    && judge(&xs, *other) == Verdict::Consistent;
                assert!(!both, "{xs:?} consistent with {a:?} and {other:?}");
            }
            decided += usize::from(judge(&xs, a) != Verdict::Inconclusive);
        }
        assert!(decided > 1000, "the test decides something: {decided}");
    }

    #[test]
    fn clopper_pearson_intervals_of_known_proportions() {
        // 1 of 3: [0.0084, 0.9057]; 0 of 10: [0, 0.3085]; 10 of 10: [0.6915, 1].
        let close = |a: f64, b: f64| (a - b).abs() < 1e-4;
        let (lo, hi) = clopper_pearson(1, 3, 0.95).unwrap();
        assert!(close(lo, 0.0084) && close(hi, 0.9057), "{lo} {hi}");
        let (lo, hi) = clopper_pearson(0, 10, 0.95).unwrap();
        assert!(lo == 0.0 && close(hi, 0.3085), "{hi}");
        let (lo, hi) = clopper_pearson(10, 10, 0.95).unwrap();
        assert!(close(lo, 0.6915) && hi == 1.0, "{lo}");
        assert_eq!(clopper_pearson(0, 0, 0.95), None);
    }
}
