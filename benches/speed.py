"""One side-by-side speed run: mla-lab and PyTorch eager on the same models, same machine, same
session, so that the ratios are not skewed by a shared machine drifting between runs.

    python3 benches/speed.py --python ENV/bin/python [--tch] [--steps 150] > speed.md

Needs a release build (`cargo build --release --benches`; with `--tch`, also the same with
`--features tch`, LIBTORCH_USE_PYTORCH=1 and ENV/bin on PATH) and PyTorch in ENV. Measures:

1. the training step, forward+backward, batch 16 x 256 (`cargo bench --bench train_step`),
   against `benches/pytorch/gpt.py train` (forward, backward, clipping and AdamW);
2. a real `mla-lab train --headless` of experiments/small/mha.ron and mla_rope_half.ron
   (validation and checkpoints as in the files, `--steps` optimizer steps, data prepared
   beforehand), its tokens/s (validation excluded, as summary.json reports it) and its CPU use,
   (user + system) / wall time of the whole process;
3. decode at paper scale (GPT-2 vocabulary, batch 1, cache filled to 512), against
   `benches/pytorch/gpt.py decode`.
"""

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["experiments/small/mha.ron", "experiments/small/mla_rope_half.ron"]
# The PyTorch twins of the two small rows, and of the paper-scale rows for decoding.
TORCH_SMALL = [["--attn", "mha", "--positions", "learned"],
               ["--attn", "mla", "--rank", "128", "--rope-dim", "32"]]
PAPER = ["--vocab", "50257", "--d-model", "384", "--heads", "6", "--layers", "6",
         "--context", "512", "--batch", "1"]
TORCH_PAPER = [["--attn", "mha", "--positions", "learned"] + PAPER,
               ["--attn", "mla", "--rank", "192", "--rope-dim", "32"] + PAPER]


def run(cmd, env=None):
    """Runs `cmd`, returns (stdout, wall seconds, CPU seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out.stdout, wall, cpu


def features_args(features):
    return ["--features", features] if features else []


def train_step(features, env):
    out, _, _ = run(["cargo", "bench", "--quiet", "--bench", "train_step"]
                    + features_args(features) + ["--"] + SMALL, env)
    rows = re.findall(r"^\| (\S+) \| \d+ \| (\d+) \| (\d+) \|$", out, re.M)
    return {name: float(both) for name, _, both in rows}


def torch_train(python, args):
    out, _, _ = run([python, "benches/pytorch/gpt.py", "train", *args, "--steps", "10"])
    return float(re.search(r": (\d+) tok/s", out).group(1))


def real_run(features, env, file, steps, backend, scratch):
    """A real training run in `scratch` (token cache shared between runs); returns (tok/s,
    cores busy, wall s)."""
    text = open(os.path.join(ROOT, file)).read()
    text = re.sub(r"max_steps: \d+", f"max_steps: {steps}", text)
    exp = os.path.join(scratch, os.path.basename(file))
    open(exp, "w").write(text)
    art = os.path.join(scratch, "artifacts")
    # Prepare the data first, so the timed run is training alone.
    cmd = ["cargo", "run", "--release", "--quiet"] + features_args(features) + ["--"]
    run(cmd + ["data", "prepare", exp, "--artifacts", art], env)
    _, wall, cpu = run(cmd + ["train", exp, "--headless", "--force", "--artifacts", art,
                              "--backend", backend], env)
    name = re.search(r'name: "([^"]+)"', text).group(1)
    summary = json.load(open(os.path.join(art, name, "summary.json")))
    if summary["tokens_per_s"] is None:
        sys.exit(f"{file}: the run recorded no tokens/s (summary.json)")
    return summary["tokens_per_s"], cpu / wall, wall


def decode(features, env, backend):
    out, _, _ = run(["cargo", "run", "--release", "--quiet"] + features_args(features)
                    + ["--", "--backend", backend, "bench", "experiments/mha.ron",
                       "experiments/mla_rope_half.ron", "--contexts", "512", "--json"], env)
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {(r["experiment"], r["decode"]): r for r in rows}


def torch_decode(python, args):
    out, _, _ = run([python, "benches/pytorch/gpt.py", "decode", *args, "--new-tokens", "64",
                     "--repeats", "7"])
    return float(re.search(r"([\d.]+) ms/token", out).group(1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--python", default=sys.executable, help="a python with torch installed")
    p.add_argument("--tch", action="store_true", help="also measure --backend libtorch")
    p.add_argument("--steps", type=int, default=150, help="optimizer steps of the real runs")
    p.add_argument("--decode-only", action="store_true", help="skip the training measurements")
    a = p.parse_args()
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(os.path.abspath(a.python)) + os.pathsep + env["PATH"]
    env.setdefault("LIBTORCH_USE_PYTORCH", "1")
    sides = [("flex", "", "cpu")] + ([("libtorch", "tch", "libtorch")] if a.tch else [])

    if not a.decode_only:
        training(a, env, sides)
    decoding(a, env, sides)


def training(a, env, sides):
    names = ["mha_small", "mla_rope_half_small"]
    torch_step = [torch_train(a.python, args) for args in TORCH_SMALL]
    step, real = {}, {}
    scratch = tempfile.mkdtemp(prefix="mla-lab-speed-")
    try:
        for label, features, backend in sides:
            step[label] = train_step(features, dict(env, BACKEND=backend))
            real[label] = [real_run(features, env, f, a.steps, backend, scratch)
                           for f in SMALL]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    torch_step += [torch_train(a.python, args) for args in TORCH_SMALL]
    torch_step = [max(torch_step[i], torch_step[i + 2]) for i in range(2)]

    print(f"Training, small models, batch 16 x 256; PyTorch {torch_version(a.python)} eager, "
          f"2 threads, best of two runs taken before and after ours.\n")
    print("| model | backend | bench fwd+bwd tok/s | real run tok/s | run ÷ bench | cores busy "
          "| PyTorch step tok/s | bench ÷ PyTorch | run ÷ PyTorch |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, _, _ in sides:
        for i, name in enumerate(names):
            b, (r, cores, _) = step[label][name], real[label][i]
            t = torch_step[i]
            print(f"| {name} | {label} | {b:.0f} | {r:.0f} | {r / b:.2f} | {cores:.2f} | {t:.0f} "
                  f"| {b / t:.2f}× | {r / t:.2f}× |")
    print()


def decoding(a, env, sides):
    print("Decode, paper scale (6 layers, d 384, GPT-2 vocabulary), batch 1, cache filled to "
          "512, ms/token (median of 7 rounds of 64 tokens; mla-lab's range in brackets).\n")
    print("| model | backend | mla-lab ms/token | PyTorch ms/token | speed vs PyTorch |")
    print("|---|---|---:|---:|---:|")
    torch_ms = [torch_decode(a.python, args) for args in TORCH_PAPER]
    for label, features, backend in sides:
        rows = decode(features, env, backend)
        for (exp, path), t in zip([("mha", "-"), ("mla_rope_half", "absorbed")], torch_ms):
            r = rows[(exp, path)]
            lo, hi = r.get("decode_ms_per_token_range") or (float("nan"), float("nan"))
            ms = r["decode_ms_per_token"]
            print(f"| {exp} ({path}) | {label} | {ms:.2f} ({lo:.2f}–{hi:.2f}) | {t:.2f} "
                  f"| {t / ms:.2f}× |")


def torch_version(python):
    out, _, _ = run([python, "-c", "import torch; print(torch.__version__)"])
    return out.strip()


if __name__ == "__main__":
    main()
