#!/usr/bin/env bash
# Benchmarks the policy against PyTorch + transformers on the same weights and workloads, for
# the tiny and small presets, and SmolLM2-135M decode against llama.cpp (llama-cpp-python, built
# from source in the same venv) on the same GGUF when models/ has it. Creates its PyTorch venv on first use (~5 GB, a few minutes) in
# ~/.cache/empo2-bench-venv; CI never runs this. Run on an idle machine: PyTorch's OpenMP
# threads spin, and any other load on the cores slows it many times over.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${EMPO2_BENCH_VENV:-$HOME/.cache/empo2-bench-venv}"
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c "import torch, transformers" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check torch transformers
fi
if ! "$venv/bin/python" -c "import llama_cpp" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check llama-cpp-python || echo "llama-cpp-python did not build; skipping llama.cpp"
fi
cargo build --release --quiet
empo2="${CARGO_TARGET_DIR:-$HOME/.cache/empo2-target}/release/empo2"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_WAIT_POLICY=PASSIVE
for preset in tiny small; do
  "$empo2" model init --preset "$preset" --out "$work/$preset" >/dev/null
  echo "## $preset"
  RUST_LOG=warn "$empo2" bench policy --model "$work/$preset" --train-steps 5
  "$venv/bin/python" scripts/bench_policy_torch.py "$work/$preset" 64 64 256 5
done
smollm=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [[ -f $smollm ]]; then
  echo "## SmolLM2-135M-Instruct (Q4_1 GGUF; empo2 dequantises to f32)"
  RUST_LOG=warn "$empo2" bench policy --model "$smollm" --train-tokens 32 --train-steps 1
  if "$venv/bin/python" -c "import llama_cpp" 2>/dev/null; then
    "$venv/bin/python" scripts/bench_smollm2_llamacpp.py "$smollm" 64 64
  fi
fi
