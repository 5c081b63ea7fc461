#!/usr/bin/env bash
# Creates (or refreshes) the Python venv of an environment bridge:
#
#   envs/python/setup.sh <scienceworld|textworld-express|all>
#
# Each venv lives at ${EMPO2_VENV_ROOT:-$HOME/.cache/empo2/venvs}/<name>, holds the pinned
# packages of envs/python/<name>/requirements.txt and the Python gRPC stubs generated from
# proto/empo2/env.proto and learner.proto (in <venv>/stubs, put on sys.path by a .pth file;
# never committed).
# A stamp in the venv records the hashes of both files: when requirements.txt changes the venv
# is re-created, when the proto changes the stubs are regenerated, and when neither changed the
# script only compares the stamp (silent, a few milliseconds). Concurrent runs are serialised
# with flock. All output goes to stderr. EMPO2_PYTHON picks the interpreter (default python3).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
proto_root=$(cd "$here/../../proto" && pwd)
proto=$proto_root/empo2/env.proto
learner_proto=$proto_root/empo2/learner.proto
venv_root=${EMPO2_VENV_ROOT:-$HOME/.cache/empo2/venvs}
python=${EMPO2_PYTHON:-python3}
# Bump to force every venv to be rebuilt after a change to how this script builds them.
layout=1

log() { echo "setup.sh: $*" >&2; }

file_hash() { sha256sum <"$1" | cut -c1-16; }

# setup_one NAME: brings the venv of one bridge up to date.
setup_one() {
  local name=$1
  local venv=$venv_root/$name
  local requirements=$here/$name/requirements.txt
  local stamp=$venv/.empo2-stamp
  local want_env want_proto
  want_env="layout=$layout requirements=$(file_hash "$requirements")"
  want_proto="proto=$(file_hash "$proto")-$(file_hash "$learner_proto")"

  # Fast path: nothing changed.
  if [[ -x $venv/bin/python && -f $stamp ]] &&
    [[ $(<"$stamp") == "$want_env $want_proto" ]]; then
    return 0
  fi

  mkdir -p "$venv_root"
  exec {lock}>"$venv_root/$name.lock"
  flock "$lock"
  # Another run may have finished the work while we waited for the lock.
  local have=""
  [[ -f $stamp ]] && have=$(<"$stamp")
  if [[ -x $venv/bin/python && $have == "$want_env $want_proto" ]]; then
    exec {lock}>&-
    return 0
  fi

  if [[ ! -x $venv/bin/python || $have != "$want_env "* ]]; then
    log "creating $venv from $requirements (takes a minute) …"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
      -r "$requirements" >&2
  fi

  log "generating gRPC stubs from $proto and $learner_proto …"
  rm -f "$stamp"
  rm -rf "$venv/stubs"
  mkdir -p "$venv/stubs"
  "$venv/bin/python" -m grpc_tools.protoc -I "$proto_root" \
    --python_out="$venv/stubs" --grpc_python_out="$venv/stubs" "$proto" "$learner_proto"
  local site
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$venv/stubs" >"$site/empo2_stubs.pth"

  echo "$want_env $want_proto" >"$stamp"
  exec {lock}>&-
  log "$name ready at $venv"
}

case "${1:-}" in
  scienceworld | textworld-express) setup_one "$1" ;;
  all)
    setup_one scienceworld
    setup_one textworld-express
    ;;
  *)
    echo "usage: $0 <scienceworld|textworld-express|all>" >&2
    exit 2
    ;;
esac
