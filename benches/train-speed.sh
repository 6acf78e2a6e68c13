#!/usr/bin/env bash
# Training speed of every CPU backend side by side, in one sitting: flex, burn's CubeCL CPU
# backend (cubecl-cpu), LibTorch, and PyTorch eager's step, on the tiny and the small tier's two
# headline rows (MHA+RoPE or MHA, and MLA+RoPE r = d/2).
#
#   MLA_LAB=... MLA_LAB_CUBECL=... MLA_LAB_TCH=... PYTHON=.../bin/python \
#       benches/train-speed.sh [OUT]          # a Markdown table on stdout, logs in OUT
#
#   MLA_LAB         a release binary of the default build (flex); its rows are run twice: with
#                   mla-lab's fused kernels (`flex`) and with burn's composed operations
#                   (`flex, burn composed`: the same binary with `--composed`)
#   MLA_LAB_BEFORE  another default build to set beside it (optional: `flex, before`), such as
#                   main before a change
#   MLA_LAB_CUBECL  one built with --features cubecl-cpu (optional: the rows are left out)
#   MLA_LAB_TCH     one built with --features tch (optional)
#   PYTHON          a python with PyTorch (optional), for benches/pytorch/gpt.py train
#   TINY_STEPS, SMALL_STEPS   optimizer steps of each real run (default 60 and 20)
#   CUBECL_LIMIT  seconds a cubecl-cpu run may take (default 300): past it the run is stopped and
#                 its row says how far it got ("no step in 300 s"), so that a backend too slow to
#                 time still gets its row in the sitting
#
# Each mla-lab figure is a real `train --headless` run (data prepared beforehand, validation
# left out, as summary.json counts it), over the steps after the first logged row, so that a
# backend's first-step work (CubeCL compiles every kernel through LLVM then) is shown apart:
# "first row s" is the wall time to the first logged row, "steady tok/s" the rate after it.
# PyTorch's figure is gpt.py's timed steps (forward, backward, clipping, AdamW) after warm-up.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$(mktemp -d)}
mkdir -p "$OUT"
: "${MLA_LAB:?MLA_LAB: the default release binary}"
TINY_STEPS=${TINY_STEPS:-60}
SMALL_STEPS=${SMALL_STEPS:-20}

# tier file steps torch-args
ROWS=(
    "tiny experiments/tiny/mha_rope.ron $TINY_STEPS --attn mha --positions rope --vocab 2048 --d-model 128 --heads 4 --layers 4"
    "tiny experiments/tiny/mla_rope_half.ron $TINY_STEPS --attn mla --rank 64 --rope-dim 16 --vocab 2048 --d-model 128 --heads 4 --layers 4"
    "small experiments/small/mha.ron $SMALL_STEPS --attn mha --positions learned"
    "small experiments/small/mla_rope_half.ron $SMALL_STEPS --attn mla --rank 128 --rope-dim 32"
)

# FILE STEPS: the file with STEPS steps, logged every 5, validated and checkpointed only at the end.
shortened() {
    local out="$OUT/$(basename "$1")"
    sed -e "s/max_steps: [0-9]*/max_steps: $2/" -e "s/log_every: [0-9]*/log_every: 5/" \
        -e "s/eval_every: [0-9]*/eval_every: $2/" -e "s/checkpoint_every: [0-9]*/checkpoint_every: $2/" \
        -e "s/warmup_steps: [0-9]*/warmup_steps: 2/" \
        "$ROOT/$1" > "$out"
    echo "$out"
}

# BIN BACKEND FILE [LIMIT [FLAG]]: "tok/s steady, first row s, cores busy" of one real run; past
# LIMIT seconds it is stopped and says so; FLAG is passed to the binary.
real_run() {
    local bin=$1 backend=$2 file=$3 limit=${4:-} flag=${5:-} name art
    name=$(sed -n 's/^ *name: "\(.*\)",$/\1/p' "$file")
    art="$OUT/art-$backend"
    "$bin" data prepare "$file" --artifacts "$art" > /dev/null 2>&1
    local TIMEFORMAT="%R %U %S"
    local rc=0
    {
        time ${limit:+timeout "$limit"} "$bin" --backend "$backend" $flag train "$file" --headless --force \
            --artifacts "$art" > "$OUT/$name-$backend.log" 2>&1
    } 2> "$OUT/$name-$backend.time" || rc=$?
    local csv="$art/$name/metrics.csv"
    if [ "$rc" = 124 ]; then
        local rows=0
        [ -f "$csv" ] && rows=$(($(wc -l < "$csv") - 1))
        echo "stopped: $rows logged rows in ${limit} s"
        return
    fi
    [ "$rc" = 0 ] || { echo "failed failed failed"; return; }
    # Steady rate: tokens between the first and the last logged row over the time between them.
    awk -F, -v tokens="$(per_step "$file")" 'NR == 2 { s0 = $1; t0 = $6 } NR > 2 { s1 = $1; t1 = $6 }
        END { printf "%.0f %.1f ", (s1 - s0) * tokens / (t1 - t0), t0 }' "$csv"
    read -r wall user sys < "$OUT/$name-$backend.time"
    awk -v w="$wall" -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f\n", (u + s) / w }'
}

per_step() { # tokens per optimizer step of FILE
    local b c
    b=$(sed -n 's/^ *batch_size: \([0-9]*\),$/\1/p' "$1")
    c=$(sed -n 's/^ *context: \([0-9]*\),$/\1/p' "$1")
    echo $((b * c))
}

echo "Training speed, one sitting, $(date -u +%FT%TZ), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at the start"
echo
echo "| tier | experiment | backend | steps | steady tok/s | first row s | cores busy | PyTorch step tok/s | steady ÷ PyTorch |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|"
for row in "${ROWS[@]}"; do
    read -r tier file steps torch_args <<< "$row"
    short=$(shortened "$file" "$steps")
    torch="-"
    if [ -n "${PYTHON:-}" ]; then
        # shellcheck disable=SC2086 # the model's flags, split on purpose
        torch=$("$PYTHON" "$ROOT/benches/pytorch/gpt.py" train $torch_args --steps 10 2> /dev/null \
            | sed -n 's/.*: \([0-9]*\) tok\/s.*/\1/p' | head -n 1)
    fi
    for side in "flex:$MLA_LAB:cpu:" "flex, burn composed:$MLA_LAB:cpu:--composed" \
        "flex, before:${MLA_LAB_BEFORE:-}:cpu:" "cubecl-cpu:${MLA_LAB_CUBECL:-}:cubecl-cpu:" \
        "libtorch:${MLA_LAB_TCH:-}:libtorch:"; do
        IFS=: read -r label bin backend flag <<< "$side"
        [ -n "$bin" ] || continue
        limit=""
        [ "$backend" = cubecl-cpu ] && limit=${CUBECL_LIMIT:-300}
        result=$(real_run "$bin" "$backend" "$short" "$limit" "$flag")
        if [[ $result == stopped:* ]]; then
            echo "| $tier | $(basename "$file" .ron) | $label | $steps | ${result#stopped: } | - | - | $torch | - |"
            continue
        fi
        read -r rate first cores <<< "$result"
        ratio="-"
        [[ $torch =~ ^[0-9]+$ && $rate =~ ^[0-9]+$ ]] && ratio=$(awk -v r="$rate" -v t="$torch" 'BEGIN { printf "%.2f×", r / t }')
        echo "| $tier | $(basename "$file" .ron) | $label | $steps | $rate | $first | $cores | $torch | $ratio |"
    done
done
echo
echo "PyTorch: $([ -n "${PYTHON:-}" ] && "$PYTHON" -c 'import torch; print(torch.__version__)' 2> /dev/null || echo none), benches/pytorch/gpt.py train, 2 threads. Load at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
