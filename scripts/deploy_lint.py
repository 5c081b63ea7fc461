"""Lints the deployment files against each other and against the binary: cross-references
(volumes, ConfigMaps, Secrets, PVCs, Service selectors and ports, probe ports), resources and
non-root on every container, pinned image tags, Dockerfile stages and COPY sources, and that
every EMPO2_* / EMPO2__* variable set in compose or Kubernetes is one the binary reads.

Usage: deploy_lint.py TMP CONFIG_JSON RENDERED_K8S.yaml...  (run by scripts/validate-deploy.sh,
which renders compose into TMP/compose-*.yaml and writes `empo2 config --json` to CONFIG_JSON)
"""
import fnmatch
import glob
import json
import os
import re
import sys

import yaml
from dockerfile_parse import DockerfileParser

tmp, config_json, rendered = sys.argv[1], sys.argv[2], sys.argv[3:]
errors = []


def err(where, msg):
    errors.append(f"{where}: {msg}")


# -- what the binary reads --------------------------------------------------------------
flag_envs = set()
for path in glob.glob("src/**/*.rs", recursive=True):
    flag_envs |= set(re.findall(r'env\s*=\s*"(EMPO2_[A-Z0-9_]+)"', open(path).read()))

config_keys = set()  # dotted paths of every key the binary reads


def collect(prefix, value):
    for key, inner in value.items():
        path = f"{prefix}.{key}" if prefix else key
        config_keys.add(path)
        if isinstance(inner, dict):
            collect(path, inner)


collect("", json.load(open(config_json)))


def check_env(where, name):
    if name.startswith("EMPO2__"):
        parts = name[len("EMPO2__"):].lower().split("__")
        key = ".".join(parts)
        if len(parts) < 2:
            err(where, f"{name}: not EMPO2__SECTION__KEY")
        elif key not in config_keys:
            err(where, f"{name}: the binary reads no key {key} (see `empo2 config --json`)")
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
