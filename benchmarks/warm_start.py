"""Which trained weights make the best warm start for another noise family or level?

    python benchmarks/warm_start.py --noise poisson --level 0.01 --dataset set12 \
        --weights gaussian25-gray,poisson-blind-gray --limit 4

Reads each network's output as the score of the *target* noise and denoises the
evaluation inputs (seed 0, METHOD.md section 6) with Tweedie's formula at the target
level times a few factors. The score of one family is not that of another, but the best
factor shows how close a start is (a factor far from 1 means the network will first have
to relearn the scale). With ``--factors`` around 1 it also shows whether weights' score
is too small or too large at the true level. One line per weights and factor; ``--out``
writes JSON.

``--sure`` (Gaussian) also picks the score's scale c in x_hat = y + c sigma^2 s(y) per
image, noisy-only, by SURE: x_hat is linear in c, so SURE's minimum has a closed form,
c* = -div s / |s|^2, with div s from one Monte-Carlo probe (one more network pass).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch

from noise2score.datasets import dataset_files
from noise2score.denoiser import Denoiser
from noise2score.evaluate import EvalSpec, noisy_input
from noise2score.metrics import psnr, to_hwc
from noise2score.noise import make_noise
from noise2score.weights import load_weights

FACTORS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)


def sure_scale(denoiser: Denoiser, y: torch.Tensor, score: torch.Tensor, level: float) -> float:
    """The c minimising SURE for x_hat = y + c sigma^2 s(y), Gaussian noise of ``level``
    (sigma = level / 255); weights told the level are told it here too."""
    probe = torch.randn(y.shape, generator=torch.Generator().manual_seed(0))
    step = 0.01 * level / 255
    with torch.no_grad():
        divergence = (probe * (denoiser.score(y + step * probe, level) - score)).sum() / step
    return float(-divergence / score.square().sum())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--noise", required=True)
    parser.add_argument("--level", required=True, type=float)
    parser.add_argument("--weights", required=True, help="comma-separated names or paths")
    parser.add_argument("--dataset", default="set12")
    parser.add_argument("--limit", type=int, default=4)
    parser.add_argument("--data-dir", default=os.environ.get("NOISE2SCORE_DATA", "../shared/datasets"))
    parser.add_argument("--factors", default=",".join(map(str, FACTORS)), help="comma-separated")
    parser.add_argument("--sure", action="store_true", help="also the score's scale picked by SURE")
    parser.add_argument("--out")
    args = parser.parse_args()
    factors = [float(f) for f in args.factors.split(",")]

    target = make_noise(args.noise, args.level)
    spec = EvalSpec(args.dataset, target, 0, limit=args.limit, data_dir=args.data_dir)
    inputs = [noisy_input(spec, path) for path in dataset_files(args.dataset, args.data_dir)[: args.limit]]
    rows = []
    for name in args.weights.split(","):
        network, info = load_weights(name, source="network")
        denoiser = Denoiser(network, info)
        scores = [denoiser.score(y, target.level) for _, y in inputs]  # read as the target's score
        for factor in factors:
            noise = target.with_level(target.level * factor)
            values = [psnr(to_hwc(noise.tweedie(y, s)), x) for (x, y), s in zip(inputs, scores, strict=True)]
            rows.append({"weights": name, "factor": factor, "psnr": float(np.mean(values))})
            print(f"{name:24s} x{factor:<5g} {rows[-1]['psnr']:.2f} dB", flush=True)
        if args.sure and target.family == "gaussian":
            sigma = target.level / 255
            pairs = zip(inputs, scores, strict=True)
            scales = [sure_scale(denoiser, y, s, target.level) for (_, y), s in pairs]
            values = [
                psnr(to_hwc(y + c * sigma**2 * s), x)
                for (x, y), s, c in zip(inputs, scores, scales, strict=True)
            ]
            rows.append({"weights": name, "sure_c": scales, "psnr": float(np.mean(values))})
            print(f"{name:24s} SURE  {rows[-1]['psnr']:.2f} dB, c* {min(scales):.3f}-{max(scales):.3f}")
    if args.out:
        meta = {"noise": str(target), "dataset": args.dataset, "limit": args.limit, "seed": 0}
        with open(args.out, "w") as f:
            json.dump({**meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
