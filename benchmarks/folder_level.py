"""The level ``train.py --model.level auto`` finds for a noisy folder without a record.

    python benchmarks/folder_level.py --out benchmarks/results/folder_level.json

For each training set and noise level: a temporary folder of noisy copies (seeded
draws, float TIFF, as ``make-noisy`` writes, without its record) of images spread over
the set, and the level ``folder_level.estimate_level`` gives it (the median pca
estimate over up to 32 images) beside the true one.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from noise2score.folder_level import SAMPLE, estimate_level
from noise2score.image_io import list_images, read_image, write_image
from noise2score.metrics import from_hwc, to_hwc
from noise2score.noise import make_noise, seeded_generator

LEVELS = {"gaussian": [15, 25, 50], "poisson": [0.01, 0.05], "gamma": [50, 100]}
CHANNELS = {"train400": 1, "cbsd432": 3}


def folder_estimate(clean: list[Path], family: str, level: float, channels: int) -> tuple[float, int]:
    noise = make_noise(family, level)
    with tempfile.TemporaryDirectory() as folder:
        for path in clean:
            y = noise.sample(from_hwc(read_image(path).pixels), generator=seeded_generator(0, path.name))
            write_image(Path(folder) / f"{path.stem}.tif", to_hwc(y).astype(np.float32), dtype=np.float32)
        return estimate_level(family, [folder], channels=channels)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default=os.environ.get("NOISE2SCORE_DATA", "../shared/datasets"))
    parser.add_argument("--sets", nargs="+", default=list(CHANNELS))
    parser.add_argument("--out")
    args = parser.parse_args()
    report = []
    for name in args.sets:
        files = list_images(Path(args.data_dir) / name)
        clean = files[:: max(1, len(files) // SAMPLE)][:SAMPLE]
        for family, levels in LEVELS.items():
            for level in levels:
                found, count = folder_estimate(clean, family, level, CHANNELS[name])
                error = 100 * (found - level) / level
                row = {"set": name, "noise": family, "level": level, "estimate": found, "images": count}
                report.append(row)
                print(f"{name} {family} {level:g}: {found:g} ({error:+.1f}%, {count} images)", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
