//! Where a run trains: the backend's devices, the rows of the batch each takes, and the rows of
//! one forward and backward pass, refused before anything trains when the batch does not split
//! evenly or a pass cannot fit the machine's memory or the device's largest allocation.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;

use super::events::TrainEvent;
use super::memory;
use super::options::{Strategy, TrainOptions};
use crate::backend::{self, Selected};
use crate::experiment::{Experiment, divisors, divisors_below};
use crate::options::InvalidOption;

/// Where a run trains: the backend's devices, the rows of the batch each takes, and the rows
/// of one forward and backward pass.
pub(super) struct Placement {
    pub(super) selected: Selected,
    pub(super) devices: Vec<Device>,
    /// Rows of the batch each device takes.
    pub(super) share: usize,
    /// Rows per forward and backward pass on one device.
    pub(super) micro: usize,
    pub(super) spread: Strategy,
}

/// Chooses the devices and the passes of `exp`: refuses a batch that does not split evenly
/// over them, a micro-batch that does not divide a device's share, and a pass the machine's
/// memory or the device's largest allocation cannot hold.
pub(super) fn place(exp: &Experiment, exp_path: &Path, opts: &TrainOptions) -> Result<Placement> {
    let selected = backend::select(opts.backend)?;
    let devices = match &opts.devices {
        Some(spec) => selected.devices(spec)?,
        None => vec![selected.device.clone()],
    };
    let n = devices.len();
    let file = || exp_path.display().to_string();
    if let (false, Some(spec)) = (exp.train.batch_size.is_multiple_of(n), &opts.devices) {
        let accepted = format!(
            "{} (train.batch_size {} does not split evenly over {n} devices: each device takes \
             an equal share of the batch)",
            divisors(exp.train.batch_size),
            exp.train.batch_size,
        );
        return Err(InvalidOption::new("devices", spec, accepted)).with_context(file);
    }
    let share = exp.train.batch_size / n;
    let micro = opts.micro_batch.or(exp.train.micro_batch).unwrap_or(share);
    if micro == 0 || !share.is_multiple_of(micro) {
        let rows = format!(
            "the {share} rows each of {n} device(s) takes of train.batch_size {}",
            exp.train.batch_size
        );
        if let Some(m) = opts.micro_batch {
            let accepted = format!("{} (divisors of {rows})", divisors(share));
            return Err(InvalidOption::new("micro_batch", m, accepted)).with_context(file);
        }
        bail!(
            "{}: train.micro_batch {micro} does not divide {rows}; accepted: {}",
            file(),
            divisors(share)
        );
    }
    // A card's memory cannot be asked for here; the machine's can.
    if selected.in_host_memory()
        && let Some(available) = backend::available_memory()
    {
        memory::check_pass(exp, micro, available, "this machine")
            .with_context(|| exp_path.display().to_string())?;
    }
    if let Some(cap) = selected.max_allocation {
        memory::check_allocation(exp, micro, cap, &selected.name)
            .with_context(|| exp_path.display().to_string())?;
    }
    Ok(Placement {
        selected,
        spread: Strategy::for_devices(n),
        devices,
        share,
        micro,
    })
}

impl Placement {
    /// How several devices share the batch, and how micro-batches make up a step: nothing
    /// for one device taking its rows in one pass.
    pub(super) fn events(&self, exp: &Experiment) -> Vec<TrainEvent> {
        let (n, batch) = (self.devices.len(), exp.train.batch_size);
        let mut events = vec![];
        if n > 1 {
            events.push(TrainEvent::Shared {
                run: exp.name.clone(),
                devices: n,
                backend: self.selected.name.clone(),
                replicas_on_cpu: self.selected.in_host_memory(),
                strategy: self.spread.name(),
                rows_each: self.share,
                batch,
            });
        }
        if self.micro < self.share {
            events.push(TrainEvent::MicroBatches {
                run: exp.name.clone(),
                rows: self.micro,
                passes: self.share / self.micro,
                batch,
            });
        }
        events
    }
}

/// What to lower when a pass does not fit, for the messages of a failed pass.
pub(super) fn remedy(place: &Placement) -> String {
    lower_micro_batch(place.micro, place.share)
}

/// What to lower when a pass of `micro` rows (of a device's `share`) does not fit.
fn lower_micro_batch(micro: usize, share: usize) -> String {
    match divisors_below(share, micro).next() {
        Some(m) => format!(
            "lower the rows per pass: train.micro_batch {m} (the same run; accepted: {})",
            divisors(share)
        ),
        None => "one row per pass does not fit: lower model.context, or use a smaller model".into(),
    }
}
