//! The buffers a layer's KV cache is made of: one preallocated tensor per cached quantity,
//! written in place ([`CacheSlot`]), what an empty cache is made for ([`CacheSpec`]) and what a
//! buffer holds ([`SlotBytes`]). A leaf: it knows no attention variant, and every variant's
//! cache is built from it.
//!
//! Byte counts come from the tensors the slots hold (their shapes and dtypes), so they can be
//! checked against the model's formula (`Gpt::kv_bytes_per_token`).

use std::ops::Range;

use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::rng::Rng;

/// One preallocated buffer whose sequence axis is `D - 2`: `[batch, heads, seq, width]` or
/// `[batch, seq, width]`.
#[derive(Debug)]
pub struct CacheSlot<const D: usize> {
    /// Always `Some` between calls; taken out while written so the write can happen in place.
    buf: Option<Tensor<D>>,
}

impl<const D: usize> CacheSlot<D> {
    pub fn zeros(shape: [usize; D], dtype: DType, device: &Device) -> Self {
        Self {
            buf: Some(Tensor::zeros(shape, (device, dtype))),
        }
    }

    fn tensor(&self) -> &Tensor<D> {
        self.buf
            .as_ref()
            .expect("cache slot is always filled between calls")
    }

    pub fn capacity(&self) -> usize {
        self.tensor().dims()[D - 2]
    }

    /// Writes `x` at sequence positions `start..start + x.seq`.
    pub fn write(&mut self, x: Tensor<D>, start: usize) {
        let buf = self
            .buf
            .take()
            .expect("cache slot is always filled between calls");
        let dims = buf.dims();
        let seq = x.dims()[D - 2];
        assert!(
            start + seq <= dims[D - 2],
            "KV cache overflow: writing positions {start}..{} into a cache of {} positions",
            start + seq,
            dims[D - 2]
        );
        let ranges: [Range<usize>; D] = std::array::from_fn(|i| {
            if i == D - 2 {
                start..start + seq
            } else {
                0..dims[i]
            }
        });
        let x = x.cast(buf.dtype());
        // `buf` is uniquely owned here, so backends can assign in place.
        self.buf = Some(buf.slice_assign(ranges, x));
    }

    /// Writes N(0, 1) values at positions `0..len`, drawn on the host from `rng` (so the same
    /// seed fills the same values on every backend and whatever else runs). A tile of at most
    /// [`FILL_TILE`] positions is drawn and repeated along the sequence, so that filling
    /// gigabytes costs memory writes rather than random draws.
    pub fn fill_random(&mut self, len: usize, rng: &mut Rng) {
        let buf = self.tensor();
        let (device, mut shape) = (buf.device(), buf.dims());
        let tile = len.clamp(1, FILL_TILE);
        shape[D - 2] = tile;
        let mut values = vec![0.0f32; shape.iter().product()];
        rng.fill_normal(&mut values, 1.0);
        let x = Tensor::<D>::from_data(TensorData::new(values, shape), &device)
            .repeat_dim(D - 2, len.div_ceil(tile))
            .narrow(D - 2, 0, len); // [.., len, width]
        self.write(x, 0);
    }

    /// The first `len` positions.
    pub fn read(&self, len: usize) -> Tensor<D> {
        self.tensor().clone().narrow(D - 2, 0, len)
    }

    /// Bytes held by the buffer, measured from its shape and dtype.
    pub fn bytes(&self) -> SlotBytes {
        let t = self.tensor();
        let allocated = t.shape().num_elements() * t.dtype().size();
        SlotBytes {
            allocated,
            per_position: allocated / self.capacity(),
        }
    }
}

/// Bytes one buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotBytes {
    /// All positions, filled or not.
    pub allocated: usize,
    /// One sequence position across the batch.
    pub per_position: usize,
}

/// Positions drawn at once by [`CacheSlot::fill_random`]; longer fills repeat them.
pub const FILL_TILE: usize = 64;

/// What an empty cache is made for: `batch` sequences of up to `capacity` tokens, stored as
/// `dtype` on `device`.
#[derive(Debug, Clone)]
pub struct CacheSpec {
    pub batch: usize,
    pub capacity: usize,
    pub dtype: DType,
    pub device: Device,
}

impl CacheSpec {
    /// An empty slot of `[batch, capacity, width]`.
    pub fn slot(&self, width: usize) -> CacheSlot<3> {
        CacheSlot::zeros([self.batch, self.capacity, width], self.dtype, &self.device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_random_fill_repeats_one_drawn_tile_and_leaves_the_rest_empty() {
        let device = crate::backend::test_device();
        let mut slot = CacheSlot::zeros([2, 150, 3], DType::F32, &device);
        slot.fill_random(130, &mut Rng::new(5));
        let all: Vec<f32> = slot.read(150).into_data().try_to_vec::<f32>().unwrap();
        let at = |b: usize, p: usize| &all[(b * 150 + p) * 3..(b * 150 + p + 1) * 3];
        for b in 0..2 {
            for p in FILL_TILE..130 {
                assert_eq!(at(b, p), at(b, p % FILL_TILE), "position {p}");
            }
            assert!((130..150).all(|p| at(b, p) == [0.0; 3]));
        }
        assert_ne!(
            at(0, 0),
            at(1, 0),
            "rows of the batch draw their own values"
        );
        assert_ne!(at(0, 0), [0.0; 3]);
    }
}
