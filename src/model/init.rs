//! GPT-2's initialisation (Radford et al. 2019; as in nanoGPT): embeddings and every Linear
//! weight N(0, 0.02), biases zero, and the two projections that write into the residual stream
//! (attention output `W^O`, MLP down) N(0, 0.02/√(2·n_layers)), so the residual stream's
//! variance does not grow with depth. Norm gains start at 1, as burn makes them.
//!
//! Where the numbers come from ([`draw`]): each random weight from its own stream of mla-lab's
//! generator ([`Rng`]), keyed by the seed and the weight's path in the model, computed on the
//! host and then copied to the device. The same experiment and seed therefore start from
//! bit-identical weights on every backend (burn's backends each have a generator of their own),
//! and two rows with one seed share the weights they have in common: their embeddings and MLPs
//! (common random numbers; attention weights sit under the variant's name and differ).

use std::cell::RefCell;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::nn::{Embedding, Linear};
use burn::tensor::{Device, Distribution, Tensor, TensorData};

use crate::rng::{Rng, fnv1a};

/// The standard deviation of GPT-2's weights.
pub const STD: f64 = 0.02;

/// How [`draw`] makes initial weights, as a run's summary records it (`initialisation`).
pub const SCHEME: &str = "mla-lab v1: N(0, std) by Box-Muller from SplitMix64, one stream per \
                          weight keyed by seed and path, drawn on the host";

/// The standard deviation of a residual projection in a model of `n_layers` blocks.
pub fn residual_std(n_layers: usize) -> f64 {
    STD / (2.0 * n_layers as f64).sqrt()
}

thread_local! {
    /// The stream [`draw`] hands to the weight it is initialising.
    static STREAM: RefCell<Option<Rng>> = const { RefCell::new(None) };
}

/// A weight of `shape` from N(0, `std`), drawn when first used: from the stream [`draw`] gives
/// it, or, used before any `draw` (a test's bare `init`), from the device's own generator.
pub fn normal<const D: usize>(shape: [usize; D], std: f64, device: &Device) -> Param<Tensor<D>> {
    Param::uninitialized(
        ParamId::new(),
        move |device, require_grad| {
            device.memory_persistent_allocations((), move |_| {
                let tensor = match STREAM.with(|s| s.borrow_mut().take()) {
                    Some(mut rng) => {
                        let mut values = vec![0.0f32; shape.iter().product()];
                        rng.fill_normal(&mut values, std);
                        Tensor::from_data(TensorData::new(values, shape), device)
                    }
                    None => Tensor::random(shape, Distribution::Normal(0.0, std), device),
                };
                if require_grad {
                    tensor.require_grad()
                } else {
                    tensor
                }
            })
        },
        device.clone(),
        true,
        shape.into(),
    )
}

/// A Linear `d_in -> d_out` with weights N(0, `std`) and, with `bias`, a zero bias.
pub fn linear(d_in: usize, d_out: usize, bias: bool, std: f64, device: &Device) -> Linear {
    Linear {
        weight: normal([d_in, d_out], std, device), // burn's row layout: [d_in, d_out]
        bias: bias.then(|| Param::from_tensor(Tensor::zeros([d_out], device))),
    }
}

/// An embedding table of `n` rows of `d`, N(0, `std`).
pub fn embedding(n: usize, d: usize, std: f64, device: &Device) -> Embedding {
    Embedding {
        weight: normal([n, d], std, device),
    }
}

/// Draws every weight of `module` not yet drawn, now, in a fixed order: each random one from
/// the stream `seed` and its path (`blocks.0.fc.weight`) select. The same module and seed give
/// the same numbers on any backend, thread or machine.
pub fn draw<M: Module>(module: &M, seed: u64) {
    module.visit(&mut Draw {
        seed,
        path: Vec::new(),
    });
}

struct Draw {
    seed: u64,
    path: Vec<String>,
}

impl ModuleVisitor for Draw {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let key = fnv1a(self.path.join(".").as_bytes());
        STREAM.with(|s| *s.borrow_mut() = Some(Rng::for_item(self.seed, key)));
        let _ = param.val();
        // A weight that draws nothing (a norm's gain, a zero bias) leaves its stream unused.
        STREAM.with(|s| s.borrow_mut().take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::test_device;

    #[derive(Module, Debug)]
    struct Two {
        a: Linear,
        b: Linear,
    }

    fn two(device: &Device) -> Two {
        Two {
            a: linear(3, 4, true, STD, device),
            b: linear(3, 4, false, 0.5, device),
        }
    }

    fn values(p: &Param<Tensor<2>>) -> Vec<f32> {
        p.val().into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn drawn_weights_follow_seed_path_and_std_and_nothing_else() {
        let device = test_device();
        let (m, again, other) = (two(&device), two(&device), two(&device));
        draw(&m, 4);
        draw(&again, 4);
        draw(&other, 5);
        assert_eq!(values(&m.a.weight), values(&again.a.weight), "one seed");
        assert_ne!(values(&m.a.weight), values(&other.a.weight), "another seed");
        // Each path its own stream: b is not a's numbers scaled.
        let ratio: Vec<f32> = (values(&m.b.weight).iter().zip(values(&m.a.weight)))
            .map(|(b, a)| b / a)
            .collect();
        assert!(ratio.windows(2).any(|w| (w[0] - w[1]).abs() > 1e-3));
        // The stream is the path's: a's weight, drawn by hand from its key.
        let mut want = vec![0.0f32; 12];
        Rng::for_item(4, fnv1a(b"a.weight")).fill_normal(&mut want, STD);
        assert_eq!(values(&m.a.weight), want);
        // The bias stays zero, and drawing again changes nothing.
        let bias = m.a.bias.as_ref().unwrap().val().into_data();
        assert_eq!(bias.try_to_vec::<f32>().unwrap(), vec![0.0; 4]);
        draw(&m, 9);
        assert_eq!(values(&m.a.weight), want);
    }
}
