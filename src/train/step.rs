//! burn-train's steps for [`Gpt`]: forward → loss → backward, nothing else.

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{ExecutionError, Int, Tensor};
use burn::train::metric::{Adaptor, ItemLazy, LossInput};
use burn::train::{InferenceStep, TrainOutput, TrainStep};

use super::loader::Shard;
use crate::data::dataset::TokenBatch;
use crate::model::Gpt;

/// What a step hands to burn-train's metrics: the mean loss, nothing else. burn's
/// `SequenceOutput` also carries the `[batch, context, vocab]` logits, which the metric thread
/// then holds past the step: a 32 MiB buffer kept alive per step at the small scale, for
/// metrics (accuracy, perplexity from logits) that mla-lab does not record.
pub struct LossOutput {
    /// `[1]`
    pub loss: Tensor<1>,
}

impl ItemLazy for LossOutput {
    fn sync(self) -> Result<Self, ExecutionError> {
        // Dispatch buffered work, and leave the autodiff graph behind (as burn's outputs do).
        self.loss.device().flush()?;
        Ok(LossOutput {
            loss: self.loss.without_autodiff(),
        })
    }
}

impl Adaptor<LossInput> for LossOutput {
    fn adapt(&self) -> LossInput {
        LossInput::new(self.loss.clone())
    }
}

impl TrainStep for Gpt {
    type Input = Shard;
    type Output = LossOutput;

    /// The gradient of the shard's mean loss times its share of the batch: burn-train sums the
    /// devices' gradients into that of the whole batch's mean loss. Metrics get the shard's
    /// own mean loss.
    ///
    /// With micro-batches, one forward and backward pass per `micro_batch` rows, each pass's
    /// mean loss weighted by its share of the shard, their gradients summed
    /// (burn's [`GradientsAccumulator`]): the same gradient, one pass's activations at a time.
    fn step(&self, shard: Shard) -> TrainOutput<LossOutput> {
        let [rows, _] = shard.batch.inputs.dims();
        let micro = shard.micro_batch.clamp(1, rows);
        assert!(
            rows.is_multiple_of(micro),
            "micro-batches of {micro} rows do not divide a shard of {rows} (checked before training)"
        );
        let passes = rows / micro;
        if passes <= 1 {
            let loss = self.loss(shard.batch.inputs, shard.batch.targets);
            let grads = if shard.share == 1.0 {
                loss.backward()
            } else {
                (loss.clone() * shard.share).backward()
            };
            return TrainOutput::new(self, grads, LossOutput { loss });
        }
        let weight = shard.share / passes as f64;
        let mut sum = GradientsAccumulator::new();
        let mut losses = Vec::with_capacity(passes);
        for pass in 0..passes {
            let part = |t: &Tensor<2, Int>| t.clone().narrow(0, pass * micro, micro); // [micro, seq]
            let loss = self.loss(part(&shard.batch.inputs), part(&shard.batch.targets));
            let grads = (loss.clone() * weight).backward();
            sum.accumulate(self, GradientsParams::from_grads(grads, self));
            losses.push(loss.detach());
        }
        // The passes are equal, so the mean of their means is the shard's mean.
        let loss = Tensor::cat(losses, 0).mean(); // [1]
        TrainOutput {
            grads: sum.grads(),
            item: LossOutput { loss },
        }
    }
}

impl InferenceStep for Gpt {
    type Input = TokenBatch;
    type Output = LossOutput;

    fn step(&self, batch: TokenBatch) -> LossOutput {
        LossOutput {
            loss: self.loss(batch.inputs, batch.targets),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::test_device;
    use crate::data::dataset::{TokenBatcher, TokenWindows};
    use crate::model::{AttentionConfig, GptConfig, LatentLayout, Positions};
    use burn::data::dataloader::batcher::Batcher;
    use burn::data::dataset::Dataset;
    use burn::optim::AdamWConfig;
    use std::sync::Arc;

    /// A one-layer model over 40 tokens and 8 positions.
    fn tiny(positions: Positions, attention: AttentionConfig) -> GptConfig {
        GptConfig {
            vocab_size: 40,
            context: 8,
            d_model: 16,
            n_layers: 1,
            n_heads: 2,
            mlp_ratio: 2,
            positions,
            attention,
            tie_embeddings: true,
        }
    }

    #[test]
    fn train_step_loss_matches_the_model_loss_and_its_gradients_descend() {
        let device = test_device().autodiff();
        let config = tiny(
            Positions::Rope(10_000.0),
            AttentionConfig::Mla {
                rank: 8,
                layout: LatentLayout::Separate,
                rope_dim: 4,
            },
        );
        let model = config.init(&device);
        let tokens: Vec<u32> = (0..200).map(|i| (i * 7 % 40) as u32).collect();
        let ds = TokenWindows::validation(Arc::new(tokens), 8).unwrap();
        let batch = || TokenBatcher.batch(vec![ds.get(0).unwrap(), ds.get(1).unwrap()], &device);
        let b = batch();
        let want = model
            .loss(b.inputs.clone(), b.targets.clone())
            .into_scalar::<f32>();
        let out = TrainStep::step(
            &model,
            Shard {
                batch: b,
                share: 1.0,
                micro_batch: 2,
            },
        );
        let got = out.item.loss.clone().into_scalar::<f32>();
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        // Its gradients move the model downhill.
        let model = AdamWConfig::new().init().step(1e-2, model, out.grads);
        let b = batch();
        let after = model.loss(b.inputs, b.targets).into_scalar::<f32>();
        assert!(
            after < want,
            "one step did not lower the loss: {want} -> {after}"
        );
    }

    #[test]
    fn micro_batches_give_the_whole_batch_gradient_and_loss() {
        use burn::module::{Module, ModuleVisitor, Param};
        struct Grads<'a>(&'a GradientsParams, Vec<f32>);
        impl ModuleVisitor for Grads<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let g = self.0.get::<D>(param.id).expect("a gradient per parameter");
                self.1.extend(g.into_data().try_to_vec::<f32>().unwrap());
            }
        }
        let device = test_device().autodiff();
        let config = tiny(Positions::Learned, AttentionConfig::Mha { kv_heads: 2 });
        let model = config.init(&device);
        let tokens: Vec<u32> = (0..400).map(|i| (i * 11 % 37) as u32).collect();
        let ds = TokenWindows::validation(Arc::new(tokens), 8).unwrap();
        let items = || (0..4).map(|i| ds.get(i).unwrap()).collect();
        let run = |micro_batch: usize, share: f64| {
            let batch = TokenBatcher.batch(items(), &device);
            let out = TrainStep::step(
                &model,
                Shard {
                    batch,
                    share,
                    micro_batch,
                },
            );
            let mut grads = Grads(&out.grads, Vec::new());
            model.visit(&mut grads);
            (out.item.loss.into_scalar::<f32>(), grads.1)
        };
        let (loss, whole) = run(4, 0.5);
        for micro in [1, 2] {
            let (l, g) = run(micro, 0.5);
            assert!(
                (l - loss).abs() < 1e-5,
                "micro-batch {micro}: loss {l} vs {loss}"
            );
            let diff = g
                .iter()
                .zip(&whole)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                diff < 1e-5,
                "micro-batch {micro}: gradients differ by {diff}"
            );
        }
        // The share still scales the gradient.
        let (_, full) = run(2, 1.0);
        let ratio = full
            .iter()
            .zip(&whole)
            .map(|(a, b)| a - 2.0 * b)
            .fold(0.0f32, |m, d| m.max(d.abs()));
        assert!(ratio < 1e-5, "{ratio}");
    }
}
