"""The yardstick for mla-lab's speed targets: the same GPTs in PyTorch eager, on the same CPU.

Mirrors src/model: pre-norm blocks (LayerNorm, attention, GELU MLP with bias), attention
projections without bias, a final LayerNorm and a head tied to the token embedding. MHA uses
learned or rotary positions; MLA is DeepSeek-V2's (RMS-normed latents, separate K/V latents,
decoupled RoPE with a key shared by all heads). Decoding keeps a KV cache: K/V for MHA, the
latents and the rotary key for MLA, with the up-projections absorbed into query and output.

    pip install torch
    python3 benches/pytorch/gpt.py train --attn mha --positions learned
    python3 benches/pytorch/gpt.py train --attn mla --rank 128 --rope-dim 32
    python3 benches/pytorch/gpt.py decode --attn mla --rank 128 --rope-dim 32 --context 512
    python3 benches/pytorch/gpt.py decode --attn mla --rank 192 --vocab 50257 --d-model 384 \
        --heads 6 --layers 6 --context 4096 --cache 2048 --batch 16 --fill random --json

Defaults are the experiments/small rows: 4 layers, d_model 256, 4 heads, vocab 2048,
batch 16, sequence 256, 2 threads.
"""

import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def rope_tables(dim, context, theta=10000.0):
    inv = theta ** (-torch.arange(0, dim, 2).float() / dim)
    ang = torch.arange(context).float()[:, None] * inv[None, :]  # [t, dim/2]
    return ang.cos(), ang.sin()


def rotate(x, cos, sin):
    # Pairs (i, i + D/2), as src/model/rope.rs. x: [..., t, D]; cos, sin: [t, D/2]
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


class Mha(nn.Module):
    def __init__(self, d, h, context, rope):
        super().__init__()
        self.h, self.dh = h, d // h
        self.wq = nn.Linear(d, d, bias=False)
        self.wk = nn.Linear(d, d, bias=False)
        self.wv = nn.Linear(d, d, bias=False)
        self.wo = nn.Linear(d, d, bias=False)
        self.rope = rope_tables(self.dh, context) if rope else None

    def forward(self, x, cache=None, start=0):
        b, t, d = x.shape
        heads = lambda y: y.view(b, t, self.h, self.dh).transpose(1, 2)  # [b, h, t, dh]
        q, k, v = heads(self.wq(x)), heads(self.wk(x)), heads(self.wv(x))
        if self.rope is not None:
            cos, sin = (z[start : start + t] for z in self.rope)
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if cache is not None:
            cache["k"][:, :, start : start + t] = k
            cache["v"][:, :, start : start + t] = v
            k, v = cache["k"][:, :, : start + t], cache["v"][:, :, : start + t]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=cache is None or t > 1)
        return self.wo(y.transpose(1, 2).reshape(b, t, d))

    def new_cache(self, b, context):
        z = lambda: torch.zeros(b, self.h, context, self.dh)
        return {"k": z(), "v": z()}


class Mla(nn.Module):
    def __init__(self, d, h, context, rank, rope_dim):
        super().__init__()
        self.h, self.dh, self.r, self.dr = h, d // h, rank, rope_dim
        self.w_q = nn.Linear(d, d, bias=False)
        self.w_qr = nn.Linear(d, h * rope_dim, bias=False)
        self.w_dkv = nn.Linear(d, 2 * rank, bias=False)
        self.kv_norm = nn.RMSNorm(rank)
        self.v_norm = nn.RMSNorm(rank)
        self.w_uk = nn.Linear(rank, d, bias=False)
        self.w_uv = nn.Linear(rank, d, bias=False)
        self.w_kr = nn.Linear(d, rope_dim, bias=False)
        self.wo = nn.Linear(d, d, bias=False)
        self.rope = rope_tables(rope_dim, context)

    def latents(self, x, start):
        c_k, c_v = self.w_dkv(x).split(self.r, dim=-1)
        cos, sin = (z[start : start + x.shape[1]] for z in self.rope)
        k_r = rotate(self.w_kr(x), cos, sin)  # [b, t, dr]
        return self.kv_norm(c_k), self.v_norm(c_v), k_r

    def queries(self, x, start):
        b, t, _ = x.shape
        q = self.w_q(x).view(b, t, self.h, self.dh).transpose(1, 2)
        q_r = self.w_qr(x).view(b, t, self.h, self.dr).transpose(1, 2)
        cos, sin = (z[start : start + t] for z in self.rope)
        return q, rotate(q_r, cos, sin)

    def forward(self, x, cache=None, start=0):
        if cache is not None:
            return self.decode(x, cache, start)
        # Training: up-project the latents, ordinary attention over [k^C; k^R].
        b, t, d = x.shape
        c_k, c_v, k_r = self.latents(x, start)
        q, q_r = self.queries(x, start)
        k = self.w_uk(c_k).view(b, t, self.h, self.dh).transpose(1, 2)
        v = self.w_uv(c_v).view(b, t, self.h, self.dh).transpose(1, 2)
        k_r = k_r[:, None].expand(b, self.h, t, self.dr)
        y = F.scaled_dot_product_attention(
            torch.cat([q, q_r], -1), torch.cat([k, k_r], -1), v, is_causal=True
        )
        return self.wo(y.transpose(1, 2).reshape(b, t, d))

    def decode(self, x, cache, start):
        # Absorbed: scores against the cached latent, W^UK folded into the query and W^UV
        # applied after weighting the latent.
        b, t, d = x.shape
        c_k, c_v, k_r = self.latents(x, start)
        end = start + t
        cache["c_k"][:, start:end] = c_k
        cache["c_v"][:, start:end] = c_v
        cache["k_r"][:, start:end] = k_r
        c_k, c_v, k_r = cache["c_k"][:, :end], cache["c_v"][:, :end], cache["k_r"][:, :end]
        q, q_r = self.queries(x, start)  # [b, h, t, dh], [b, h, t, dr]
        w_uk = self.w_uk.weight.view(self.h, self.dh, self.r)
        q_lat = torch.einsum("bhtd,hdr->bhtr", q, w_uk)
        scores = torch.einsum("bhtr,bsr->bhts", q_lat, c_k)
        scores = scores + torch.einsum("bhtd,bsd->bhts", q_r, k_r)
        scores = scores / math.sqrt(self.dh + self.dr)
        if t > 1:
            mask = torch.ones(t, end, dtype=torch.bool).tril(start)
            scores = scores.masked_fill(~mask, float("-inf"))
        o_lat = torch.einsum("bhts,bsr->bhtr", scores.softmax(-1), c_v)
        w_uv = self.w_uv.weight.view(self.h, self.dh, self.r)
        y = torch.einsum("bhtr,hdr->bthd", o_lat, w_uv).reshape(b, t, d)
        return self.wo(y)

    def new_cache(self, b, context):
        return {
            "c_k": torch.zeros(b, context, self.r),
            "c_v": torch.zeros(b, context, self.r),
            "k_r": torch.zeros(b, context, self.dr),
        }


class Block(nn.Module):
    def __init__(self, d, attn):
        super().__init__()
        self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(d), attn, nn.LayerNorm(d)
        self.fc, self.proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x, cache=None, start=0):
        x = x + self.attn(self.ln_1(x), cache, start)
        return x + self.proj(F.gelu(self.fc(self.ln_2(x))))


class Gpt(nn.Module):
    def __init__(self, a):
        super().__init__()
        d = a.d_model
        self.wte = nn.Embedding(a.vocab, d)
        self.wpe = nn.Embedding(a.context, d) if a.positions == "learned" else None

        def attn():
            if a.attn == "mha":
                return Mha(d, a.heads, a.context, a.positions == "rope")
            return Mla(d, a.heads, a.context, a.rank, a.rope_dim)

        self.blocks = nn.ModuleList(Block(d, attn()) for _ in range(a.layers))
        self.ln_f = nn.LayerNorm(d)
        nn.init.normal_(self.wte.weight, std=0.02)

    def forward(self, tokens, caches=None, start=0):
        x = self.wte(tokens)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(start, start + tokens.shape[1]))
        for i, blk in enumerate(self.blocks):
            x = blk(x, None if caches is None else caches[i], start)
        return self.ln_f(x) @ self.wte.weight.T


def train(a, model):
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1)
    x = torch.randint(0, a.vocab, (a.batch, a.seq + 1))
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    s = statistics.median(times)
    print(f"pytorch train {a.attn} {a.positions}: {a.batch * a.seq / s:.0f} tok/s "
          f"(median of {a.steps} steps, batch {a.batch}, seq {a.seq}, {torch.get_num_threads()} threads)")


@torch.no_grad()
def check_cached(a, model):
    # The cached (absorbed) path must agree with the plain forward, on a short prompt.
    prompt = torch.randint(0, a.vocab, (2, 16))
    caches = [blk.attn.new_cache(2, 16) for blk in model.blocks]
    logits = model(prompt, caches, 0)
    ref = model(prompt)
    assert torch.allclose(logits, ref, atol=1e-3), (logits - ref).abs().max()


@torch.no_grad()
def decode(a, model):
    # Fill the cache to `cache - new` (a timed-apart prefill, or random values written straight
    # in: decode time does not depend on them), then time `new` single-token steps.
    check_cached(a, model)
    new = a.new_tokens
    fill = a.cache - new
    runs = []
    for _ in range(a.repeats + 1):
        caches = [blk.attn.new_cache(a.batch, a.context) for blk in model.blocks]
        if a.fill == "random":
            for cache in caches:
                for buf in cache.values():
                    buf.narrow(-2, 0, fill).normal_()
            tok = torch.randint(0, a.vocab, (a.batch, 1))
        else:
            prompt = torch.randint(0, a.vocab, (a.batch, fill))
            tok = model(prompt, caches, 0)[:, -1:].argmax(-1)
        t0 = time.perf_counter()
        for i in range(new):
            tok = model(tok, caches, fill + i)[:, -1:].argmax(-1)
        runs.append(time.perf_counter() - t0)
    s = statistics.median(runs[1:])
    ms = 1000 * s / new
    if a.json:
        print(json.dumps({
            "torch": torch.__version__, "attn": a.attn, "positions": a.positions,
            "rank": a.rank if a.attn == "mla" else None, "batch": a.batch, "cache": a.cache,
            "model_context": a.context, "ms_per_token": ms, "threads": torch.get_num_threads(),
            "rounds_ms": [1000 * r / new for r in runs[1:]], "fill": a.fill,
        }))
    else:
        print(f"pytorch decode {a.attn} {a.positions} r={a.rank}: {a.batch * new / s:.1f} tok/s, "
              f"{ms:.2f} ms/token (cache {a.cache}, batch {a.batch}, "
              f"{torch.get_num_threads()} threads)")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["train", "decode"])
    p.add_argument("--attn", choices=["mha", "mla"], default="mha")
    p.add_argument("--positions", choices=["learned", "rope"], default="rope")
    p.add_argument("--rank", type=int, default=128)
    p.add_argument("--rope-dim", type=int, default=32)
    p.add_argument("--vocab", type=int, default=2048)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache", type=int, default=None,
                   help="decode: positions filled when the last timed step runs (default: --context)")
    p.add_argument("--fill", choices=["prefill", "random"], default="prefill",
                   help="decode: fill the cache by a prefill, or write random values into it")
    p.add_argument("--json", action="store_true", help="decode: one JSON line")
    a = p.parse_args()
    a.cache = a.cache or a.context
    if not a.new_tokens < a.cache <= a.context:
        p.error(f"--cache {a.cache}: accepted: more than --new-tokens ({a.new_tokens}) and at most --context ({a.context})")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Gpt(a)
    if a.mode == "train":
        train(a, model.train())
    else:
        decode(a, model.eval())


if __name__ == "__main__":
    main()
