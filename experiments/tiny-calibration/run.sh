#!/usr/bin/env bash
# The tiny tier's calibration runs (docs/results-tiny/README.md), with one thread each (on 2 cores
# two runs side by side train as fast in total as one run with two threads, measured).
# Resumable: after any interruption run it again; finished runs are left as they are.
#
#   MLA_LAB=path/to/mla-lab-built-with-tch ART=~/.cache/mla-lab/tiny experiments/tiny-calibration/run.sh
#   mla-lab calibrate $ART/*_tiny_calib --out docs/results-tiny
#
#   experiments/tiny-calibration/run.sh sweep    # the learning-rate sweep, two at a time
#   (mla_rope_half at 2e-3, 4e-3, 8e-3; mha and mha_rope at the same three)
set -euo pipefail
cd "$(dirname "$0")/../.."
MLA_LAB=${MLA_LAB:-target/release/mla-lab}
ART=${ART:-$HOME/.cache/mla-lab/tiny}
BACKEND=${BACKEND:-libtorch}

SWEEP=docs/results-tiny/lr-sweep

name_of() { sed -n 's/^ *name: "\(.*\)",$/\1/p' "$1"; }

train() {
    local file=$1 name dir
    name=$(name_of "$file")
    dir="$ART/$name"
    local args=(--backend "$BACKEND" train "$file" --artifacts "$ART" --headless)
    if compgen -G "$dir/checkpoint/scheduler-*.bpk" > /dev/null || [ -f "$dir/summary.json" ]; then
        args+=(--resume)
    fi
    OMP_NUM_THREADS=1 "$MLA_LAB" "${args[@]}" > "$ART/$name.log" 2>&1
}

# One sweep run, then its records (no weights) into $SWEEP.
sweep_one() {
    local name
    name=$(name_of "$1")
    train "$1"
    mkdir -p "$SWEEP/$name"
    cp "$ART/$name"/{experiment.ron,metrics.csv,summary.json} "$SWEEP/$name/"
}

mkdir -p "$ART"
case ${1:-calibration} in
calibration)
    for pair in "mha_rope mla_rope_half" "mha mla_half"; do
        read -r a b <<< "$pair"
        train "experiments/tiny-calibration/$a.ron" &
        train "experiments/tiny-calibration/$b.ron"
        wait
    done
    ;;
sweep)
    # Two at a time, one thread each: the sweep is nine runs. A run whose records are in
    # docs/results-tiny/lr-sweep is done (a later session restores nothing: the sweep keeps only
    # its experiment, metrics and summary); each finished run's records land there to commit.
    files=()
    for file in experiments/tiny-calibration/*_lr*.ron; do
        [ -f "$SWEEP/$(name_of "$file")/summary.json" ] || files+=("$file")
    done
    for ((i = 0; i < ${#files[@]}; i += 2)); do
        sweep_one "${files[$i]}" &
        if ((i + 1 < ${#files[@]})); then sweep_one "${files[$((i + 1))]}"; fi
        wait
    done
    ;;
*)
    echo "usage: run.sh [calibration|sweep]" >&2
    exit 2
    ;;
esac
