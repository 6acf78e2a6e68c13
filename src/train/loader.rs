//! A step-based data loader for burn-train's epoch-based learner.
//!
//! burn-train validates and checkpoints once per epoch. mla-lab wants both every N steps, so
//! one learner "epoch" is a chunk of `steps_per_epoch` optimizer steps, and this loader serves
//! one chunk per `iter()` call, continuing the stream of training windows where the last chunk
//! stopped. Window `k` of the run (step `k / batch`) always starts at the same offset (a
//! function of the seed and `k`), so a run resumed at epoch `e` reads exactly the windows the
//! uninterrupted run would have read: the data position is the step, and there is no RNG state
//! to save.
//!
//! On several devices burn-train slices the loader, one slice per device, and each device
//! draws one batch per optimizer step. A slice here serves its rows of every step's batch
//! (device `i` of `n`: rows `i·B/n ..`), so the devices together read exactly the batches one
//! device would, and the optimizer steps and the schedule stay those of the experiment.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::DatasetError;
use burn::tensor::Device;

use crate::data::dataset::{TokenBatch, TokenBatcher, TokenWindows};

/// One device's part of a training step's batch.
pub struct Shard {
    pub batch: TokenBatch,
    /// Its rows' share of the step's batch (1 on one device): burn-train sums the devices'
    /// gradients, so each device's loss is weighted by its share to give the gradient of the
    /// whole batch's mean loss.
    pub share: f64,
    /// Rows per forward and backward pass (`train.micro_batch`): the step sums the gradients
    /// of its passes. A divisor of the shard's rows; all of them for one pass.
    pub micro_batch: usize,
}

pub struct StepLoader {
    windows: TokenWindows,
    batch_size: usize,
    steps_per_epoch: usize,
    max_steps: usize,
    /// The epoch the next `iter()` serves (0-based).
    next_epoch: Arc<AtomicUsize>,
    /// The rows of each step's batch this loader serves (all of them but on a slice).
    rows: Range<usize>,
    /// Rows per pass; `None`: a shard's rows in one pass.
    micro_batch: Option<usize>,
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
            rows: 0..batch_size,
            micro_batch: None,
            device,
        }
    }

    /// Shards that are trained `rows` rows per pass ([`Shard::micro_batch`]).
    pub fn with_micro_batch(self, rows: usize) -> StepLoader {
        StepLoader {
            micro_batch: Some(rows),
            ..self
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

    /// This loader's rows of the batch of global step `step`.
    pub fn batch(&self, step: usize) -> Shard {
        let first = step * self.batch_size;
        let items = self
            .rows
            .clone()
            .map(|r| self.windows.window(first + r))
            .collect();
        Shard {
            batch: TokenBatcher.batch(items, &self.device),
            share: self.rows.len() as f64 / self.batch_size as f64,
            micro_batch: self.micro_batch.unwrap_or(self.rows.len()),
        }
    }
}

struct StepIter<'a> {
    loader: &'a StepLoader,
    first_step: usize,
    steps: usize,
    done: usize,
}

impl Iterator for StepIter<'_> {
    type Item = Result<Shard, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        (self.done < self.steps).then(|| {
            let batch = self.loader.batch(self.first_step + self.done);
            self.done += 1;
            Ok(batch)
        })
    }
}

impl DataLoaderIterator<Shard> for StepIter<'_> {
    /// In windows: burn-train adds up the slices' progress, which then counts whole batches.
    fn progress(&self) -> Progress {
        let rows = self.loader.rows.len();
        Progress::new(self.done * rows, self.steps * rows, None)
    }
}

impl DataLoader<Shard> for StepLoader {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<Shard> + 'a> {
        let epoch = self.next_epoch.fetch_add(1, Ordering::SeqCst);
        Box::new(StepIter {
            loader: self,
            first_step: epoch * self.steps_per_epoch,
            steps: self.steps_in(epoch),
            done: 0,
        })
    }

    fn num_items(&self) -> usize {
        self.steps_per_epoch * self.rows.len()
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<Shard>> {
        Arc::new(StepLoader {
            device: device.clone(),
            next_epoch: self.next_epoch.clone(),
            ..self.copy()
        })
    }

    /// `start..end` of `num_items()`, as burn-train splits a loader across devices (`n` equal
    /// parts): the same part of the rows of every step's batch. A slice counts its own epochs,
    /// from the epoch this loader would serve next.
    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<Shard>> {
        let (num, first) = (self.num_items(), self.rows.start);
        let row = |item: usize| first + item * self.rows.len() / num;
        let epoch = self.next_epoch.load(Ordering::SeqCst);
        Arc::new(StepLoader {
            rows: row(start)..row(end),
            next_epoch: Arc::new(AtomicUsize::new(epoch)),
            ..self.copy()
        })
    }
}

impl StepLoader {
    fn copy(&self) -> StepLoader {
        StepLoader {
            windows: self.windows.clone(),
            batch_size: self.batch_size,
            steps_per_epoch: self.steps_per_epoch,
            max_steps: self.max_steps,
            next_epoch: self.next_epoch.clone(),
            rows: self.rows.clone(),
            micro_batch: self.micro_batch,
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

    fn firsts(it: Box<dyn DataLoaderIterator<Shard> + '_>) -> Vec<i64> {
        it.flat_map(|b| {
            b.unwrap()
                .batch
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
        let b = l.batch(2).batch;
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

    #[test]
    fn slices_serve_their_rows_of_every_step_and_count_their_own_epochs() {
        // Batch 4 over two devices, cut the way burn-train's split_dataloader cuts it.
        let tokens: Vec<u32> = (0..5000).collect();
        let windows = TokenWindows::train(Arc::new(tokens), 8, 7).unwrap();
        let whole = StepLoader::new(windows, 4, 4, 10, 1, test_device());
        let parts = burn::data::dataloader::split::split_dataloader(
            Arc::new(whole.copy()) as Arc<dyn DataLoader<Shard>>,
            &[test_device(), test_device()],
        );
        let one = firsts(whole.iter()); // epoch 1: steps 4..8, 4 rows each
        let halves: Vec<Vec<i64>> = parts.iter().map(|p| firsts(p.iter())).collect();
        assert_eq!(halves[0].len(), 8);
        let mut joined = vec![];
        for step in 0..4 {
            joined.extend_from_slice(&halves[0][step * 2..step * 2 + 2]);
            joined.extend_from_slice(&halves[1][step * 2..step * 2 + 2]);
        }
        assert_eq!(
            joined, one,
            "rows 0..2 on the first device, 2..4 on the second"
        );
        // Each slice goes on to its own next epoch (2, the last: 2 steps), not the other's.
        let next: Vec<Vec<i64>> = parts.iter().map(|p| firsts(p.iter())).collect();
        assert_eq!((next[0].len(), next[1].len()), (4, 4));
        assert_eq!(&next[0][..2], &firsts(whole.iter())[..2]);
        // Each device's loss is weighted by its share of the batch.
        let half = whole.slice(0, 8);
        assert_eq!(half.num_items(), 8);
        assert_eq!(whole.batch(8).share, 1.0);
        let fresh = StepLoader::new(whole.windows.clone(), 4, 4, 10, 0, test_device());
        let shard = fresh.slice(8, 16).iter().next().unwrap().unwrap();
        assert_eq!((shard.share, shard.batch.inputs.dims()), (0.5, [2, 8]));
    }
}
