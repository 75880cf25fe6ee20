#!/usr/bin/env bash
# One lent-GPU session (the `device` tool): the configs/gpu/ runs side by side, each
# run's folder packed into $OUT. Run from the repository root on the GPU machine:
#   bash benchmarks/gpu_session.sh SECONDS
# It expects what the tool carries: wheels the machine lacks in .whl/ (kornia,
# kornia_rs, jsonargparse, docstring_parser, typeshed_client, pypng), the clean
# datasets in .devdata/datasets/ (train400, cbsd432, set12, the first six of kodak24)
# and the warm-start checkpoints in .devdata/runs/ (as under runs/ here).
set -u
budget=${1:-480}
start=$SECONDS
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
mkdir -p ../shared && ln -sfn "$PWD/.devdata/datasets" ../shared/datasets
cp -r .devdata/runs .
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
noisy() {  # SET LEVEL
    python3 -c 'import sys; from noise2score.cli import main; sys.exit(main())' make-noisy \
        "../shared/datasets/$1" "data/noisy/$1-gaussian$2" --noise gaussian --level "$2" >/dev/null
}
for level in 25 50; do
    for set in train400 set12 cbsd432 kodak24; do noisy "$set" "$level" & done
done
wait
echo "data ready after $((SECONDS - start)) s"
python3 benchmarks/gpu_train.py --budget $((budget - (SECONDS - start))) --out "${OUT:-results/gpu}" \
    configs/gpu/*.yaml
