"""Inference speed and memory, with BM3D on the same image as the reference.

    python benchmarks/inference.py --weights gaussian25-gray --out results/inference.json

Measures: ms per megapixel (gray and colour input, fp32 and bf16, threads = cores);
peak resident memory of a tiled 12-megapixel RGB denoise (in a child process); and
on one BSD68 image at sigma 25, our time and PSNR against BM3D's in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch

from noise2score.baselines import run_baseline
from noise2score.denoiser import Denoiser, load_denoiser
from noise2score.image_io import read_image
from noise2score.metrics import from_hwc, psnr, to_hwc
from noise2score.model_card import machine_facts
from noise2score.networks import build_network
from noise2score.noise import make_noise, seeded_generator
from noise2score.tiling import bf16_native
from noise2score.weights import WeightsInfo

UNTRAINED_COLOR = "untrained-color"  # same compute and memory as trained colour weights


def _load(weights: str, **options) -> Denoiser:
    if weights == UNTRAINED_COLOR:
        info = WeightsInfo("n2n_unet", 3, "gaussian", 25.0, UNTRAINED_COLOR)
        return Denoiser(build_network("n2n_unet", 3), info, **options)
    return load_denoiser(weights, **options)


def ms_per_megapixel(weights: str, bf16: bool, side: int = 1024) -> float:
    denoiser = _load(weights, bf16=bf16)
    y = torch.rand(1, denoiser.channels, side, side)
    denoiser.denoise_tensor(y[..., :256, :256], 25)  # warm-up
    start = time.perf_counter()
    denoiser.denoise_tensor(y, 25)
    return (time.perf_counter() - start) * 1000 / (side * side / 1e6)


def peak_memory_child(weights: str) -> None:
    """Run in a fresh process: tiled denoise of a 4000x3000 RGB image (bf16 where native)."""
    denoiser = _load(weights, bf16=bf16_native())
    image = np.random.default_rng(0).random((3000, 4000, denoiser.channels), dtype=np.float32)
    denoiser.denoise(image, level=25)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # MiB on Linux


def versus_bm3d(weights: str, data_dir: str) -> dict:
    """Our denoise (fp32 and bf16) and BM3D on the same noisy BSD68 image, same run."""
    x = read_image(os.path.join(data_dir, "bsd68", "test001.png")).pixels
    noise = make_noise("gaussian", 25)
    y = noise.sample(from_hwc(x), generator=seeded_generator(0, "bsd68", "test001.png"))
    report = {}
    for bf16 in (False, True):
        denoiser = load_denoiser(weights, bf16=bf16)
        denoiser.denoise_tensor(y, 25)  # warm-up
        start = time.perf_counter()
        ours = to_hwc(denoiser.denoise_tensor(y, 25).x_hat)
        tag = "ours_bf16" if bf16 else "ours_fp32"
        report[f"{tag}_s"] = time.perf_counter() - start
        report[f"{tag}_psnr"] = psnr(ours, x)
    start = time.perf_counter()
    bm3d = run_baseline("bm3d", to_hwc(y), noise)
    report["bm3d_s"] = time.perf_counter() - start
    report["bm3d_psnr"] = psnr(bm3d, x)
    report["speedup_fp32"] = report["bm3d_s"] / report["ours_fp32_s"]
    report["speedup_bf16"] = report["bm3d_s"] / report["ours_bf16_s"]
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", default="gaussian25-gray")
    parser.add_argument("--color-weights", default=UNTRAINED_COLOR, help="weights for the colour rows")
    parser.add_argument("--data-dir", default=os.environ.get("NOISE2SCORE_DATA", "../shared/datasets"))
    parser.add_argument("--out")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        peak_memory_child(args.weights)
        return
    report = {"threads": torch.get_num_threads(), "machine": machine_facts(), "speed": []}
    for weights in filter(None, [args.weights, args.color_weights]):
        for bf16 in (False, True):
            ms = ms_per_megapixel(weights, bf16)
            report["speed"].append({"weights": weights, "bf16": bf16, "ms_per_megapixel": round(ms)})
            print(report["speed"][-1], flush=True)
    child = subprocess.run(
        [sys.executable, __file__, "--child", "--weights", args.color_weights],
        capture_output=True,
        text=True,
        check=True,
    )
    report["peak_rss_mib_12mp"] = float(child.stdout.strip().splitlines()[-1])
    print("12 MP peak RSS (MiB):", report["peak_rss_mib_12mp"], flush=True)
    report["bsd68_test001_sigma25"] = versus_bm3d(args.weights, args.data_dir)
    print(report["bsd68_test001_sigma25"])
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
