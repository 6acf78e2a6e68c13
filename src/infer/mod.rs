//! Inference: sampling, generation, the `bench` measurements and the machine's bandwidth
//! (`roofline`). The KV cache lives with the model, in `model::cache`.

pub mod bench;
pub mod generate;
pub mod roofline;
pub mod sampling;
