"""The white level: which input value the denoiser sees as 1.

Integer files are read as a fraction of their dtype's range, so 12-bit camera data in
16-bit files, or photon counts, sit far below 1, where no weights were trained: Poisson
counts read so have a level near 1/65535, and a denoiser trained at 0.005-0.1 then
makes them worse. With a white level W, an image is divided by W before denoising
and the result multiplied back, so the output keeps the file's units. For photon
counts (gain 1, no offset) the Poisson level of the scaled image is 1 / W.
"""

from __future__ import annotations

import numpy as np

from noise2score.image_io import ImageError
from noise2score.weights import WeightsInfo

AUTO_PERCENTILE = 99.9  # "auto": this percentile of each image becomes white
FAR = 2.0  # a level beyond this factor of the trained range earns a warning

White = float | str | None  # a value in the file's units, "auto", or None (dtype range)


def parse_white(text: str | None) -> White:
    """``--white`` as given: None, "auto" or a positive number."""
    if text is None or text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"the white level (--white) is 'auto' or a positive number, not {text!r}")
    return value


def dtype_top(dtype: np.dtype) -> float:
    """The value a file of ``dtype`` stores for 1.0."""
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def white_scale(pixels: np.ndarray, source_dtype: np.dtype, white: White) -> float:
    """The factor s that puts ``white`` (file units) at 1 in ``pixels`` (read units):
    denoise ``pixels / s``, then multiply the result by s."""
    if white is None:
        return 1.0
    if white == "auto":
        scale = float(np.percentile(pixels, AUTO_PERCENTILE))
        if not scale > 0:
            raise ImageError(f"too dark to scale: its {AUTO_PERCENTILE}th percentile is 0; give --white")
        return scale
    return float(white) / dtype_top(source_dtype)


def far_from_training(info: WeightsInfo, level: float, *, dim_hint: str = "see --white") -> str | None:
    """A warning when ``level`` lies beyond :data:`FAR` times the weights' trained
    level (or range); below it, ``dim_hint`` says what to do about dim data."""
    low, high = info.levels or (info.level, info.level)
    if low / FAR <= level <= high * FAR:
        return None
    span = f"{low:g}" if low == high else f"{low:g}-{high:g}"
    hint = f" (dim integer data? {dim_hint})" if level < low else ""
    return f"level {level:.3g} is far from what {info.name or 'the weights'} were trained at ({span}){hint}"
