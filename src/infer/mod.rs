//! Inference state: the preallocated KV cache. (Sampling and generation arrive with decoding.)

pub mod cache;
