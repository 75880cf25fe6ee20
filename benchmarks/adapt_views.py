"""Fitting the opponent-colour view too: which networks `--adapt` should fit.

    python benchmarks/adapt_views.py --weights gaussian50-color --dataset cbsd68 \
        --level 50 --limit 3 --data-dir ../shared/datasets \
        --out benchmarks/results/adapt_views_cbsd68_sigma50.json

Same noisy draws as ``noise2score evaluate`` (seed 0), level given, self-ensemble on,
the product's fit settings (``Adaptation()``). Per image, the PSNR of: the colour
weights alone, fitted or not (``colour``, ``colour_fitted``); the opponent view of the
bundled blind gray weights, not fitted, fitted once per opponent channel, or fitted
once to the three channels together as ``--adapt`` does (``opponent``,
``opponent_per_channel``, ``opponent_together``); and the means that ``--opponent``
takes of them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from noise2score.adapt import Adaptation
from noise2score.datasets import dataset_files
from noise2score.denoiser import OPPONENT_WEIGHTS, load_denoiser
from noise2score.evaluate import EvalSpec, noisy_input
from noise2score.metrics import psnr, to_hwc
from noise2score.noise import make_noise
from noise2score.opponent import fitted_opponent_view, opponent_estimate

MIXES = {  # the mean of a colour estimate and an opponent-view one
    "views": ("colour", "opponent"),
    "views_colour_fitted": ("colour_fitted", "opponent"),
    "views_per_channel": ("colour_fitted", "opponent_per_channel"),
    "views_together": ("colour_fitted", "opponent_together"),
}


def estimates(colour, gray, y: torch.Tensor, level: float, settings: Adaptation) -> dict[str, torch.Tensor]:
    out = {
        "colour": colour.denoise_tensor(y, level).x_hat,
        "colour_fitted": colour.fitted_to(y, level, settings).denoise_tensor(y, level).x_hat,
        "opponent": opponent_estimate(gray, y, level),
        "opponent_together": opponent_estimate(fitted_opponent_view(gray, y, level, settings), y, level),
    }
    gray.adapt = settings  # each opponent channel fits its own copy as it is denoised
    out["opponent_per_channel"] = opponent_estimate(gray, y, level)
    gray.adapt = None
    return out | {name: (out[a] + out[b]) / 2 for name, (a, b) in MIXES.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="gaussian50-color")
    parser.add_argument("--dataset", default="cbsd68")
    parser.add_argument("--level", type=float, default=50)
    parser.add_argument("--limit", type=int, default=3)
    parser.add_argument("--data-dir")
    parser.add_argument("--out", type=Path, help="JSON file for the rows and their means")
    args = parser.parse_args()
    spec = EvalSpec(args.dataset, make_noise("gaussian", args.level), data_dir=args.data_dir)
    colour = load_denoiser(args.weights, ensemble=True, device="cpu")
    gray = load_denoiser(OPPONENT_WEIGHTS, ensemble=True, device="cpu")
    rows = []
    for path in dataset_files(args.dataset, args.data_dir)[: args.limit]:
        x, y = noisy_input(spec, path)
        start = time.perf_counter()
        with torch.inference_mode():
            made = estimates(colour, gray, y, args.level, Adaptation())
        row = {name: round(psnr(to_hwc(x_hat), x), 4) for name, x_hat in made.items()}
        rows.append({"name": path.name, **row, "seconds": round(time.perf_counter() - start)})
        print(json.dumps(rows[-1]), flush=True)
    means = {k: round(sum(r[k] for r in rows) / len(rows), 4) for k in rows[0] if k != "name"}
    print(json.dumps(means))
    if args.out:
        record = {**vars(args), "out": None, "means": means, "images": rows}
        args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
