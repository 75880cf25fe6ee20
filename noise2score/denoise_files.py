"""Denoising files for the ``denoise`` command: never touches inputs, skips bad files."""

from __future__ import annotations

import glob
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from noise2score.adapt import fit_progress_bar
from noise2score.denoiser import Chooser, Denoiser
from noise2score.image_io import (
    IMAGE_SUFFIXES,
    NO_IMAGES,
    ImageError,
    LoadedImage,
    count_pages,
    from_float,
    gray_stored_as_colour,
    list_images,
    make_folder,
    read_image,
    read_pages,
    write_image,
    write_pages,
)
from noise2score.metrics import from_hwc, to_hwc
from noise2score.white import White, dtype_top, far_from_training, is_dim, unit_range, unit_spread

SUFFIX_FOR_FORMAT = {"png": ".png", "tif": ".tif", "jpg": ".jpg"}
COLOUR_WEIGHTS_ON_GRAY = (
    "a gray image stored as RGB (three equal channels): colour weights take its noise for three "
    "independent draws and denoise it poorly"
)


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders (their images) and glob patterns, in order, without repeats."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths += list_images(path) or [path]  # a folder without images is reported
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


Picker = Denoiser | Chooser


def _denoise_file(
    denoiser: Picker,
    source: Path,
    target: Path,
    level: float | None,
    white: White = None,
    black: float = 0.0,
    read_noise: float = 0.0,
) -> str:
    """Denoise ``source`` (an image or a TIFF stack, page by page) into ``target``, each
    image mapped from its black and white levels to 0 and 1 first and back after (its
    read noise scaled alike); returns what its output line adds: the level estimated,
    the white level and the weights picked."""
    count = count_pages(source)
    if count > 1 and target.suffix.lower() not in (".tif", ".tiff"):
        raise ImageError(f"{source}: a stack of {count} pages is written as TIFF only; use --format tif")
    used: list[tuple[Denoiser, float]] = []
    whites: list[float] = []
    dim: list[bool] = []
    gray: list[bool] = []  # each image: gray stored as colour?
    shares: list[float] = []  # each Gamma image: the stabilised view's share, picked by SURE
    clipped: list[bool] = []  # each image: Gaussian noise clipped at black or white, inverted
    unfitted: list[bool] = []  # each image: --adapt asked, not done (clipped)

    def denoised(image: LoadedImage) -> np.ndarray:
        offset, scale = map(np.float32, unit_range(image.pixels, image.source_dtype, white, black))
        whites.append(float(offset + scale) * dtype_top(image.source_dtype))
        dim.append(white is None and is_dim(image.pixels, image.source_dtype))
        pixels = (image.pixels - offset) / scale
        read = unit_spread(read_noise, image.source_dtype, scale)
        chosen, estimate = (denoiser, None) if isinstance(denoiser, Denoiser) else denoiser(pixels, read)
        gray.append(gray_stored_as_colour(pixels))
        given = level if level is not None else estimate
        with fit_progress_bar(chosen, source.name) as reporting:
            result = reporting.denoise_tensor(from_hwc(pixels), given, read_noise=read)
        used.append((chosen, result.level))
        clipped.append(result.clipped)
        unfitted.append(result.fit_skipped)
        if result.view_share is not None and chosen.family == "gamma":
            shares.append(result.view_share)
        return to_hwc(result.x_hat) * scale + offset

    if count == 1:
        image = read_image(source)
        write_image(target, denoised(image), dtype=output_dtype(image.source_dtype, target.suffix))
    else:
        pages = (
            from_float(denoised(image), output_dtype(image.source_dtype, target.suffix))
            for image in tqdm(read_pages(source), total=count, desc=source.name, unit="page", leave=False)
        )
        write_pages(target, pages, count)
    _warn_far_levels(source, used, any(dim))
    if any(g and d.channels == 3 for g, (d, _) in zip(gray, used, strict=True)):
        hint = "leave out --weights, or give gray ones"
        tqdm.write(f"warning: {source}: {COLOUR_WEIGHTS_ON_GRAY}; {hint}", file=sys.stderr)
    notes = [f"{count} pages"] if count > 1 else []
    if any(gray):
        notes.append("gray stored as RGB")
    if level is None:
        notes.append(f"estimated {used[0][0].info.family} level {_span(lvl for _, lvl in used)}")
    if read_noise:
        notes.append(f"read noise {read_noise:g}")
    if shares:
        notes.append(f"the stabilised view's share {_span(shares)}, picked by SURE")
    if any(clipped):
        notes.append("clipped noise: inverse applied")
    if any(unfitted):
        notes.append("not fitted (--adapt): clipped at black or white")
    if white == "auto":
        notes.append(f"white {_span(whites)}")
    # the weights picked per image; weights the user named only where views were added
    names = dict.fromkeys(_name(d) for d, _ in used if d is not denoiser or d.vst or d.gray_view or d.adapt)
    note = f" ({'; '.join(notes)})" if notes else ""
    return note + (f" with {', '.join(names)}" if names else "")


def _name(denoiser: Denoiser) -> str:
    name = denoiser.info.name
    if denoiser.adapt:
        views = "; its views' weights too" if denoiser.fits() > 1 else ""
        name += f" fitted to the image ({denoiser.adapt.steps} steps{views}, --adapt)"
    if denoiser.vst:
        name += f" + {denoiser.vst.info.name} (--vst)"
    if denoiser.gray_view:
        name += f" + {denoiser.gray_view.info.name} (--opponent)"
    return name


def _span(values) -> str:
    values = sorted(values)
    return f"{values[0]:.3g}" if values[0] == values[-1] else f"{values[0]:.3g}-{values[-1]:.3g}"


def _warn_far_levels(source: Path, used: list[tuple[Denoiser, float]], dim: bool) -> None:
    """One warning per file where weights met a level far from their training."""
    hint = " (the image is dim: see --white and --black)" if dim else ""
    for chosen, used_level in used:
        warning = far_from_training(chosen.info, used_level, hint=hint)
        if warning:
            tqdm.write(f"warning: {source}: {warning}", file=sys.stderr)
            return


def denoise_files(
    denoiser: Picker,
    inputs: list[str],
    out_dir: Path,
    *,
    level: float | None,
    fmt: str | None = None,
    overwrite: bool = False,
    white: White = None,
    black: float = 0.0,
    read_noise: float = 0.0,
) -> int:
    """Denoise each input into ``out_dir``; returns the number of files that failed.
    ``denoiser`` may be a function that picks one for each image's (H, W, C) pixels (and
    read noise, scaled alike) and returns it with the level it estimated for the pick
    (None: let the denoiser estimate). ``white``: the input value taken as 1 (file
    units), "auto" (a high percentile of each image) or None (the dtype's top);
    ``black``: the value taken as 0; ``read_noise``: Poisson only, the standard
    deviation of Gaussian noise added to it (file units)."""
    sources = expand_inputs(inputs)
    make_folder(out_dir)
    source_set = {p.resolve() for p in sources if p.exists()}
    written: dict[Path, Path] = {}  # output -> the input that this run wrote it from
    failures = 0
    for source in tqdm(sources, desc="denoise", unit="image", disable=len(sources) < 2):
        target = output_path(source, out_dir, fmt)
        try:
            if source.is_dir():
                raise ImageError(f"{source}: {NO_IMAGES}")
            if target.resolve() in source_set:
                raise ImageError(
                    f"{source}: output {target} would overwrite an input; choose another --output"
                )
            if target.resolve() in written:
                raise ImageError(
                    f"{source}: output {target} is already the result of {written[target.resolve()]}; "
                    "denoise one of them on its own"
                )
            if target.exists() and not overwrite:
                raise ImageError(f"{target} exists; pass --overwrite to replace it")
            note = _denoise_file(denoiser, source, target, level, white, black, read_noise)
            written[target.resolve()] = source
            tqdm.write(f"{source} -> {target}{note}")
        except ImageError as err:
            failures += 1
            message = str(err) if str(err).startswith(str(source)) else f"{source}: {err}"
            tqdm.write(f"skipped: {message}", file=sys.stderr)
    if failures:
        print(f"{failures} of {len(sources)} file(s) failed", file=sys.stderr)
    return failures
