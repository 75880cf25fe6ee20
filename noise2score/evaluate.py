"""Evaluation under METHOD.md section 6: same noisy inputs for every method.

The noisy input of an image depends only on (seed, dataset, image name, noise,
level): it is drawn from a generator seeded by (seed, dataset, image name).
Baseline rows are cached by those inputs in ``.cache/noise2score`` (BM3D is slow).
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from noise2score import __version__, patch_level
from noise2score.adapt import fit_progress_bar
from noise2score.baselines import run_baseline
from noise2score.datasets import dataset_files, get_dataset
from noise2score.denoiser import Chooser, Denoiser
from noise2score.image_io import read_image, written_whole
from noise2score.metrics import from_hwc, psnr, quantize8, ssim, to_hwc
from noise2score.noise import NoiseModel, check_read_noise, seeded_generator
from noise2score.vst import MIX_REVISION

CACHE_DIR = Path(".cache/noise2score")


@dataclass
class EvalSpec:
    dataset: str
    noise: NoiseModel
    seed: int = 0
    limit: int | None = None
    data_dir: str | None = None
    read_noise: float = 0.0  # Poisson: Gaussian noise of this standard deviation added ([0, 1] units)
    clip8: bool = False  # noisy inputs stored as an 8-bit file would: clipped to [0, 1] and rounded

    def __post_init__(self) -> None:
        check_read_noise(self.read_noise, self.noise.family)
        if not 0 <= self.read_noise < 1:
            raise ValueError(f"read noise must be in [0, 1) units of the image range, got {self.read_noise}")


def noisy_input(spec: EvalSpec, path: Path) -> tuple[np.ndarray, torch.Tensor]:
    """Clean (H, W, C) array and its fixed noisy draw as a (1, C, H, W) tensor; read
    noise, if any, drawn after the family's noise from the same generator; then, with
    ``clip8``, clipped and rounded as an 8-bit file."""
    x = read_image(path).pixels
    generator = seeded_generator(spec.seed, spec.dataset, path.name)
    y = spec.noise.sample(from_hwc(x), generator=generator)
    if spec.read_noise:
        y = y + spec.read_noise * torch.randn(y.shape, generator=generator)
    if spec.clip8:
        y = torch.round(y.clamp(0, 1) * 255) / 255
    return x, y


def _row(name: str, x: np.ndarray, x_hat: np.ndarray, seconds: float, **extra) -> dict:
    return {
        "name": name,
        "psnr": psnr(x_hat, x),
        "psnr8": psnr(quantize8(x_hat), x),
        "ssim": ssim(x_hat, x),
        "seconds": seconds,
        **extra,
    }


def evaluate(
    spec: EvalSpec,
    *,
    denoiser: Denoiser | None = None,
    picker: Chooser | None = None,
    method: str | None = None,
    estimate_level: bool = False,
    level_method: str = "auto",
    progress=None,
    done: dict[str, dict] | None = None,
    on_row: Callable[[list[dict]], None] | None = None,
) -> dict:
    """Evaluate a denoiser, the weights ``picker`` picks for each image (as ``denoise``
    without --weights), or a baseline ``method`` on a benchmark set. ``done``: rows
    measured before, by image name (see :func:`read_partial`), taken as they are;
    ``on_row(rows)`` is called after each image the network denoised."""
    done = done or {}
    files = dataset_files(spec.dataset, spec.data_dir)[: spec.limit]
    channels = get_dataset(spec.dataset).channels
    if denoiser is not None and denoiser.channels != channels:
        raise ValueError(f"{spec.dataset} has {channels} channel(s); the weights take {denoiser.channels}")
    if denoiser is not None and denoiser.family != spec.noise.family:
        raise ValueError(f"the weights are for {denoiser.family} noise, not {spec.noise.family}")
    rows, picked = [], []
    for path in progress(files) if progress else files:
        x, y = noisy_input(spec, path)
        if denoiser is None and picker is None:
            rows.append(_cached_baseline(spec, method, path.name, x, y))
            continue
        level = None if estimate_level else spec.noise.level
        chosen, extra = denoiser, {}
        if picker is not None:  # told the level it was picked by, given or estimated
            chosen, level = picker(to_hwc(y), spec.read_noise)
            extra["weights"] = chosen.info.name
            picked.append(chosen)
        if path.name in done:
            rows.append(done[path.name])
            continue
        with fit_progress_bar(chosen, path.name) as reporting:
            result = reporting.denoise_tensor(y, level, level_method=level_method, read_noise=spec.read_noise)
        extra |= {"estimated_level": result.level} if estimate_level else {}
        extra |= {"view_share": result.view_share} if result.view_share is not None else {}
        extra |= {"fit_skipped": True} if result.fit_skipped else {}
        rows.append(_row(path.name, x, to_hwc(result.x_hat), result.seconds, **extra))
        if on_row:
            on_row(rows)
    return summarise(
        spec, rows, denoiser=denoiser, method=method, estimate_level=estimate_level, picked=picked
    )


def run_settings(
    spec: EvalSpec, denoiser: Denoiser | None, weights: str | None, estimate_level: bool, level_method: str
) -> dict:
    """What a network run's rows depend on: rows saved under other settings are not reused."""
    settings = {
        "noise2score": __version__,
        "weights": weights,
        "dataset": spec.dataset,
        "noise": spec.noise.family,
        "level": spec.noise.level,
        "seed": spec.seed,
        "estimate_level": estimate_level,
        "level_method": level_method,
        "read_noise": spec.read_noise,
    }
    if spec.clip8:  # only then: rows saved before the option stay valid
        settings |= {"clip8": True, "clip_inverse": denoiser.clip_inverse if denoiser else None}
    if denoiser is not None:
        views = [denoiser.vst, denoiser.gray_view]
        settings |= {
            "weights_sha256": denoiser.info.sha256,
            "views_sha256": [view.info.sha256 if view else None for view in views],
            "vst_mix_revision": MIX_REVISION[spec.noise.family] if denoiser.vst else None,
            "ensemble": denoiser.ensemble,
            "adapt": denoiser.adapt.record() if denoiser.adapt else None,
            "tiling": [denoiser.tile, denoiser.overlap, denoiser.bf16],
        }
    return settings


def read_partial(path: Path, settings: dict) -> dict[str, dict]:
    """The rows, by image name, that a stopped run with the same ``settings`` saved to
    ``path`` (:func:`save_partial`); none where the file is absent, unreadable or made
    under other settings."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(saved, dict) or saved.get("settings") != json.loads(json.dumps(settings)):
        return {}
    return {row["name"]: row for row in saved.get("images", [])}


def save_partial(path: Path, settings: dict, rows: list[dict]) -> None:
    """Save the rows measured so far; a run killed mid-write leaves the former file whole."""
    with written_whole(path) as tmp:
        tmp.write_text(json.dumps({"settings": settings, "images": rows}, indent=1) + "\n")


def _cache_path(spec: EvalSpec, method: str, name: str) -> Path:
    key = f"{method}-{spec.dataset}-{name}-{spec.noise.family}-{spec.noise.level:g}-seed{spec.seed}"
    key += f"-read{spec.read_noise:g}" if spec.read_noise else ""
    key += "-clip8" if spec.clip8 else ""
    return CACHE_DIR / f"{key}.json"


def _read_cache(path: Path) -> dict | None:
    if path.is_file():
        row = json.loads(path.read_text())
        if row.get("version") == __version__:
            return row["row"]
    return None


def baseline_cached(spec: EvalSpec, method: str) -> bool:
    """Whether every image of ``spec`` has its ``method`` result in the cache."""
    files = dataset_files(spec.dataset, spec.data_dir)[: spec.limit]
    return all(_read_cache(_cache_path(spec, method, path.name)) is not None for path in files)


def _cached_baseline(spec: EvalSpec, method: str, name: str, x: np.ndarray, y: torch.Tensor) -> dict:
    cache = _cache_path(spec, method, name)
    row = _read_cache(cache)
    if row is not None:
        return row
    start = time.perf_counter()
    x_hat = run_baseline(method, to_hwc(y), spec.noise, read_noise=spec.read_noise)
    row = _row(name, x, x_hat, time.perf_counter() - start)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"version": __version__, "row": row}))
    return row


def summarise(
    spec: EvalSpec,
    rows: list[dict],
    *,
    denoiser: Denoiser | None,
    method: str | None,
    estimate_level: bool,
    picked: list[Denoiser] | None = None,
) -> dict:
    """The result of a run; ``picked``: the weights picked for each image (``--weights
    auto``), whose views are those of the first."""
    names = [d.info.name for d in picked or []]
    denoiser = denoiser or (picked[0] if picked else None)
    result = {
        "method": method or "noise2score",
        "weights": "auto" if picked else denoiser.info.name if denoiser else None,
        "picked": {name: names.count(name) for name in sorted(set(names))} if picked else None,
        "weights_sha256": None if picked else denoiser.info.sha256 if denoiser else None,
        "dataset": spec.dataset,
        "noise": spec.noise.family,
        "level": spec.noise.level,
        "seed": spec.seed,
        "limit": spec.limit,
        "estimate_level": estimate_level,
        "ensemble": bool(denoiser and denoiser.ensemble),
        "vst": denoiser.vst.info.name if denoiser and denoiser.vst else None,
        "vst_sha256": denoiser.vst.info.sha256 if denoiser and denoiser.vst else None,
        "vst_mix_revision": MIX_REVISION[spec.noise.family] if denoiser and denoiser.vst else None,
        "opponent": denoiser.gray_view.info.name if denoiser and denoiser.gray_view else None,
        "opponent_sha256": denoiser.gray_view.info.sha256 if denoiser and denoiser.gray_view else None,
        "mean_psnr": float(np.mean([r["psnr"] for r in rows])),
        "mean_psnr8": float(np.mean([r["psnr8"] for r in rows])),
        "mean_ssim": float(np.mean([r["ssim"] for r in rows])),
        "mean_seconds": float(np.mean([r["seconds"] for r in rows])),
        "images": rows,
        "command": " ".join(["noise2score", *sys.argv[1:]]) if sys.argv[0].endswith("noise2score") else None,
        "versions": {
            "noise2score": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    if spec.read_noise:  # Poisson with Gaussian read noise, [0, 1] units
        result["read_noise"] = spec.read_noise
    if spec.clip8:  # inputs clipped and rounded to 8 bits; was the clipping inverted?
        result["clip8"] = True
        result["clip_inverse"] = bool(denoiser and denoiser.clip_inverse) if method is None else None
    if denoiser and denoiser.adapt:  # fitted to each image first (--adapt)
        result["adapt"] = denoiser.adapt.record()
    if estimate_level:
        errors = [abs(r["estimated_level"] - spec.noise.level) for r in rows]
        result["mean_abs_level_error"] = float(np.mean(errors))
        result["level_estimator_revision"] = patch_level.REVISION[spec.noise.family]
    return result


def markdown_table(result: dict) -> str:
    first = result["images"][0] if result["images"] else {}
    extra = [key for key in ("estimated_level", "weights") if key in first]
    head = "| image | PSNR | PSNR (8-bit) | SSIM | seconds |"
    head += "".join({"estimated_level": " level |", "weights": " weights |"}[key] for key in extra)
    lines = [head, "|---" * (5 + len(extra)) + "|"]
    for r in result["images"]:
        line = f"| {r['name']} | {r['psnr']:.2f} | {r['psnr8']:.2f} | {r['ssim']:.4f} | {r['seconds']:.2f} |"
        if "estimated_level" in extra:
            line += f" {r['estimated_level']:.3g} |"
        lines.append(line + (f" {r['weights']} |" if "weights" in extra else ""))
    lines.append(
        f"| **mean** | **{result['mean_psnr']:.2f}** | {result['mean_psnr8']:.2f} | "
        f"**{result['mean_ssim']:.4f}** | {result['mean_seconds']:.2f} |" + " |" * len(extra)
    )
    return "\n".join(lines)
