"""The settings of `--adapt`, measured: gray weights fitted to gray copies of Kodak24
crops, a set no gray weights are measured on, at several Adam rates (120 steps, the
product's other settings) or with other settings; the PSNR change over the weights as
they are.

    python benchmarks/adapt_rate.py --weights gaussian50-gray --noise gaussian --level 50 \
        --rates 3e-5,1e-4,2e-4 --limit 3 --data-dir ../shared/datasets \
        --out benchmarks/results/adapt_rate.json
    python benchmarks/adapt_rate.py --weights gaussian50-gray --noise gaussian --level 50 \
        --fits lr=1e-4 lr=1e-4,sigma_a=0.025 lr=1e-4,steps=240 --limit 3 ...

``--fits``: each a comma-separated list of :class:`Adaptation` fields (what is not named
keeps the product's default; no ``lr`` is the product's rate rule).

Each image: the top-left 256x256 of a Kodak24 image made gray by scikit-image's
``rgb2gray`` (Rec. 709 weights, not the BT.601 luma of ``make-noisy --gray``: the
recorded numbers were made so), made noisy with a draw seeded by its index (100 + i).
Blind weights are told the level the patch estimate gives (as `denoise` without
`--level`); fixed-level ones the true level. ``--out``
appends the run as JSON. Measured in benchmarks/RECIPES.md ("The rate of a fit").
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from skimage import color, io

from noise2score.adapt import Adaptation
from noise2score.datasets import dataset_files
from noise2score.denoiser import load_denoiser
from noise2score.level import estimate_level_without_score
from noise2score.metrics import psnr, to_hwc
from noise2score.noise import make_noise

CROP = 256


def fit_settings(text: str) -> Adaptation:
    """``"lr=1e-4,steps=240"`` -> the :class:`Adaptation` with those fields."""
    try:
        return Adaptation.parse(text)
    except ValueError as err:  # no field, no number, or out of Adaptation's range
        raise SystemExit(f"--fits {text!r}: {err}") from None


def gray_crop(path: Path) -> torch.Tensor:
    """The image's top-left CROP square as a (1, 1, H, W) gray tensor."""
    pixels = color.rgb2gray(io.imread(path)[:CROP, :CROP, :3]).astype(np.float32)
    return torch.from_numpy(pixels)[None, None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--noise", default="gaussian")
    parser.add_argument("--level", type=float, required=True)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--rates", help="comma-separated Adam rates (other settings the product's)")
    which.add_argument("--fits", nargs="+", help="fit settings, each NAME=VALUE[,NAME=VALUE...]")
    parser.add_argument("--limit", type=int, default=3)
    parser.add_argument("--data-dir")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    denoiser = load_denoiser(args.weights, device="cpu")
    if args.rates:
        fits = {f"{float(r):g}": Adaptation(lr=float(r)) for r in args.rates.split(",")}
    else:
        fits = {text: fit_settings(text) for text in args.fits}
    psnrs: dict[str, list[float]] = {"none": [], **{key: [] for key in fits}}
    for i, path in enumerate(dataset_files("kodak24", args.data_dir)[: args.limit]):
        x = gray_crop(path)
        y = make_noise(args.noise, args.level).sample(x, generator=torch.Generator().manual_seed(100 + i))
        level = estimate_level_without_score(args.noise, y) if denoiser.info.blind else args.level
        noise = make_noise(args.noise, level)
        for key in psnrs:
            start = time.time()
            scoring = denoiser.fitted_to(y, level, fits[key]) if key in fits else denoiser
            x_hat, _ = noise.tweedie_with_guard(y, scoring.score(y, level))
            psnrs[key].append(psnr(to_hwc(x_hat), to_hwc(x)))
            print(f"{path.name} {key} {psnrs[key][-1]:.3f} dB ({time.time() - start:.0f} s)", flush=True)
    base = float(np.mean(psnrs["none"]))
    change = {key: round(float(np.mean(v)) - base, 3) for key, v in psnrs.items()}
    print(f"{args.weights} {args.noise} {args.level:g}: {base:.3f} dB unfitted; change {change}")
    if args.out:
        runs = json.loads(args.out.read_text()) if args.out.is_file() else []
        runs.append({**vars(args), "out": None, "psnr": psnrs, "change": change})
        args.out.write_text(json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    main()
