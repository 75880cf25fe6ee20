"""Unknown noise level: error of each estimator and PSNR lost against the known level.

    python benchmarks/level_estimation.py --weights gaussian-blind-gray --dataset bsd68 \
        --out benchmarks/results/level_estimation.json
    (poisson-blind-gray -> level_estimation_poisson.json, gamma-blind-gray -> ..._gamma.json)

For each level and image the noisy input is the evaluation one (seed 0, METHOD.md
section 6); the score is computed once and Tweedie's estimate is formed with the level
known and with the level estimated by each method, the same steps as
``noise2score evaluate --estimate-level --level-method METHOD``. Reported per level and
method: mean absolute error of the estimate (paper units), mean signed error (bias) and
mean PSNR(known) - PSNR(estimated). "pca" is the default (weak-texture patches),
"wavelet" scikit-image's ``estimate_sigma``, "grid" the authors' search.

``--clip8`` stores each noisy input as an 8-bit file would (clipped to [0, 1], rounded to
1/255), as most images met outside benchmarks are; ``--no-clip-mend`` turns off the
Gaussian estimate's handling of clipped images (``patch_level.CLIPPED_SHARE``) to
measure what it changes:

    python benchmarks/level_estimation.py --weights gaussian50-gray --dataset set12 \
        --levels 50 --methods pca --clip8 [--no-clip-mend]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from noise2score import patch_level
from noise2score.datasets import dataset_files
from noise2score.denoiser import load_denoiser
from noise2score.evaluate import EvalSpec, noisy_input
from noise2score.level import estimate_level
from noise2score.metrics import psnr, to_hwc
from noise2score.noise import make_noise

GAUSSIAN_ONLY = ("wavelet", "score")
NETWORK_FREE = ("pca", "wavelet")  # what weights told the level can use: they score after it
DEFAULT_LEVELS = {"gaussian": [10, 15, 25, 35, 50], "poisson": [0.01, 0.05], "gamma": [50, 100]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", default="gaussian-blind-gray")
    parser.add_argument("--dataset", default="bsd68")
    parser.add_argument("--data-dir", default=os.environ.get("NOISE2SCORE_DATA", "../shared/datasets"))
    parser.add_argument("--levels", type=float, nargs="+", help="default: the family's DEFAULT_LEVELS")
    parser.add_argument("--methods", nargs="+", default=["pca", "score", "wavelet", "grid"])
    parser.add_argument("--limit", type=int)
    parser.add_argument("--clip8", action="store_true", help="noisy inputs clipped and rounded to 8 bits")
    parser.add_argument("--no-clip-mend", action="store_true", help="no special case for clipped images")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.no_clip_mend:
        patch_level.CLIPPED_SHARE = float("inf")
    denoiser = load_denoiser(args.weights)
    levels = args.levels or DEFAULT_LEVELS[denoiser.family]
    methods = [m for m in args.methods if denoiser.family == "gaussian" or m not in GAUSSIAN_ONLY]
    if denoiser.info.level_input:  # told the level: only the estimators that need no score
        methods = [m for m in methods if m in NETWORK_FREE]
    files = dataset_files(args.dataset, args.data_dir)[: args.limit]
    report = []
    for level in levels:
        noise = make_noise(denoiser.family, level)
        spec = EvalSpec(args.dataset, noise, 0, args.limit, args.data_dir)
        known = []
        estimates, psnrs = {m: [] for m in methods}, {m: [] for m in methods}
        seconds = dict.fromkeys(methods, 0.0)
        for path in files:
            x, y = noisy_input(spec, path)
            if args.clip8:
                y = torch.round(y.clamp(0, 1) * 255) / 255
            score = denoiser.score(y, level)
            known.append(psnr(to_hwc(noise.tweedie(y, score)), x))
            for method in methods:
                start = time.perf_counter()
                estimate = estimate_level(denoiser.family, y, score, method=method)
                seconds[method] += time.perf_counter() - start
                estimates[method].append(estimate)
                told = denoiser.score(y, estimate) if denoiser.info.level_input else score
                psnrs[method].append(psnr(to_hwc(make_noise(denoiser.family, estimate).tweedie(y, told)), x))
        for method in methods:
            error = np.array(estimates[method]) - level
            row = {
                "level": level,
                "method": method,
                "mae": float(np.abs(error).mean()),
                "bias": float(error.mean()),
                "psnr_known": float(np.mean(known)),
                "psnr_lost": float(np.mean(known) - np.mean(psnrs[method])),
                "seconds_per_image": seconds[method] / len(files),
            }
            report.append(row)
            print(
                f"{level:6g} {method:8s} MAE {row['mae']:.3f} bias {row['bias']:+.3f} "
                f"PSNR known {row['psnr_known']:.2f} lost {row['psnr_lost']:+.3f}",
                flush=True,
            )
    if args.out:
        result = {
            "weights": args.weights,
            "dataset": args.dataset,
            "images": len(files),
            "clip8": args.clip8,
            "clip_mend": not args.no_clip_mend,
            "rows": report,
        }
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
