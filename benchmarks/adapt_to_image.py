"""Test-time adaptation, measured: fine-tune the bundled score network on the noisy
image itself (the AR-DAE loss on its own crops; still noisy-only) before Tweedie.

    python benchmarks/adapt_to_image.py --weights gaussian25-gray --dataset set12 \
        --level 25 --limit 1 --steps 120 --lr 3e-5 --batch 4 --ema 0.95 \
        --every 20 --data-dir ../shared/datasets

Same noisy draws as ``noise2score evaluate`` (seed 0), level given, fixed-level Gaussian
weights (the network is the score; no told level). Each step: ``--batch`` random
``--crop`` crops of the image, each rotated and mirrored at random, antithetic pairs,
sigma_a held at ``--sigma-a``, Adam; ``--ema`` scores with an average of the weights.
Prints the PSNR change every ``--every`` steps; ``--out`` appends the run as JSON.
``--image FILE`` (repeatable) takes clean images of one's own instead of a set, e.g.
scikit-image's ``moon`` and ``page``, unlike the training photos:

    python -c "from skimage import data, io; io.imsave('/tmp/moon.png', data.moon());
    io.imsave('/tmp/page.png', data.page())"
    python benchmarks/adapt_to_image.py --image /tmp/moon.png --image /tmp/page.png \
        --steps 120 --ema 0.95 --every 40
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from noise2score.adapt import Adaptation, fitted_network
from noise2score.datasets import dataset_files
from noise2score.denoiser import Denoiser, load_denoiser
from noise2score.evaluate import EvalSpec, noisy_input
from noise2score.metrics import psnr, to_hwc
from noise2score.networks import channel_scorer
from noise2score.noise import make_noise


def adapt(args: argparse.Namespace, path: Path, spec: EvalSpec) -> dict:
    x, y = noisy_input(spec, path)
    denoiser = load_denoiser(args.weights, device="cpu")
    if denoiser.info.level_input:
        raise SystemExit(f"{args.weights}: weights told the level are not covered here")

    def measured(network: torch.nn.Module) -> float:
        scored = Denoiser(network, denoiser.info, device="cpu")  # puts it in eval mode
        return psnr(to_hwc(scored.denoise_tensor(y, args.level).x_hat), x)

    network = denoiser.network
    before = measured(network)
    curve = []

    def follow(step: int, scored: torch.nn.Module) -> None:
        if args.every and step % args.every == 0:
            curve.append([step, round(measured(scored) - before, 3)])

    settings = Adaptation(args.steps, args.lr, args.batch, args.crop, args.ema, args.sigma_a, seed=None)

    def scorer_of(network: torch.nn.Module, _which: torch.Tensor | None) -> torch.nn.Module:
        return channel_scorer(network, per_channel=denoiser.info.per_channel, context=denoiser.info.context)

    start = time.perf_counter()
    scored = fitted_network(network, scorer_of, y, args.sigma_a, settings, on_step=follow)
    after = measured(scored)
    print(f"{path.name}: {before:.3f} -> {after:.3f} ({after - before:+.3f}) {curve}", flush=True)
    return {
        "name": path.name,
        "before": round(before, 4),
        "after": round(after, 4),
        "curve": curve,
        "seconds": round(time.perf_counter() - start),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="gaussian25-gray")
    parser.add_argument("--dataset", default="set12")
    parser.add_argument("--level", type=float, default=25)
    parser.add_argument("--data-dir")
    parser.add_argument("--image", action="append", default=[], help="clean image files instead of --dataset")
    parser.add_argument("--limit", type=int, default=1)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--sigma-a", type=float, default=0.001)
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--ema", type=float, default=0.0, help="decay of the weight average; 0: none")
    parser.add_argument("--every", type=int, default=0, help="measure every N steps (0: at the end)")
    parser.add_argument("--out", type=Path, help="JSON file the run is appended to")
    args = parser.parse_args()
    torch.manual_seed(0)
    label = "files" if args.image else args.dataset  # the noisy draws' seed: (0, label, file name)
    spec = EvalSpec(label, make_noise("gaussian", args.level), data_dir=args.data_dir)
    files = [Path(f) for f in args.image] or dataset_files(args.dataset, args.data_dir)[: args.limit]
    images = [adapt(args, path, spec) for path in files]
    if args.out:
        runs = json.loads(args.out.read_text()) if args.out.is_file() else []
        settings = {k: v for k, v in vars(args).items() if k not in ("out", "data_dir")}
        args.out.write_text(json.dumps([*runs, {**settings, "images": images}], indent=1) + "\n")


if __name__ == "__main__":
    main()
