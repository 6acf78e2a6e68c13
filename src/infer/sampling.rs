//! Choosing the next token from logits: temperature, top-k, top-p (nucleus), in that order,
//! then a draw from a seeded generator. Temperature 0 is greedy (argmax), with no draw.
//!
//! Works on one row of logits on the host: sampling needs the numbers there anyway, and a
//! vocabulary-sized sort per token is negligible next to a forward pass.

use crate::options::InvalidOption;
use crate::rng::Rng;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingConfig {
    /// 0 means greedy.
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (`None`: all).
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches `p` (`None`: all).
    pub top_p: Option<f32>,
}

impl SamplingConfig {
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: None,
            top_p: None,
        }
    }

    /// Checks the values a user gave, naming the option.
    pub fn validate(&self) -> Result<(), InvalidOption> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(InvalidOption::new(
                "temperature",
                self.temperature,
                "a number >= 0 (0 = greedy)",
            ));
        }
        if self.top_k == Some(0) {
            return Err(InvalidOption::new("top_k", 0, "at least 1"));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(InvalidOption::new("top_p", p, "0 < p <= 1"));
        }
        Ok(())
    }
}

/// The tokens that may be drawn and their probabilities (summing to 1), most likely first.
pub fn candidates(logits: &[f32], cfg: &SamplingConfig) -> Vec<(u32, f32)> {
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    // Most likely first; ties by id so the result does not depend on the sort.
    order.sort_by(|&a, &b| {
        logits[b as usize]
            .total_cmp(&logits[a as usize])
            .then(a.cmp(&b))
    });
    if cfg.temperature == 0.0 {
        return vec![(order[0], 1.0)];
    }
    if let Some(k) = cfg.top_k {
        order.truncate(k.max(1));
    }
    let max = logits[order[0] as usize];
    let weights: Vec<f32> = order
        .iter()
        .map(|&i| ((logits[i as usize] - max) / cfg.temperature).exp())
        .collect();
    let total: f32 = weights.iter().sum();
    let mut probs: Vec<(u32, f32)> = order
        .into_iter()
        .zip(weights)
        .map(|(i, w)| (i, w / total))
        .collect();
    if let Some(p) = cfg.top_p {
        let mut mass = 0.0;
        let mut keep = probs.len();
        for (n, (_, q)) in probs.iter().enumerate() {
            mass += q;
            if mass >= p {
                keep = n + 1;
                break;
            }
        }
        probs.truncate(keep);
        let kept: f32 = probs.iter().map(|(_, q)| q).sum();
        probs.iter_mut().for_each(|(_, q)| *q /= kept);
    }
    probs
}

/// Draws tokens; the same seed and logits give the same tokens.
pub struct Sampler {
    pub config: SamplingConfig,
    rng: Rng,
}

impl Sampler {
    pub fn new(config: SamplingConfig, seed: u64) -> Self {
        Self {
            config,
            rng: Rng::new(seed),
        }
    }

    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let probs = candidates(logits, &self.config);
        if probs.len() == 1 {
            return probs[0].0;
        }
        let u = (self.rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
        let mut acc = 0.0;
        for &(id, q) in &probs {
            acc += q;
            if u < acc {
                return id;
            }
        }
        probs.last().unwrap().0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGITS: [f32; 6] = [1.0, 3.0, 0.5, 2.0, -1.0, 2.5];

    fn cfg(temperature: f32, top_k: Option<usize>, top_p: Option<f32>) -> SamplingConfig {
        SamplingConfig {
            temperature,
            top_k,
            top_p,
        }
    }

    fn ids(c: &[(u32, f32)]) -> Vec<u32> {
        c.iter().map(|x| x.0).collect()
    }

    #[test]
    fn temperature_zero_is_argmax() {
        let c = candidates(&LOGITS, &cfg(0.0, Some(3), Some(0.5)));
        assert_eq!(c, vec![(1, 1.0)]);
        let mut s = Sampler::new(SamplingConfig::greedy(), 9);
        assert!((0..20).all(|_| s.sample(&LOGITS) == 1));
    }

    #[test]
    fn top_k_keeps_exactly_the_k_most_likely() {
        for k in 1..=6 {
            let c = candidates(&LOGITS, &cfg(1.0, Some(k), None));
            assert_eq!(ids(&c), [1, 5, 3, 0, 2, 4][..k].to_vec());
            let sum: f32 = c.iter().map(|x| x.1).sum();
            assert!((sum - 1.0).abs() < 1e-6);
        }
        // More than the vocabulary: all of it.
        assert_eq!(candidates(&LOGITS, &cfg(1.0, Some(99), None)).len(), 6);
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        let all = candidates(&LOGITS, &cfg(1.0, None, None));
        let mut mass = 0.0;
        let prefix: Vec<f32> = all
            .iter()
            .map(|x| {
                mass += x.1;
                mass
            })
            .collect();
        for (n, &m) in prefix.iter().enumerate() {
            // Exactly reaching the mass of the first n+1 keeps n+1; a hair above keeps n+2.
            let c = candidates(&LOGITS, &cfg(1.0, None, Some(m)));
            assert_eq!(c.len(), n + 1, "p = {m}");
            if n + 1 < all.len() {
                let c = candidates(&LOGITS, &cfg(1.0, None, Some(m + 1e-4)));
                assert_eq!(c.len(), n + 2, "p = {m} + 1e-4");
            }
        }
        let c = candidates(&LOGITS, &cfg(1.0, None, Some(0.6)));
        let sum: f32 = c.iter().map(|x| x.1).sum();
        assert!((sum - 1.0).abs() < 1e-6, "renormalised");
    }

    #[test]
    fn temperature_sharpens_and_flattens() {
        let p_top = |t| candidates(&LOGITS, &cfg(t, None, None))[0].1;
        assert!(p_top(0.5) > p_top(1.0) && p_top(1.0) > p_top(2.0));
    }

    #[test]
    fn draws_follow_the_probabilities_and_the_seed() {
        let c = cfg(1.0, None, None);
        let mut s = Sampler::new(c, 1);
        let mut counts = [0usize; 6];
        let n = 20_000;
        for _ in 0..n {
            counts[s.sample(&LOGITS) as usize] += 1;
        }
        for (id, q) in candidates(&LOGITS, &c) {
            let f = counts[id as usize] as f32 / n as f32;
            assert!((f - q).abs() < 0.015, "token {id}: {f} vs {q}");
        }
        let draw = |seed| {
            let mut s = Sampler::new(c, seed);
            (0..50).map(|_| s.sample(&LOGITS)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn bad_settings_name_the_option() {
        let e = cfg(-1.0, None, None).validate().unwrap_err();
        assert_eq!(e.option, "temperature");
        let e = cfg(1.0, Some(0), None).validate().unwrap_err();
        assert_eq!(e.option, "top_k");
        let e = cfg(1.0, None, Some(1.5)).validate().unwrap_err();
        assert_eq!(e.option, "top_p");
        assert_eq!(e.to_string(), "top_p 1.5: accepted: 0 < p <= 1");
    }
}
