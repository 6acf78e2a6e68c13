"""Expected logits for the golden tests, computed from the published equations in NumPy.

Written from the papers, not from src/model: GPT-2 (Radford et al. 2019: pre-norm blocks,
LayerNorm, a GELU MLP, learned positions, a head tied to the token embedding), RoPE (Su et al.,
arXiv 2104.09864, with the half-split pair convention (i, i + D/2) of GPT-NeoX and LLaMA), and
MLA (DeepSeek-V2, arXiv 2405.04434, section 2.1: latents c = x W^D normalised by RMSNorm,
k^C = c_K W^UK, v^C = c_V W^UV, a decoupled rotary query q^R per head and one rotary key k^R
shared by all heads, scores (q^C k^C + q^R k^R) / sqrt(d_h + d_h^R)), and GLA (Zadouri,
Strauss and Dao, arXiv 2505.21487, section 3.3.1, and the authors' description of their
LlamaFlashGLA: the down-projection yields g latent heads and one rotary key; each latent head has
its own RMSNorm and up-projects, for its own query heads j * h/g .. (j + 1) * h/g - 1 only, to
their keys and values; the one rotary key, rotated, is appended to every head's key; the
softmax scale is that of the concatenated head, 1 / sqrt(d_h + d_h^R)), and GTA (the same
paper, section 3.2, and the authors' description of their LlamaFlashGTA: each of g key/value
groups projects one tied state of d_h; a query head's value is its group's whole state, its key
the state's first d_h - d_h^R dimensions followed by one rotary key of d_h^R shared by all heads;
the query's last d_h^R dimensions are rotated; the scale is 1 / sqrt(d_h)).

Weights are read from the `.safetensors` files `cargo run --example golden` writes, by name,
in burn's layout: a Linear's weight is [in, out], applied as x @ W. `K/V latent order`: with
separate latents, W^DKV = [W^DK, W^DV] along its output axis, c_K first.

    python3 tests/golden/reference.py tests/golden          # writes <variant>.expected.json
    python3 tests/golden/reference.py --check tests/golden  # compares with them (CI)

Each variant is run on a batch of two different token sequences, one at a time: the reference
treats the rows apart, so a model that mixes the rows of a batch disagrees with it.

Needs numpy only.
"""

import json
import math
import struct
import sys
from pathlib import Path

import numpy as np

EPS = 1e-5  # LayerNorm and RMSNorm epsilon (burn's default, GPT-2's 1e-5)


def read_safetensors(path):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        assert meta["dtype"] == "F32", (name, meta["dtype"])
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a : 8 + n + b], dtype="<f4").reshape(meta["shape"]).astype(np.float64)
    return out


def layer_norm(x, gamma, beta):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + EPS) * gamma + beta


def rms_norm(x, gamma):
    return x / np.sqrt((x**2).mean(-1, keepdims=True) + EPS) * gamma


def gelu(x):
    # The exact GELU, x * Phi(x) (Hendrycks & Gimpel 2016), not the tanh approximation.
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def rope(x, theta):
    """Rotates the last axis of x [..., t, D]: pair i is (x_i, x_{i+D/2}) at angle t * theta^(-2i/D)."""
    t, d = x.shape[-2], x.shape[-1]
    half = d // 2
    freq = theta ** (-np.arange(half) * 2.0 / d)
    ang = np.arange(t)[:, None] * freq[None, :]
    cos, sin = np.cos(ang), np.sin(ang)
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)


def causal_softmax(scores):
    t = scores.shape[-1]
    mask = np.triu(np.ones((t, t), dtype=bool), k=1)  # key j > query i
    scores = np.where(mask, -np.inf, scores)
    scores = scores - scores.max(-1, keepdims=True)
    e = np.exp(scores)
    return e / e.sum(-1, keepdims=True)


def heads(x, n):
    """[t, n * dh] -> [n, t, dh], head i taking columns i*dh .. (i+1)*dh."""
    t = x.shape[0]
    return x.reshape(t, n, -1).transpose(1, 0, 2)


def mha(x, w, p, cfg, kv_heads, theta):
    h = cfg["n_heads"]
    dh = cfg["d_model"] // h
    q = heads(x @ w[p + "wq.weight"], h)
    k = heads(x @ w[p + "wk.weight"], kv_heads)
    v = heads(x @ w[p + "wv.weight"], kv_heads)
    if theta is not None:
        q, k = rope(q, theta), rope(k, theta)
    group = h // kv_heads  # query head i reads key/value head i // group
    k, v = np.repeat(k, group, axis=0), np.repeat(v, group, axis=0)
    o = causal_softmax(q @ k.transpose(0, 2, 1) / math.sqrt(dh)) @ v  # [h, t, dh]
    return o.transpose(1, 0, 2).reshape(x.shape[0], -1) @ w[p + "wo.weight"]


def mla(x, w, p, cfg, rank, layout, rope_dim, theta):
    h = cfg["n_heads"]
    dh = cfg["d_model"] // h
    c = x @ w[p + "w_dkv.weight"]  # [t, rank] joint, [t, 2 rank] = [c_K, c_V] separate
    if layout == "Joint":
        c_k = c_v = rms_norm(c, w[p + "kv_norm.gamma"])
    else:
        c_k = rms_norm(c[:, :rank], w[p + "kv_norm.gamma"])
        c_v = rms_norm(c[:, rank:], w[p + "v_norm.gamma"])
    k = heads(c_k @ w[p + "w_uk.weight"], h)  # k^C [h, t, dh]
    v = heads(c_v @ w[p + "w_uv.weight"], h)  # v^C
    q = heads(x @ w[p + "w_q.weight"], h)  # q^C
    scores = q @ k.transpose(0, 2, 1)
    if rope_dim > 0:
        q_r = rope(heads(x @ w[p + "w_qr.weight"], h), theta)  # [h, t, dr]
        k_r = rope(x @ w[p + "w_kr.weight"], theta)  # [t, dr], one for all heads
        scores = scores + q_r @ k_r.T
    o = causal_softmax(scores / math.sqrt(dh + rope_dim)) @ v
    return o.transpose(1, 0, 2).reshape(x.shape[0], -1) @ w[p + "wo.weight"]


def gla(x, w, p, cfg, groups, rank, rope_dim, theta):
    h = cfg["n_heads"]
    dh = cfg["d_model"] // h
    served = h // groups  # query heads per latent head
    # The down-projection: [c_1 .. c_g | k^R]; here its two parts are stored as w_dkv and w_kr.
    down = x @ w[p + "w_dkv.weight"]  # [t, g rank]
    out = np.zeros((x.shape[0], h * dh))
    q = x @ w[p + "w_q.weight"]  # [t, h dh]
    if rope_dim > 0:
        q_r = x @ w[p + "w_qr.weight"]  # [t, h dr]
        k_r = rope((x @ w[p + "w_kr.weight"])[None], theta)[0]  # [t, dr], one key for all heads
    for j in range(groups):
        c_j = rms_norm(down[:, j * rank : (j + 1) * rank], w[p + f"kv_norm.{j}.gamma"])  # [t, rank]
        for i in range(j * served, (j + 1) * served):
            cols = slice(i * dh, (i + 1) * dh)  # head i's block of W^UK, W^UV and of q
            key = c_j @ w[p + "w_uk.weight"][:, cols]  # [t, dh]
            value = c_j @ w[p + "w_uv.weight"][:, cols]
            query = q[:, cols]
            if rope_dim > 0:
                q_ri = rope(q_r[None, :, i * rope_dim : (i + 1) * rope_dim], theta)[0]
                key = np.concatenate([key, k_r], axis=1)  # [t, dh + dr]
                query = np.concatenate([query, q_ri], axis=1)
            weights = causal_softmax(query @ key.T / math.sqrt(query.shape[1]))
            out[:, cols] = weights @ value
    return out @ w[p + "wo.weight"]


def gta(x, w, p, cfg, groups, rope_dim, theta):
    h = cfg["n_heads"]
    dh = cfg["d_model"] // h
    served = h // groups  # query heads per group
    tied = dh - rope_dim  # the state's dimensions a key keeps
    states = x @ w[p + "w_kv.weight"]  # [t, g dh]: state j in columns j*dh .. (j+1)*dh
    q = x @ w[p + "w_q.weight"]  # [t, h dh]
    if rope_dim > 0:
        k_r = rope((x @ w[p + "w_kr.weight"])[None], theta)[0]  # [t, dr], one key for all heads
    out = np.zeros((x.shape[0], h * dh))
    for i in range(h):
        state = states[:, (i // served) * dh : (i // served + 1) * dh]  # [t, dh]
        query = q[:, i * dh : (i + 1) * dh]
        key = state[:, :tied]
        if rope_dim > 0:
            query = np.concatenate([query[:, :tied], rope(query[None, :, tied:], theta)[0]], axis=1)
            key = np.concatenate([key, k_r], axis=1)  # [t, dh]
        weights = causal_softmax(query @ key.T / math.sqrt(dh))
        out[:, i * dh : (i + 1) * dh] = weights @ state
    return out @ w[p + "wo.weight"]


def logits(cfg, w, tokens):
    theta = cfg["positions"]["Rope"] if isinstance(cfg["positions"], dict) else None
    x = w["wte.weight"][tokens]
    if theta is None:
        x = x + w["wpe.weight"][: len(tokens)]
    attention = cfg["attention"]
    for i in range(cfg["n_layers"]):
        p = f"blocks.{i}."
        a = layer_norm(x, w[p + "ln_1.gamma"], w[p + "ln_1.beta"])
        if "Mha" in attention:
            a = mha(a, w, p + "attn.Mha.", cfg, attention["Mha"]["kv_heads"], theta)
        elif "Mla" in attention:
            m = attention["Mla"]
            a = mla(a, w, p + "attn.Mla.", cfg, m["rank"], m["layout"], m["rope_dim"], theta)
        elif "Gla" in attention:
            g = attention["Gla"]
            a = gla(a, w, p + "attn.Gla.", cfg, g["groups"], g["rank"], g["rope_dim"], theta)
        else:
            g = attention["Gta"]
            a = gta(a, w, p + "attn.Gta.", cfg, g["groups"], g["rope_dim"], theta)
        x = x + a
        m = layer_norm(x, w[p + "ln_2.gamma"], w[p + "ln_2.beta"])
        x = x + gelu(m @ w[p + "fc.weight"] + w[p + "fc.bias"]) @ w[p + "proj.weight"] + w[p + "proj.bias"]
    x = layer_norm(x, w["ln_f.gamma"], w["ln_f.beta"])
    return x @ w["wte.weight"].T  # tied head


def rows(vocab, context):
    """Two different token sequences: the batch every variant is run on."""
    return [[(7 * i + 3) % vocab for i in range(context)], [(5 * i + 11) % vocab for i in range(context)]]


def expected(root, name):
    cfg = json.loads((root / f"{name}.json").read_text())
    assert cfg["tie_embeddings"], name
    w = read_safetensors(root / f"{name}.safetensors")
    tokens = rows(cfg["vocab_size"], cfg["context"])
    out = np.stack([logits(cfg, w, row) for row in tokens])  # [batch, t, vocab]
    return tokens, out


def main():
    args = sys.argv[1:]
    check = "--check" in args
    args = [a for a in args if a != "--check"]
    root = Path(args[0] if args else "tests/golden")
    names = sorted(f.stem for f in root.glob("*.json") if not f.name.endswith(".expected.json"))
    worst = 0.0
    for name in names:
        tokens, out = expected(root, name)
        path = root / f"{name}.expected.json"
        if check:
            have = json.loads(path.read_text())
            assert have["tokens"] == tokens, f"{name}: the committed tokens are not the reference's"
            diff = np.abs(np.array(have["logits"]) - out).max()
            worst = max(worst, diff)
            print(f"{name}: committed logits within {diff:.1e} of the reference")
            continue
        path.write_text(
            json.dumps({"tokens": tokens, "logits": [[[round(v, 7) for v in r] for r in b] for b in out.tolist()]})
        )
        print(f"{name}: logits {out.shape}, |max| {np.abs(out).max():.3f}")
    if check and worst > 1e-6:
        sys.exit(f"the committed expectations differ from the reference by up to {worst:.1e} (> 1e-6): run reference.py again")


if __name__ == "__main__":
    main()
