//! The whole model's KV cache ([`KvCache`]): one [`LayerCache`] per block, each made by its
//! layer's attention from the buffers in [`super::slot`], and the number of positions filled.
//! It sits above the attention variants and can say how many bytes it really holds.

use crate::model::attention::LayerCache;
use crate::rng::Rng;

/// The whole model's cache: one [`LayerCache`] per block and the number of positions filled.
#[derive(Debug)]
pub struct KvCache {
    pub layers: Vec<LayerCache>,
    len: usize,
    capacity: usize,
    batch: usize,
}

impl KvCache {
    pub fn new(layers: Vec<LayerCache>, batch: usize, capacity: usize) -> Self {
        Self {
            layers,
            len: 0,
            capacity,
            batch,
        }
    }

    /// Positions filled so far; the next token goes at this position.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Called by the model after every layer has written `tokens` new positions.
    pub(crate) fn advance(&mut self, tokens: usize) {
        assert!(self.len + tokens <= self.capacity, "KV cache overflow");
        self.len += tokens;
    }

    /// An empty cache filled with `len` positions of N(0, 1) values in every buffer, as if a
    /// prompt of `len` tokens had been prefilled: decode time does not depend on what the cache
    /// holds, and filling a cache of 64 × 4096 tokens by prefill takes minutes on a CPU. Values
    /// are not what any prompt would give; for speed, not for text. One `seed` gives one fill.
    pub fn fill_random(&mut self, len: usize, seed: u64) {
        assert!(self.is_empty(), "fill_random fills an empty cache");
        let mut rng = Rng::new(seed);
        for layer in &mut self.layers {
            layer.fill_random(len, &mut rng);
        }
        self.advance(len);
    }

    /// Bytes held by all buffers, measured from their shapes and dtypes: what the tests hold
    /// against the formula (the bench reports `bytes_per_token`).
    #[cfg(test)]
    pub fn bytes_allocated(&self) -> usize {
        self.layers.iter().map(LayerCache::bytes_allocated).sum()
    }

    /// Bytes holding the filled positions, measured from the buffers.
    pub fn bytes_used(&self) -> usize {
        self.len
            * self
                .layers
                .iter()
                .map(LayerCache::bytes_per_position)
                .sum::<usize>()
    }

    /// Bytes per cached token (one position of one sequence), measured from the buffers.
    pub fn bytes_per_token(&self) -> usize {
        self.layers
            .iter()
            .map(LayerCache::bytes_per_position)
            .sum::<usize>()
            / self.batch
    }
}
