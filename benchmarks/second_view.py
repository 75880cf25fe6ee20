"""The second views of ``denoise``, measured: the weights' own estimate, the second
view, and their mean, on the evaluation inputs.

- Poisson and Gamma noise: the stabilised Gaussian view (``--vst``), with the bundled
  blind Gaussian weights of the channel count or ``--gaussian``; ``--opponent`` gives
  that colour Gaussian view its own opponent-colour view, as ``denoise`` does.
- Colour Gaussian noise: the opponent-colour view (``--opponent``), with the bundled
  blind gray Gaussian weights or ``--gray``.

    python benchmarks/second_view.py --weights gamma50-gray --noise gamma --level 50 \
        --dataset set12 --dataset bsd68 --data-dir ../shared/datasets --bf16
    python benchmarks/second_view.py --weights gaussian25-color --noise gaussian \
        --level 25 --dataset kodak24 --data-dir ../shared/datasets --bf16

Same noisy draws as ``noise2score evaluate`` (seed 0), level given. The "mean" is the
same arithmetic as ``Denoiser(..., vst=..., opponent=...)`` (tests/test_vst.py and
tests/test_opponent.py check that): for Gamma noise the mix with the view's share that
SURE picks per image (each image's ``share``), else the mean; so ``noise2score
evaluate`` with the same flags gives its column. Each image also has the PSNR of every
share of the view (``by_share``); ``mean_best_share`` is the mean of the best one per
image. Results are merged into ``--out`` (default: benchmarks/results/vst_view.json or
opponent_view.json) by (weights, noise, level, dataset). Each image is also saved as it
is done (``--out`` with ``.partial.json``), so a killed run, started again, goes on from
where it stopped.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from noise2score.cli import note_slow_bf16
from noise2score.datasets import dataset_files
from noise2score.denoiser import OPPONENT_WEIGHTS, inference_device, load_denoiser, vst_weights
from noise2score.evaluate import EvalSpec, noisy_input
from noise2score.image_io import written_whole
from noise2score.metrics import psnr, to_hwc
from noise2score.noise import make_noise
from noise2score.opponent import opponent_estimate
from noise2score.vst import SHARES, stabilised_estimate, view_share


def second_view(args: argparse.Namespace, own, options: dict):
    """(view name, helper weights' name, function of the noisy image)."""
    noise = make_noise(args.noise, args.level)
    if args.noise == "gaussian":
        gray = load_denoiser(args.gray or OPPONENT_WEIGHTS, **options)
        return "opponent", gray.info.name, lambda y: opponent_estimate(gray, y, args.level)
    opponent = "auto" if args.opponent and own.channels == 3 else None
    gaussian = load_denoiser(args.gaussian or vst_weights(own.channels), opponent=opponent, **options)
    name = gaussian.info.name + (" + opponent" if opponent else "")
    return "vst", name, lambda y: stabilised_estimate(gaussian, y, noise)


def run(args: argparse.Namespace, dataset: str, partial: Path) -> dict:
    options = {"bf16": args.bf16, "device": inference_device(args.device)}
    if args.bf16:
        note_slow_bf16(str(options["device"]))
    own = load_denoiser(args.weights, **options)
    view, helper, second = second_view(args, own, options)
    views = ("family", view, "mean")
    spec = EvalSpec(dataset, make_noise(args.noise, args.level), limit=args.limit, data_dir=args.data_dir)
    key = f"{own.info.name} {helper} {spec.noise} {dataset} {args.limit} bf16={args.bf16}"
    images = _read(partial, {}).get(key, [])
    files = dataset_files(dataset, args.data_dir)[: args.limit]
    todo = [p for p in files if p.name not in {i["name"] for i in images}]
    for path in tqdm(todo, desc=dataset, initial=len(files) - len(todo), total=len(files)):
        start = time.perf_counter()
        x, y = noisy_input(spec, path)
        family = own.denoise_tensor(y, args.level).x_hat
        other = second(y)
        share = 0.5
        if args.noise == "gamma":  # the share Denoiser(..., vst=...) takes (vst.view_share)
            share = view_share(
                y, spec.noise, lambda v: own.denoise_tensor(v, args.level).x_hat, second, family, other
            )
        estimates = (family, other, (1 - share) * family + share * other)
        scores = [psnr(np.clip(to_hwc(e), 0, 1), x) for e in estimates]
        measured = {v: round(s, 4) for v, s in zip(views, scores, strict=True)}
        # every share of the view, to compare the one taken with the best one for the image
        by_share = [round(psnr(np.clip(to_hwc((1 - w) * family + w * other), 0, 1), x), 4) for w in SHARES]
        seconds = round(time.perf_counter() - start, 1)
        images.append(
            {"name": path.name, **measured, "share": share, "by_share": by_share, "seconds": seconds}
        )
        _write(partial, _read(partial, {}) | {key: images})  # read late: runs may share it
    return {
        "key": key,
        "weights": own.info.name,
        view if view != "vst" else "gaussian": helper,
        "noise": args.noise,
        "level": args.level,
        "dataset": dataset,
        "limit": args.limit,
        "bf16": args.bf16,
        **{f"mean_{v}": round(float(np.mean([i[v] for i in images])), 3) for v in views},
        "shares": SHARES.tolist(),
        "mean_by_share": np.mean([i["by_share"] for i in images], axis=0).round(3).tolist(),
        "mean_best_share": round(float(np.mean([max(i["by_share"]) for i in images])), 3),
        "seconds": round(sum(i["seconds"] for i in images)),
        "images": images,
    }


def _read(path: Path, empty):
    return json.loads(path.read_text()) if path.is_file() else empty


def _write(path: Path, value) -> None:
    """Whole or not at all: a run killed while writing leaves the last file."""
    with written_whole(path) as tmp:
        tmp.write_text(json.dumps(value, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="Poisson or Gamma weights, or colour Gaussian ones")
    parser.add_argument("--gaussian", help="Gaussian weights of the stabilised view (default: blind)")
    parser.add_argument("--gray", help="gray weights of the opponent-colour view (default: blind)")
    parser.add_argument("--opponent", action="store_true", help="colour --vst: with the opponent view")
    parser.add_argument("--noise", required=True, choices=["poisson", "gamma", "gaussian"])
    parser.add_argument("--level", required=True, type=float)
    parser.add_argument("--dataset", action="append", required=True)
    parser.add_argument("--data-dir")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--out", help="results JSON (default: by the view)")
    args = parser.parse_args()
    view = "opponent" if args.noise == "gaussian" else "vst"
    out = Path(args.out or f"benchmarks/results/{view}_view.json")
    partial = out.with_suffix(".partial.json")
    for dataset in args.dataset:
        row = run(args, dataset, partial)
        done_key = row.pop("key")
        key = ("weights", "noise", "level", "dataset", "limit", "gaussian")
        rows = _read(out, [])  # read late: runs may share it
        _write(out, [r for r in rows if any(r.get(k) != row.get(k) for k in key)] + [row])
        left = {k: v for k, v in _read(partial, {}).items() if k != done_key}
        if left:
            _write(partial, left)
        else:
            partial.unlink(missing_ok=True)
        views = ("family", view, "mean")
        means = ", ".join(f"{v} {row[f'mean_{v}']:.3f}" for v in views)
        best = f"best share per image {row['mean_best_share']:.3f}"
        print(f"{row['weights']} {args.noise} {args.level:g} {dataset}: {means}, {best} ({row['seconds']} s)")


if __name__ == "__main__":
    main()
