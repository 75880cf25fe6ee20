"""Gray weights run on each channel of a colour set alone, beside the colour weights.

    python benchmarks/per_channel.py --noise poisson --level 0.01 \
        --gray poisson0.01-gray --color poisson0.01-color --dataset kodak24

Same inputs as ``noise2score evaluate`` (seed 0, level known); prints the mean PSNR of
each and, with ``--per-image``, every image's. This is how benchmarks/RECIPES.md
("one gray network per channel") compared the two before per-channel weights existed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os

import numpy as np

from noise2score.datasets import dataset_files
from noise2score.denoiser import Denoiser
from noise2score.evaluate import EvalSpec, noisy_input
from noise2score.metrics import psnr, to_hwc
from noise2score.noise import make_noise
from noise2score.weights import load_weights


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--noise", required=True)
    parser.add_argument("--level", required=True, type=float)
    parser.add_argument("--gray", required=True, help="one-channel weights, run per channel")
    parser.add_argument("--color", required=True, help="colour weights to compare with")
    parser.add_argument("--dataset", default="kodak24")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--per-image", action="store_true")
    parser.add_argument("--data-dir", default=os.environ.get("NOISE2SCORE_DATA", "../shared/datasets"))
    args = parser.parse_args()

    noise = make_noise(args.noise, args.level)
    gray_net, gray_info = load_weights(args.gray, source="network")
    per_channel = dataclasses.replace(gray_info, channels=3, per_channel=True)
    denoisers = {
        args.gray + " (each channel)": Denoiser(gray_net, per_channel),
        args.color: Denoiser(*load_weights(args.color, source="network")),
    }
    spec = EvalSpec(args.dataset, noise, 0, limit=args.limit, data_dir=args.data_dir)
    files = dataset_files(args.dataset, args.data_dir)[: args.limit]
    scores = {name: [] for name in denoisers}
    for path in files:
        x, y = noisy_input(spec, path)
        for name, denoiser in denoisers.items():
            scores[name].append(psnr(to_hwc(denoiser.denoise_tensor(y, args.level).x_hat), x))
        if args.per_image:
            row = "  ".join(f"{name}: {values[-1]:.2f}" for name, values in scores.items())
            print(path.name, row, flush=True)
    for name, values in scores.items():
        print(f"{name:36s} {np.mean(values):.2f} dB on {len(values)} images of {args.dataset}, {noise}")


if __name__ == "__main__":
    main()
