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
            AttentionConfig::mla(8, LatentLayout::Separate, 4),
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
        let config = tiny(Positions::Learned, AttentionConfig::mha(2));
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
            let diff = crate::compare::max_abs_diff(&g, &whole, "micro-batch gradients");
            assert!(
                diff < 1e-5,
                "micro-batch {micro}: gradients differ by {diff}"
            );
        }
        // The share still scales the gradient.
        let (_, full) = run(2, 1.0);
        let doubled: Vec<f32> = whole.iter().map(|w| 2.0 * w).collect();
        let ratio = crate::compare::max_abs_diff(&full, &doubled, "the share's gradient");
        assert!(ratio < 1e-5, "{ratio}");
    }

    /// The loss at each of 20 steps of `config` drawn from seed 1 on `device`, with the run's
    /// optimizer (AdamW, clipping, decay) at a constant 1e-2, over fixed batches of 4 windows.
    fn twenty_losses(config: &GptConfig, device: &burn::tensor::Device) -> Vec<f32> {
        let device = device.clone().autodiff();
        let mut model = config.init_drawn(1, &device);
        let tokens: Vec<u32> = (0..2000).map(|i| ((i * 7 + i / 13) % 40) as u32).collect();
        let windows = TokenWindows::train(Arc::new(tokens), 8, 1).unwrap();
        let mut optim = crate::train::optim::optimizer(&Default::default());
        (0..20)
            .map(|step| {
                let items = (0..4).map(|i| windows.get(step * 4 + i).unwrap()).collect();
                let batch = TokenBatcher.batch(items, &device);
                let out = TrainStep::step(
                    &model,
                    Shard {
                        batch,
                        share: 1.0,
                        micro_batch: 4,
                    },
                );
                let loss = out.item.loss.into_scalar::<f32>();
                model = optim.step(1e-2, model.clone(), out.grads);
                loss
            })
            .collect()
    }

    /// The largest relative difference in any step's loss allowed between two backends.
    /// Backends run the same arithmetic with sums in other orders, so in float32 their results
    /// part by rounding. A sum of n terms is off by at most (n − 1)·u of its terms' magnitude (u
    /// = 2⁻²⁴); here no sum has over 40 terms (the log-sum-exp over the vocabulary), so about
    /// ten of them on the loss's path bound one step's loss within 2.4e-5 of each other. Twenty
    /// steps of training carry that on: 1e-4 allows four times the first step's bound. Seen:
    /// 6.0e-7 on wgpu (llvmpipe) and 1.9e-7 on LibTorch (CPU) against flex. A real difference
    /// shows far above it: a learning rate 1% higher moves these losses by 3.5e-3.
    const TOLERANCE: f32 = 1e-4;

    #[test]
    fn twenty_training_steps_agree_on_every_backend() {
        let backends = crate::backend::compared_backends();
        let (cpu, on_cpu) = &backends[0];
        let configs = [
            tiny(Positions::Learned, AttentionConfig::mha(2)),
            tiny(
                Positions::Rope(10_000.0),
                AttentionConfig::mla(8, LatentLayout::Separate, 4),
            ),
        ];
        for config in &configs {
            let want = twenty_losses(config, on_cpu);
            assert!(want[19] < want[0] - 0.3, "did not train: {want:?}");
            assert_eq!(want, twenty_losses(config, on_cpu), "{cpu} repeats itself");
            for (name, device) in &backends[1..] {
                let got = twenty_losses(config, device);
                let worst = crate::compare::max_difference(&got, &want, name, true);
                eprintln!("{name} against {cpu}: step losses within {worst:.2e} (relative)");
                assert!(
                    worst < TOLERANCE,
                    "{name} against {cpu}: {got:?} vs {want:?}"
                );
            }
        }
    }
}
