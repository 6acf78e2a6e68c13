//! What training an experiment takes in memory, worked out from its file alone (nothing is
//! allocated): parameters, their gradients, AdamW's two moments, the activations a forward
//! pass keeps for the backward pass at the file's batch and context, and, for generation, the
//! KV cache of one sequence at full context. All in f32. `info` prints it; `train` refuses a
//! run whose estimate exceeds the memory the machine has free.

use serde::Serialize;

use crate::experiment::Experiment;

const F32: u128 = 4;

/// Bytes, by what holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryEstimate {
    pub params: u64,
    pub gradients: u64,
    /// AdamW's first and second moments.
    pub optimizer: u64,
    /// Kept by the forward pass at `batch_size × context` tokens
    /// ([`crate::model::GptConfig::activations_per_token`]).
    pub activations: u64,
    /// Generation's KV cache for one sequence at full context.
    pub kv_cache: u64,
}

impl MemoryEstimate {
    pub fn of(exp: &Experiment) -> MemoryEstimate {
        let m = &exp.model;
        let bytes = |elems: u128| u64::try_from(elems * F32).unwrap_or(u64::MAX);
        let params = m.param_count() as u128;
        let tokens = exp.train.batch_size as u128 * m.context as u128;
        MemoryEstimate {
            params: bytes(params),
            gradients: bytes(params),
            optimizer: bytes(2 * params),
            activations: bytes(tokens * m.activations_per_token() as u128),
            kv_cache: bytes(m.kv_elems_per_token() as u128 * m.context as u128),
        }
    }

    /// Everything a training step holds at once.
    pub fn training(&self) -> u64 {
        [
            self.params,
            self.gradients,
            self.optimizer,
            self.activations,
        ]
        .into_iter()
        .fold(0u64, u64::saturating_add)
    }

    /// `parameters 4.2 MiB, gradients …`: the parts of [`MemoryEstimate::training`].
    pub fn parts(&self) -> String {
        format!(
            "parameters {}, gradients {}, AdamW state {}, activations {}",
            human(self.params),
            human(self.gradients),
            human(self.optimizer),
            human(self.activations)
        )
    }
}

/// `512 KiB`, `3.4 MiB`, `1.2 GiB`.
pub fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// Why a run is not started: its estimate exceeds the memory available.
#[derive(Debug, thiserror::Error)]
#[error(
    "training needs about {} ({}), but this machine has {} available; lower train.batch_size or model.context",
    human(estimate.training()),
    estimate.parts(),
    human(*available)
)]
pub struct TooBig {
    pub estimate: MemoryEstimate,
    pub available: u64,
}

/// The estimate, or an error when it exceeds `available` bytes.
pub fn check(exp: &Experiment, available: u64) -> Result<MemoryEstimate, TooBig> {
    let estimate = MemoryEstimate::of(exp);
    if estimate.training() > available {
        return Err(TooBig {
            estimate,
            available,
        });
    }
    Ok(estimate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Experiment {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/small/mha.ron");
        Experiment::load(path).unwrap()
    }

    #[test]
    fn parameters_gradients_and_adam_state_come_from_the_parameter_count() {
        let exp = small();
        let e = MemoryEstimate::of(&exp);
        let params = exp.model.param_count() as u64 * 4;
        assert_eq!(
            (e.params, e.gradients, e.optimizer),
            (params, params, 2 * params)
        );
        assert_eq!(
            e.kv_cache,
            (exp.model.kv_bytes_per_token(burn::tensor::DType::F32) * exp.model.context) as u64
        );
        assert_eq!(e.training(), 4 * params + e.activations);
    }

    #[test]
    fn activations_grow_with_the_batch_and_faster_than_linearly_with_the_context() {
        let exp = small();
        let base = MemoryEstimate::of(&exp).activations;
        let mut twice_batch = exp.clone();
        twice_batch.train.batch_size *= 2;
        assert_eq!(MemoryEstimate::of(&twice_batch).activations, 2 * base);
        let mut twice_context = exp.clone();
        twice_context.model.context *= 2;
        // Twice the tokens, and each token's attention row twice as long.
        assert!(MemoryEstimate::of(&twice_context).activations > 2 * base);
    }

    #[test]
    fn a_run_past_the_memory_available_is_refused_with_the_estimate() {
        let mut exp = small();
        exp.model.context = crate::model::validate::MAX_CONTEXT;
        let err = check(&exp, 24 << 30).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("2.0 PiB") && text.contains("activations"),
            "{text}"
        );
        assert!(text.contains("24.0 GiB available"), "{text}");
        assert!(check(&small(), 24 << 30).is_ok());
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 << 20), "3.0 MiB");
        assert_eq!(human(u64::MAX), "16.0 EiB");
    }
}
