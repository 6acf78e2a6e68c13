//! burn `Dataset`s of token windows and the `Batcher` that stacks them.
//!
//! A window is `context + 1` consecutive tokens: the model reads the first `context` and
//! predicts the last `context`. Training windows start at offsets drawn from the seed
//! (window `i` always starts at the same place, so a resumed run sees the same data);
//! validation windows tile the validation split, fixed.

use std::sync::Arc;

use anyhow::{Result, bail};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::rng::Rng;

/// `context + 1` token ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Window(pub Vec<u32>);

/// Where window `i` of a split starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Offsets {
    /// Random offsets from this seed.
    Random(u64),
    /// `i * context`.
    Tiled,
}

#[derive(Debug, Clone)]
pub struct TokenWindows {
    tokens: Arc<Vec<u32>>,
    context: usize,
    offsets: Offsets,
    len: usize,
}

impl TokenWindows {
    /// Random training windows; `len` of them (one pass over the split by default).
    pub fn train(tokens: Arc<Vec<u32>>, context: usize, seed: u64) -> Result<TokenWindows> {
        Self::check(&tokens, context, "training")?;
        let len = tokens.len() / context;
        Ok(TokenWindows {
            tokens,
            context,
            offsets: Offsets::Random(seed),
            len,
        })
    }

    /// Fixed validation windows tiling the split.
    pub fn validation(tokens: Arc<Vec<u32>>, context: usize) -> Result<TokenWindows> {
        Self::check(&tokens, context, "validation")?;
        let len = (tokens.len() - 1) / context;
        Ok(TokenWindows {
            tokens,
            context,
            offsets: Offsets::Tiled,
            len,
        })
    }

    fn check(tokens: &[u32], context: usize, what: &str) -> Result<()> {
        if tokens.len() < context + 1 {
            bail!(
                "the {what} split has {} tokens, fewer than one window of context + 1 = {}; \
                 use more stories or a shorter context",
                tokens.len(),
                context + 1
            );
        }
        Ok(())
    }

    pub fn offset(&self, index: usize) -> usize {
        match self.offsets {
            Offsets::Random(seed) => {
                Rng::for_item(seed, index as u64).below(self.tokens.len() - self.context)
            }
            Offsets::Tiled => index * self.context,
        }
    }
}

impl TokenWindows {
    /// Window `index` without the bound of one pass: training streams go on past `len()`
    /// (each index has its own seeded offset); validation windows wrap around.
    pub fn window(&self, index: usize) -> Window {
        let index = match self.offsets {
            Offsets::Random(_) => index,
            Offsets::Tiled => index % self.len,
        };
        let start = self.offset(index);
        Window(self.tokens[start..start + self.context + 1].to_vec())
    }
}

impl Dataset<Window> for TokenWindows {
    fn get(&self, index: usize) -> Result<Window, DatasetError> {
        if index >= self.len {
            return Err(DatasetError::new(std::io::Error::other(format!(
                "window {index} of {}",
                self.len
            ))));
        }
        let start = self.offset(index);
        Ok(Window(
            self.tokens[start..start + self.context + 1].to_vec(),
        ))
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// Inputs and next-token targets.
#[derive(Debug, Clone)]
pub struct TokenBatch {
    /// `[batch, context]`
    pub inputs: Tensor<2, Int>,
    /// `[batch, context]`
    pub targets: Tensor<2, Int>,
}

#[derive(Debug, Clone, Default)]
pub struct TokenBatcher;

impl Batcher<Window, TokenBatch> for TokenBatcher {
    fn batch(&self, items: Vec<Window>, device: &Device) -> TokenBatch {
        let batch = items.len();
        let width = items.first().map_or(1, |w| w.0.len());
        let ids: Vec<i64> = items
            .iter()
            .flat_map(|w| {
                assert_eq!(
                    w.0.len(),
                    width,
                    "windows of different lengths in one batch"
                );
                w.0.iter().map(|&t| t as i64)
            })
            .collect();
        let all = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, width]), device); // [batch, context + 1]
        TokenBatch {
            inputs: all.clone().narrow(1, 0, width - 1),
            targets: all.narrow(1, 1, width - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::test_device;

    fn tokens(n: u32) -> Arc<Vec<u32>> {
        Arc::new((0..n).collect())
    }

    #[test]
    fn validation_windows_tile_the_split() {
        let ds = TokenWindows::validation(tokens(100), 8).unwrap();
        assert_eq!(ds.len(), 12);
        assert_eq!(ds.get(0).unwrap().0, (0..9).collect::<Vec<_>>());
        assert_eq!(ds.get(11).unwrap().0, (88..97).collect::<Vec<_>>());
        assert!(ds.get(12).is_err());
    }

    #[test]
    fn training_windows_are_seeded_and_in_range() {
        let a = TokenWindows::train(tokens(1000), 16, 5).unwrap();
        let b = TokenWindows::train(tokens(1000), 16, 5).unwrap();
        let c = TokenWindows::train(tokens(1000), 16, 6).unwrap();
        assert_eq!(a.len(), 62);
        let offs = |d: &TokenWindows| (0..d.len()).map(|i| d.offset(i)).collect::<Vec<_>>();
        assert_eq!(offs(&a), offs(&b));
        assert_ne!(offs(&a), offs(&c));
        assert!(offs(&a).iter().all(|&o| o + 17 <= 1000));
        let distinct: std::collections::HashSet<_> = offs(&a).into_iter().collect();
        assert!(
            distinct.len() > 50,
            "offsets should spread: {}",
            distinct.len()
        );
        for i in 0..a.len() {
            let w = a.get(i).unwrap().0;
            assert_eq!(w.len(), 17);
            assert!(w.windows(2).all(|p| p[1] == p[0] + 1));
        }
    }

    #[test]
    fn too_few_tokens_is_an_error() {
        let err = TokenWindows::validation(tokens(8), 8)
            .unwrap_err()
            .to_string();
        assert!(err.contains("validation split has 8 tokens"), "{err}");
    }

    #[test]
    fn batcher_shifts_targets_by_one() {
        let ds = TokenWindows::validation(tokens(50), 4).unwrap();
        let items = vec![ds.get(0).unwrap(), ds.get(2).unwrap()];
        let b = TokenBatcher.batch(items, &test_device());
        assert_eq!(b.inputs.dims(), [2, 4]);
        let inputs = b
            .inputs
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        let targets = b
            .targets
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        assert_eq!(inputs, vec![0, 1, 2, 3, 8, 9, 10, 11]);
        assert_eq!(targets, vec![1, 2, 3, 4, 9, 10, 11, 12]);
    }
}
