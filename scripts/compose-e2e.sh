#!/usr/bin/env bash
# `docker compose up`, for real, on this machine: the repository's own Dockerfiles and
# docker-compose.yml, Qdrant, the memory service on the Qdrant backend, the learner, two actors,
# the ScienceWorld bridge and `register`.
#
#   scripts/compose-e2e.sh            # both passes (~25 min cold on 2 cores, ~6 min warm)
#
# 1. Docker: starts `dockerd` if none answers (as root, installs Debian's docker.io and
#    docker-compose first if they are missing).
# 2. Base images: each image the Dockerfiles and the compose file name is used if present,
#    pulled if a registry answers, and otherwise built here as a stand-in from Debian's
#    packages (`debootstrap --variant=minbase bookworm`, then `docker import`; with the extra
#    certificate authorities this machine trusts, e.g. an egress proxy's): debian:bookworm-slim;
#    rust:<host's rustc>-bookworm (that image plus gcc and this machine's Rust toolchain);
#    python:3.11-slim-bookworm (Debian's Python 3.11 in a venv on PATH); qdrant/qdrant:<tag>
#    (Debian plus ../shared/bin/qdrant). Stand-ins carry the label org.empo2.stand-in.
# 3. Builds empo2:latest (deploy/Dockerfile, BuildKit) and empo2-bridge:latest
#    (deploy/bridge.Dockerfile).
# 4. Pass 1: `docker-compose up` until the learner exits 0; checks metrics.jsonl (one line per
#    iteration) and the checkpoints in the learner's volume, tips in Qdrant, ScienceWorld
#    episodes played through the bridge and `register` exiting 0.
# 5. Pass 2: from empty volumes again; once the learner has checkpointed, its process gets
#    SIGKILL; Docker restarts it (restart: on-failure), it resumes from the checkpoint and
#    finishes. Ends with `down -v` (also when a check fails).
#
# Variables: EMPO2_E2E_ITERATIONS (default 6; the compose file's config says 20, a second file
# overrides it and checkpoint_every for this run), EMPO2_E2E_CACHE (rootfs and logs; default
# /var/cache/empo2-e2e), EMPO2_E2E_TIMEOUT (seconds a pass may take; default 1200).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
cache=${EMPO2_E2E_CACHE:-/var/cache/empo2-e2e}
iterations=${EMPO2_E2E_ITERATIONS:-6}
pass_timeout=${EMPO2_E2E_TIMEOUT:-1200}
project=empo2e2e
token=e2e-$(date +%s)
mkdir -p "$cache"
work=$(mktemp -d)
compose() { docker-compose -p "$project" -f docker-compose.yml -f "$work/e2e.yml" "$@"; }
cleanup() {
  [[ -f $work/e2e.yml ]] && compose down -v --remove-orphans >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

log() { printf '== [%5ds] %s\n' "$SECONDS" "$*"; }
die() {
  echo "compose-e2e: FAILED: $*" >&2
  exit 1
}

# ---- 1. docker ------------------------------------------------------------------------------
if ! command -v dockerd >/dev/null || ! command -v docker-compose >/dev/null; then
  [[ $(id -u) == 0 ]] || die "needs dockerd and docker-compose (as root: apt-get install docker.io docker-compose)"
  log "installing docker.io and docker-compose (Debian)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose debootstrap >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (log: $cache/dockerd.log)"
  nohup dockerd >"$cache/dockerd.log" 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || die "dockerd did not start (see $cache/dockerd.log)"
fi
# BuildKit: the Dockerfile's cache mounts need it. A docker CLI without buildx cannot use it;
# Debian's own CLI (beside its dockerd) has it built in.
docker=docker
if ! docker buildx version >/dev/null 2>&1 && [[ -x /usr/bin/docker ]]; then docker=/usr/bin/docker; fi
export DOCKER_BUILDKIT=1
log "docker: $(docker version --format 'server {{.Server.Version}}, client {{.Client.Version}}'), docker-compose $(docker-compose version --short)"

# ---- 2. base images -------------------------------------------------------------------------
have() { docker image inspect "$1" >/dev/null 2>&1; }
# Present, or pulled (a registry that does not answer gives up within 30 s).
present_or_pulled() { have "$1" || timeout 30 docker pull -q "$1" >/dev/null 2>&1; }
context() { echo "$work/stand-in/${1//[:\/]/_}"; } # NAME: the build context of its stand-in
stand_in() { # NAME DOCKERFILE-TEXT: builds NAME from its context (files put there before)
  local name=$1 dir
  dir=$(context "$1")
  mkdir -p "$dir"
  printf '%s\n' "$2" >"$dir/Dockerfile"
  log "building the stand-in $name"
  "$docker" build -q -t "$name" "$dir" >/dev/null
}
rust_version=$(rustc --version | sed -E 's/^rustc ([0-9]+\.[0-9]+).*/\1/')
qdrant_image=$(sed -nE 's/^ *image: (qdrant\/qdrant:[^ ]+)$/\1/p' docker-compose.yml)

if ! present_or_pulled debian:bookworm-slim; then
  rootfs=$cache/bookworm
  if [[ ! -f $rootfs/.complete ]]; then
    log "debootstrap --variant=minbase bookworm (Debian's mirror)"
    rm -rf "$rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 ||
      die "debootstrap failed (see $cache/debootstrap.log)"
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
    touch "$rootfs/.complete"
  fi
  # Certificate authorities this machine trusts beyond Debian's (an egress proxy's): images
  # that install ca-certificates then trust them too, so builds reach the registries.
  mkdir -p "$rootfs/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
  log "importing the stand-in debian:bookworm-slim"
  tar -C "$rootfs" --exclude=./.complete -c . |
    docker import --change 'CMD ["bash"]' \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - debian:bookworm-slim >/dev/null
fi

if ! present_or_pulled "rust:$rust_version-bookworm"; then
  sysroot=$(rustc --print sysroot)
  dir=$(context "rust:$rust_version-bookworm")
  mkdir -p "$dir/toolchain"
  cp -a "$sysroot/bin" "$sysroot/lib" "$dir/toolchain/"
  stand_in "rust:$rust_version-bookworm" "FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates gcc g++ libc6-dev make pkg-config && rm -rf /var/lib/apt/lists/*
COPY toolchain /usr/local/rust
ENV CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LABEL org.empo2.stand-in=\"Debian bookworm + the host's $(rustc --version)\""
fi

if ! present_or_pulled python:3.11-slim-bookworm; then
  stand_in python:3.11-slim-bookworm "FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv && rm -rf /var/lib/apt/lists/* \\
 && python3 -m venv /usr/local/python
ENV PATH=/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
LABEL org.empo2.stand-in=\"Debian bookworm's Python 3.11 in a venv\""
fi

if ! present_or_pulled "$qdrant_image"; then
  dir=$(context "$qdrant_image")
  mkdir -p "$dir"
  "$repo/../shared/bin/qdrant" --version >/dev/null # unpacks it into the cache
  cp "${EMPO2_SHARED_CACHE:-$HOME/.cache/empo2-shared}/qdrant-1.19.0" "$dir/qdrant"
  stand_in "$qdrant_image" "FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \\
 && mkdir -p /qdrant/storage /qdrant/snapshots
COPY qdrant /qdrant/qdrant
WORKDIR /qdrant
ENV QDRANT__TELEMETRY_DISABLED=true
EXPOSE 6333 6334
CMD [\"./qdrant\"]
LABEL org.empo2.stand-in=\"Debian bookworm + ../shared/bin/qdrant ($("$repo/../shared/bin/qdrant" --version))\""
fi

# ---- 3. the repository's images -------------------------------------------------------------
log "docker build -f deploy/Dockerfile -t empo2:latest ."
"$docker" build --progress=plain --build-arg "RUST_VERSION=$rust_version" -f deploy/Dockerfile -t empo2:latest . \
  >"$cache/build-empo2.log" 2>&1 || { tail -30 "$cache/build-empo2.log"; die "building empo2:latest"; }
log "docker build -f deploy/bridge.Dockerfile -t empo2-bridge:latest ."
"$docker" build --progress=plain -f deploy/bridge.Dockerfile -t empo2-bridge:latest . \
  >"$cache/build-bridge.log" 2>&1 || { tail -30 "$cache/build-bridge.log"; die "building empo2-bridge:latest"; }
docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^empo2' | sed 's/^/   /'

# ---- 4./5. the compose passes ---------------------------------------------------------------
cat >"$work/e2e.yml" <<EOF
# compose-e2e.sh: a shorter run than the quickstart config's.
services:
  learner:
    environment:
      EMPO2__TRAIN__ITERATIONS: "$iterations"
      EMPO2__TRAIN__CHECKPOINT_EVERY: "2"
EOF
export EMPO2_TOKEN=$token EMPO2_ACTORS=2

container() { compose ps -q "$1" | head -1; }
state() { docker inspect -f '{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}' "$1"; }
metrics_lines() { compose exec -T learner sh -c 'wc -l < /data/run/metrics.jsonl' 2>/dev/null | tr -d '\r ' || true; }
wait_for_exit() { # SERVICE: waits until its container has exited, prints the exit code
  local id deadline=$((SECONDS + pass_timeout))
  id=$(container "$1")
  while [[ $(docker inspect -f '{{.State.Status}}' "$id") != exited ]] ||
    [[ $(docker inspect -f '{{.State.Restarting}}' "$id") == true ]]; do
    ((SECONDS < deadline)) || {
      compose logs --tail 40 >&2
      die "$1 still running after ${pass_timeout}s"
    }
    sleep 5
  done
  docker inspect -f '{{.State.ExitCode}}' "$id"
}
check_run() { # PASS: the learner's volume, Qdrant, the bridge, register
  local out="$work/run-$1" last steps
  docker cp "$(container learner):/data/run" "$out"
  [[ -f $out/metrics.jsonl ]] || die "pass $1: no metrics.jsonl in the learner's volume"
  last=$(tail -1 "$out/metrics.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["iteration"])')
  [[ $last == "$((iterations - 1))" ]] || die "pass $1: the last metrics line is iteration $last, not $((iterations - 1))"
  python3 - "$out/metrics.jsonl" "$iterations" <<'PY' || die "pass $1: metrics.jsonl"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
its = [r["iteration"] for r in rows]
assert its == list(range(int(sys.argv[2]))), f"iterations {its}: one line per iteration, in order"
assert all(r["episodes"] > 0 for r in rows), "an iteration without episodes"
print(f"   metrics.jsonl: {len(rows)} lines, iterations 0..{its[-1]}, "
      f"mean score {rows[0]['mean_score']:.1f} -> {rows[-1]['mean_score']:.1f}, "
      f"memory share {sum(r['memory_share'] for r in rows) / len(rows):.0%}")
PY
  steps=$(find "$out/checkpoints" -mindepth 1 -maxdepth 1 -type d -name 'step-*' | wc -l)
  ((steps > 0)) || die "pass $1: no checkpoints"
  echo "   checkpoints: $(cd "$out/checkpoints" && echo step-*)"
  local points
  points=$(compose exec -T qdrant bash -c "exec 3<>/dev/tcp/127.0.0.1/6333 && printf 'GET /collections/empo2_tips HTTP/1.0\r\napi-key: $token\r\n\r\n' >&3 && cat <&3" |
    sed -nE 's/.*"points_count":([0-9]+).*/\1/p')
  ((${points:-0} > 0)) || die "pass $1: no tips in Qdrant's collection empo2_tips"
  echo "   Qdrant: empo2_tips holds $points points (tips and visited states), reached with the API key only"
  local played
  played=$(compose logs --no-color sciworld | grep -c 'closed .* after [0-9]* steps' || true)
  ((played > 0)) || die "pass $1: no ScienceWorld episode was played through the bridge"
  echo "   ScienceWorld: $played episodes played through the bridge"
  [[ $(wait_for_exit register) == 0 ]] || die "pass $1: register did not exit 0"
  echo "   register: exited 0"
}

log "pass 1: docker-compose up (qdrant, memory, learner, 2 actors, sciworld, register), $iterations iterations"
compose down -v --remove-orphans >/dev/null 2>&1 || true
compose up -d --no-build --scale actor=2 >"$cache/up-1.log" 2>&1 || { cat "$cache/up-1.log"; die "up"; }
code=$(wait_for_exit learner)
[[ $code == 0 ]] || { compose logs --tail 60 learner >&2; die "pass 1: the learner exited $code"; }
log "pass 1: the learner exited 0 ($(compose ps --services --filter status=running | tr '\n' ' ')still running)"
check_run 1
compose logs --no-color >"$cache/compose-1.log" 2>&1
compose down -v --remove-orphans >/dev/null 2>&1

log "pass 2: again from empty volumes; SIGKILL to the learner once it has checkpointed"
compose up -d --no-build --scale actor=2 >"$cache/up-2.log" 2>&1 || { cat "$cache/up-2.log"; die "up"; }
deadline=$((SECONDS + pass_timeout))
until [[ $(metrics_lines) -ge 3 ]]; do
  ((SECONDS < deadline)) || die "pass 2: the learner wrote no 3 iterations in ${pass_timeout}s"
  sleep 2
done
learner=$(container learner)
init_pid=$(docker inspect -f '{{.State.Pid}}' "$learner")
empo2_pid=$(pgrep -P "$init_pid" | head -1)
[[ -n $empo2_pid ]] || die "pass 2: no learner process under the container's init ($init_pid)"
log "pass 2: kill -KILL $empo2_pid (the learner's empo2, after $(metrics_lines) iterations)"
kill -KILL "$empo2_pid"
code=$(wait_for_exit learner)
read -r _ code restarts <<<"$(state "$learner")"
[[ $code == 0 ]] || { compose logs --tail 60 learner >&2; die "pass 2: the learner exited $code after its restart"; }
((restarts >= 1)) || die "pass 2: Docker did not restart the learner"
resumed=$(compose logs --no-color learner | grep -m1 -o 'resumed.*' || true)
[[ -n $resumed ]] || die "pass 2: the restarted learner did not resume from a checkpoint"
log "pass 2: Docker restarted the learner ($restarts restart), it ${resumed%%$'\r'}, and exited 0"
check_run 2
compose logs --no-color >"$cache/compose-2.log" 2>&1
log "passed: both passes (logs: $cache/compose-{1,2}.log, builds: $cache/build-*.log)"
