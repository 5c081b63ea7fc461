#!/usr/bin/env bash
# The GPU check: one prepared run of the binaries `scripts/build-cuda.sh build` leaves in
# target-cuda/ (carried to a machine with no Rust and no network), sized to finish in about
# 8 minutes on one H200. Everything it measures goes to $OUT (at most 8 files):
#
#   summary.md    each step's exit status and wall time, then the benchmark tables
#   env.txt       GPU, driver, libraries found, PyTorch version
#   tests.log     every CUDA test binary (each device-generic test on the CPU and the GPU;
#                 EMPO2_REQUIRE_GPU=1, so a missing GPU fails them)
#   bench.md      `empo2 bench policy` beside PyTorch eager on the same weights and workloads:
#                 the SmolLM2-135M and Qwen2-0.5B shapes with random weights, bf16, decode
#                 tokens/s at batch 1/8/32 and training tokens/s
#   train.log, metrics.jsonl
#                 a short `empo2 train` (learner and actors on the GPU, the SmolLM2-135M shape,
#                 the built-in worlds)
#
#   scripts/gpu-check.sh                 on the GPU (the device tool: carry target-cuda)
#   scripts/gpu-check.sh --device cpu    the same steps on the CPU with the tiny and small
#                                        presets in f32: how the script is tested without a GPU
#
# PyTorch comes from `python3` (the device machine's has torch and transformers) or
# $EMPO2_PYTHON; without them the PyTorch rows say so. A step that fails is recorded and the
# next one runs.
set -uo pipefail
cd "$(dirname "$0")/.."
device=cuda
bin=target-cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    *) echo "usage: $0 [--device cuda|cpu] [--bin DIR]" >&2; exit 2 ;;
  esac
done
out="${OUT:-runs/gpu-check}"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Carried to a device as one archive (scripts/build-cuda.sh build makes it).
if [ ! -x "$bin/empo2" ] && [ -f "$bin/bundle.tar.xz" ]; then
  mkdir -p "$work/bin" && tar -C "$work/bin" -xJf "$bin/bundle.tar.xz" && bin="$work/bin"
fi
bin="$(cd "$bin" && pwd)" || { echo "no binaries in $bin: run scripts/build-cuda.sh build" >&2; exit 2; }
[ -x "$bin/empo2" ] || { echo "no $bin/empo2: run scripts/build-cuda.sh build" >&2; exit 2; }
empo2="$bin/empo2"
summary="$out/summary.md"

if [ "$device" = cpu ]; then
  dtype=f32 presets="tiny small" train_preset=tiny batches=1,8 train_tokens=128
  unset EMPO2_REQUIRE_GPU
else
  dtype=bf16 presets="smollm2-135m qwen2-0.5b" train_preset=smollm2-135m batches=1,8,32
  train_tokens=256
  export EMPO2_REQUIRE_GPU=1
fi
python="${EMPO2_PYTHON:-python3}"
if ! "$python" -c "import torch, transformers" 2>/dev/null; then
  for candidate in "$HOME/.cache/empo2-bench-venv/bin/python"; do
    "$candidate" -c "import torch, transformers" 2>/dev/null && python="$candidate"
  done
fi

# libcudart.so.13 (linked) and the libraries cudarc opens (cuBLAS, cuRAND, NVRTC; libcuda is
# the driver's): from PyTorch's NVIDIA wheels, the driver's folder, or build-cuda.sh's cache.
lib_path=""
for root in $("$python" -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null) \
  /usr/local/nvidia "$HOME/.cache/empo2"; do
  [ -d "$root" ] || continue
  while IFS= read -r lib; do
    dir="$(dirname "$lib")"
    case ":$lib_path:" in *":$dir:"*) ;; *) lib_path="$lib_path${lib_path:+:}$dir" ;; esac
  done < <(find -L "$root" -maxdepth 6 \( -name 'libcudart.so.13*' -o -name 'libcublas.so.13*' \
    -o -name 'libcurand.so.10*' -o -name 'libnvrtc.so.13*' -o -name 'libcuda.so.1' \) 2>/dev/null)
done
export LD_LIBRARY_PATH="$lib_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export RUST_LOG="${RUST_LOG:-warn}"

{
  echo "# gpu-check ($device, $dtype), $(date -u +%FT%TZ)"
  echo
  echo "| step | exit | wall s |"
  echo "|---|---:|---:|"
} >"$summary"
# step NAME LIMIT_S LOG COMMAND…: runs COMMAND under a time limit, appending to LOG.
step() {
  local name="$1" limit="$2" log="$3"
  shift 3
  local start rc
  start=$(date +%s)
  echo "== $name" >>"$log"
  timeout "$limit" "$@" >>"$log" 2>&1
  rc=$?
  echo "| $name | $rc$([ $rc = 124 ] && echo ' (time limit)') | $(($(date +%s) - start)) |" >>"$summary"
  echo "$name: exit $rc"
}

{
  echo "device $device, dtype $dtype, binaries $bin"
  nvidia-smi 2>&1 || echo "no nvidia-smi"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  ldd "$empo2" 2>&1 | grep -Ei 'cuda|not found' || true
  "$python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())' 2>&1
} >"$out/env.txt"

# 1. The CUDA test binaries: every test binary beside empo2.
for test in "$bin"/*; do
  [ -x "$test" ] && [ -f "$test" ] && [ "$(basename "$test")" != empo2 ] || continue
  step "test $(basename "$test" | sed 's/-[0-9a-f]*$//')" 300 "$out/tests.log" "$test" --test-threads 4 --nocapture
done

# 2. Policy benchmarks: the same random-weight model directory for both.
: >"$out/bench.md"
for preset in $presets; do
  dir="$work/$preset"
  step "model init $preset" 120 "$out/bench.md" "$empo2" model init --preset "$preset" --out "$dir"
  echo >>"$out/bench.md"
  step "bench $preset (empo2)" 150 "$out/bench.md" "$empo2" bench policy --model "$dir" \
    --device "$device" --dtype "$dtype" --batches "$batches" --train-tokens "$train_tokens"
  if "$python" -c "import torch, transformers" 2>/dev/null; then
    step "bench $preset (pytorch)" 150 "$out/bench.md" env OMP_WAIT_POLICY=PASSIVE "$python" \
      scripts/bench_policy_torch.py "$dir" 64 64 "$train_tokens" 5 --device "$device" \
      --dtype "$dtype" --batches "$batches"
  else
    echo "| pytorch: not installed for $python, rows skipped | – |" >>"$out/bench.md"
  fi
done

# 3. A short training run: learner and actors on the device, the built-in worlds.
model="$work/$train_preset"
[ -d "$model" ] || "$empo2" model init --preset "$train_preset" --out "$model" >/dev/null
cat >"$work/train.toml" <<EOF
[memory.embedder]
kind = "hash"
[policy]
model = "$model"
device = "$device"
dtype = "$dtype"
[actor]
device = "$device"
[sft]
before_train = false
[local]
actors = 4
[eval]
variations = 4
memory_trials = 1
[train]
out_dir = "$work/train"
tasks = ["find-animal"]
variations_per_task = 4
iterations = 3
groups_per_iteration = 2
group_size = 4
max_steps = 10
max_action_tokens = 8
max_prompt_tokens = 1024
minibatch_episodes = 2
[train.optim]
lr = 1e-5
EOF
step "train ($train_preset, 3 iterations)" 240 "$out/train.log" "$empo2" train \
  --config "$work/train.toml"
cp "$work/train/metrics.jsonl" "$out/metrics.jsonl" 2>/dev/null || echo "no metrics.jsonl" >>"$summary"

{
  echo
  echo "## Benchmarks"
  echo
  echo "| model | measurement | tokens/s |"
  echo "|---|---|---:|"
  awk '/^== model init /{model=$4} /^\| (candle|pytorch)/{print "| " model " " $0}' "$out/bench.md"
  echo
  echo "## Training (metrics.jsonl)"
  echo
  echo "| iteration | mean score | sampled tokens/s | trained tokens/s | rollout s | update s |"
  echo "|---:|---:|---:|---:|---:|---:|"
  python3 - "$out/metrics.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    print(f"| {m['iteration']} | {m['mean_score']:.1f} | {m['sampled_tokens_per_s']:.0f} | "
          f"{m['trained_tokens_per_s']:.0f} | {m['rollout_s']:.1f} | {m.get('update_s', float('nan')):.1f} |")
PY
  echo
  echo "## Tests"
  echo
  echo "- on the CPU: $(grep -c '::cpu \.\.\. ok' "$out/tests.log") device-generic tests passed"
  echo "- on CUDA: $(grep -c '::cuda \.\.\. ok' "$out/tests.log") passed, $(grep -c 'skipped on CUDA' "$out/tests.log") of them skipped (no GPU)"
  echo "- failed: $(grep -c '\.\.\. FAILED' "$out/tests.log")"
  echo
  grep -E '^test result' "$out/tests.log" | sort | uniq -c
} >>"$summary"
cat "$summary"
