#!/usr/bin/env bash
# Builds empo2 with `--features cuda` on a machine without a CUDA toolkit or GPU. nvcc, NVVM,
# the headers and libcudart come from NVIDIA's PyPI wheels of one CUDA release (13.0.x: the
# lent H200's driver 580 cannot JIT PTX from a newer nvcc), unpacked once into a cache.
# cudarc loads libcuda, cuBLAS, cuRAND and NVRTC when the program starts (dynamic loading,
# see vendor/README.md), so nothing else is needed to build; the machine that runs the
# binary needs an NVIDIA driver and those libraries on LD_LIBRARY_PATH (PyTorch's cu13
# wheels have them: scripts/gpu-check.sh finds them).
#
#   scripts/build-cuda.sh check [CAP]   cargo check --features cuda of the crates with GPU code
#   scripts/build-cuda.sh build [CAP]   release binary + the CUDA test binaries, stripped copies
#                                       in target-cuda/, and all of them in
#                                       target-cuda/bundle.tar.xz (what is carried to a device)
#
# CAP is the compute capability the kernels are compiled for: 90 (H100/H200) by default.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-build}"
cap="${2:-90}"
release=13.0.88
cccl=13.0.85
root="${EMPO2_CUDA_CACHE:-$HOME/.cache/empo2/cuda-$release}"
cuda="$root/nvidia/cu13"

if [ ! -x "$cuda/bin/nvcc" ]; then
  echo "== fetching nvcc, NVVM, headers and libcudart $release from PyPI into $root"
  wheels="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps --dest "$wheels" \
    "nvidia-cuda-nvcc==$release" "nvidia-nvvm==$release" "nvidia-cuda-crt==$release" \
    "nvidia-cuda-runtime==$release" "nvidia-cuda-cccl==$cccl"
  mkdir -p "$root"
  for wheel in "$wheels"/*.whl; do
    python3 -m zipfile -e "$wheel" "$root"
  done
  rm -rf "$wheels"
  chmod +x "$cuda"/bin/* "$cuda"/nvvm/bin/* 2>/dev/null || true
  # The linker looks for the unversioned name.
  ln -sf libcudart.so.13 "$cuda/lib/libcudart.so"
fi

export CUDA_ROOT="$cuda" CUDA_PATH="$cuda" CUDA_COMPUTE_CAP="$cap"
export PATH="$cuda/bin:$PATH"
export LIBRARY_PATH="$cuda/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/empo2-target}"
export CARGO_INCREMENTAL=0
nvcc --version | tail -2

case "$mode" in
  check)
    # The crates whose code changes with the feature: the policy (candle's CUDA backend) and
    # everything built on it.
    cargo check --locked --all-targets -p empo2 -p policy -p learner --features empo2/cuda,policy/cuda,learner/cuda
    ;;
  build)
    cargo build --locked --release --features cuda
    out=target-cuda
    rm -rf "$out" && mkdir -p "$out"
    cp "$CARGO_TARGET_DIR/release/empo2" "$out/"
    # The policy and learner test binaries, built once; cargo names them in its JSON messages.
    cargo test --locked --release --features policy/cuda,learner/cuda --no-run -p policy -p learner \
      --message-format json >"$out/artifacts.json"
    python3 - "$out" <<'PY'
import json, shutil, sys
out = sys.argv[1]
for line in open(f"{out}/artifacts.json"):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        shutil.copy(m["executable"], out)
PY
    rm "$out/artifacts.json"
    strip "$out"/*
    # One solid archive: the binaries share candle's kernels (~50 MB each), which a large
    # dictionary stores once — ~900 MB of binaries in ~25 MB, under the device's 64 MiB.
    tar -C "$out" -cf - . | xz -T1 --lzma2=preset=6,dict=512MiB >"$out.tar.xz"
    mv "$out.tar.xz" "$out/bundle.tar.xz"
    ls -la "$out"
    ;;
  *)
    echo "usage: $0 check|build [compute capability, default 90]" >&2
    exit 2
    ;;
esac
