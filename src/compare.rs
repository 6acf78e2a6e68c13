//! The one comparison the equivalence tests use (fused == composed, cached == full, absorbed ==
//! naive, backend == backend, golden logits): the largest `|got − want|`, and a failure, naming
//! the index and both values, on a length mismatch or on any value that is not finite. A fold
//! with `f32::max` would pass NaN (`f32::max(0.0, NaN)` is 0.0): a model that outputs NaN
//! would match anything.

/// The largest `|got − want|` (relative to `|want|` with `relative`); panics, naming `what`,
/// the index and both values, where the lengths differ or a value is not finite.
pub fn max_difference(got: &[f32], want: &[f32], what: &str, relative: bool) -> f32 {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} values against {}",
        got.len(),
        want.len()
    );
    let mut worst = 0.0f32;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.is_finite() && w.is_finite(),
            "{what}: index {i} is {g} against {w}"
        );
        let d = (g - w).abs() / if relative { w.abs() } else { 1.0 };
        worst = worst.max(d);
    }
    worst
}

/// [`max_difference`], absolute.
pub fn max_abs_diff(got: &[f32], want: &[f32], what: &str) -> f32 {
    max_difference(got, want, what, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_difference_and_its_place() {
        assert_eq!(max_abs_diff(&[1.0, 2.0, 3.0], &[1.0, 2.5, 2.0], "x"), 1.0);
        assert_eq!(max_difference(&[2.0, 4.0], &[1.0, 4.0], "x", true), 1.0);
    }

    #[test]
    #[should_panic(expected = "planted: index 1 is NaN against 2")]
    fn a_planted_nan_fails_naming_its_index() {
        max_abs_diff(&[1.0, f32::NAN], &[1.0, 2.0], "planted");
    }

    #[test]
    #[should_panic(expected = "planted: index 0 is 1 against inf")]
    fn an_infinite_reference_fails_too() {
        max_abs_diff(&[1.0], &[f32::INFINITY], "planted");
    }

    #[test]
    #[should_panic(expected = "planted: 2 values against 3")]
    fn a_length_mismatch_fails() {
        max_abs_diff(&[1.0, 2.0], &[1.0, 2.0, 3.0], "planted");
    }
}
