"""Denoising files for the ``denoise`` command: never touches inputs, skips bad files."""

from __future__ import annotations

import glob
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from noise2score.denoiser import Denoiser
from noise2score.image_io import IMAGE_SUFFIXES, ImageError, list_images, read_image, write_image
from noise2score.metrics import from_hwc, to_hwc

SUFFIX_FOR_FORMAT = {"png": ".png", "tif": ".tif", "jpg": ".jpg"}


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders (their images) and glob patterns, in order, without repeats."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths += list_images(path)
        elif path.exists():
            paths.append(path)
        else:
            matches = sorted(Path(m) for m in glob.glob(item))
            paths += matches or [path]  # a missing file is reported when read
    unique = dict.fromkeys(p.absolute() for p in paths)
    return list(unique)


def output_path(source: Path, out_dir: Path, fmt: str | None) -> Path:
    suffix = SUFFIX_FOR_FORMAT[fmt] if fmt else source.suffix.lower()
    return out_dir / f"{source.stem}{suffix if suffix in IMAGE_SUFFIXES else '.png'}"


def output_dtype(source_dtype: np.dtype, suffix: str) -> np.dtype:
    """Keep bit depth: 16-bit stays 16-bit, float TIFF stays float; JPEG is 8-bit."""
    if suffix in (".jpg", ".jpeg"):
        return np.dtype(np.uint8)
    if np.issubdtype(source_dtype, np.floating):
        return np.dtype(np.float32) if suffix in (".tif", ".tiff") else np.dtype(np.uint16)
    return np.dtype(np.uint16) if source_dtype.itemsize > 1 else np.dtype(np.uint8)


def denoise_files(
    denoiser: Denoiser | Callable[[np.ndarray], tuple[Denoiser, float | None]],
    inputs: list[str],
    out_dir: Path,
    *,
    level: float | None,
    fmt: str | None = None,
    overwrite: bool = False,
) -> int:
    """Denoise each input into ``out_dir``; returns the number of files that failed.
    ``denoiser`` may be a function that picks one for each image's (H, W, C) pixels and
    returns it with the level it estimated for the pick (None: let the denoiser estimate)."""
    sources = expand_inputs(inputs)
    out_dir.mkdir(parents=True, exist_ok=True)
    source_set = {p.resolve() for p in sources if p.exists()}
    failures = 0
    for source in tqdm(sources, desc="denoise", unit="image", disable=len(sources) < 2):
        target = output_path(source, out_dir, fmt)
        try:
            if target.resolve() in source_set:
                raise ImageError(
                    f"{source}: output {target} would overwrite an input; choose another --output"
                )
            if target.exists() and not overwrite:
                raise ImageError(f"{target} exists; pass --overwrite to replace it")
            image = read_image(source)
            chosen, estimate = (denoiser, None) if isinstance(denoiser, Denoiser) else denoiser(image.pixels)
            result = chosen.denoise_tensor(from_hwc(image.pixels), level if level is not None else estimate)
            write_image(target, to_hwc(result.x_hat), dtype=output_dtype(image.source_dtype, target.suffix))
            note = f" (estimated {chosen.info.family} level {result.level:.3g})" if level is None else ""
            note += "" if chosen is denoiser else f" with {chosen.info.name}"
            tqdm.write(f"{source} -> {target}{note}")
        except ImageError as err:
            failures += 1
            message = str(err) if str(err).startswith(str(source)) else f"{source}: {err}"
            tqdm.write(f"skipped: {message}", file=sys.stderr)
    if failures:
        print(f"{failures} of {len(sources)} file(s) failed", file=sys.stderr)
    return failures
