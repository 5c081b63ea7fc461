#!/usr/bin/env bash
# Runs a command beside a real Qdrant server (../shared/bin/qdrant, or $QDRANT_BIN) on free
# loopback ports with a temporary storage and snapshot directory, with QDRANT_URL and
# QDRANT_SNAPSHOTS_PATH set for it; stops the server afterwards. Without the binary the
# command runs alone, and the Qdrant tests say they were skipped.
#   scripts/with-qdrant.sh cargo test --workspace
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${QDRANT_BIN:-$(pwd)/../shared/bin/qdrant}"
if [[ ! -x "$bin" ]]; then
  echo "with-qdrant: no Qdrant server at $bin; Qdrant tests will be skipped" >&2
  exec "$@"
fi
# Two free neighbouring ports: REST on P, gRPC on P + 1 (Qdrant's 6333 / 6334 convention,
# which the memory service assumes when no REST URL is configured).
http_port=$(python3 - <<'PY'
import socket
while True:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); port = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", port + 1)); print(port); break
    except OSError:
        pass
    finally:
        a.close(); b.close()
PY
)
grpc_port=$((http_port + 1))
dir=$(mktemp -d)
# From a directory without a config/ folder, so only these variables configure it.
(
  cd "$dir"
  QDRANT__SERVICE__HOST=127.0.0.1 \
  QDRANT__SERVICE__HTTP_PORT="$http_port" \
  QDRANT__SERVICE__GRPC_PORT="$grpc_port" \
  QDRANT__STORAGE__STORAGE_PATH="$dir/storage" \
  QDRANT__STORAGE__SNAPSHOTS_PATH="$dir/snapshots" \
  QDRANT__TELEMETRY_DISABLED=true \
    exec "$bin" >"$dir/qdrant.log" 2>&1
) &
qdrant=$!
trap 'kill "$qdrant" 2>/dev/null || true; wait "$qdrant" 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$qdrant" 2>/dev/null; then
    echo "with-qdrant: the server exited:" >&2; cat "$dir/qdrant.log" >&2; exit 1
  fi
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$http_port/readyz" >/dev/null
echo "with-qdrant: Qdrant $("$bin" --version 2>/dev/null | head -1) on 127.0.0.1:$grpc_port (gRPC), :$http_port (REST)" >&2
export QDRANT_URL="http://127.0.0.1:$grpc_port"
export QDRANT_SNAPSHOTS_PATH="$dir/snapshots"
"$@"
