#!/usr/bin/env bash
# The decode map (docs/decode/): decode time per step over batch × cache length at
# paper scale, for every attention variant, on flex and LibTorch, with PyTorch eager at the same
# points and the machine's bandwidth (STREAM triad) before and after, all in one sitting.
#
#   scripts/decode-map.sh run [OUT]     # measure (resumable: a finished part is kept)
#   scripts/decode-map.sh render [OUT]  # docs/decode/map.md and the plots, from OUT
#
# Settings, by environment:
#   MLA_LAB      the flex binary (default: $CARGO_TARGET_DIR or target, release/mla-lab)
#   MLA_LAB_TCH  a LibTorch build of the same revision (no LibTorch part without it)
#   PYTHON       a python with PyTorch (the newest: 2.15 here), for benches/pytorch/gpt.py
#   BATCHES      default 1,4,16,64;  CACHES  default 512,1024,2048,4096
#   TOKENS       timed decode steps per run (default 8);  REPEATS  timed rounds (default 3)
# Nothing else should run meanwhile: the machine is measured, not just the programs.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-run}
OUT=${2:-$HOME/.cache/mla-lab/decode-map}
MLA_LAB=${MLA_LAB:-${CARGO_TARGET_DIR:-target}/release/mla-lab}
BATCHES=${BATCHES:-1,4,16,64}
CACHES=${CACHES:-512,1024,2048,4096}
TOKENS=${TOKENS:-8}
REPEATS=${REPEATS:-3}
MODELS=(experiments/mha.ron experiments/gqa.ron experiments/mla_rope_half.ron
    experiments/mla_rope_half_joint.ron experiments/mla_rope_quarter.ron experiments/mla_rope_full.ron)
mkdir -p "$OUT"

# Runs "$@" into $OUT/$1 unless that file is already there (written whole, then renamed).
part() {
    local name=$1
    shift
    [ -s "$OUT/$name" ] && { echo "kept: $name"; return; }
    echo "measuring: $name"
    "$@" > "$OUT/$name.tmp" 2> "$OUT/$name.log"
    mv "$OUT/$name.tmp" "$OUT/$name"
}

bench() { # binary backend paths batches caches models...
    local bin=$1 backend=$2 paths=$3 batches=$4 caches=$5
    shift 5
    "$bin" --backend "$backend" bench "$@" --model-context 4096 --fill random \
        --mla-paths "$paths" --batch "$batches" --contexts "$caches" --decode-tokens "$TOKENS" \
        --repeats "$REPEATS" --json
}

pytorch() {
    local b c
    for b in ${BATCHES//,/ }; do
        for c in ${CACHES//,/ }; do
            "$PYTHON" benches/pytorch/gpt.py decode --attn mha --positions learned "${PAPER[@]}" \
                --batch "$b" --cache "$c"
            "$PYTHON" benches/pytorch/gpt.py decode --attn mla --rank 192 --rope-dim 32 "${PAPER[@]}" \
                --batch "$b" --cache "$c"
        done
    done
}
PAPER=(--vocab 50257 --d-model 384 --heads 6 --layers 6 --context 4096 --fill random --json
    --new-tokens "$TOKENS" --repeats "$REPEATS" --threads "$(nproc)")

case $MODE in
run)
    part bandwidth-before.json "$MLA_LAB" bandwidth --json
    part flex.jsonl bench "$MLA_LAB" cpu absorbed "$BATCHES" "$CACHES" "${MODELS[@]}"
    # The reference path, slow by design: one model on a smaller grid.
    part flex-naive.jsonl bench "$MLA_LAB" cpu naive 1,4,16 512,2048 experiments/mla_rope_half.ron
    if [ -n "${MLA_LAB_TCH:-}" ]; then
        part libtorch.jsonl bench "$MLA_LAB_TCH" libtorch absorbed "$BATCHES" "$CACHES" "${MODELS[@]}"
        part libtorch-naive.jsonl bench "$MLA_LAB_TCH" libtorch naive 1,4,16 512,2048 \
            experiments/mla_rope_half.ron
    fi
    if [ -n "${PYTHON:-}" ]; then
        part pytorch.jsonl pytorch
    fi
    part bandwidth-after.json "$MLA_LAB" bandwidth --json
    uname -a > "$OUT/machine.txt"
    lscpu >> "$OUT/machine.txt"
    git rev-parse HEAD > "$OUT/revision.txt"
    ;;
render)
    "$MLA_LAB" decode-map "$OUT" --out docs/decode
    ;;
*)
    echo "usage: scripts/decode-map.sh run|render [OUT]" >&2
    exit 2
    ;;
esac
