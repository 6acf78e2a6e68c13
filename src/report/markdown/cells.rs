//! The cells the report's tables share: a value or a dash, mean ± sd, a mean with its 95%
//! interval, a share in percent.

use crate::report::stats::{Interval, Spread};

pub(crate) fn or_dash(x: Option<String>) -> String {
    x.unwrap_or_else(|| "-".into())
}

/// `mean ± sd` over seeds (just the value for one), with `digits` decimals.
pub(crate) fn mean_sd(xs: &[f64], digits: usize) -> String {
    match Spread::of(xs) {
        None => "-".into(),
        Some(s) if s.n == 1 => format!("{:.digits$}", s.mean),
        Some(s) => format!("{:.digits$} ± {:.digits$}", s.mean, s.sd),
    }
}

/// A sample as `mean [95% CI lo, hi]` with `digits` decimals and `unit` after each number.
pub(crate) fn with_interval(xs: &[f64], digits: usize, unit: &str) -> String {
    let Some(s) = Spread::of(xs) else {
        return "-".into();
    };
    let show = |x: f64| format!("{x:+.digits$}{unit}");
    match Interval::t(xs, 0.95) {
        Some(i) => format!("{} [{}, {}]", show(s.mean), show(i.lo), show(i.hi)),
        None => show(s.mean),
    }
}

/// A share with two decimals, or four near 0 and 1, so that a bound of 0.0025 does not read
/// as 0 (nor 0.9975 as 1).
pub(crate) fn share(x: f64) -> String {
    if (x > 0.0 && x < 0.01) || (x > 0.99 && x < 1.0) {
        format!("{x:.4}")
    } else {
        format!("{x:.2}")
    }
}
