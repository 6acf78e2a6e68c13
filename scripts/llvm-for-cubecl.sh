#!/usr/bin/env bash
# LLVM for burn's CubeCL backends (features `cuda` and `cpu`), offline: from PyPI, not from the
# bundler's own download.
#
#   eval "$(scripts/llvm-for-cubecl.sh)"
#   cargo build --release --features cuda     # or cpu
#
# burn-cuda and burn-cpu compile their kernels through cubecl-llvm, whose build script
# (tracel-llvm-bundler) downloads a prebuilt LLVM into
#   $XDG_DATA_HOME/tracel/tracel-llvm-<bundler version>      (~/.local/share when unset)
# and skips the download when that folder holds `.tracel-llvm-installed`. It has no variable for
# a local LLVM. With a network that download just works and none of this is needed.
#
# Without one, this script installs the static, relocatable LLVM libraries that PyPI ships
# (mlc-llvm-static and its extra targets, NVPTX among them) into a venv, links them as the
# bundler's folder under a private XDG_DATA_HOME with the marker, and prints the one line to
# export. Messages go to stderr; stdout is only that line.
#
# Settings, by environment:
#   LLVM_VENV   where the wheels go     (default ~/.cache/mla-lab/llvmenv)
#   LLVM_DATA   the private data home   (default ~/.cache/mla-lab/llvm-data)
#   PYTHON      a Python >= 3.10 to make the venv with (default python3)
set -euo pipefail

# The bundler this layout is for, and the LLVM wheels that satisfy it (same major version).
BUNDLER=23.1.0-4
WHEELS="mlc-llvm-static==23.1.1.post0 mlc-llvm-static-extra-targets==23.1.1.post0"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LLVM_VENV=${LLVM_VENV:-$HOME/.cache/mla-lab/llvmenv}
LLVM_DATA=${LLVM_DATA:-$HOME/.cache/mla-lab/llvm-data}
PYTHON=${PYTHON:-python3}

say() { echo "llvm-for-cubecl: $*" >&2; }

# The bundler Cargo.lock resolves must be the one this layout names: its build script looks for
# its own version's folder and would go to the network for any other.
locked=$(awk '/^name = "tracel-llvm-bundler"$/ { getline; gsub(/version = |"/, ""); print; exit }' \
    "$ROOT/Cargo.lock")
if [ -z "$locked" ]; then
    say "Cargo.lock has no tracel-llvm-bundler: nothing to lay out (is burn's cuda/cpu feature gone?)"
    exit 1
fi
if [ "$locked" != "$BUNDLER" ]; then
    say "Cargo.lock has tracel-llvm-bundler $locked, but this script lays out the folder" \
        "tracel-llvm-$BUNDLER with LLVM ${BUNDLER%%.*} ($WHEELS)." \
        "Update BUNDLER and WHEELS in scripts/llvm-for-cubecl.sh together: the wheels' major version" \
        "must be the bundler's (see its src/config.rs, TRACEL_LLVM_VERSION)."
    exit 1
fi

if ! "$LLVM_VENV/bin/python" -m mlc_llvm_static.config --prefix > /dev/null 2>&1; then
    say "installing $WHEELS into $LLVM_VENV"
    "$PYTHON" -m venv "$LLVM_VENV"
    # shellcheck disable=SC2086 # two requirements, split on purpose
    "$LLVM_VENV/bin/pip" install -q $WHEELS
fi
prefix=$("$LLVM_VENV/bin/python" -m mlc_llvm_static.config --prefix)
version=$("$prefix/bin/llvm-config" --version)
if [ "${version%%.*}" != "${BUNDLER%%.*}" ]; then
    say "$prefix holds LLVM $version; tracel-llvm-bundler $BUNDLER needs LLVM ${BUNDLER%%.*}"
    exit 1
fi
if ! "$prefix/bin/llvm-config" --targets-built | grep -qw NVPTX; then
    say "$prefix has no NVPTX target: is mlc-llvm-static-extra-targets installed?"
    exit 1
fi

folder="$LLVM_DATA/tracel/tracel-llvm-$BUNDLER"
mkdir -p "$(dirname "$folder")"
# Laid out once: the bundler's build script reruns when its marker changes (`rerun-if-changed`),
# and with it every crate above cubecl-llvm, so a second run of this script must touch nothing.
[ "$(readlink "$folder" 2> /dev/null)" = "$prefix" ] || ln -sfn "$prefix" "$folder"
[ -e "$folder/.tracel-llvm-installed" ] || touch "$folder/.tracel-llvm-installed"
say "LLVM $version at $folder -> $prefix"
echo "export XDG_DATA_HOME=$LLVM_DATA"
