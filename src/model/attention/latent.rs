//! The latent core that MLA ([`super::mla`]) and GLA ([`super::gla`]) share: everything after
//! a variant has made its latents. A variant caches `g` latents of width `r` per token (MLA: one,
//! or two with separate K and V latents; GLA: one per latent head) and one rotary key shared by
//! every query head; query head `i` of `h` reads latent `j = i / (h/g)`:
//!
//! ```text
//! k^R   = RoPE(W^KR h)                                   shared by all heads: cached
//! q^C_i = W^Q_i h,   q^R_i = RoPE(W^QR_i h)
//! k^C_i = W^UK_i c_K,j,   v^C_i = W^UV_i c_V,j            (c_V,j = c_K,j with a joint latent)
//! score_i = (q^C_i·k^C_i + q^R_i·k^R) / sqrt(d_h + d_h^R)
//! u     = W^O [softmax(score_i) v^C_i]_i
//! ```
//!
//! Two ways to attend over cached latents, chosen by [`MlaDecode`]:
//! - `Naive` (reference, and training): up-project each latent to its query heads' K and V,
//!   then ordinary attention.
//! - `Absorbed`: `q^C_i·(W^UK_i c) = (W^UK_i^T q^C_i)·c`, so each query moves into its latent's
//!   space and takes its scores against the latent itself; `W^UV_i` is applied after the
//!   weighted sum. A latent's query heads are the rows of one product against it, so each
//!   latent is read once per step. `W^UK` and `W^UV` are laid out per head once, when the cache
//!   is made ([`Absorbed`]). A decode step on the CPU backend takes [`latent_decode::attend`],
//!   one pass over the cache.

use burn::nn::Linear;
use burn::tensor::Tensor;

use super::common::{MlaDecode, VariantCache, causal_attention, causal_softmax, shared_key_scores};
#[cfg(feature = "flex")]
use super::latent_decode;
use crate::model::rope::Rope;
use crate::model::slot::{CacheSlot, CacheSpec, SlotBytes};
use crate::rng::Rng;

/// What the keys and values are made of: latents and the rotary key, for the current tokens or
/// for everything cached.
pub struct Latents {
    /// `[batch, groups, seq, rank]`
    pub c_k: Tensor<4>,
    /// `[batch, groups, seq, rank]` (the same tensor as `c_k` for a joint latent)
    pub c_v: Tensor<4>,
    /// `[batch, seq, rope_dim]`, already rotated
    pub k_r: Option<Tensor<3>>,
}

/// A latent variant's weights and sizes, borrowed from its module: what the core computes with.
pub struct LatentHeads<'a> {
    /// `W^Q`: `d_model -> n_heads * d_head`
    pub w_q: &'a Linear,
    /// `W^QR`: `d_model -> n_heads * rope_dim`
    pub w_qr: Option<&'a Linear>,
    /// `W^KR`: `d_model -> rope_dim`, one key for all heads
    pub w_kr: Option<&'a Linear>,
    /// `W^UK`: `rank -> n_heads * d_head`; head i reads its latent's `c_K,j`
    pub w_uk: &'a Linear,
    /// `W^UV`: `rank -> n_heads * d_head`
    pub w_uv: &'a Linear,
    /// `W^O`: `n_heads * d_head -> d_model`
    pub wo: &'a Linear,
    /// Rotation tables of width `rope_dim`.
    pub rope: Option<&'a Rope>,
    pub n_heads: usize,
    pub d_head: usize,
    /// Latents `g` a token caches (a separate K/V pair counts as one: its heads read both).
    pub groups: usize,
    pub rank: usize,
    pub rope_dim: usize,
    pub decode: MlaDecode,
}

impl LatentHeads<'_> {
    /// Attends causally over `x` (first token at absolute position `start`), given the
    /// latents `new` the variant made from it; with a cache, writes them at `start..start+seq`
    /// and attends over everything cached so far.
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_model]`; new: `[batch, groups, seq, rank]` each
    /// - output: `[batch, seq, d_model]`
    pub fn forward(
        &self,
        x: Tensor<3>,
        (c_k, c_v): (Tensor<4>, Tensor<4>),
        cache: Option<&mut LatentCache>,
        start: usize,
    ) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (h, dh) = (self.n_heads, self.d_head);
        let new = Latents {
            c_k,
            c_v,
            k_r: self.rotary_key(x.clone(), start),
        };
        let (lat, absorbed) = match cache {
            Some(c) => {
                let lat = c.append(new, start);
                let absorbed = Absorbed::for_path(self.decode, &mut c.absorbed, || self.absorbed());
                (lat, absorbed)
            }
            // Training and cache-free forwards use the reference path.
            None => (new, None),
        };
        let (q_c, q_r) = self.queries(x, start);
        let out = match absorbed {
            Some(absorbed) => self.attend_absorbed(q_c, q_r, lat, &absorbed, start),
            None => self.attend_naive(q_c, q_r, lat, start),
        }; // [b, h, t, dh]
        let out = out.swap_dims(1, 2).reshape([b, t, h * dh]); // [b, t, h*dh]
        self.wo.forward(out)
    }

    /// `W^UK` and `W^UV` laid out per head for the absorbed decode path.
    pub fn absorbed(&self) -> Absorbed {
        Absorbed::new(self.w_uk, self.w_uv, self.n_heads, self.d_head, self.rank)
    }

    /// An empty cache of `groups` latents (twice over with `separate` K and V latents) and the
    /// rotary key, with the absorbed path's weights when that is the path chosen.
    pub fn new_cache(&self, spec: &CacheSpec, separate: bool) -> LatentCache {
        let latent = || {
            CacheSlot::zeros(
                [spec.batch, self.groups, spec.capacity, self.rank],
                spec.dtype,
                &spec.device,
            )
        };
        LatentCache {
            absorbed: (self.decode == MlaDecode::Absorbed).then(|| self.absorbed()),
            c_k: latent(),
            c_v: separate.then(latent),
            k_r: (self.rope_dim > 0).then(|| spec.slot(self.rope_dim)),
        }
    }

    /// `k^R = RoPE(W^KR h)`, one for all heads, or `None` without decoupled RoPE.
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_model]`
    /// - output: `[batch, seq, rope_dim]`
    fn rotary_key(&self, x: Tensor<3>, start: usize) -> Option<Tensor<3>> {
        let (w_kr, rope) = (self.w_kr?, self.rope?);
        let [b, t, _] = x.dims();
        let k_r = w_kr.forward(x).reshape([b, 1, t, self.rope_dim]); // [b, 1, t, dr]
        Some(rope.apply(k_r, start).reshape([b, t, self.rope_dim])) // [b, t, dr]
    }

    /// `q^C` and `q^R`, scaled by `1 / sqrt(d_h + d_h^R)` (queries are scaled rather than
    /// scores: they are smaller than `[b, h, t, s]`).
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_model]`
    /// - output: `[batch, heads, seq, d_head]`, `[batch, heads, seq, rope_dim]`
    fn queries(&self, x: Tensor<3>, start: usize) -> (Tensor<4>, Option<Tensor<4>>) {
        let [b, t, _] = x.dims();
        let (h, dh, dr) = (self.n_heads, self.d_head, self.rope_dim);
        let scale = ((dh + dr) as f64).powf(-0.5);
        let q_r = match (self.w_qr, self.rope) {
            (Some(w_qr), Some(rope)) => {
                let q_r = w_qr
                    .forward(x.clone())
                    .reshape([b, t, h, dr])
                    .swap_dims(1, 2); // [b, h, t, dr]
                Some(rope.apply(q_r, start).mul_scalar(scale))
            }
            _ => None,
        };
        let q_c = self
            .w_q
            .forward(x)
            .reshape([b, t, h, dh])
            .swap_dims(1, 2) // [b, h, t, dh]
            .mul_scalar(scale);
        (q_c, q_r)
    }

    /// Reference path: materialise every query head's K and V from its latent. The queries
    /// arrive scaled.
    ///
    /// # Shapes
    /// - q_c: `[batch, heads, seq, d_head]`, q_r: `[batch, heads, seq, rope_dim]`
    /// - output: `[batch, heads, seq, d_head]`
    fn attend_naive(
        &self,
        q_c: Tensor<4>,
        q_r: Option<Tensor<4>>,
        lat: Latents,
        start: usize,
    ) -> Tensor<4> {
        let [b, g, s, r] = lat.c_k.dims();
        let (h, dh) = (self.n_heads, self.d_head);
        let m = h / g;
        // Latent j up-projects only its own query heads' columns of W^UK and W^UV.
        let up = |c: Tensor<4>, w: &Linear| {
            let w = w.weight.val().reshape([1, r, g, m * dh]).swap_dims(1, 2); // [1, g, r, m*dh]
            c.matmul(w) // [b, g, s, m*dh]
                .reshape([b, g, s, m, dh])
                .swap_dims(2, 3) // [b, g, m, s, dh]
                .reshape([b, h, s, dh]) // [b, h, s, dh]
        };
        let (k_c, v_c) = (up(lat.c_k, self.w_uk), up(lat.c_v, self.w_uv));
        #[cfg(feature = "flex")]
        if crate::model::kernels::applies(&q_c) {
            // One fused pass over `[q^C | q^R]·[k^C | k^R]ᵀ = q^C·k^Cᵀ + q^R·k^Rᵀ`, the shared
            // rotary key beside every head's key.
            let (q, k) = match (q_r, lat.k_r) {
                (Some(q_r), Some(k_r)) => {
                    let dr = k_r.dims()[2];
                    let k_r = k_r.reshape([b, 1, s, dr]).expand([b, h, s, dr]); // [b, h, s, dr]
                    (
                        Tensor::cat(vec![q_c, q_r], 3),
                        Tensor::cat(vec![k_c, k_r], 3),
                    ) // [b, h, *, dh+dr]
                }
                _ => (q_c, k_c),
            };
            return causal_attention(q, k, v_c, start); // [b, h, t, dh]
        }
        let mut scores = q_c.matmul(k_c.swap_dims(2, 3)); // [b, h, t, s]
        if let Some(rs) = shared_key_scores(q_r, lat.k_r) {
            scores = scores + rs;
        }
        causal_softmax(scores, start).matmul(v_c) // [b, h, t, dh]
    }

    /// Absorbed path: never leaves latent space until after the weighted sum. The queries
    /// arrive scaled.
    ///
    /// # Shapes
    /// - q_c: `[batch, heads, seq, d_head]`, q_r: `[batch, heads, seq, rope_dim]`
    /// - output: `[batch, heads, seq, d_head]`
    fn attend_absorbed(
        &self,
        q_c: Tensor<4>,
        q_r: Option<Tensor<4>>,
        lat: Latents,
        absorbed: &Absorbed,
        start: usize,
    ) -> Tensor<4> {
        let q_lat = q_c.matmul(absorbed.w_uk.clone()); // [b, h, t, r]
        let o_lat = attend_latent(q_lat, q_r, lat, start); // [b, h, t, r]
        o_lat.matmul(absorbed.w_uv.clone()) // [b, h, t, dh]
    }
}

/// Attention in latent space, `softmax(q_lat·c_K^T + q^R·k^R^T)·c_V` per latent and its query
/// heads: a decode step (one token per sequence) on the CPU backend takes
/// [`latent_decode::attend`], one pass over the cache; everything else takes
/// [`attend_latent_reference`].
///
/// # Shapes
/// - q_lat: `[batch, heads, seq, rank]`, q_r: `[batch, heads, seq, rope_dim]`
/// - output: `[batch, heads, seq, rank]`
pub(crate) fn attend_latent(
    q_lat: Tensor<4>,
    q_r: Option<Tensor<4>>,
    lat: Latents,
    start: usize,
) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if let [b, h, 1, r] = q_lat.dims() {
        let [_, g, keys, _] = lat.c_k.dims();
        assert_eq!(
            keys,
            start + 1,
            "latent decode: {keys} keys for a query at {start}"
        );
        let per_latent = |q: &Tensor<4>| grouped(q.clone(), g); // [b, g, h/g, w]
        let q_r1 = q_r.as_ref().map(per_latent);
        let one_pass = latent_decode::attend(
            &per_latent(&q_lat),
            q_r1.as_ref(),
            &lat.c_k,
            &lat.c_v,
            lat.k_r.as_ref(),
        );
        if let Some(o_lat) = one_pass {
            return o_lat.reshape([b, h, 1, r]); // [b, h, 1, r]
        }
    }
    attend_latent_reference(q_lat, q_r, lat, start)
}

/// Reference for [`attend_latent`], as products. A latent's query heads are the rows of one
/// product against it: the latent is read once per product, not once per head as a product
/// broadcast over heads would.
///
/// # Shapes
/// - q_lat: `[batch, heads, seq, rank]`, q_r: `[batch, heads, seq, rope_dim]`
/// - lat: `[batch, groups, keys, rank]` each, k_r `[batch, keys, rope_dim]`
/// - output: `[batch, heads, seq, rank]`
pub(crate) fn attend_latent_reference(
    q_lat: Tensor<4>,
    q_r: Option<Tensor<4>>,
    lat: Latents,
    start: usize,
) -> Tensor<4> {
    let [b, h, t, r] = q_lat.dims();
    let [_, g, s, _] = lat.c_k.dims();
    let scores = grouped(q_lat, g).matmul(lat.c_k.swap_dims(2, 3)); // [b, g, m*t, s]
    let mut scores = scores.reshape([b, h, t, s]); // [b, h, t, s]
    if let Some(rs) = shared_key_scores(q_r, lat.k_r) {
        scores = scores + rs;
    }
    let weights = causal_softmax(scores, start); // [b, h, t, s]
    let o_lat = grouped(weights, g).matmul(lat.c_v); // [b, g, m*t, r]
    o_lat.reshape([b, h, t, r]) // [b, h, t, r]
}

/// Query heads grouped by their latent: `[b, h, t, w]` -> `[b, g, (h/g)·t, w]`, head
/// `i = j·(h/g) + k` of latent `j` giving rows `k·t..(k+1)·t` of group `j`.
fn grouped(x: Tensor<4>, g: usize) -> Tensor<4> {
    let [b, h, t, w] = x.dims();
    x.reshape([b, g, h / g * t, w]) // [b, g, m*t, w]
}

/// The absorbed path's weights: `W^UK` and `W^UV` laid out per head (DeepSeek-V2 §2.1.2: `W^UK`
/// absorbed on the query side, `W^UV` on the output side), made once when the cache that holds
/// them is made, instead of on every decode step. A cache belongs to the model that made it.
///
/// Multiplying `W^Q W^UK` and `W^UV W^O` out into single matrices was tried too: one product
/// fewer per side, but `2·d·h·r` weights against `2·(d·h·d_h + r·h·d_h)`, twice as many at
/// r = d/2 and three times at full rank, which would tilt the comparison between ranks that the
/// study makes; measured side by side it was no faster at small scale. Not kept.
#[derive(Debug, Clone)]
pub struct Absorbed {
    /// `[1, heads, d_head, rank]`: head i's `W^UK_i^T`.
    pub w_uk: Tensor<4>,
    /// `[1, heads, rank, d_head]`: head i's `W^UV_i`.
    pub w_uv: Tensor<4>,
}

impl Absorbed {
    /// The weights `decode` attends with: none for `Naive`; for `Absorbed`, those `held` by
    /// the cache, made with it, or made now, once, for a cache made for `Naive`.
    pub fn for_path(
        decode: MlaDecode,
        held: &mut Option<Absorbed>,
        make: impl FnOnce() -> Absorbed,
    ) -> Option<Absorbed> {
        match decode {
            MlaDecode::Naive => None,
            MlaDecode::Absorbed => Some(held.get_or_insert_with(make).clone()),
        }
    }

    /// Lays out `W^UK` and `W^UV` (`rank -> heads * d_head` each) per head.
    pub fn new(w_uk: &Linear, w_uv: &Linear, heads: usize, dh: usize, r: usize) -> Self {
        // W^UK as per-head [dh, r] blocks: weight [r, h*dh] -> [r, h, dh] -> [h, dh, r].
        let w_uk = w_uk
            .weight
            .val()
            .reshape([r, heads, dh])
            .permute([1, 2, 0])
            .unsqueeze_dim::<4>(0); // [1, h, dh, r]
        // W^UV as per-head [r, dh] blocks: weight [r, h*dh] -> [r, h, dh] -> [h, r, dh].
        let w_uv = w_uv
            .weight
            .val()
            .reshape([r, heads, dh])
            .swap_dims(0, 1)
            .unsqueeze_dim::<4>(0); // [1, h, r, dh]
        Absorbed { w_uk, w_uv }
    }
}

/// What a latent layer caches.
#[derive(Debug)]
pub struct LatentCache {
    /// The absorbed decode path's per-head `W^UK`/`W^UV`, made with the cache from the model
    /// that made it. Weights, not cached tokens: not counted in its bytes.
    pub absorbed: Option<Absorbed>,
    /// `c_K,j` (or the joint `c_KV,j`): `[batch, groups, capacity, rank]`
    pub c_k: CacheSlot<4>,
    /// `c_V,j` with separate latents: `[batch, groups, capacity, rank]`
    pub c_v: Option<CacheSlot<4>>,
    /// The rotated shared key `k^R`: `[batch, capacity, rope_dim]`
    pub k_r: Option<CacheSlot<3>>,
}

impl LatentCache {
    /// Writes the current tokens' latents at `start..start+seq` and returns everything cached
    /// up to their end.
    fn append(&mut self, new: Latents, start: usize) -> Latents {
        let s = start + new.c_k.dims()[2];
        self.c_k.write(new.c_k, start);
        if let Some(c_v) = self.c_v.as_mut() {
            c_v.write(new.c_v, start);
        }
        if let (Some(slot), Some(k_r)) = (self.k_r.as_mut(), new.k_r) {
            slot.write(k_r, start);
        }
        let c_k = self.c_k.read(s);
        Latents {
            c_v: self.c_v.as_ref().map_or_else(|| c_k.clone(), |v| v.read(s)),
            c_k,
            k_r: self.k_r.as_ref().map(|k| k.read(s)),
        }
    }

    /// The latent buffers, then the rotary key's.
    pub fn latent_slots(&self) -> impl Iterator<Item = &CacheSlot<4>> {
        std::iter::once(&self.c_k).chain(self.c_v.as_ref())
    }
}

impl VariantCache for LatentCache {
    fn slot_bytes(&self) -> Vec<SlotBytes> {
        self.latent_slots()
            .map(CacheSlot::bytes)
            .chain(self.k_r.as_ref().map(CacheSlot::bytes))
            .collect()
    }

    fn fill_random(&mut self, len: usize, rng: &mut Rng) {
        self.c_k.fill_random(len, rng);
        if let Some(c_v) = self.c_v.as_mut() {
            c_v.fill_random(len, rng);
        }
        if let Some(k_r) = self.k_r.as_mut() {
            k_r.fill_random(len, rng);
        }
    }
}
