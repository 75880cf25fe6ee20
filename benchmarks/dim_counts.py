"""Photon counts in 16-bit files: what ``denoise --white`` buys.

    python benchmarks/dim_counts.py --dataset set12 --data-dir ../shared/datasets --no-vst \
        --out benchmarks/results/dim_counts_set12.json
    python benchmarks/dim_counts.py --dataset set12 --data-dir ../shared/datasets --levels 0.01 \
        --offset 100 --no-vst --out benchmarks/results/dim_counts_set12_offset100.json
    python benchmarks/dim_counts.py --dataset set12 --data-dir ../shared/datasets --offset 100 \
        --read-noise 3 --out benchmarks/results/dim_counts_set12_read3.json

Each image's evaluation draw at Poisson level zeta (seed 0, as ``noise2score evaluate``)
is y = zeta * counts with counts ~ Poisson(x / zeta); the counts are written as 16-bit
TIFFs, as a camera with gain 1 would store them, and the files are denoised by
``noise2score denoise --noise poisson`` (bundled weights picked per image) without a
white level, with ``--white 1/zeta`` (then the weights see y, as in ``evaluate``) and
with ``--white auto``. With ``--offset B`` the files hold counts + B, as a camera's
black level, and the runs with ``--black B`` are added. With ``--read-noise R`` a
camera's Gaussian read noise of R counts is added before rounding (seeded), and the
runs are with ``--black B --white B + 1/zeta``, without and with ``--read-noise R``.
``--no-vst`` passes that on (the weights' estimate alone; the first two results were
measured so, before the stabilised view was ``denoise``'s default). Reported: mean PSNR
against x of the noisy counts and of each output, less B, divided by 1/zeta.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path

import numpy as np
import tifffile

from noise2score.cli import main as cli
from noise2score.datasets import dataset_files
from noise2score.evaluate import EvalSpec, noisy_input
from noise2score.metrics import psnr, to_hwc
from noise2score.noise import make_noise


def variants(peak: float, offset: int, read: float = 0.0) -> list[tuple[str, list[str]]]:
    """(label, denoise options) to compare; with an offset, also those that remove it;
    with read noise, the camera's levels without and with it."""
    if read:
        levels = ["--black", str(offset), "--white", f"{offset + peak:g}"]
        return [("levels given", levels), (f"--read-noise {read:g}", [*levels, "--read-noise", f"{read:g}"])]
    plain = [("no --white", []), ("--white auto", ["--white", "auto"])]
    if not offset:
        return [*plain, (f"--white {peak:g}", ["--white", f"{peak:g}"])]
    black = ["--black", str(offset)]
    return [
        *plain,
        (f"--black {offset} --white {offset + peak:g}", [*black, "--white", f"{offset + peak:g}"]),
        (f"--black {offset} --white auto", [*black, "--white", "auto"]),
    ]


def run(
    dataset: str,
    data_dir: str | None,
    zeta: float,
    work: Path,
    offset: int = 0,
    read: float = 0.0,
    options: tuple[str, ...] = (),
) -> dict:
    spec = EvalSpec(dataset, make_noise("poisson", zeta), data_dir=data_dir)
    peak = 1 / zeta
    (work / "in").mkdir()
    clean, rng = {}, np.random.default_rng(0)
    for path in dataset_files(dataset, data_dir):
        x, y = noisy_input(spec, path)
        counts = to_hwc(y)[..., 0] * peak + offset  # gray sets
        counts = np.rint(counts + read * rng.standard_normal(counts.shape) if read else counts)
        counts = counts.clip(0, 65535).astype(np.uint16)
        tifffile.imwrite(work / "in" / f"{path.stem}.tif", counts)
        clean[path.stem] = x[..., 0]

    def score(folder: Path) -> list[float]:
        return [psnr((tifffile.imread(folder / f"{s}.tif") - offset) / peak, x) for s, x in clean.items()]

    scores = {"noisy": score(work / "in")}
    for label, extra in variants(peak, offset, read):
        out = work / label.replace(" ", "_")
        log = io.StringIO()
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            code = cli(["denoise", str(work / "in"), "-o", str(out), "--noise", "poisson", *extra, *options])
        if code:
            raise SystemExit(f"{label}: denoise failed:\n{log.getvalue()}")
        scores[label] = score(out)
    return {label: round(float(np.mean(v)), 3) for label, v in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="set12")
    parser.add_argument("--data-dir")
    parser.add_argument("--levels", default="0.01,0.05", help="Poisson levels zeta (1/zeta photons at white)")
    parser.add_argument("--offset", type=int, default=0, help="black level added to the counts")
    parser.add_argument("--read-noise", type=float, default=0.0, help="Gaussian read noise (counts)")
    parser.add_argument("--no-vst", action="store_true", help="denoise --no-vst: the weights alone")
    parser.add_argument("--out")
    args = parser.parse_args()
    table, options = {}, ("--no-vst",) if args.no_vst else ()
    for zeta in map(float, args.levels.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            table[f"zeta {zeta:g}"] = run(
                args.dataset, args.data_dir, zeta, Path(tmp), args.offset, args.read_noise, options
            )
        print(f"zeta {zeta:g} ({1 / zeta:g} photons at white): {table[f'zeta {zeta:g}']}")
    if args.out:
        record = {"dataset": args.dataset, "offset": args.offset, "read_noise": args.read_noise}
        record["vst"] = not args.no_vst
        Path(args.out).write_text(json.dumps(record | {"mean_psnr": table}, indent=1) + "\n")


if __name__ == "__main__":
    main()
