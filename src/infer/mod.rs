//! Inference: the preallocated KV cache, sampling, generation, and the `bench` measurements.

pub mod bench;
pub mod cache;
pub mod generate;
pub mod sampling;
