//! MHA to MLA without training from scratch: a trained MHA model's key and value projections
//! factored into MLA's down- and up-projections by a truncated SVD, as MHA2MLA (Ji et al.,
//! arXiv 2502.14837, §3.2) does for its no-RoPE part. Every other weight is kept. With `W_K`,
//! `W_V` the MHA layer's `d × h·d_h` projections (applied as `h W`), and `U Σ Vᵀ` an SVD whose
//! singular values fall, `·_r` its first `r`:
//!
//! ```text
//! joint:     [W_K | W_V] = U Σ Vᵀ       W^DKV = U_r Σ_r      [W^UK | W^UV] = V_rᵀ
//! separate:  W_K = U_K Σ_K V_Kᵀ         W^DK = U_K,r Σ_K,r   W^UK = V_K,rᵀ   (and V alike)
//! then       k = (h W^DKV) W^UK = h U_r Σ_r V_rᵀ[.., :h·d_h]  ≈ h W_K
//! energy kept = Σ_{i≤r} σ_i² / Σ_i σ_i²    (the share of ‖[W_K | W_V]‖²_F the factors keep)
//! ```
//!
//! At `r` equal to the rank of the factored matrix (at most `d`) the product is `W_K` again, and
//! the converted model computes what the MHA model did, up to float rounding, provided its
//! latents are not normalised: DeepSeek's RMSNorm on the latent rescales each token's latent,
//! and no linear map undoes that, so the target is MLA with `latent_norm: false`. Below full
//! rank, Eckart–Young makes the truncation the best rank-`r` approximation of the factored
//! matrix, and `1 − energy` is its squared error's share.
//!
//! A rotary source (MHA+RoPE) first has its rotary part moved into MLA's one shared rotary key
//! ([`rotary`], TransMLA's rotation, arXiv 2502.07864); what is left of its keys, unrotated,
//! is then factored as `W_K` is above. That step is exact only where each rotated pair's keys
//! point one way across heads, so a rotary conversion is an approximation at any rank, which
//! fine-tuning is for.

mod rotary;

use burn::linalg::svd;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{ModuleSnapshot, bridge};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::attention::{AttentionConfig, LatentLayout, MlaConfig};
use super::gpt::{Gpt, GptConfig, Positions};

/// QR sweeps the SVD may take per singular value before it gives up.
const SVD_SWEEPS: usize = 200;

/// What a conversion did, as a converted run records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversion {
    /// How the weights were factored, e.g. `svd joint`.
    pub method: String,
    /// The latent's width.
    pub rank: usize,
    /// Per layer, the share of `‖[W_K | W_V]‖²_F` the rank-`rank` factors keep (of the keys
    /// left unrotated, for a rotary source).
    pub energy: Vec<f64>,
    /// Per layer, for a rotary source: the share of `‖W_K‖²_F` that the shared rotary key
    /// keeps rotated; the rest of the keys loses its rotation. Empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rotary: Vec<f64>,
}

/// Why a model cannot be converted to a target: the config field and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct CannotConvert {
    pub field: String,
    pub message: String,
}

fn refuse(field: &str, message: impl Into<String>) -> CannotConvert {
    CannotConvert {
        field: field.into(),
        message: message.into(),
    }
}

/// The MLA layer `source` converts to in `target`, or why it cannot: the source is MHA (one
/// key/value head per query head), the target the same model with unnormed MLA latents, and a
/// rotary part exactly where the source has rotary positions, of a width that divides `d_h`.
/// `None` where the target is the source's model itself: its weights are taken unchanged, a
/// control that fine-tunes the source as the conversions are fine-tuned.
pub fn check(source: &GptConfig, target: &GptConfig) -> Result<Option<MlaConfig>, CannotConvert> {
    match source.attention {
        AttentionConfig::Mha(m) if m.kv_heads == source.n_heads => {}
        _ => {
            return Err(refuse(
                "model.attention",
                format!(
                    "the source is {}; accepted: MHA (kv_heads = n_heads)",
                    source.label()
                ),
            ));
        }
    }
    if target == source {
        return Ok(None);
    }
    let AttentionConfig::Mla(mla) = target.attention else {
        return Err(refuse(
            "model.attention",
            format!(
                "the target is {}; accepted: Mla(...), or the source's model unchanged (a \
                 control)",
                target.label()
            ),
        ));
    };
    if mla.latent_norm {
        return Err(refuse(
            "model.attention.latent_norm",
            "a normed latent cannot hold an MHA layer's keys and values (the norm rescales each \
             token's latent); accepted: false",
        ));
    }
    let d_head = source.d_model / source.n_heads;
    match (source.positions, mla.rope_dim) {
        (Positions::Learned, 0) => {}
        (Positions::Learned, _) => {
            return Err(refuse(
                "model.attention.rope_dim",
                "the source has learned positions and no rotary keys to move; accepted: 0",
            ));
        }
        (Positions::Rope(_), dr) if dr == 0 || !d_head.is_multiple_of(dr) || dr % 2 == 1 => {
            return Err(refuse(
                "model.attention.rope_dim",
                format!(
                    "{dr}: the shared rotary key turns every (d_h / rope_dim)-th of the source's \
                     frequencies, so it must divide d_h = {d_head}; accepted: an even divisor \
                     of {d_head}"
                ),
            ));
        }
        (Positions::Rope(_), _) => {}
    }
    let same = GptConfig {
        attention: source.attention.clone(),
        ..target.clone()
    };
    if &same != source {
        return Err(refuse(
            "model",
            "the target differs from the source in more than its attention; accepted: the \
             source's model with only `attention` changed",
        ));
    }
    Ok(Some(mla))
}

/// `source` (a model of `source_config`) converted to `target`: its keys and values factored
/// at the target's rank and layout ([`check`] says which targets), every other weight kept.
pub fn mha_to_mla(
    source: &Gpt,
    source_config: &GptConfig,
    target: &GptConfig,
    device: &Device,
) -> anyhow::Result<(Gpt, Conversion)> {
    let Some(mla) = check(source_config, target)? else {
        let unchanged = Conversion {
            method: "unchanged (a control: the source, fine-tuned as the conversions are)".into(),
            rank: 0,
            energy: vec![],
            rotary: vec![],
        };
        return Ok((source.clone(), unchanged));
    };
    let hd = source_config.d_model;
    let mut tensors = vec![];
    let mut energy = vec![];
    let mut rotary_kept = vec![];
    let weights = |tensors: &[PackTensor], name: &str| -> anyhow::Result<Tensor<2>> {
        let t = tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| anyhow::anyhow!("the source model has no {name}"))?;
        Ok(Tensor::from_data(bridge::to_data(t)?, device))
    };
    let all = source.collect(None, None, false);
    for layer in 0..source_config.n_layers {
        let at = |w: &str| format!("blocks.{layer}.attn.Mha.{w}.weight");
        let to = |w: &str| format!("blocks.{layer}.attn.Mla.{w}.weight");
        let (w_k, w_v) = (weights(&all, &at("wk"))?, weights(&all, &at("wv"))?); // [d, h*dh]
        let w_q = weights(&all, &at("wq"))?; // [d, h*dh]
        // A rotary source's rotated part goes to the shared key; the rest is factored below.
        let (w_q, w_k) = if mla.rope_dim > 0 {
            let split = rotary::split(w_q, w_k, source_config.n_heads, mla.rope_dim);
            rotary_kept.push(split.kept);
            for (name, w) in [("w_qr", split.w_qr), ("w_kr", split.w_kr)] {
                tensors.push(bridge::from_data(w.into_data(), to(name), None));
            }
            (split.w_q, split.w_kc)
        } else {
            (w_q, w_k)
        };
        let (w_dkv, w_uk, w_uv, kept) = latents(w_k, w_v, &mla, hd);
        energy.push(kept);
        let w_o = weights(&all, &at("wo"))?;
        for (name, w) in [
            ("w_dkv", w_dkv),
            ("w_uk", w_uk),
            ("w_uv", w_uv),
            ("w_q", w_q),
            ("wo", w_o),
        ] {
            tensors.push(bridge::from_data(w.into_data(), to(name), None));
        }
    }
    // Everything outside the attention layers, by its own name.
    tensors.extend(all.into_iter().filter(|t| !t.name.contains(".attn.")));
    let mut model = target.init(device);
    let applied = model.apply(tensors, None, None, false);
    if !applied.errors.is_empty() || !applied.missing.is_empty() || !applied.unused.is_empty() {
        anyhow::bail!(
            "converting to {}: weights left unset {:?}, unused {:?}, refused {:?}",
            target.label(),
            applied.missing,
            applied.unused,
            applied.errors
        );
    }
    let method = method(&mla, source_config.d_model / source_config.n_heads);
    let conversion = Conversion {
        method,
        rank: mla.rank,
        energy,
        rotary: rotary_kept,
    };
    Ok((model, conversion))
}

/// A layer's `W_K` and `W_V` (`[d, h·d_h]` each, `hd = h·d_h`) factored into the latent(s) of
/// `mla`: `W^DKV` (`[d, latents·r]`), `W^UK` and `W^UV` (`[r, h·d_h]`), and the energy kept.
fn latents(
    w_k: Tensor<2>,
    w_v: Tensor<2>,
    mla: &MlaConfig,
    hd: usize,
) -> (Tensor<2>, Tensor<2>, Tensor<2>, f64) {
    match mla.layout {
        LatentLayout::Joint => {
            let stacked = Tensor::cat(vec![w_k, w_v], 1); // [d, 2*h*dh]
            let (down, up, kept) = factor(stacked, mla.rank); // [d, r], [r, 2*h*dh]
            let (w_uk, w_uv) = (up.clone().narrow(1, 0, hd), up.narrow(1, hd, hd));
            (down, w_uk, w_uv, kept.0 / kept.1)
        }
        LatentLayout::Separate => {
            let (down_k, w_uk, kept_k) = factor(w_k, mla.rank); // [d, r], [r, h*dh]
            let (down_v, w_uv, kept_v) = factor(w_v, mla.rank);
            let kept = (kept_k.0 + kept_v.0) / (kept_k.1 + kept_v.1);
            (Tensor::cat(vec![down_k, down_v], 1), w_uk, w_uv, kept) // [d, 2r]
        }
    }
}

/// How `mla`'s conversion is named in its record: `svd separate`, or for a rotary target
/// `shared rotary key of every 2th frequency, then svd separate` (heads of `d_head`).
fn method(mla: &MlaConfig, d_head: usize) -> String {
    let layout = match mla.layout {
        LatentLayout::Joint => "svd joint",
        LatentLayout::Separate => "svd separate",
    };
    match mla.rope_dim {
        0 => layout.to_string(),
        dr => format!(
            "shared rotary key of every {}th frequency, then {layout}",
            d_head / dr
        ),
    }
}

/// `w` (`[m, n]`) as `down · up` with `down = U_r Σ_r` (`[m, r]`) and `up = V_rᵀ` (`[r, n]`),
/// and the squared singular values kept and in all.
fn factor(w: Tensor<2>, rank: usize) -> (Tensor<2>, Tensor<2>, (f64, f64)) {
    let (u, s, vt) = svd::<2, 1>(w, SVD_SWEEPS); // [m, k], [k], [k, n]
    let k = s.dims()[0];
    let sq: Vec<f64> = rotary::values(s.clone())
        .iter()
        .map(|&x| (x as f64).powi(2))
        .collect();
    let r = rank.min(k);
    let kept = (sq[..r].iter().sum(), sq.iter().sum());
    let down = u.narrow(1, 0, r) * s.narrow(0, 0, r).unsqueeze_dim::<2>(0); // [m, r]
    let up = vt.narrow(0, 0, r); // [r, n]
    // A rank above k (a factored matrix narrower than the latent) pads with zeros.
    if r < rank {
        let [m, n] = [down.dims()[0], up.dims()[1]];
        let device = down.device();
        let down = Tensor::cat(vec![down, Tensor::zeros([m, rank - r], &device)], 1);
        let up = Tensor::cat(vec![up, Tensor::zeros([rank - r, n], &device)], 0);
        return (down, up, kept);
    }
    (down, up, kept)
}

#[cfg(test)]
mod tests;
