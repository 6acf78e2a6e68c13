#!/usr/bin/env bash
# Decode speed against context (docs/results-tiny/bench/): the tiny tier and the paper-scale
# files, random weights, built with a context of 2048 (`--model-context`) so the cache can fill
# past the 256 and 512 they train at. One interleaved bench per scale, on a quiet machine.
#
#   MLA_LAB=target/release/mla-lab experiments/tiny/bench-context.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
MLA_LAB=${MLA_LAB:-target/release/mla-lab}
BACKEND=${BACKEND:-cpu}
OUT=${OUT:-docs/results-tiny/bench}
mkdir -p "$OUT"
rows=(mha.ron mha_rope.ron mla_rope_half.ron mla_rope_full.ron)
for scale in tiny paper; do
    dir=experiments/tiny/
    [ "$scale" = paper ] && dir=experiments/
    "$MLA_LAB" --backend "$BACKEND" bench "${rows[@]/#/$dir}" --model-context 2048 \
        --contexts 128,256,512,1024,2048 --repeats "${REPEATS:-5}" > "$OUT/$scale.md"
done
