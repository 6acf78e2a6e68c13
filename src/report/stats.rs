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

/// What an interval says about a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// The interval meets the band and is precise enough to tell: no wider than a bounded
    /// band, inside a one-sided one.
    Consistent,
    /// The interval lies wholly outside the band.
    Contradicted,
    /// No interval (one seed), or one that meets the band but is too wide to tell.
    Inconclusive,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Consistent => "consistent",
            Verdict::Contradicted => "contradicted",
            Verdict::Inconclusive => "inconclusive",
        })
    }
}

/// The verdict of `interval` on a claim whose values lie in `band`.
pub fn verdict(interval: Option<Interval>, band: Band) -> Verdict {
    let Some(i) = interval else {
        return Verdict::Inconclusive;
    };
    if band.bounded() {
        if i.hi < band.lo || i.lo > band.hi {
            return Verdict::Contradicted;
        }
    } else if i.hi <= band.lo || i.lo >= band.hi {
        // A one-sided band is open: "better than" excludes "equal".
        return Verdict::Contradicted;
    }
    let precise = if band.bounded() {
        i.hi - i.lo <= band.hi - band.lo
    } else {
        i.lo > band.lo && i.hi < band.hi
    };
    if precise {
        Verdict::Consistent
    } else {
        Verdict::Inconclusive
    }
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

    #[test]
    fn verdicts_on_synthetic_results() {
        let band = Band::between(3.0, 5.0);
        let at = |lo, hi| {
            Some(Interval {
                n: 3,
                mean: (lo + hi) / 2.0,
                lo,
                hi,
            })
        };
        assert_eq!(verdict(at(3.5, 4.5), band), Verdict::Consistent);
        assert_eq!(verdict(at(4.5, 6.0), band), Verdict::Consistent, "overlaps");
        assert_eq!(verdict(at(-2.0, 1.0), band), Verdict::Contradicted);
        assert_eq!(verdict(at(5.1, 5.2), band), Verdict::Contradicted);
        assert_eq!(
            verdict(at(0.0, 9.0), band),
            Verdict::Inconclusive,
            "too wide"
        );
        assert_eq!(verdict(None, band), Verdict::Inconclusive, "one seed");
        assert_eq!(
            verdict(Some(Interval::exact(45.0)), Band::between(40.0, 50.0)),
            Verdict::Consistent
        );
        let better = Band::above(0.0);
        assert_eq!(verdict(at(0.1, 0.4), better), Verdict::Consistent);
        assert_eq!(verdict(at(-0.1, 0.4), better), Verdict::Inconclusive);
        assert_eq!(verdict(at(-0.4, -0.1), better), Verdict::Contradicted);
        assert_eq!(
            verdict(at(0.0, 0.0), better),
            Verdict::Contradicted,
            "equal is not better"
        );
    }
}
