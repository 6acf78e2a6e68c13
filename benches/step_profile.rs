//! Where one training step's time goes, part by part: each part of the step (LayerNorm, the
//! attention's projections, its core, GELU, the MLP's products, the residual adds, the head with
//! its loss, AdamW) run forward and backward alone at the experiment's shapes, as often as the
//! model runs it per step, beside the whole step (forward, backward, clipping, AdamW).
//!
//!     cargo bench --bench step_profile                     # tiny mha_rope and mla_rope_half
//!     cargo bench --bench step_profile -- experiments/small/mha.ron
//!
//! Environment: `BACKEND` (default `cpu`, flex), `SECONDS` each part is repeated for (default 2),
//! `FUSED=0` for burn's composed operations where a fused kernel exists (`model::kernels`).
//!
//! A part's gradient is drawn from `Σ out ⊙ g` with a fixed `g`; the same probe on a leaf of the
//! output's shape is timed too and taken off, so a row is the part's own forward and backward.
//! *cores busy* is the process's CPU time (user + system, `/proc/self/stat`) over the wall time
//! of the part's rounds. The parts' sum falls short of the whole step by what they leave out
//! (the embedding, reshapes between parts, the graph's own bookkeeping).

mod common;

use std::time::{Duration, Instant};

use burn::nn::{LayerNormConfig, Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use mla_lab::experiment::Experiment;
use mla_lab::model::attention::common::causal_attention;
use mla_lab::model::gpt::{chunked_cross_entropy, head_chunk_rows, layer_norm, mlp_gelu};
use mla_lab::train::optim;

/// CPU seconds (user + system) this process has used so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the name and state.
    (ticks(11) + ticks(12)) / 100.0
}

/// Seconds per call and cores busy of `f`, repeated for about `budget` after one warm-up call.
fn time(budget: Duration, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let mut n = 0usize;
    while n < 3 || t0.elapsed() < budget {
        f();
        n += 1;
    }
    let wall = t0.elapsed().as_secs_f64();
    (wall / n as f64, (cpu_seconds() - c0) / wall)
}

/// Forward and backward of `part` on a fresh tracked input of `shape`, the gradient drawn from
/// `Σ out ⊙ g`.
fn fwd_bwd<const D: usize, const E: usize>(
    shape: [usize; D],
    device: &Device,
    part: impl Fn(Tensor<D>) -> Tensor<E>,
) -> impl FnMut() {
    let x = Tensor::<D>::random(shape, Distribution::Normal(0.0, 1.0), device);
    let g = Tensor::<E>::random(
        part(x.clone()).dims(),
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let device = device.clone();
    move || {
        let out = part(x.clone().require_grad());
        let grads = (out * g.clone()).sum().backward();
        drop(grads);
        device.sync().unwrap();
    }
}

struct Row {
    part: &'static str,
    calls: usize,
    seconds: f64,
    cores: f64,
}

fn profile(file: &str, budget: Duration, device: &Device) -> (Vec<Row>, f64, f64) {
    let exp = Experiment::load(file).unwrap_or_else(|e| panic!("{e}"));
    let m = &exp.model;
    let (b, t, d, l) = (exp.train.batch_size, m.context, m.d_model, m.n_layers);
    let (h, dh) = (m.n_heads, m.d_head());
    let hidden = m.mlp_ratio * d;
    device.seed(exp.seed);
    let mut rows = Vec::new();
    let mut add = |part, calls, (seconds, cores): (f64, f64)| {
        rows.push(Row {
            part,
            calls,
            seconds,
            cores,
        })
    };

    // The probe alone, per output shape, to take off each part.
    let probe = |shape: [usize; 3]| time(budget, fwd_bwd(shape, device, |x: Tensor<3>| x));
    let probe_d = probe([b, t, d]).0;
    let less = |(s, c): (f64, f64), p: f64| ((s - p).max(0.0), c);

    let ln = LayerNormConfig::new(d).init(device);
    add(
        "layer norm",
        2 * l + 1,
        less(
            time(budget, fwd_bwd([b, t, d], device, |x| layer_norm(&ln, x))),
            probe_d,
        ),
    );

    let attn = m.attention.init(m.attention_dims(), device);
    add(
        "attention layer (all of it)",
        l,
        less(
            time(
                budget,
                fwd_bwd([b, t, d], device, |x| attn.forward(x, None, 0)),
            ),
            probe_d,
        ),
    );
    // The attention's core at MHA's shapes: scores, mask, softmax, weighted sum.
    let core = move |x: Tensor<4>| {
        let [q, k, v] = [0, 1, 2].map(|i| x.clone().narrow(3, i * dh, dh));
        causal_attention(q, k, v, 0)
    };
    let (core_probe, _) = time(budget, fwd_bwd([b, h, t, dh], device, |x: Tensor<4>| x));
    add(
        "attention core (MHA shapes)",
        l,
        less(
            time(budget, fwd_bwd([b, h, t, 3 * dh], device, core)),
            core_probe,
        ),
    );

    let linear = |i, o| -> Linear { LinearConfig::new(i, o).with_bias(false).init(device) };
    let (fc, proj) = (linear(d, hidden), linear(hidden, d));
    add(
        "MLP products (fc, proj)",
        l,
        less(
            time(
                budget,
                fwd_bwd([b, t, d], device, |x| proj.forward(fc.forward(x))),
            ),
            probe_d,
        ),
    );
    let probe_hidden = probe([b, t, hidden]).0;
    add(
        "GELU",
        l,
        less(
            time(budget, fwd_bwd([b, t, hidden], device, mlp_gelu::<3>)),
            probe_hidden,
        ),
    );
    let other = Tensor::<3>::random([b, t, d], Distribution::Normal(0.0, 1.0), device);
    add(
        "residual add",
        2 * l,
        less(
            time(budget, fwd_bwd([b, t, d], device, |x| x + other.clone())),
            probe_d,
        ),
    );

    // The head with its loss, as training computes it.
    let w = Tensor::<2>::random([m.vocab_size, d], Distribution::Normal(0.0, 0.02), device)
        .require_grad();
    let targets: Vec<i64> = (0..b * t)
        .map(|i| ((i * 7919) % m.vocab_size) as i64)
        .collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [b * t]), device);
    let chunk = head_chunk_rows(m.vocab_size);
    let x = Tensor::<2>::random([b * t, d], Distribution::Normal(0.0, 1.0), device);
    add(
        "head and cross-entropy",
        1,
        time(budget, || {
            let loss =
                chunked_cross_entropy(x.clone().require_grad(), w.clone(), targets.clone(), chunk);
            drop(loss.backward());
            device.sync().unwrap();
        }),
    );

    // AdamW with clipping over the whole model, and the whole step.
    let model = m.init(device);
    let ids: Vec<i64> = (0..b * (t + 1))
        .map(|i| ((i * 7919) % m.vocab_size) as i64)
        .collect();
    let all = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, t + 1]), device);
    let (inputs, targets) = (all.clone().narrow(1, 0, t), all.narrow(1, 1, t));
    let mut opt = optim::optimizer(&exp.train);
    let mut model = Some(model);
    // AdamW's own time: each round's gradients are made outside the clock (an optimizer step
    // consumes them).
    let (mut adamw, mut adamw_cpu, mut rounds) = (0.0, 0.0, 0);
    while rounds < 3 || adamw < budget.as_secs_f64() / 4.0 {
        let m = model.take().unwrap();
        let grads =
            GradientsParams::from_grads(m.loss(inputs.clone(), targets.clone()).backward(), &m);
        let (t0, c0) = (Instant::now(), cpu_seconds());
        model = Some(opt.step(1e-4, m, grads));
        device.sync().unwrap();
        (adamw, adamw_cpu) = (
            adamw + t0.elapsed().as_secs_f64(),
            adamw_cpu + cpu_seconds() - c0,
        );
        rounds += 1;
    }
    add(
        "AdamW and clipping",
        1,
        (adamw / rounds as f64, adamw_cpu / adamw),
    );
    let (step, step_cores) = time(budget, || {
        let m = model.take().unwrap();
        let grads =
            GradientsParams::from_grads(m.loss(inputs.clone(), targets.clone()).backward(), &m);
        model = Some(opt.step(1e-4, m, grads));
        device.sync().unwrap();
    });
    (rows, step, step_cores)
}

fn main() {
    let files = common::files(&[
        "experiments/tiny/mha_rope.ron",
        "experiments/tiny/mla_rope_half.ron",
    ]);
    let budget = Duration::from_secs_f64(
        std::env::var("SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2.0),
    );
    let (name, device) = common::training_device();
    let fused = std::env::var("FUSED").map_or(true, |v| v != "0");
    mla_lab::model::kernels::set_fused(fused);
    let kernels = if fused {
        "fused kernels"
    } else {
        "composed operations"
    };
    for file in files {
        let (rows, step, step_cores) = profile(&file, budget, &device);
        println!(
            "\n{file} on {name}, {kernels}: whole step {:.1} ms, {step_cores:.2} cores busy\n",
            step * 1e3
        );
        println!(
            "| part | calls per step | ms per call | ms per step | share of the step | cores busy |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        let mut sum = 0.0;
        for r in &rows {
            let per_step = r.seconds * r.calls as f64;
            sum += per_step;
            println!(
                "| {} | {} | {:.2} | {:.1} | {:.0}% | {:.2} |",
                r.part,
                r.calls,
                r.seconds * 1e3,
                per_step * 1e3,
                100.0 * per_step / step,
                r.cores
            );
        }
        println!(
            "| parts' sum (the attention core is inside the attention layer) | | | {:.1} | {:.0}% | |",
            (sum - rows[2].seconds * rows[2].calls as f64) * 1e3,
            100.0 * (sum - rows[2].seconds * rows[2].calls as f64) / step
        );
    }
}
