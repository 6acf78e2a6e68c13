//! burn-train's steps for [`Gpt`]: forward → loss → backward, nothing else.

use burn::tensor::{ExecutionError, Tensor};
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
    fn step(&self, shard: Shard) -> TrainOutput<LossOutput> {
        let loss = self.loss(shard.batch.inputs, shard.batch.targets);
        let grads = if shard.share == 1.0 {
            loss.backward()
        } else {
            (loss.clone() * shard.share).backward()
        };
        TrainOutput::new(self, grads, LossOutput { loss })
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

    #[test]
    fn train_step_loss_matches_the_model_loss_and_its_gradients_descend() {
        let device = test_device().autodiff();
        let config = GptConfig {
            vocab_size: 40,
            context: 8,
            d_model: 16,
            n_layers: 1,
            n_heads: 2,
            mlp_ratio: 2,
            positions: Positions::Rope(10_000.0),
            attention: AttentionConfig::Mla {
                rank: 8,
                layout: LatentLayout::Separate,
                rope_dim: 4,
            },
            tie_embeddings: true,
        };
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
}
