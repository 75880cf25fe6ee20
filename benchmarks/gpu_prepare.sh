#!/usr/bin/env bash
# Prepare what benchmarks/gpu_session.sh needs on a lent GPU machine, in two git-ignored
# folders of this checkout (64 MiB travel in all; the bundled weights count too):
#   .whl      wheels for Python 3.12 that the machine's image lacks
#   .devdata  the clean sets the configs read (copies of ../shared/datasets, never
#             committed) and network-only copies of the warm-start checkpoints they name
# Usage: bash benchmarks/gpu_prepare.sh [CONFIG ...]   (default: configs/gpu5/*.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(configs/gpu5/*.yaml)
mkdir -p .git/info
for d in /.whl/ /.devdata/; do grep -qx "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude; done
rm -rf .whl .devdata
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl kornia==0.9.0 kornia_rs==0.2.0 jsonargparse==4.53.0 \
    docstring_parser==0.18.0 typeshed_client==2.15.0 pypng==0.20220715.0 PyWavelets==1.9.0
"${PYTHON:-.venv/bin/python}" - "${configs[@]}" <<'PY'
import shutil
import sys
from pathlib import Path

import torch
import yaml

from noise2score.noisy_copy import as_list, parse_folder_name

shared, out = Path("../shared/datasets"), Path(".devdata")
need: dict[str, int | None] = {}  # clean set -> how many of its files (None: all)
for config in (yaml.safe_load(Path(p).read_text()) for p in sys.argv[1:]):
    data = config["data"]
    for key in ("train_dir", "val_dir", "val_clean_dir"):
        for folder in as_list(data.get(key)):
            parsed = parse_folder_name(folder)
            name = parsed[0] if parsed else Path(folder).name
            if (shared / name).is_dir():  # validation reads only the first val_limit images
                count = None if key == "train_dir" else data.get("val_limit")
                before = need.get(name, 0)
                need[name] = None if None in (before, count) else max(before, count)
    init = config["model"].get("init_weights")
    if init and str(init).endswith(".ckpt"):
        ckpt = torch.load(init, map_location="cpu", weights_only=True)
        network = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("network.")}
        (out / init).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"hyper_parameters": ckpt["hyper_parameters"], "state_dict": network}, out / init)
for name, count in need.items():
    (out / "datasets" / name).mkdir(parents=True)
    for f in sorted((shared / name).iterdir())[:count]:
        shutil.copy(f, out / "datasets" / name / f.name)
PY
du -sh .whl .devdata
# Tracked files travel too: the bundled weights the configs do not start from go aside
# for the call (these lines move them and back; the weights are tracked, so git restores
# them too: git checkout -- noise2score/weights).
"${PYTHON:-.venv/bin/python}" - "${configs[@]}" <<'PY'
import sys
from pathlib import Path

import yaml

from tests.test_device import GPU_WEIGHTS

need = {str(yaml.safe_load(Path(p).read_text())["model"].get("init_weights")) for p in sys.argv[1:]}
need |= set(GPU_WEIGHTS)  # tests/test_device.py compares them on the GPU
away = sorted(p.stem for p in Path("noise2score/weights").glob("*.safetensors") if p.stem not in need)
names = "{" + ",".join(away) + "}"
print("Before the call:  mkdir -p /tmp/weights-aside && mv noise2score/weights/" + names + ".* /tmp/weights-aside/")
print("After it:         mv /tmp/weights-aside/* noise2score/weights/")
PY
