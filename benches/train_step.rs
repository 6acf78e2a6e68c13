//! Forward and forward+backward throughput of experiment models: the raw training step that a
//! real `mla-lab train` run is compared with (benches/speed.py), and the measurement behind
//! the choice of `flex` as the default CPU backend.
//!
//!     cargo bench --bench train_step                                   # flex (default)
//!     cargo bench --bench train_step --no-default-features --features ndarray
//!     BACKEND=libtorch cargo bench --bench train_step --features tch
//!
//! Arguments (after `--`): experiment files (default: experiments/small/{mha,mla_rope_half}.ron).
//! Environment: `BATCH` (default 16), `STEPS` timed steps (default 5), `BACKEND` (`cpu`,
//! the default, or any `--backend` value: `libtorch`, `cuda`, `wgpu`, `auto`).

mod common;

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Int, Tensor, TensorData};
use mla_lab::experiment::Experiment;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let files = common::files(&[
        "experiments/small/mha.ron",
        "experiments/small/mla_rope_half.ron",
    ]);
    let (batch, steps) = (env("BATCH", 16), env("STEPS", 5));
    let (name, device) = common::training_device();
    println!("backend: {name}, batch {batch}, {steps} timed steps after 1 warm-up");
    println!("| experiment | seq | forward tok/s | forward+backward tok/s |");
    println!("|---|---:|---:|---:|");
    for file in files {
        let exp = Experiment::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let m = &exp.model;
        let seq = m.context;
        device.seed(exp.seed);
        let model = m.init(&device);
        let ids: Vec<i64> = (0..batch * (seq + 1))
            .map(|i| ((i * 7919) % m.vocab_size) as i64)
            .collect();
        let all = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, seq + 1]), &device);
        let inputs = all.clone().narrow(1, 0, seq);
        let targets = all.narrow(1, 1, seq).reshape([batch * seq]);
        let loss_fn = CrossEntropyLossConfig::new().init(&device);
        let step = |backward: bool| {
            let logits = model
                .forward(inputs.clone())
                .reshape([batch * seq, m.vocab_size]);
            let loss = loss_fn.forward(logits, targets.clone());
            if backward {
                let grads = loss.backward();
                drop(grads);
            } else {
                let _ = loss.into_scalar::<f32>();
            }
            device.sync().unwrap();
        };
        let rate = |backward: bool| {
            step(backward);
            let t = Instant::now();
            for _ in 0..steps {
                step(backward);
            }
            (batch * seq * steps) as f64 / t.elapsed().as_secs_f64()
        };
        let fwd = rate(false);
        let both = rate(true);
        println!("| {} | {seq} | {fwd:.0} | {both:.0} |", exp.name);
    }
}
