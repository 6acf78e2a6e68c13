//! GPT-2's initialisation (Radford et al. 2019; as in nanoGPT): embeddings and every Linear
//! weight N(0, 0.02), biases zero, and the two projections that write into the residual stream
//! (attention output `W^O`, MLP down) N(0, 0.02/√(2·n_layers)), so the residual stream's
//! variance does not grow with depth. Norm gains start at 1, as burn makes them.

use burn::module::{Initializer, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor};

/// The standard deviation of GPT-2's weights.
pub const STD: f64 = 0.02;

/// N(0, `std`).
pub fn normal(std: f64) -> Initializer {
    Initializer::Normal { mean: 0.0, std }
}

/// The standard deviation of a residual projection in a model of `n_layers` blocks.
pub fn residual_std(n_layers: usize) -> f64 {
    STD / (2.0 * n_layers as f64).sqrt()
}

/// A Linear `d_in -> d_out` with weights N(0, `std`) and, with `bias`, a zero bias.
pub fn linear(d_in: usize, d_out: usize, bias: bool, std: f64, device: &Device) -> Linear {
    let mut linear = LinearConfig::new(d_in, d_out)
        .with_bias(bias)
        .with_initializer(normal(std))
        .init(device);
    if bias {
        linear.bias = Some(Param::from_tensor(Tensor::zeros([d_out], device)));
    }
    linear
}
