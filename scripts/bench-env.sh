#!/usr/bin/env bash
# Environment benchmark: built-in world steps/s on one core, and the gRPC step round trip of the
# built-in world on loopback beside the ScienceWorld and TextWorld Express bridges, in one run.
#
#   scripts/bench-env.sh [extra `empo2 bench env` flags]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
logs=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$logs"' EXIT

# start_bridge SCRIPT: starts a bridge on a free port; prints its address.
start_bridge() {
  local out=$logs/$1.out
  envs/python/"$1" --listen 127.0.0.1:0 --log-level WARNING >"$out" 2>"$logs/$1.err" &
  pids+=($!)
  for _ in $(seq 600); do
    if grep -q '^listening on ' "$out"; then
      sed -n 's/^listening on //p' "$out"
      return
    fi
    sleep 0.1
  done
  echo "$1 did not start; its log:" >&2
  cat "$logs/$1.err" >&2
  exit 1
}

sw=$(start_bridge serve-scienceworld.sh)
twx=$(start_bridge serve-textworld-express.sh)
target/release/empo2 bench env \
  --remote "scienceworld=http://$sw=find-animal" \
  --remote "textworld-express=http://$twx=coin" "$@"
