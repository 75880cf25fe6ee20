"""The noise level of noisy-only training folders: recorded by ``make-noisy``, or estimated.

A model of one level learns at that level (for Poisson noise it sets the AR-DAE
perturbation), and its weights carry it. ``train.py`` checks the level it is given
against the folders' records, and ``--model.level auto`` takes it from them, or from the
images themselves (the median of the per-image pca estimates) where they have none:
the usual case for one's own noisy data.
"""

from __future__ import annotations

import math
import statistics

from noise2score.data import load_images
from noise2score.image_io import NO_IMAGES, ImageError, list_images
from noise2score.level import pca_level
from noise2score.noisy_copy import RECORD_NAME, read_record

AUTO = "auto"
SAMPLE = 32  # images estimated at most, spread over the folders
FAR = 2.0  # a given level this far from the estimate gets a warning


class ConfigError(ValueError):
    """A training setting that contradicts the data; ``train.py`` says so in one line."""


def training_level(
    family: str,
    level: float | str,
    train_dirs: list[str],
    *,
    channels: int | None = None,
    white: float | None = None,
    black: float = 0.0,
    log=print,
) -> float:
    """``level`` checked against the folders' records; for ``"auto"``, the level they
    record, else the median pca estimate over (a sample of) their images. A given level
    far from the images' estimate, where no record says it, gets a warning."""
    records = {folder: read_record(folder) for folder in train_dirs}
    for folder, record in records.items():
        if record is None:
            continue
        if record["noise"] != family:
            raise ConfigError(
                f"{folder} holds {record['noise']} noise ({RECORD_NAME}); model.noise is {family}"
            )
        if level != AUTO and not math.isclose(float(record["level"]), float(level), rel_tol=1e-6):
            raise ConfigError(
                f"{folder} was made at {family} level {record['level']:g} ({RECORD_NAME}), model.level is "
                f"{float(level):g}: give --model.level {record['level']:g} (or auto)"
            )
    recorded = {float(r["level"]) for r in records.values() if r is not None}
    if None not in records.values():
        if level != AUTO:
            return float(level)
        if len(recorded) > 1:
            levels = ", ".join(f"{v:g}" for v in sorted(recorded))
            raise ConfigError(f"the training folders record several levels ({levels}); give model.level")
        found = recorded.pop()
        log(f"model.level auto: {family} {found:g}, as the training folders' {RECORD_NAME} records")
        return found
    estimate, count = estimate_level(family, train_dirs, channels=channels, white=white, black=black)
    if level == AUTO:
        log(f"model.level auto: {family} {estimate:g}, the median pca estimate over {count} training images")
        return estimate
    if not 1 / FAR <= estimate / float(level) <= FAR:
        log(
            f"warning: model.level is {float(level):g}, but the training images look like {family} "
            f"{estimate:g} (median pca estimate over {count}): check it, or give --model.level auto"
        )
    return float(level)


def estimate_level(
    family: str,
    folders: list[str],
    *,
    channels: int | None = None,
    white: float | None = None,
    black: float = 0.0,
) -> tuple[float, int]:
    """The median pca estimate (3 significant digits) over at most ``SAMPLE`` images of
    ``folders``, spread evenly (only those files are read), and how many images it took."""
    paths = [p for folder in folders for p in list_images(folder)]
    if not paths:
        raise ImageError(f"{', '.join(folders)}: {NO_IMAGES}")
    chosen = paths[:: max(1, len(paths) // SAMPLE)][:SAMPLE]
    images = load_images(chosen, channels, white, black)[:SAMPLE]  # a stack's pages count one by one
    found = [v for v in (pca_level(family, t[None]) for _, t in images) if v is not None]
    if not found:
        raise ConfigError(
            f"the training images are too small to estimate the {family} level: give model.level"
        )
    return float(f"{statistics.median(found):.3g}"), len(found)
