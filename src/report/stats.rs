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
    fn bounded(&self) -> bool {
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

/// How many values a sample with this `mean` and `sd` needs for its verdict on `band` to be
/// decided: the least `n` (up to `max`) at which the 90% interval fits inside the band (the
/// mean inside it) or the 95% interval clears it (the mean outside), were the mean and sd to
/// stay as they are. `None` where no `n` up to `max` does (e.g. the mean on the band's edge).
pub fn seeds_to_decide(mean: f64, sd: f64, band: Band, max: usize) -> Option<(usize, Verdict)> {
    let inside = mean > band.lo && mean < band.hi;
    let room = if inside {
        (mean - band.lo).min(band.hi - mean)
    } else {
        (band.lo - mean).max(mean - band.hi)
    };
    let (level, verdict) = if inside {
        (0.90, Verdict::Consistent)
    } else {
        (0.95, Verdict::Contradicted)
    };
    (2..=max).find_map(|n| {
        let t = StudentsT::new(0.0, 1.0, (n - 1) as f64)
            .ok()?
            .inverse_cdf(0.5 + level / 2.0);
        (t * sd / (n as f64).sqrt() < room).then_some((n, verdict))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn seeds_to_decide_shrink_the_interval_past_the_band() {
        let band = Band::between(-0.7, 1.3);
        // Mean 0.3, sd 0.8: the 90% half-width t·0.8/√n must drop under 1.0.
        let (n, v) = seeds_to_decide(0.3, 0.8, band, 100).unwrap();
        assert_eq!(v, Verdict::Consistent);
        let xs_at = |n: usize| -> Vec<f64> {
            // A sample of n values with mean 0.3 and sd exactly 0.8 (two values repeated).
            let d = 0.8 * (((n - 1) as f64) / n as f64).sqrt();
            (0..n)
                .map(|i| if i % 2 == 0 { 0.3 + d } else { 0.3 - d })
                .collect()
        };
        let even = |n: usize| n + n % 2;
        assert_eq!(judge(&xs_at(even(n)), band), Verdict::Consistent);
        assert!(n > 2 && seeds_to_decide(0.3, 0.8, band, n - 1).is_none());
        // Outside the band: contradicted once the 95% interval clears it.
        let (_, v) = seeds_to_decide(3.0, 1.0, band, 100).unwrap();
        assert_eq!(v, Verdict::Contradicted);
        // On the edge: never.
        assert_eq!(seeds_to_decide(1.3, 0.5, band, 1000), None);
    }
}
