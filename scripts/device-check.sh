#!/usr/bin/env bash
# One short check of a GPU machine, from a bundle (scripts/gpu-study.sh bundle DIR, with
# FEATURES=cuda): no Rust toolchain and no network needed there. Sized to finish in under 8
# minutes on one H100 or H200.
#
#   DIR/device-check.sh OUT          # BACKEND=cuda by default
#
# Everything it learns goes into OUT, one file a stage, with OUT/stages.txt saying how each
# ended and how long it took:
#   devices           every backend's device here, and the one BACKEND takes (devices.txt);
#   tests             the library's tests on BACKEND, the golden and equivalence tests among
#                     them (tests.log);
#   cross             20 training steps on BACKEND against the same steps on flex, from the same
#                     seed, within the stated tolerance (cross-backend.log);
#   tiny              as many seeds of the tiny tier's mha_rope and mla_rope_half as finish in
#                     TINY_SECONDS (default 240), JOBS at a time, as separate processes; their
#                     records (summary.json, metrics.csv) in OUT/tiny, and tiny.txt;
#   paper             the paper-scale preflight and 50 timed steps of
#                     experiments/mla_rope_half.ron, and the wall time that projects for its
#                     10,000 steps (paper.txt).
# A stage whose backend has no device here is skipped, saying so in stages.txt and in its file;
# so the script runs end to end on a machine without a GPU (BACKEND=cuda: every stage after
# `devices` skipped), and BACKEND=cubecl-cpu runs every stage through CubeCL's CPU backend
# (the kernels CUDA runs, compiled by the same LLVM path for the CPU) where the bundle has it.
#
# Settings, by environment: BACKEND (cuda), TINY_SECONDS (240), TESTS_SECONDS (300), JOBS (the CPU cores,
# at most 16), SEEDS (1-16), STAGES (devices tests cross tiny paper), PAPER (the paper stage's
# file, experiments/mla_rope_half.ron).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:?usage: device-check.sh OUT}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$HERE"
[ -x bin/mla-lab ] || { echo "run this in a bundle (scripts/gpu-study.sh bundle DIR)" >&2; exit 2; }
export LD_LIBRARY_PATH="$HERE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# CUDA's LLVM path links libdevice (exp, log, tanh, erf) into kernels that call them; the bundle
# carries it, where no toolkit is installed.
if [ -f "$HERE/cuda/nvvm/libdevice/libdevice.10.bc" ] && [ -z "${CUDA_PATH:-}" ]; then
    export CUDA_PATH="$HERE/cuda"
fi
BACKEND=${BACKEND:-cuda}
TINY_SECONDS=${TINY_SECONDS:-240}
SEEDS=${SEEDS:-1-16}
STAGES=${STAGES:-devices tests cross tiny paper}
PAPER=${PAPER:-experiments/mla_rope_half.ron}
START=$SECONDS
HAVE_DEVICE=0

note() { # STAGE RESULT SECONDS WORDS: one line of stages.txt, echoed
    local line
    line=$(printf '%-8s %-8s %5ss  %s' "$1" "$2" "$3" "$4")
    echo "$line" | tee -a "$OUT/stages.txt"
}

skipped() { # STAGE FILE
    echo "skipped: --backend $BACKEND has no device here (devices.txt)" > "$OUT/$2"
    note "$1" skipped 0 "no $BACKEND device here"
}

devices_stage() {
    local t=$SECONDS
    {
        uname -a
        nvidia-smi 2>&1 || echo "nvidia-smi: not here"
        bin/mla-lab --backend "$BACKEND" devices 2>&1
    } > "$OUT/devices.txt"
    if bin/mla-lab --backend "$BACKEND" devices > /dev/null 2>&1; then
        HAVE_DEVICE=1
        note devices ok $((SECONDS - t)) "$(tail -n 1 "$OUT/devices.txt")"
    else
        note devices none $((SECONDS - t)) "$(grep "^$BACKEND " "$OUT/devices.txt" | head -n 1)"
    fi
}

tests_stage() {
    [ $HAVE_DEVICE = 1 ] || { skipped tests tests.log; return; }
    local t=$SECONDS
    MLA_LAB_SOURCE_DIR="$HERE" MLA_LAB_TEST_BACKEND=$BACKEND \
        timeout "${TESTS_SECONDS:-300}" bin/mla-lab-tests --skip twenty_training_steps > "$OUT/tests.log" 2>&1
    local rc=$? summary
    summary=$(grep "^test result:" "$OUT/tests.log" | tail -n 1)
    note tests "$([ $rc = 0 ] && echo ok || echo FAILED)" $((SECONDS - t)) "${summary:-exit $rc}"
}

cross_stage() {
    [ $HAVE_DEVICE = 1 ] || { skipped cross cross-backend.log; return; }
    local t=$SECONDS
    MLA_LAB_SOURCE_DIR="$HERE" MLA_LAB_TEST_BACKEND=$BACKEND timeout 180 bin/mla-lab-tests \
        twenty_training_steps_agree_on_every_backend --nocapture > "$OUT/cross-backend.log" 2>&1
    local rc=$?
    note cross "$([ $rc = 0 ] && echo ok || echo FAILED)" $((SECONDS - t)) \
        "$(grep 'against' "$OUT/cross-backend.log" | tr '\n' ';')"
}

seeds() { # 1-16 or 1,2,5 -> one seed a line
    tr ',' '\n' <<< "$SEEDS" | while IFS=- read -r a b; do seq "$a" "${b:-$a}"; done
}

tiny_stage() {
    [ $HAVE_DEVICE = 1 ] || { skipped tiny tiny.txt; return; }
    local t=$SECONDS jobs=${JOBS:-$(nproc)} files="experiments/tiny/mha_rope.ron experiments/tiny/mla_rope_half.ron"
    ((jobs > 16)) && jobs=16
    mkdir -p "$OUT/tiny/logs"
    # One token cache for every run, made before they start side by side.
    bin/mla-lab data prepare $files --artifacts "$OUT/tiny/runs" > "$OUT/tiny/logs/prepare.log" 2>&1
    local left=$((TINY_SECONDS - (SECONDS - t)))
    ((left < 10)) && left=10
    # timeout signals the whole group: xargs and every trainer under it (each stops at once,
    # as on Ctrl-C, and would resume from its last checkpoint).
    # Seeds in order, the two rows side by side; what has not finished when the time is up is
    # stopped (a run resumes from its last checkpoint with `train --resume`).
    for seed in $(seeds); do for f in $files; do echo "$f $seed"; done; done \
        | timeout --signal=INT "$left" xargs -P "$jobs" -L 1 bash -c \
            'bin/mla-lab --backend '"$BACKEND"' train "$0" --seed "$1" --headless --artifacts '"$OUT"'/tiny/runs \
                > '"$OUT"'/tiny/logs/$(basename "$0" .ron)-s$1.log 2>&1'
    local done=0 row
    {
        echo "tiny tier on $BACKEND: $jobs runs at a time for ${TINY_SECONDS}s (data preparation included)"
        echo "run,steps,final_val_loss,tokens_per_s,wall_time_s"
        for s in "$OUT"/tiny/runs/*/summary.json; do
            [ -f "$s" ] || continue
            row=$(sed -n 's/^ *"\(experiment\|steps\|final_val_loss\|tokens_per_s\|wall_time_s\)": \([^,]*\),*$/\2/p' "$s" | tr -d '"' | paste -sd,)
            echo "$(basename "$(dirname "$s")"),${row#*,}"
            done=$((done + 1))
        done
    } > "$OUT/tiny.txt"
    # The records of finished runs, without weights.
    for d in "$OUT"/tiny/runs/*/; do
        [ -f "$d/summary.json" ] || continue
        mkdir -p "$OUT/tiny/records/$(basename "$d")"
        cp "$d"/{summary.json,metrics.csv,experiment.ron} "$OUT/tiny/records/$(basename "$d")/" 2> /dev/null
    done
    note tiny ok $((SECONDS - t)) "$done runs finished ($jobs at a time)"
}

paper_stage() {
    [ $HAVE_DEVICE = 1 ] || { skipped paper paper.txt; return; }
    local t=$SECONDS file="$OUT/paper/mla_rope_half_50.ron" steps
    mkdir -p "$OUT/paper"
    steps=$(sed -n 's/^ *max_steps: \([0-9]*\),$/\1/p' "$PAPER")
    # The file with 50 steps, validated once at the end, and 20,000 stories instead of 100,000:
    # a step's time does not depend on the corpus's size, and its preparation would take most
    # of the budget.
    sed -e 's/max_steps: [0-9]*/max_steps: 50/' -e 's/eval_every: [0-9]*/eval_every: 50/' \
        -e 's/checkpoint_every: [0-9]*/checkpoint_every: 50/' -e 's/count: [0-9]*/count: 20000/' \
        -e 's/log_every: [0-9]*/log_every: 10/' -e 's/name: "[^"]*"/name: "mla_rope_half_50"/' \
        "$PAPER" > "$file"
    bin/mla-lab --backend "$BACKEND" train "$file" --headless --artifacts "$OUT/paper/runs" \
        > "$OUT/paper/train.log" 2>&1
    local rc=$?
    local csv="$OUT/paper/runs/mla_rope_half_50/metrics.csv"
    {
        echo "$PAPER on $BACKEND, 50 steps (exit $rc)"
        grep -m 3 "a pass of\|projected\|does not fit" "$OUT/paper/train.log"
        if [ -f "$csv" ]; then
            # Steps 10 to 50, leaving out the first steps' kernel compilation.
            awk -F, -v n="$steps" 'NR > 1 && $1 == 10 { a = $6 } NR > 1 && $1 == 50 { b = $6 }
                END { if (a != "" && b != "") printf "steps 10-50: %.1f ms a step; its %d steps: %.1f min (validation left out)\n", (b - a) / 40 * 1000, n, (b - a) / 40 * n / 60 }' "$csv"
            cp "$csv" "$OUT/paper/"
            cp "$OUT/paper/runs/mla_rope_half_50/summary.json" "$OUT/paper/" 2> /dev/null
        fi
    } > "$OUT/paper.txt"
    rm -rf "$OUT/paper/runs"/*/checkpoint "$OUT/paper/runs"/*/model.*
    note paper "$([ $rc = 0 ] && echo ok || echo FAILED)" $((SECONDS - t)) "$(tail -n 1 "$OUT/paper.txt")"
}

echo "device check: --backend $BACKEND, $(date -u +%FT%TZ), bundle $(cat FEATURES 2> /dev/null)" | tee "$OUT/stages.txt"
for stage in $STAGES; do
    case $stage in
    devices) devices_stage ;;
    tests) tests_stage ;;
    cross) cross_stage ;;
    tiny) tiny_stage ;;
    paper) paper_stage ;;
    *) echo "unknown stage $stage (devices tests cross tiny paper)" >&2; exit 2 ;;
    esac
done
# The tiny runs' token caches and weights stay out of OUT's records.
rm -rf "$OUT/tiny/runs"
note total - $((SECONDS - START)) "$(date -u +%FT%TZ)"
! grep -q FAILED "$OUT/stages.txt"
