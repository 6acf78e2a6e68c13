//! Inference: sampling, generation, and the `bench` measurements (the KV cache lives with the
//! model, in `model::cache`).

pub mod bench;
pub mod generate;
pub mod sampling;
