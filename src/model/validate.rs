//! Checks on a model config that would otherwise surface as a panic deep inside a forward
//! pass. Each problem names the field (relative to the `model` section) and what is accepted.

use super::attention::AttentionConfig;
use super::gpt::{GptConfig, Positions};

/// One invalid value.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// Dotted path, e.g. `attention.rank`.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

pub const MAX_VOCAB: usize = 1 << 24;
pub const MAX_CONTEXT: usize = 1 << 20;
pub const MAX_D_MODEL: usize = 1 << 16;
pub const MAX_LAYERS: usize = 1 << 10;
pub const MAX_MLP_RATIO: usize = 64;

impl GptConfig {
    /// Every problem with this config; empty when it is valid.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let mut bad = |field: &str, message: String| {
            errs.push(FieldError {
                field: field.to_string(),
                message,
            });
        };
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
        let d_head = self.d_head();
        if let Positions::Rope(theta) = self.positions
            && !(theta.is_finite() && theta > 1.0)
        {
            bad(
                "positions",
                format!("Rope({theta}): accepted: a finite base > 1, e.g. Rope(10000.0)"),
            );
        }
        match self.attention {
            AttentionConfig::Mha { kv_heads } => {
                if kv_heads == 0
                    || kv_heads > self.n_heads
                    || !self.n_heads.is_multiple_of(kv_heads)
                {
                    bad(
                        "attention.kv_heads",
                        format!(
                            "{kv_heads} does not divide n_heads = {}; accepted: a divisor of n_heads \
                             ({} = MHA, 1 = MQA, in between GQA)",
                            self.n_heads, self.n_heads
                        ),
                    );
                }
                if matches!(self.positions, Positions::Rope(_)) && !d_head.is_multiple_of(2) {
                    bad(
                        "positions",
                        format!("RoPE needs an even head dimension, d_model / n_heads = {d_head}"),
                    );
                }
            }
            AttentionConfig::Mla { rank, rope_dim, .. } => {
                if rank == 0 || rank > self.d_model {
                    bad(
                        "attention.rank",
                        format!(
                            "{rank} is out of range; accepted: 1..={} (at most d_model)",
                            self.d_model
                        ),
                    );
                }
                if !rope_dim.is_multiple_of(2) {
                    bad(
                        "attention.rope_dim",
                        format!("{rope_dim} is odd; accepted: an even number (0 = no RoPE)"),
                    );
                }
                if rope_dim > d_head {
                    bad(
                        "attention.rope_dim",
                        format!(
                            "{rope_dim} exceeds the head dimension {d_head}; accepted: 0..={d_head}, even"
                        ),
                    );
                }
                match (self.positions, rope_dim) {
                    (Positions::Learned, r) if r > 0 => bad(
                        "positions",
                        format!(
                            "Learned positions with MLA rope_dim = {r}: decoupled RoPE carries the \
                             positions; accepted: Rope(theta), or rope_dim: 0 with Learned"
                        ),
                    ),
                    (Positions::Rope(_), 0) => bad(
                        "positions",
                        "Rope positions with MLA rope_dim = 0: RoPE cannot rotate compressed keys, so the \
                         model would see no positions; accepted: Learned, or rope_dim > 0 with Rope(theta)"
                            .into(),
                    ),
                    _ => {}
                }
            }
        }
        errs
    }
}
