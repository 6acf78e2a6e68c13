//! Raw f32 matmul throughput of the CPU backend at the experiments' shapes (batch·seq = 4096
//! rows): the small tier's forward products (d_model 256), then the tiny tier's (d_model 128)
//! forward and the weight-gradient products of its backward (k = 4096): the ceiling on training
//! speed that is burn's, not ours.
//!
//!     cargo bench --bench matmul
//!     python3 benches/pytorch/matmul.py        # the same shapes in PyTorch

use std::time::Instant;

use burn::tensor::{Distribution, Tensor};

fn main() {
    let device = mla_lab::backend::cpu_device().expect("a CPU backend");
    println!("| m×k×n | ms | GFLOP/s |");
    println!("|---|---:|---:|");
    for (m, k, n) in [
        (4096usize, 256usize, 1024usize),
        (4096, 1024, 256),
        (4096, 256, 2048),
        (4096, 128, 512),
        (4096, 512, 128),
        (4096, 128, 2048),
        (128, 4096, 512),
        (512, 4096, 128),
    ] {
        let a = Tensor::<2>::random([m, k], Distribution::Default, &device);
        let b = Tensor::<2>::random([k, n], Distribution::Default, &device);
        let _ = a.clone().matmul(b.clone());
        device.sync().unwrap();
        let reps = 10;
        let t = Instant::now();
        for _ in 0..reps {
            let c = a.clone().matmul(b.clone());
            device.sync().unwrap();
            drop(c);
        }
        let s = t.elapsed().as_secs_f64() / reps as f64;
        let flops = 2.0 * (m * k * n) as f64;
        println!("| {m}×{k}×{n} | {:.2} | {:.1} |", s * 1e3, flops / s / 1e9);
    }
}
