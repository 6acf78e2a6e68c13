//! Checks on a model config that would otherwise surface as a panic deep inside a forward
//! pass. Each problem names the field (relative to the `model` section) and what is accepted.

pub use super::field::FieldError;
use super::gpt::{GptConfig, Positions};

pub const MAX_VOCAB: usize = 1 << 24;
pub const MAX_CONTEXT: usize = 1 << 20;
pub const MAX_D_MODEL: usize = 1 << 16;
pub const MAX_LAYERS: usize = 1 << 10;
pub const MAX_MLP_RATIO: usize = 64;

impl GptConfig {
    /// Every problem with this config; empty when it is valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let mut bad = |field: &str, message: String| errs.push(FieldError::new(field, message));
        // The upper bounds are far past what trains on one machine; they keep every size the
        // code multiplies out within range (the memory estimate then judges what fits).
        for (field, value, most) in [
            ("vocab_size", self.vocab_size, MAX_VOCAB),
            ("context", self.context, MAX_CONTEXT),
            ("d_model", self.d_model, MAX_D_MODEL),
            ("n_layers", self.n_layers, MAX_LAYERS),
            ("n_heads", self.n_heads, MAX_D_MODEL),
            ("mlp_ratio", self.mlp_ratio, MAX_MLP_RATIO),
        ] {
            if value == 0 || value > most {
                bad(field, format!("{value}; accepted: 1 to {most}"));
            }
        }
        let sized = |v: usize| (1..=MAX_D_MODEL).contains(&v);
        if !(sized(self.n_heads) && sized(self.d_model)) {
            return errs;
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            bad(
                "d_model",
                format!(
                    "{} is not divisible by n_heads = {}; accepted: a multiple of n_heads",
                    self.d_model, self.n_heads
                ),
            );
            return errs;
        }
        if let Positions::Rope(theta) = self.positions
            && !(theta.is_finite() && theta > 1.0)
        {
            bad(
                "positions",
                format!("Rope({theta}): accepted: a finite base > 1, e.g. Rope(10000.0)"),
            );
        }
        errs.extend(self.attention.validate(&self.attention_dims()));
        errs
    }
}
