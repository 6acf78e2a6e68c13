//! A step-based data loader for burn-train's epoch-based learner.
//!
//! burn-train validates and checkpoints once per epoch. mla-lab wants both every N steps, so
//! one learner "epoch" is a chunk of `steps_per_epoch` optimizer steps, and this loader serves
//! one chunk per `iter()` call, continuing the stream of training windows where the last chunk
//! stopped. Window `k` of the run (step `k / batch`) always starts at the same offset (a
//! function of the seed and `k`), so a run resumed at epoch `e` reads exactly the windows the
//! uninterrupted run would have read: the data position is the step, and there is no RNG state
//! to save.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::DatasetError;
use burn::tensor::Device;

use crate::data::dataset::{TokenBatch, TokenBatcher, TokenWindows};

pub struct StepLoader {
    windows: TokenWindows,
    batch_size: usize,
    steps_per_epoch: usize,
    max_steps: usize,
    /// The epoch the next `iter()` serves (0-based).
    next_epoch: Arc<AtomicUsize>,
    /// Sub-range of each epoch's batches (for `slice`), in items.
    items: Option<(usize, usize)>,
    device: Device,
}

impl StepLoader {
    /// Serves epochs from `first_epoch` on (0 for a new run, the checkpoint's epoch when
    /// resuming).
    pub fn new(
        windows: TokenWindows,
        batch_size: usize,
        steps_per_epoch: usize,
        max_steps: usize,
        first_epoch: usize,
        device: Device,
    ) -> StepLoader {
        assert!(batch_size > 0 && steps_per_epoch > 0, "empty loader");
        StepLoader {
            windows,
            batch_size,
            steps_per_epoch,
            max_steps,
            next_epoch: Arc::new(AtomicUsize::new(first_epoch)),
            items: None,
            device,
        }
    }

    /// Optimizer steps in `epoch` (the last one may be short).
    pub fn steps_in(&self, epoch: usize) -> usize {
        self.max_steps
            .saturating_sub(epoch * self.steps_per_epoch)
            .min(self.steps_per_epoch)
    }

    /// Learner epochs needed for `max_steps`.
    pub fn epochs(&self) -> usize {
        self.max_steps.div_ceil(self.steps_per_epoch)
    }

    /// The batch of global step `step`.
    pub fn batch(&self, step: usize) -> TokenBatch {
        let first = step * self.batch_size;
        let items = (first..first + self.batch_size)
            .map(|k| self.windows.window(k))
            .collect();
        TokenBatcher.batch(items, &self.device)
    }
}

struct StepIter<'a> {
    loader: &'a StepLoader,
    first_step: usize,
    steps: usize,
    done: usize,
}

impl Iterator for StepIter<'_> {
    type Item = Result<TokenBatch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        (self.done < self.steps).then(|| {
            let batch = self.loader.batch(self.first_step + self.done);
            self.done += 1;
            Ok(batch)
        })
    }
}

impl DataLoaderIterator<TokenBatch> for StepIter<'_> {
    fn progress(&self) -> Progress {
        let b = self.loader.batch_size;
        Progress::new(self.done * b, self.steps * b, None)
    }
}

impl DataLoader<TokenBatch> for StepLoader {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<TokenBatch> + 'a> {
        let epoch = self.next_epoch.fetch_add(1, Ordering::SeqCst);
        let mut first_step = epoch * self.steps_per_epoch;
        let mut steps = self.steps_in(epoch);
        if let Some((start, end)) = self.items {
            let (s, e) = (
                start / self.batch_size,
                end.div_ceil(self.batch_size).min(steps),
            );
            first_step += s;
            steps = e.saturating_sub(s);
        }
        Box::new(StepIter {
            loader: self,
            first_step,
            steps,
            done: 0,
        })
    }

    fn num_items(&self) -> usize {
        match self.items {
            Some((s, e)) => e - s,
            None => self.steps_per_epoch * self.batch_size,
        }
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<TokenBatch>> {
        Arc::new(StepLoader {
            device: device.clone(),
            windows: self.windows.clone(),
            ..self.share()
        })
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<TokenBatch>> {
        Arc::new(StepLoader {
            items: Some((start, end)),
            windows: self.windows.clone(),
            ..self.share()
        })
    }
}

impl StepLoader {
    /// A copy sharing the epoch counter.
    fn share(&self) -> StepLoader {
        StepLoader {
            windows: self.windows.clone(),
            batch_size: self.batch_size,
            steps_per_epoch: self.steps_per_epoch,
            max_steps: self.max_steps,
            next_epoch: self.next_epoch.clone(),
            items: self.items,
            device: self.device.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::test_device;

    fn loader(first_epoch: usize) -> StepLoader {
        let tokens: Vec<u32> = (0..5000).collect();
        let windows = TokenWindows::train(Arc::new(tokens), 8, 7).unwrap();
        StepLoader::new(windows, 3, 4, 10, first_epoch, test_device())
    }

    fn firsts(it: Box<dyn DataLoaderIterator<TokenBatch> + '_>) -> Vec<i64> {
        it.flat_map(|b| {
            b.unwrap()
                .inputs
                .narrow(1, 0, 1)
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .unwrap()
        })
        .collect()
    }

    #[test]
    fn epochs_continue_the_stream_and_the_last_is_short() {
        let l = loader(0);
        assert_eq!(l.epochs(), 3);
        let e0 = firsts(l.iter());
        let e1 = firsts(l.iter());
        let e2 = firsts(l.iter());
        assert_eq!(
            (e0.len(), e1.len(), e2.len()),
            (12, 12, 6),
            "4 + 4 + 2 steps of batch 3"
        );
        assert_ne!(e0, e1, "the second epoch reads new windows");
        // A loader resumed at epoch 1 reads what the uninterrupted one read there.
        let resumed = loader(1);
        assert_eq!(firsts(resumed.iter()), e1);
        assert_eq!(firsts(resumed.iter()), e2);
    }

    #[test]
    fn batches_are_inputs_and_shifted_targets() {
        let l = loader(0);
        let b = l.batch(2);
        assert_eq!(b.inputs.dims(), [3, 8]);
        let i = b
            .inputs
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        let t = b
            .targets
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .unwrap();
        assert_eq!(&i[1..8], &t[0..7]);
    }
}
