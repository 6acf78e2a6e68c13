//! Training glue: the optimizer and learning-rate schedule of an experiment's `train`
//! section, and the train/inference steps burn-train's learner calls.

pub mod checkpoint;
pub mod convert;
pub mod events;
pub mod folder;
pub mod loader;
pub mod memory;
pub mod optim;
pub mod options;
pub mod placement;
pub mod preflight;
pub mod renderer;
pub mod run;
pub mod step;
