#!/usr/bin/env bash
# Validation PSNR after a short run, fp32 vs bf16 autocast (needs the noisy folders of
# configs/gaussian25-gray.yaml). Prints the final val/psnr of each.
set -euo pipefail
steps=${STEPS:-200}
for precision in 32-true bf16-mixed; do
  python train.py fit --config configs/gaussian25-gray.yaml --trainer.max_steps "$steps" \
    --trainer.val_check_interval "$steps" --trainer.precision "$precision" --data.val_limit 4 \
    --trainer.enable_progress_bar false --trainer.default_root_dir "runs/bf16-check/$precision" >/dev/null 2>&1
  psnr=$(grep -h 'val/psnr' -A0 runs/bf16-check/$precision/csv/version_*/metrics.csv >/dev/null; \
         python -c "import csv,glob; rows=[r for f in glob.glob('runs/bf16-check/$precision/csv/*/metrics.csv') for r in csv.DictReader(open(f)) if r.get('val/psnr')]; print(rows[-1]['val/psnr'])")
  echo "$precision val/psnr after $steps steps: $psnr"
done
