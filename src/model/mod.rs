//! The GPT model zoo: one decoder whose attention is MHA/GQA/MQA, MLA or MLA+RoPE, GLA or GTA, and the KV
//! cache its attention layers write.

pub mod attention;
pub mod cache;
pub mod convert;
pub mod field;
pub mod gpt;
pub mod init;
#[cfg(feature = "flex")]
pub mod kernels;
pub mod rope;
pub mod slot;
pub mod validate;

pub use attention::{AttentionConfig, LatentLayout, MlaDecode};
pub use gpt::{Gpt, GptConfig, Positions};

#[cfg(test)]
mod golden;
#[cfg(test)]
pub(crate) mod tests;
