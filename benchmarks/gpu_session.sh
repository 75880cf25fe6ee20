#!/usr/bin/env bash
# One lent-GPU session (the `device` tool): configs side by side on the GPU, each run's
# folder packed into $OUT. Prepare here first with `bash benchmarks/gpu_prepare.sh`,
# then on the GPU machine, from the repository root:
#   bash benchmarks/gpu_session.sh SECONDS [CONFIG ...]     (default: configs/gpu5/*.yaml)
# naming `.whl` and `.devdata` in the call's `carry` every time (a call without them
# deletes them there). .whl holds wheels the machine lacks (kornia, kornia_rs,
# jsonargparse, docstring_parser, typeshed_client, pypng, PyWavelets); .devdata the
# clean sets (datasets/) and network-only copies of warm-start checkpoints (runs/).
set -u
budget=${1:-480}
shift || true
configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(configs/gpu5/*.yaml)
start=$SECONDS
out=${OUT:-results/gpu}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
mkdir -p ../shared && ln -sfn "$PWD/.devdata/datasets" ../shared/datasets
[ -d .devdata/runs ] && cp -r .devdata/runs .
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import torch; print("torch", torch.__version__)'
# First, the GPU checks of the test suite (CPU and GPU give the same estimate), which
# need a CUDA device: a minute at most, so that the training budget stays predictable.
mkdir -p "$out"
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_device.py 2>&1 \
    | tee "$out/device-tests.log" | tail -n 3
python3 benchmarks/gpu_train.py --budget $((budget - (SECONDS - start))) --out "$out" \
    "${configs[@]}"
