"""Unknown noise level: error of each estimator and PSNR lost against the known level.

    python benchmarks/level_estimation.py --weights gaussian25-gray --dataset bsd68 \
        --levels 10 15 25 35 50 --out results/level_estimation.json

For each level, the same noisy inputs (seed 0) are denoised with the level known and
with it estimated by each method; reported: mean absolute error of the estimate
(paper units) and mean PSNR(known) - PSNR(estimated).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from noise2score.denoiser import load_denoiser
from noise2score.evaluate import EvalSpec, evaluate
from noise2score.noise import make_noise


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", default="gaussian25-gray")
    parser.add_argument("--dataset", default="bsd68")
    parser.add_argument("--data-dir", default=os.environ.get("NOISE2SCORE_DATA", "../shared/datasets"))
    parser.add_argument("--levels", type=float, nargs="+", default=[10, 15, 25, 35, 50])
    parser.add_argument("--methods", nargs="+", default=["wavelet", "grid"])
    parser.add_argument("--limit", type=int)
    parser.add_argument("--out")
    args = parser.parse_args()
    denoiser = load_denoiser(args.weights)
    report = []
    for level in args.levels:
        spec = EvalSpec(args.dataset, make_noise(denoiser.family, level), 0, args.limit, args.data_dir)
        known = evaluate(spec, denoiser=denoiser)
        for method in args.methods:
            if method == "wavelet" and denoiser.family != "gaussian":
                continue
            hidden = evaluate(spec, denoiser=denoiser, estimate_level=True, level_method=method)
            loss = [k["psnr"] - h["psnr"] for k, h in zip(known["images"], hidden["images"], strict=True)]
            row = {
                "level": level,
                "method": method,
                "mae": hidden["mean_abs_level_error"],
                "psnr_known": known["mean_psnr"],
                "psnr_lost": float(np.mean(loss)),
            }
            report.append(row)
            print(row, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"weights": args.weights, "dataset": args.dataset, "rows": report}, f, indent=1)


if __name__ == "__main__":
    main()
