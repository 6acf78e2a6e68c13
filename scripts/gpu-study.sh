#!/usr/bin/env bash
# The study on a machine with a GPU, from a prebuilt binary: no Rust toolchain and no network
# needed there. docs/backends.md, "A study on a GPU", says what the machine needs.
#
# Here, in a checkout that builds (Rust, and for wgpu the Vulkan loader, Debian's libvulkan1):
#   scripts/gpu-study.sh bundle DIR        # FEATURES=wgpu (default), or tch, or cuda
# builds the stripped binary and the library's test binary with FEATURES, and copies them into
# DIR with this script, scripts/device-check.sh, the experiment files, the files the tests read,
# for wgpu the Vulkan loader (libvulkan.so.1) and for cuda libdevice (below). It then packs DIR
# into DIR.tar.xz, which must fit 64 MiB (the two binaries share most of their bytes, which
# xz's large window finds). Copy that to the GPU machine, unpack it, then there:
#   DIR/gpu-study.sh [tests] [tiny] [paper]   # all three, in order, when none is named
#   DIR/device-check.sh OUT                   # or a check of the machine in under 8 minutes
#
# CUDA (FEATURES=cuda) builds offline through scripts/llvm-for-cubecl.sh, which this runs. Its
# kernels compile at run time through LLVM's NVPTX target (cubecl-cuda's default path), which
# needs only the driver's libcuda and, for kernels that call exp, log, tanh or erf, the CUDA
# toolkit's libdevice.10.bc: the bundle carries that one file (486 KB, from NVIDIA's
# nvidia-cuda-nvcc-cu12 wheel on PyPI) and points CUDA_PATH at it. cubecl's other path, CUDA
# C++ through NVRTC, would need NVRTC's libraries (about 100 MB) and the toolkit's headers.
#
#   tests  the library's tests (the golden and equivalence tests among them) on the GPU;
#   tiny   the tiny tier's study: every experiment of TINY with every seed of SEEDS, JOBS runs at
#          a time as separate processes (a GPU holds dozens of these 1M-parameter runs), then
#          one report over them all;
#   paper  the paper-scale files of PAPER, one after another, then their report.
#
# Everything is resumable: run it again after any interruption. Finished runs are restored from
# their records and a killed run resumes from its last checkpoint. Records (no weights) go to
# OUT/records/{tiny,paper}: copy those back and commit them. Each run's summary.json names the
# backend and the device it trained on.
#
# Settings, by environment:
#   BACKEND  wgpu (default), cuda, libtorch or cubecl-cpu: what the bundle was built with
#   SEEDS    training seeds of the tiny study (default 1-46, the study's plan: docs/results-tiny,
#            "The plan for the next look"; a range or a list, 1,2,5)
#   TINY     experiment files of the tiny study (default the rows of the paper's claims)
#   PAPER    paper-scale experiment files (default the same rows at the paper's scale)
#   CONTEXTS the cache fill levels the tiny runs' decode is benched at (default the study's)
#   JOBS     tiny runs at a time (default: from the card's memory where nvidia-smi tells it, and
#            never more than the CPU cores; else 4)
#   OUT      where runs, records and reports go (default DIR/out)
#   ALLOW_SOFTWARE=1  let wgpu run on a software adapter (Mesa's llvmpipe): for checking this
#            script on a machine without a GPU, never for measurements
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)

bundle() {
    local dir=${1:?usage: scripts/gpu-study.sh bundle DIR}
    local features=${FEATURES:-wgpu}
    cd "$HERE/.."
    if [[ $features == *cuda* || $features == *cubecl-cpu* ]]; then
        eval "$(scripts/llvm-for-cubecl.sh)"
    fi
    cargo build --release --features "$features" --bin mla-lab
    # The library's tests, built and not run; cargo names the executable on its last line.
    local tests
    tests=$(cargo test --release --features "$features" --lib --no-run --message-format=json 2>/dev/null \
        | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
    [ -x "$tests" ] || { echo "the library's test binary was not built" >&2; exit 1; }
    local target=${CARGO_TARGET_DIR:-target}
    mkdir -p "$dir/bin" "$dir/lib" "$dir/docs/results-tiny/runs"
    strip -o "$dir/bin/mla-lab" "$target/release/mla-lab"
    strip -o "$dir/bin/mla-lab-tests" "$tests"
    # The files the tests read, where they read them (MLA_LAB_SOURCE_DIR).
    mkdir -p "$dir/tests"
    cp scripts/gpu-study.sh scripts/device-check.sh "$dir/"
    cp -r experiments "$dir/"
    cp -r tests/golden "$dir/tests/"
    cp -r docs/results-tiny/runs/mha_tiny-s1 "$dir/docs/results-tiny/runs/"
    if [[ $features == *wgpu* ]]; then
        # The Vulkan loader, which finds the GPU's own driver (its ICD) on the machine.
        local loader
        loader=$(ldconfig -p | sed -n 's/.*libvulkan\.so\.1 .*=> //p' | head -n 1)
        [ -n "$loader" ] || { echo "no libvulkan.so.1 here: apt-get install libvulkan1" >&2; exit 1; }
        cp -L "$loader" "$dir/lib/libvulkan.so.1"
    fi
    if [[ $features == *cuda* ]]; then
        libdevice "$dir/cuda/nvvm/libdevice"
    fi
    echo "$features" > "$dir/FEATURES"
    du -sh "$dir"
    # One xz stream with a window larger than a binary: the second binary's LLVM and burn are
    # found in the first.
    local pack="${dir%/}.tar.xz" limit=$((64 << 20)) size
    tar -C "$(dirname "$dir")" -cf - "$(basename "$dir")" | xz -T2 -9 --lzma2=dict=256MiB > "$pack"
    size=$(stat -c %s "$pack")
    echo "$pack: $((size >> 20)) MiB ($size bytes)"
    if ((size > limit)); then
        echo "$pack is over 64 MiB" >&2
        exit 1
    fi
}

# libdevice.10.bc from NVIDIA's nvcc wheel (PyPI), into DIR: downloaded once, then cached.
libdevice() {
    local dest=$1 wheel cache="$HOME/.cache/mla-lab/nvcc-wheel"
    wheel=$(ls "$cache"/nvidia_cuda_nvcc_cu12-12.9.86-*.whl 2> /dev/null | head -n 1)
    if [ -z "$wheel" ]; then
        python3 -m pip download -q --no-deps -d "$cache" nvidia-cuda-nvcc-cu12==12.9.86
        wheel=$(ls "$cache"/nvidia_cuda_nvcc_cu12-12.9.86-*.whl | head -n 1)
    fi
    mkdir -p "$dest"
    python3 - "$wheel" "$dest" << 'PY'
import sys, zipfile
wheel, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for name, out in [("nvidia/cuda_nvcc/nvvm/libdevice/libdevice.10.bc", "libdevice.10.bc")]:
        with open(f"{dest}/{out}", "wb") as f:
            f.write(z.read(name))
    licence = [n for n in z.namelist() if n.endswith("License.txt")][0]
    with open(f"{dest}/NVIDIA-License.txt", "wb") as f:
        f.write(z.read(licence))
PY
}

if [ "${1:-}" = bundle ]; then
    shift
    bundle "$@"
    exit 0
fi

# From here on, in a bundle.
cd "$HERE"
[ -x bin/mla-lab ] || { echo "run this in a bundle (scripts/gpu-study.sh bundle DIR)" >&2; exit 2; }
export LD_LIBRARY_PATH="$HERE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ -f "$HERE/cuda/nvvm/libdevice/libdevice.10.bc" ] && [ -z "${CUDA_PATH:-}" ]; then
    export CUDA_PATH="$HERE/cuda"
fi
BACKEND=${BACKEND:-wgpu}
OUT=${OUT:-$HERE/out}
CONTEXTS=${CONTEXTS:-}
ROWS="mha mha_rope mla_half mla_rope_half mla_rope_full"
TINY=${TINY:-$(for r in $ROWS; do printf 'experiments/tiny/%s.ron ' "$r"; done)}
PAPER=${PAPER:-$(for r in $ROWS; do printf 'experiments/%s.ron ' "$r"; done)}
SEEDS=${SEEDS:-1-46}
mkdir -p "$OUT"

# The device, named; a software wgpu adapter is refused unless asked for.
DEVICES=$(bin/mla-lab --backend "$BACKEND" devices 2> /dev/null) || {
    bin/mla-lab --backend "$BACKEND" devices || true
    echo "--backend $BACKEND has no device here (docs/backends.md, \"A study on a GPU\")" >&2
    exit 1
}
DEVICE=$(tail -n 1 <<< "$DEVICES")
DEVICE=${DEVICE#--backend "$BACKEND": }
echo "device: $DEVICE"
if [[ $DEVICE == *"(software, on the CPU)"* && ${ALLOW_SOFTWARE:-0} != 1 ]]; then
    echo "that is a software rasterizer, not a GPU: set ALLOW_SOFTWARE=1 to run on it anyway" >&2
    exit 1
fi

seeds() { # 1-20 or 1,2,5 -> one seed a line
    tr ',' '\n' <<< "$SEEDS" | while IFS=- read -r a b; do seq "$a" "${b:-$a}"; done
}

jobs_for() { # tiny runs at a time: card memory over the largest run's training estimate
    if [ -n "${JOBS:-}" ]; then echo "$JOBS"; return; fi
    local mib need cores
    cores=$(nproc)
    mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits 2> /dev/null | head -n 1 || true)
    if [ -z "$mib" ]; then echo 4; return; fi
    need=$(bin/mla-lab info $TINY --json | sed -n 's/.*"train_memory_bytes":\([0-9]*\).*/\1/p' | sort -n | tail -n 1)
    # Each process also holds its own context and memory pools: 1 GiB more, measured loosely.
    local n=$((mib * 1024 * 1024 * 8 / 10 / (need + (1 << 30))))
    ((n > cores)) && n=$cores
    ((n < 1)) && n=1
    echo "$n"
}

tests_stage() {
    echo "== the library's tests on $DEVICE"
    MLA_LAB_SOURCE_DIR="$HERE" MLA_LAB_TEST_BACKEND=$BACKEND bin/mla-lab-tests 2>&1 | tee "$OUT/tests.log" | tail -n 3
    # tee hides the test binary's status.
    grep -q "^test result: ok" "$OUT/tests.log"
}

tiny_one() { # FILE SEED: one run of the tiny study, its records kept
    bin/mla-lab --backend "$BACKEND" study "$1" --seeds "$2" --probe-stories 200 ${CONTEXTS:+--contexts "$CONTEXTS"} \
        --records "$OUT/records/tiny" --artifacts "$OUT/tiny" --out "$OUT/tiny/reports/$(basename "$1" .ron)-s$2" \
        > "$OUT/tiny/logs/$(basename "$1" .ron)-s$2.log" 2>&1 \
        && echo "done $(basename "$1" .ron) seed $2" \
        || echo "FAILED $(basename "$1" .ron) seed $2: $OUT/tiny/logs/$(basename "$1" .ron)-s$2.log"
}

tiny_stage() {
    local jobs
    jobs=$(jobs_for)
    mkdir -p "$OUT/tiny/logs" "$OUT/tiny/reports"
    echo "== the tiny study: $(wc -w <<< "$TINY") experiments × seeds $SEEDS, $jobs at a time"
    # One token cache for all, made before the runs start side by side.
    bin/mla-lab data prepare $TINY --artifacts "$OUT/tiny"
    export -f tiny_one
    export BACKEND OUT CONTEXTS
    for file in $TINY; do
        for seed in $(seeds); do echo "$file $seed"; done
    done | xargs -P "$jobs" -L 1 bash -c 'tiny_one "$@"' _ | tee "$OUT/tiny/runs.log"
    if grep -q FAILED "$OUT/tiny/runs.log"; then
        echo "some runs failed (above); run again to resume them" >&2
        exit 1
    fi
    # Every run folder of these experiments: <name>-s<seed>.
    local names=() name
    for file in $TINY; do
        name=$(sed -n 's/^ *name: "\(.*\)",$/\1/p' "$file")
        names+=("$OUT/tiny/$name"-s[0-9]*)
    done
    bin/mla-lab report "${names[@]}" --out "$OUT/report-tiny"
}

paper_stage() {
    echo "== the paper-scale files, one at a time"
    bin/mla-lab --backend "$BACKEND" study $PAPER --records "$OUT/records/paper" \
        --artifacts "$OUT/paper" --out "$OUT/report-paper"
}

for stage in "${@:-tests tiny paper}"; do
    for s in $stage; do
        case $s in
        tests) tests_stage ;;
        tiny) tiny_stage ;;
        paper) paper_stage ;;
        *)
            echo "usage: gpu-study.sh [tests|tiny|paper ...], or scripts/gpu-study.sh bundle DIR" >&2
            exit 2
            ;;
        esac
    done
done
