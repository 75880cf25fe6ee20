#!/usr/bin/env bash
# Validation PSNR after a short run, fp32 vs bf16 autocast, without EMA (so the
# number reflects the trained weights). Needs the noisy folders of
# configs/gaussian25-gray.yaml. Prints the final val/psnr of each.
set -euo pipefail
steps=${STEPS:-200}
for precision in 32-true bf16-mixed; do
  root="runs/bf16-check/$precision"
  rm -rf "$root"
  python train.py fit --config configs/gaussian25-gray.yaml --trainer.max_steps "$steps" \
    --trainer.val_check_interval "$steps" --trainer.precision "$precision" --data.val_limit 4 \
    --model.ema_decay null --trainer.enable_progress_bar false --trainer.default_root_dir "$root" >/dev/null 2>&1
  python - "$root" "$precision" "$steps" <<'PY'
import csv, glob, sys
rows = [r for f in glob.glob(f"{sys.argv[1]}/csv/*/metrics.csv") for r in csv.DictReader(open(f)) if r.get("val/psnr")]
print(f"{sys.argv[2]} val/psnr after {sys.argv[3]} steps: {float(rows[-1]['val/psnr']):.3f}")
PY
done
