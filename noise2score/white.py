"""White and black levels: which input values the denoiser sees as 1 and 0.

Integer files are read as a fraction of their dtype's range, so 12-bit camera data in
16-bit files, or photon counts, sit far below 1, where no weights were trained: Poisson
counts read so have a level near 1/65535, and a denoiser trained at 0.005-0.1 then
makes them worse. With a white level W (and a black level B, a camera's offset), an
image becomes (image - B) / (W - B) before denoising and the result is mapped back, so
the output keeps the file's units. For photon counts (gain 1) the Poisson level of the
scaled image is 1 / (W - B).
"""

from __future__ import annotations

import numpy as np

from noise2score.image_io import ImageError
from noise2score.weights import WeightsInfo

AUTO_PERCENTILE = 99.9  # "auto": this percentile of each image becomes white
FAR = 2.0  # a level beyond this factor of the trained range earns a warning
DIM = 0.25  # an integer image whose 99.9th percentile is under this share of its range
# A float image whose 99.9th percentile is above this is in other units (0-255, counts):
# noise keeps a noisy 0-1 image's values well under it (sigma 55: about 1.7).
BRIGHT = 4.0

White = float | str | None  # a value in the file's units, "auto", or None (dtype range)


def parse_white(text: str | None, black: float = 0.0) -> White:
    """``--white`` as given: None, "auto" or a number above the black level."""
    if text is None or text == "auto":
        return text
    value = _number(text)
    if not (np.isfinite(value) and value > max(black, 0.0)):
        above = f"a number above the black level {black:g}" if black else "a positive number"
        raise ValueError(f"the white level (--white) is 'auto' or {above}, not {text!r}")
    return value


def parse_black(text: str | None) -> float:
    """``--black`` as given: a number, zero or above (default 0)."""
    return _non_negative(text, "the black level (--black)")


def parse_read_noise(text: str | None) -> float:
    """``--read-noise`` as given: a number, zero or above (default 0)."""
    return _non_negative(text, "the read noise (--read-noise)")


def _non_negative(text: str | None, what: str) -> float:
    value = 0.0 if text is None else _number(text)
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{what} is a number, zero or above, not {text!r}")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def dtype_top(dtype: np.dtype) -> float:
    """The value a file of ``dtype`` stores for 1.0."""
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def unit_range(
    pixels: np.ndarray, source_dtype: np.dtype, white: White, black: float = 0.0
) -> tuple[float, float]:
    """(offset, scale) in read units that put ``black`` at 0 and ``white`` at 1 (both in
    file units): denoise ``(pixels - offset) / scale``, then map the result back."""
    top = dtype_top(source_dtype)
    offset = black / top
    if white is None:
        _check_float_units(pixels, source_dtype)
        return offset, 1.0 - offset
    if white == "auto":
        scale = float(np.percentile(pixels, AUTO_PERCENTILE)) - offset
        if not scale > 0:
            raise ImageError(
                f"too dark to scale: its {AUTO_PERCENTILE}th percentile is at or below black; give --white"
            )
        return offset, scale
    return offset, (float(white) - black) / top


def _check_float_units(pixels: np.ndarray, source_dtype: np.dtype) -> None:
    if np.issubdtype(source_dtype, np.floating):
        bright = float(np.percentile(pixels, AUTO_PERCENTILE))
        if bright > BRIGHT:
            raise ImageError(
                f"a float image whose {AUTO_PERCENTILE}th percentile is {bright:.4g}, but float images "
                "are read as 0 to 1: give its white level (--white, e.g. 255, or auto; the demo: Stretch)"
            )


def unit_spread(spread: float, source_dtype: np.dtype, scale: float) -> float:
    """A noise standard deviation in file units (a camera's read noise) as the weights
    see it: in the unit range that ``unit_range``'s ``scale`` maps the image onto."""
    return spread / dtype_top(source_dtype) / float(scale)


def is_dim(pixels: np.ndarray, source_dtype: np.dtype) -> bool:
    """An integer image that uses little of its range: counts, or 12-bit in 16-bit."""
    return bool(np.issubdtype(source_dtype, np.integer) and np.percentile(pixels, AUTO_PERCENTILE) < DIM)


def far_from_training(info: WeightsInfo, level: float, *, hint: str = "") -> str | None:
    """A warning when ``level`` lies beyond :data:`FAR` times the weights' trained
    level (or range), with ``hint`` after it."""
    low, high = info.levels or (info.level, info.level)
    if low / FAR <= level <= high * FAR:
        return None
    span = f"{low:g}" if low == high else f"{low:g}-{high:g}"
    return f"level {level:.3g} is far from what {info.name or 'the weights'} were trained at ({span}){hint}"
