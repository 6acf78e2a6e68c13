#!/usr/bin/env bash
# The tiny tier's calibration runs (docs/results-tiny/calibration.md), two at a time with one
# thread each (on 2 cores that trains as fast in total as one run with two threads, measured).
# Resumable: after any interruption run it again; finished runs are left as they are.
#
#   MLA_LAB=path/to/mla-lab-built-with-tch ART=~/.cache/mla-lab/tiny experiments/tiny-calibration/run.sh
#   mla-lab calibrate $ART/*_tiny_calib --out docs/results-tiny
set -euo pipefail
cd "$(dirname "$0")/../.."
MLA_LAB=${MLA_LAB:-target/release/mla-lab}
ART=${ART:-$HOME/.cache/mla-lab/tiny}
BACKEND=${BACKEND:-libtorch}

train() {
    local file=$1 dir
    dir="$ART/$(basename "$file" .ron)_tiny_calib"
    local args=(--backend "$BACKEND" train "$file" --artifacts "$ART" --headless)
    if compgen -G "$dir/checkpoint/scheduler-*.bpk" > /dev/null || [ -f "$dir/summary.json" ]; then
        args+=(--resume)
    fi
    OMP_NUM_THREADS=1 "$MLA_LAB" "${args[@]}" > "$ART/$(basename "$file" .ron).log" 2>&1
}

mkdir -p "$ART"
for pair in "mha_rope mla_rope_half" "mha mla_half"; do
    read -r a b <<< "$pair"
    train "experiments/tiny-calibration/$a.ron" &
    train "experiments/tiny-calibration/$b.ron"
    wait
done
