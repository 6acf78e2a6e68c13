//! Where a decode step's time goes: each product of one attention layer's step, MHA and
//! absorbed MLA at paper scale (d_model 384, 6 heads of 64, r = 192, rotary 32), at one
//! batch and cache length, with the bytes it must read and the FLOPs it does.
//!
//!     cargo bench --bench decode_step -- 16 2048      # batch, cache length
//!     cargo bench --features tch --bench decode_step -- 16 2048 libtorch

use std::time::Instant;

use burn::tensor::{Distribution, Tensor};

const H: usize = 6;
const DH: usize = 64;
const R: usize = 192;
const DR: usize = 32;

fn time<const D: usize>(
    reps: usize,
    mut f: impl FnMut() -> Tensor<D>,
    device: &burn::tensor::Device,
) -> f64 {
    let _ = f();
    device.sync().unwrap();
    let t = Instant::now();
    for _ in 0..reps {
        let out = f();
        device.sync().unwrap();
        drop(out);
    }
    t.elapsed().as_secs_f64() / reps as f64
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (b, s) = (
        args.first().copied().unwrap_or(16),
        args.get(1).copied().unwrap_or(2048),
    );
    let choice = match std::env::args().nth(3).as_deref() {
        Some("libtorch") => mla_lab::backend::BackendChoice::Libtorch,
        _ => mla_lab::backend::BackendChoice::Cpu,
    };
    let selected = mla_lab::backend::find(choice).expect("a backend");
    let device = selected.device;
    println!("{}", selected.name);
    let rand = |shape: [usize; 3]| Tensor::<3>::random(shape, Distribution::Default, &device);
    let reps = 20;
    println!("batch {b}, cache {s}: one layer");
    println!("| product | ms | MB read | GB/s | GFLOP/s |");
    println!("|---|---:|---:|---:|---:|");
    let row = |name: &str, secs: f64, bytes: usize, flops: usize| {
        println!(
            "| {name} | {:.3} | {:.1} | {:.1} | {:.1} |",
            secs * 1e3,
            bytes as f64 / 1e6,
            bytes as f64 / secs / 1e9,
            flops as f64 / secs / 1e9
        );
    };
    // MHA: q [b*h, 1, dh] against K [b*h, s, dh].
    let q = rand([b * H, 1, DH]);
    let k = rand([b * H, s, DH]);
    let secs = time(
        reps,
        || q.clone().matmul(k.clone().swap_dims(1, 2)),
        &device,
    );
    row("MHA q·K^T", secs, b * H * s * DH * 4, 2 * b * H * s * DH);
    let w = rand([b * H, 1, s]);
    let secs = time(reps, || w.clone().matmul(k.clone()), &device);
    row("MHA w·V", secs, b * H * s * DH * 4, 2 * b * H * s * DH);
    // Absorbed MLA: q_lat [b, h, r] against the latent [b, s, r].
    let q_lat = rand([b, H, R]);
    let c = rand([b, s, R]);
    let flops = 2 * b * H * s * R;
    let bytes = b * s * R * 4;
    let secs = time(
        reps,
        || q_lat.clone().matmul(c.clone().swap_dims(1, 2)),
        &device,
    );
    row("MLA q_lat·c^T [b,h,r]@[b,r,s]", secs, bytes, flops);
    let secs = time(
        reps,
        || {
            c.clone()
                .matmul(q_lat.clone().swap_dims(1, 2))
                .swap_dims(1, 2)
        },
        &device,
    );
    row("MLA (c·q_lat^T)^T [b,s,r]@[b,r,h]", secs, bytes, flops);
    let w = rand([b, H, s]);
    let secs = time(reps, || w.clone().matmul(c.clone()), &device);
    row("MLA w·c [b,h,s]@[b,s,r]", secs, bytes, flops);
    let secs = time(
        reps,
        || {
            c.clone()
                .swap_dims(1, 2)
                .matmul(w.clone().swap_dims(1, 2))
                .swap_dims(1, 2)
        },
        &device,
    );
    row("MLA (c^T·w^T)^T [b,r,s]@[b,s,h]", secs, bytes, flops);
    // W^UK into the query: per (sequence, head) rows of one, or heads as the batch and the
    // sequences as rows.
    let q_c = rand([b, H, DH]).reshape([b, H, 1, DH]);
    let w_uk = Tensor::<4>::random([1, H, DH, R], Distribution::Default, &device);
    let secs = time(
        reps,
        || q_c.clone().matmul(w_uk.clone()).reshape([b, H, R]),
        &device,
    );
    let w_bytes = H * DH * R * 4;
    row(
        "MLA q_c·W^UK [b,h,1,dh]@[1,h,dh,r]",
        secs,
        w_bytes,
        2 * b * H * DH * R,
    );
    let w_uk3 = w_uk.clone().reshape([H, DH, R]);
    let secs = time(
        reps,
        || {
            q_c.clone()
                .reshape([b, H, DH])
                .swap_dims(0, 1)
                .matmul(w_uk3.clone())
                .swap_dims(0, 1)
        },
        &device,
    );
    row(
        "MLA q_c·W^UK [h,b,dh]@[h,dh,r]",
        secs,
        w_bytes,
        2 * b * H * DH * R,
    );
    // Scores against [c_k; k_r] in one product, the rotary key stored beside the latent.
    let q_cat = rand([b, H, R + DR]);
    let c_cat = rand([b, s, R + DR]);
    let secs = time(
        reps,
        || {
            c_cat
                .clone()
                .matmul(q_cat.clone().swap_dims(1, 2))
                .swap_dims(1, 2)
        },
        &device,
    );
    row(
        "MLA (c_kr·q^T)^T [b,s,r+dr]@[b,r+dr,h]",
        secs,
        b * s * (R + DR) * 4,
        2 * b * H * s * (R + DR),
    );
    let q_r = rand([b, H, DR]);
    let k_r = rand([b, s, DR]);
    let secs = time(
        reps,
        || q_r.clone().matmul(k_r.clone().swap_dims(1, 2)),
        &device,
    );
    row("MLA q_r·k_r^T", secs, b * s * DR * 4, 2 * b * H * s * DR);
    // The one-pass kernel on flex (scores, softmax and weighted sum over separate latents),
    // against the products above: q_lat·c^T, the rotary scores, softmax and w·c.
    #[cfg(feature = "flex")]
    {
        use mla_lab::model::attention::latent_decode;
        // One latent (a K/V pair) for all H heads: [b, 1, ·, ·].
        let one = |t: &Tensor<3>| t.clone().unsqueeze_dim::<4>(1);
        let (q_lat, q_r, c) = (one(&q_lat), one(&q_r), one(&c));
        let c_v = one(&rand([b, s, R]));
        let one_pass = || latent_decode::attend(&q_lat, Some(&q_r), &c, &c_v, Some(&k_r));
        if one_pass().is_some() {
            let secs = time(reps, || one_pass().expect("a flex tensor"), &device);
            row(
                "MLA one pass (latent_decode, c_k and c_v)",
                secs,
                b * s * (2 * R + DR) * 4,
                2 * b * H * s * (2 * R + DR),
            );
        }
    }
    let scores = rand([b, H, s]);
    let secs = time(
        reps,
        || burn::tensor::activation::softmax(scores.clone(), 2),
        &device,
    );
    row("softmax [b,h,s]", secs, b * H * s * 4, 0);
}
