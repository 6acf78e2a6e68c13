//! A validation curve's plateau: the fit `L(t) = L∞ + A·t^(−α)` of loss against tokens seen,
//! and the budget where it has flattened. For a fixed `α` the fit is linear in `L∞` and `A`
//! (ordinary least squares); `α` is searched on a grid, then refined by golden-section search
//! around the best grid point.

/// `L(t) = l_inf + a · t^(−alpha)`, `t` in tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerLaw {
    pub l_inf: f64,
    pub a: f64,
    pub alpha: f64,
    /// Root-mean-square residual of the fit, nats.
    pub rmse: f64,
}

impl PowerLaw {
    pub fn at(&self, tokens: f64) -> f64 {
        self.l_inf + self.a * tokens.powf(-self.alpha)
    }

    /// Tokens from which the fitted loss is within `nats` of `l_inf`.
    pub fn tokens_within(&self, nats: f64) -> f64 {
        (self.a / nats).powf(1.0 / self.alpha)
    }

    /// Tokens from which one more doubling lowers the fitted loss by less than `fraction` of
    /// it: the first `t` on a grid of 1% steps with `L(t) − L(2t) < fraction · L(t)`.
    pub fn tokens_flat(&self, fraction: f64, from: f64) -> f64 {
        let mut t = from.max(1.0);
        while self.at(t) - self.at(2.0 * t) >= fraction * self.at(t) && t < 1e15 {
            t *= 1.01;
        }
        t
    }
}

/// Least squares of `L∞ + A·t^(−α)` for this `α`: `(l_inf, a, sum of squared residuals)`.
fn linear(points: &[(f64, f64)], alpha: f64) -> (f64, f64, f64) {
    let n = points.len() as f64;
    let xs: Vec<f64> = points.iter().map(|&(t, _)| t.powf(-alpha)).collect();
    let (mx, my) = (
        xs.iter().sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, &(_, y)) in xs.iter().zip(points) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
    }
    let a = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let l_inf = my - a * mx;
    let sse = xs
        .iter()
        .zip(points)
        .map(|(x, &(_, y))| (y - l_inf - a * x).powi(2))
        .sum();
    (l_inf, a, sse)
}

/// Why points have no fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoFit {
    /// Fewer than 3 points.
    TooFew(usize),
    /// The point at this index has a loss that is not a finite number, or no tokens.
    Unusable(usize),
    /// The best fit does not fall (`A ≤ 0`): the curve is flat or rising.
    DoesNotFall,
}

/// The fit to `(tokens, loss)` points (at least 3, tokens > 0, finite losses), or why there is
/// none.
pub fn power_law(points: &[(f64, f64)]) -> Result<PowerLaw, NoFit> {
    if points.len() < 3 {
        return Err(NoFit::TooFew(points.len()));
    }
    if let Some(i) = points
        .iter()
        .position(|&(t, l)| t <= 0.0 || !t.is_finite() || !l.is_finite())
    {
        return Err(NoFit::Unusable(i));
    }
    let sse = |alpha: f64| linear(points, alpha).2;
    // α from 0.01 to 4, log-spaced.
    let grid: Vec<f64> = (0..=400)
        .map(|i| 0.01 * 400f64.powf(i as f64 / 400.0))
        .collect();
    let best = (0..grid.len())
        .min_by(|&i, &j| sse(grid[i]).total_cmp(&sse(grid[j])))
        .unwrap();
    let (mut lo, mut hi) = (
        grid[best.saturating_sub(1)],
        grid[(best + 1).min(grid.len() - 1)],
    );
    let golden = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..60 {
        let (x1, x2) = (hi - golden * (hi - lo), lo + golden * (hi - lo));
        if sse(x1) < sse(x2) {
            hi = x2;
        } else {
            lo = x1;
        }
    }
    let alpha = (lo + hi) / 2.0;
    let (l_inf, a, sse) = linear(points, alpha);
    if a.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Err(NoFit::DoesNotFall);
    }
    Ok(PowerLaw {
        l_inf,
        a,
        alpha,
        rmse: (sse / points.len() as f64).sqrt(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_power_law_is_recovered_from_its_own_points() {
        let truth = PowerLaw {
            l_inf: 0.52,
            a: 900.0,
            alpha: 0.55,
            rmse: 0.0,
        };
        let points: Vec<(f64, f64)> = (1..=40)
            .map(|i| {
                let t = 409_600.0 * i as f64;
                (t, truth.at(t))
            })
            .collect();
        let fit = power_law(&points).unwrap();
        assert!((fit.l_inf - 0.52).abs() < 1e-3, "{fit:?}");
        assert!((fit.alpha - 0.55).abs() < 1e-2, "{fit:?}");
        assert!(fit.rmse < 1e-4, "{fit:?}");
        // Within 0.02 nats: A·t^−α = 0.02.
        let t = fit.tokens_within(0.02);
        assert!((truth.at(t) - truth.l_inf - 0.02).abs() < 1e-3, "{t}");
        // Flat: one more doubling gains under 1%.
        let flat = fit.tokens_flat(0.01, 1e5);
        assert!(truth.at(flat) - truth.at(2.0 * flat) < 0.0101 * truth.at(flat));
        assert!(truth.at(flat / 1.05) - truth.at(2.0 * flat / 1.05) > 0.01 * truth.at(flat));
    }

    #[test]
    fn a_curve_that_does_not_fall_has_no_fit() {
        let rising: Vec<(f64, f64)> = (1..10).map(|i| (i as f64, 1.0 + i as f64)).collect();
        assert_eq!(power_law(&rising), Err(NoFit::DoesNotFall));
        let flat: Vec<(f64, f64)> = (1..10).map(|i| (i as f64, 2.0)).collect();
        assert_eq!(power_law(&flat), Err(NoFit::DoesNotFall));
        assert_eq!(power_law(&rising[..2]), Err(NoFit::TooFew(2)));
        let mut broken: Vec<(f64, f64)> = (1..10).map(|i| (i as f64, 9.0 / i as f64)).collect();
        assert!(power_law(&broken).is_ok());
        broken[4].1 = f64::NAN;
        assert_eq!(power_law(&broken), Err(NoFit::Unusable(4)));
    }
}
