//! AdamW with decoupled weight decay on matrices only (norm gains and biases are not
//! decayed, as in GPT-2/nanoGPT), per-tensor gradient-norm clipping, and a linear warmup into
//! a cosine decay, all from burn-optim.
//!
//! burn's `GradientClipping::Norm` clips each parameter's gradient to the norm separately,
//! not the global norm over all parameters as PyTorch's `clip_grad_norm_` does.

use anyhow::{Result, anyhow};
use burn::grad_clipping::GradientClipping;
use burn::lr_scheduler::LrSchedulerConfig;
use burn::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::lr_scheduler::linear::LinearLrSchedulerConfig;
use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::lr_scheduler::sequential::SequentialLrSchedulerConfig;
use burn::module::ParamGroup;
use burn::optim::{AdamWConfig, ModuleOptimizer};

use crate::experiment::TrainConfig;

/// Parameters that are not matrices: LayerNorm/RMSNorm gains and shifts, biases.
pub fn no_decay_group() -> ParamGroup {
    ParamGroup::from_regex(r"(gamma|beta|bias)$").expect("valid regex")
}

fn adamw(t: &TrainConfig, weight_decay: f64) -> AdamWConfig {
    AdamWConfig::new()
        .with_beta_1(t.beta1 as f32)
        .with_beta_2(t.beta2 as f32)
        .with_epsilon(1e-8)
        .with_weight_decay(weight_decay as f32)
}

pub fn optimizer(t: &TrainConfig) -> ModuleOptimizer {
    let clip = GradientClipping::Norm(t.grad_clip as f32);
    adamw(t, t.weight_decay)
        .init()
        .with_grad_clipping(clip.clone())
        .with_group(no_decay_group(), adamw(t, 0.0).build(), Some(clip))
}

/// Linear warmup from `lr / warmup_steps` to `lr`, then cosine decay to `min_lr` at
/// `max_steps`. One scheduler step per optimizer step.
pub fn lr_schedule(t: &TrainConfig) -> Result<ModuleLrScheduler> {
    let decay_steps = (t.max_steps - t.warmup_steps).max(1);
    let cosine = CosineAnnealingLrSchedulerConfig::new(t.lr, decay_steps).with_min_lr(t.min_lr);
    let schedule = if t.warmup_steps == 0 {
        cosine.init()
    } else {
        // burn's linear schedule takes at least one iteration; one warmup step is one step at
        // `lr / 1 = lr`, the schedule's first value.
        let warmup = LinearLrSchedulerConfig::new(
            t.lr / t.warmup_steps as f64,
            t.lr,
            (t.warmup_steps - 1).max(1),
        );
        SequentialLrSchedulerConfig::new(
            vec![
                LrSchedulerConfig::Linear(warmup),
                LrSchedulerConfig::Cosine(cosine),
            ],
            vec![t.warmup_steps],
        )
        .init()
    };
    schedule.map_err(|e| anyhow!("train: invalid learning-rate schedule: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::test_device;
    use crate::model::{AttentionConfig, GptConfig, Positions};
    use burn::module::Module;
    use burn::optim::GradientsParams;
    use burn::tensor::{Int, Tensor};

    /// Every float parameter's rank and values, in visiting order.
    #[derive(Default)]
    struct Values(Vec<(usize, Vec<f32>)>);

    impl burn::module::ModuleVisitor for Values {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            let v = param
                .val()
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap();
            self.0.push((D, v));
        }
    }

    fn values<M: Module>(m: &M) -> Vec<(usize, Vec<f32>)> {
        let mut v = Values::default();
        m.visit(&mut v);
        v.0
    }

    fn train(lr: f64, warmup: usize, steps: usize) -> TrainConfig {
        TrainConfig {
            lr,
            min_lr: lr / 10.0,
            warmup_steps: warmup,
            max_steps: steps,
            ..TrainConfig::default()
        }
    }

    fn lrs(t: &TrainConfig) -> Vec<f64> {
        let mut s = lr_schedule(t).unwrap();
        (0..t.max_steps).map(|_| s.step().base()).collect()
    }

    #[test]
    fn warmup_then_cosine() {
        let t = train(1e-3, 10, 100);
        let lr = lrs(&t);
        assert!((lr[0] - 1e-4).abs() < 1e-9, "first step {}", lr[0]);
        assert!(
            lr[..10].windows(2).all(|w| w[1] > w[0]),
            "warmup rises: {:?}",
            &lr[..10]
        );
        assert!(
            (lr[9] - 1e-3).abs() < 1e-9,
            "peak at the end of warmup: {}",
            lr[9]
        );
        assert!(
            (lr[10] - 1e-3).abs() < 1e-9,
            "cosine starts at the peak: {}",
            lr[10]
        );
        assert!(lr[10..].windows(2).all(|w| w[1] <= w[0]), "decay falls");
        assert!((lr[99] - 1e-4).abs() < 2e-5, "ends near min_lr: {}", lr[99]);
        let no_warmup = lrs(&train(1e-3, 0, 50));
        assert!((no_warmup[0] - 1e-3).abs() < 1e-9);
        // One warmup step (a valid file said "Number of iterations must be at least 1").
        let one = lrs(&train(1e-3, 1, 3));
        assert!(
            (one[0] - 1e-3).abs() < 1e-9 && (one[1] - 1e-3).abs() < 1e-9,
            "{one:?}"
        );
        assert!(one[2] < one[1], "{one:?}");
    }

    #[test]
    fn weight_decay_shrinks_matrices_but_not_norms() {
        let device = test_device().autodiff();
        let config = GptConfig {
            vocab_size: 32,
            context: 8,
            d_model: 16,
            n_layers: 1,
            n_heads: 2,
            mlp_ratio: 2,
            positions: Positions::Learned,
            attention: AttentionConfig::mha(2),
            tie_embeddings: true,
        };
        let model = config.init(&device);
        let before = values(&model);
        let t = TrainConfig {
            weight_decay: 0.5,
            ..TrainConfig::default()
        };
        let mut optim = optimizer(&t);
        // Zero gradients: AdamW's step is the decay alone.
        let toks = Tensor::<2, Int>::zeros([1, 8], &device);
        let loss = model.loss(toks.clone(), toks).mul_scalar(0.0);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let after = values(&optim.step(0.1, model, grads));
        let mut decayed = 0;
        let mut kept = 0;
        // Matrices (rank >= 2) decay; vectors (norm gains and shifts, biases) must not.
        for ((rank, b), (_, a)) in before.iter().zip(&after) {
            let ratio = a
                .iter()
                .zip(b)
                .filter(|(_, b)| b.abs() > 1e-3)
                .map(|(a, b)| a / b)
                .next();
            // All-zero tensors (LayerNorm shifts and biases at init) cannot show decay.
            let Some(ratio) = ratio else { continue };
            if *rank == 1 {
                assert!((ratio - 1.0).abs() < 1e-5, "a vector decayed: {ratio}");
                kept += 1;
            } else {
                assert!(
                    (ratio - 0.95).abs() < 1e-4,
                    "a rank-{rank} weight not decayed by lr*wd: {ratio}"
                );
                decayed += 1;
            }
        }
        // Biases start at zero (GPT-2's init): the three LayerNorm gains are the vectors seen.
        assert!(decayed > 5 && kept >= 3, "{decayed} decayed, {kept} kept");
    }
}
