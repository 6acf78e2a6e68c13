//! SplitMix64 (Steele, Lea & Flood 2014): a tiny generator whose output is fixed by its
//! definition, so a seed gives byte-identical results on every machine and every version. The
//! one seeded generator of the crate: stories, the train/validation split, training-window
//! offsets and token sampling all draw from it.

/// FNV-1a, 64 bit: a stable fingerprint of bytes (the same on every machine and version); keys
/// a weight's stream by its path, and the token cache by its inputs.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// An independent stream for item `i` of a run seeded with `seed`.
    pub fn for_item(seed: u64, i: u64) -> Self {
        let mut r = Rng(seed ^ 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(i.wrapping_add(1)));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below(0)");
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// One of a list of static words.
    pub fn word(&mut self, items: &[&'static str]) -> &'static str {
        items[self.below(items.len())]
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() <= p
    }

    /// Uniform in `[0, 1)`, on the 2^53 grid of an f64's mantissa.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Fills `out` with draws from N(0, `std`), two at a time by the Box–Muller transform
    /// (computed in f64, then rounded): what mla-lab's initial weights are made of.
    pub fn fill_normal(&mut self, out: &mut [f32], std: f64) {
        for pair in out.chunks_mut(2) {
            // 1 - u is in (0, 1]: its log is finite.
            let radius = std * (-2.0 * (1.0 - self.unit()).ln()).sqrt();
            let angle = std::f64::consts::TAU * self.unit();
            pair[0] = (radius * angle.cos()) as f32;
            if let Some(second) = pair.get_mut(1) {
                *second = (radius * angle.sin()) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_reference_values() {
        // The published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn splitmix_reference_values() {
        // First outputs of SplitMix64 seeded with 0, as published with the algorithm.
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn normal_draws_have_the_asked_spread_and_repeat_from_a_seed() {
        let draw = |seed: u64, n: usize| {
            let mut out = vec![0.0f32; n];
            Rng::new(seed).fill_normal(&mut out, 0.02);
            out
        };
        let x = draw(5, 100_001);
        let n = x.len() as f64;
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
        // Standard errors at n = 1e5: 6.3e-5 for the mean, 4.5e-5 for the sd.
        assert!(mean.abs() < 3e-4, "mean {mean}");
        assert!((var.sqrt() - 0.02).abs() < 2.5e-4, "sd {}", var.sqrt());
        // Normal tails: 4.55% beyond 2 sd (binomial sd 0.066%).
        let beyond = x.iter().filter(|v| v.abs() > 0.04).count() as f64 / n;
        assert!((beyond - 0.0455).abs() < 0.003, "{beyond}");
        assert_eq!(x, draw(5, 100_001));
        assert_ne!(x[..4], draw(6, 4)[..]);
        // An odd length ends on half a pair: the same first draws.
        assert_eq!(draw(5, 3)[..], x[..3]);
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = Rng::new(3);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let x = r.below(7);
            seen[x] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
