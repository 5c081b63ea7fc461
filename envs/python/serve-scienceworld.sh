#!/usr/bin/env bash
# Serves ScienceWorld over the empo2.env.v1.Environment gRPC protocol:
#
#   envs/python/serve-scienceworld.sh [--listen HOST:PORT] [--max-sessions N] [--max-steps N] ...
#
# Brings the venv up to date first (envs/python/setup.sh; silent and instant when it is), then
# execs the server, which prints one line `listening on HOST:PORT` to stdout once it serves.
# `--help` lists every flag; envs/python/README.md explains them.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$here/setup.sh" scienceworld
export PYTHONPATH="$here/bridge${PYTHONPATH:+:$PYTHONPATH}"
exec "${EMPO2_VENV_ROOT:-$HOME/.cache/empo2/venvs}/scienceworld/bin/python" -m empo2_bridge scienceworld "$@"
