#!/usr/bin/env bash
# Soak (not in CI): the memory service, the learner and 16 actors, with tokens, for
# SOAK_MINUTES (30) minutes; from minute SOAK_HOSTILE_FROM (10) `empo2 hostile` attacks the
# memory service, the learner and an environment server beside them at SOAK_RATE (2)
# requests a second, with the token (a buggy client, not a stranger). Every minute it samples
# each process's RSS and the learner's Status. At the end it prints: RSS of each process,
# mean of the first vs the last 10 minutes; updates a minute before and during the attack;
# panics in any log; trajectories acknowledged against those trained, dropped or in flight;
# and whether every server still serves. Everything lands in $SOAK_DIR (a temp dir).
#   scripts/soak.sh            # 30 minutes
#   SOAK_MINUTES=3 SOAK_HOSTILE_FROM=1 scripts/soak.sh   # a quick try
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${SOAK_MINUTES:-30}"
hostile_from="${SOAK_HOSTILE_FROM:-10}"
rate="${SOAK_RATE:-2}"
actors="${SOAK_ACTORS:-16}"
dir="${SOAK_DIR:-$(mktemp -d /tmp/empo2-soak.XXXXXX)}"
mkdir -p "$dir"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/empo2-target}"
cargo build --release --locked --quiet
bin="$CARGO_TARGET_DIR/release/empo2"
token="soak-$(date +%s)"
export EMPO2__MEMORY__AUTH_TOKEN="$token" EMPO2__TRAIN__AUTH_TOKEN="$token" EMPO2__ENV__AUTH_TOKEN="$token"
export RUST_LOG="${RUST_LOG:-warn}"
cat >"$dir/job.toml" <<EOF
[memory.embedder]
kind = "hash"

[train]
out_dir = "$dir/run"
tasks = ["find-animal", "fetch-and-place", "power-component"]
iterations = 1000000
groups_per_iteration = 4
group_size = 4
max_steps = 8
staleness = 2
checkpoint_every = 5
lease_timeout_secs = 120
EOF

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
# Starts `empo2 NAME ARGS…` in the background, logging to $dir/NAME.log; waits for its
# "listening on ADDR" line when it serves; sets $addr.
serve() {
  local name=$1; shift
  "$bin" "$@" >"$dir/$name.out" 2>"$dir/$name.log" &
  pids+=($!)
  eval "${name}_pid=$!"
  for _ in $(seq 1 600); do
    addr=$(sed -n 's/.* listening on \(.*\)$/\1/p' "$dir/$name.out" | head -1)
    [[ -n "$addr" ]] && return
    sleep 0.1
  done
  echo "soak: $name did not start; see $dir/$name.log" >&2; exit 1
}
serve memory memory --config "$dir/job.toml" --listen 127.0.0.1:0 --data-dir "$dir/memory"
memory_addr=$addr
serve learner learner --config "$dir/job.toml" --listen 127.0.0.1:0 --memory "$memory_addr"
learner_addr=$addr
serve env env serve --config "$dir/job.toml" --listen 127.0.0.1:0
env_addr=$addr
for i in $(seq 1 "$actors"); do
  "$bin" actor --config "$dir/job.toml" --learner "$learner_addr" --memory "$memory_addr" \
    --id "soak-$i" >/dev/null 2>"$dir/actor-$i.log" &
  pids+=($!)
done
actor_pids=("${pids[@]:3}")
echo "soak: $actors actors, learner $learner_addr, memory $memory_addr, env $env_addr; $minutes min in $dir" >&2

rss() { ps -o rss= -p "$1" 2>/dev/null | tr -d ' ' || echo 0; }
echo "minute,process,rss_kib" >"$dir/rss.csv"
echo "minute,iterations" >"$dir/progress.csv"
hostile_pid=""
for minute in $(seq 0 "$minutes"); do
  if [[ "$minute" -eq "$hostile_from" ]]; then
    "$bin" hostile --learner "$learner_addr" --memory "$memory_addr" --env "$env_addr" \
      --token "$token" --requests 0 --rate "$rate" --seed "$minute" >"$dir/hostile.out" 2>"$dir/hostile.log" &
    hostile_pid=$!
    pids+=("$hostile_pid")
  fi
  echo "$minute,memory,$(rss "$memory_pid")" >>"$dir/rss.csv"
  echo "$minute,learner,$(rss "$learner_pid")" >>"$dir/rss.csv"
  echo "$minute,env,$(rss "$env_pid")" >>"$dir/rss.csv"
  total=0
  for p in "${actor_pids[@]}"; do total=$((total + $(rss "$p"))); done
  echo "$minute,actors,$total" >>"$dir/rss.csv"
  lines=$(wc -l <"$dir/run/metrics.jsonl" 2>/dev/null || echo 0)
  echo "$minute,$lines" >>"$dir/progress.csv"
  echo "soak: minute $minute: $lines iterations" >&2
  [[ "$minute" -lt "$minutes" ]] && sleep 60
done
[[ -n "$hostile_pid" ]] && kill -INT "$hostile_pid" && wait "$hostile_pid" || true

python3 - "$dir" "$hostile_from" "$minutes" <<'PY'
import csv, json, pathlib, sys
dir, hostile_from, minutes = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rss = {}
for row in csv.DictReader(open(dir / "rss.csv")):
    rss.setdefault(row["process"], []).append((int(row["minute"]), int(row["rss_kib"] or 0)))
print("RSS (MiB), mean of the first vs the last 10 minutes:")
for name, samples in rss.items():
    first = [r for m, r in samples if m < 10] or [samples[0][1]]
    last = [r for m, r in samples if m > minutes - 10] or [samples[-1][1]]
    a, b = sum(first) / len(first) / 1024, sum(last) / len(last) / 1024
    print(f"  {name:<8} {a:8.1f} -> {b:8.1f}  ({(b - a) / a * 100 if a else 0:+.1f} %)")
progress = {int(r["minute"]): int(r["iterations"]) for r in csv.DictReader(open(dir / "progress.csv"))}
def rate(lo, hi):
    return (progress[hi] - progress[lo]) / max(hi - lo, 1)
if 0 < hostile_from < minutes:
    print(f"iterations a minute: {rate(0, hostile_from):.2f} before the attack, "
          f"{rate(hostile_from, minutes):.2f} during it")
records = [json.loads(l) for l in open(dir / "run/metrics.jsonl")] if (dir / "run/metrics.jsonl").exists() else []
trained = sum(r["episodes"] for r in records)
skipped = sum(r.get("skipped_steps", 0) for r in records)
print(f"iterations {len(records)}, episodes trained {trained}, optimizer steps skipped {skipped}")
panics = [p.name for p in dir.glob("*.log") if "panicked" in p.read_text(errors="replace")]
print(f"logs with a panic: {panics or 'none'}")
PY
echo "== hostile client" ; cat "$dir/hostile.out" 2>/dev/null || true
for name in learner memory env; do
  a=$(eval echo "\$${name}_addr")
  if "$bin" health "$a" >/dev/null 2>&1; then echo "$name at $a: serving"; else echo "$name at $a: NOT SERVING"; fi
done
for p in "$learner_pid" "$memory_pid" "$env_pid"; do kill -0 "$p" 2>/dev/null || echo "process $p exited early"; done
echo "soak: everything is in $dir"
