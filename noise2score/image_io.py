"""Reading and writing images as float arrays in [0, 1] (H, W, C).

Integer images are scaled by their dtype range; float TIFF is taken as-is
(unclipped: noisy training images keep values below 0 and above 1).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import png
import tifffile
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MIN_SIDE = 8  # smaller images carry too little context for a score network
DEFAULT_MAX_PIXELS = 100_000_000


class ImageError(ValueError):
    """A user-facing problem with an image file; the message is one line."""


@dataclass
class LoadedImage:
    """Float32 pixels (H, W, C) plus what is needed to write a result back alike."""

    pixels: np.ndarray
    source_dtype: np.dtype
    path: Path | None = None

    @property
    def channels(self) -> int:
        return self.pixels.shape[2]


def read_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read PNG, JPEG or TIFF (8/16-bit integer or float32, gray or RGB).

    Palette images become RGB; an alpha channel is dropped when fully opaque and
    refused otherwise. Raises :class:`ImageError` with a one-line message.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file")
    try:
        is_tiff = path.suffix.lower() in (".tif", ".tiff")
        array = _read_tiff(path, max_pixels) if is_tiff else _read_with_pillow(path, max_pixels)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"{path}: image is too large to decode safely") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except (OSError, ValueError, SyntaxError, png.Error) as err:
        raise ImageError(f"{path}: not a readable image ({_first_line(err)})") from None
    return LoadedImage(to_float(array, name=str(path), max_pixels=max_pixels), array.dtype, path)


def _check_size(path: Path, width: int, height: int, max_pixels: int) -> None:
    """Refuse huge images before decoding them."""
    if width * height > max_pixels:
        raise ImageError(f"{path}: {width}x{height} pixels exceeds the limit of {max_pixels:,}")


def _read_tiff(path: Path, max_pixels: int) -> np.ndarray:
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        _check_size(path, page.imagewidth, page.imagelength, max_pixels)
        array = page.asarray()
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[2] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # planar (C, H, W) storage
    return array


def _read_with_pillow(path: Path, max_pixels: int) -> np.ndarray:
    with Image.open(path) as image:
        _check_size(path, *image.size, max_pixels)
        if image.format == "PNG" and image.mode == "RGB" and _png_bitdepth(path) == 16:
            return _read_png16(path)  # Pillow reduces 16-bit RGB PNG to 8 bits
        image.load()
        if image.mode in ("P", "PA"):
            image = image.convert("RGBA" if "transparency" in image.info or image.mode == "PA" else "RGB")
        elif image.mode in ("CMYK", "YCbCr", "LAB", "HSV", "1"):
            image = image.convert("L" if image.mode == "1" else "RGB")
        elif image.mode.startswith("I;16"):
            return np.asarray(image).astype(np.uint16)
        return np.asarray(image)


def _png_bitdepth(path: Path) -> int:
    return png.Reader(filename=str(path)).read()[3]["bitdepth"]


def _read_png16(path: Path) -> np.ndarray:
    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    return np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(height, width, info["planes"])


def to_float(array: np.ndarray, *, name: str = "image", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Validate an (H, W) or (H, W, C) array and return float32 (H, W, C).

    Integers are divided by their dtype maximum; floats are kept as they are.
    """
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ImageError(f"{name}: expected a 2-D image, got an array of shape {array.shape}")
    if array.shape[2] in (2, 4):
        array = _drop_alpha(array, name)
    h, w, c = array.shape
    if c not in (1, 3):
        raise ImageError(f"{name}: {c} channels; only gray (1) or RGB (3) images are supported")
    if min(h, w) < MIN_SIDE:
        raise ImageError(f"{name}: {w}x{h} pixels is too small (at least {MIN_SIDE} per side)")
    if h * w > max_pixels:
        raise ImageError(f"{name}: {w}x{h} pixels exceeds the limit of {max_pixels:,}")
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        return (array.astype(np.float64) / np.iinfo(array.dtype).max).astype(np.float32)
    if not np.issubdtype(array.dtype, np.floating):
        raise ImageError(f"{name}: unsupported pixel type {array.dtype}")
    if not np.isfinite(array).all():
        raise ImageError(f"{name}: contains NaN or infinite values")
    return array.astype(np.float32)


def _drop_alpha(array: np.ndarray, name: str) -> np.ndarray:
    alpha = array[..., -1]
    opaque = np.iinfo(array.dtype).max if np.issubdtype(array.dtype, np.integer) else 1.0
    if not np.all(alpha == opaque):
        raise ImageError(
            f"{name}: {array.shape[2]} channels with a non-opaque last (alpha) channel; "
            "only gray or RGB images are supported: flatten the alpha first"
        )
    warnings.warn(f"{name}: dropped an opaque alpha channel", stacklevel=3)
    return array[..., :-1]


def from_float(pixels: np.ndarray, dtype: np.dtype | type) -> np.ndarray:
    """Float (H, W, C) to ``dtype``: integers are clipped and rounded, floats kept."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        top = np.iinfo(dtype).max
        return np.round(np.clip(pixels, 0.0, 1.0) * top).astype(dtype)
    return pixels.astype(dtype)


def write_image(path: str | Path, pixels: np.ndarray, *, dtype: np.dtype | type = np.uint8) -> Path:
    """Write float (H, W, C) pixels as ``dtype`` (uint8, uint16 or float32), atomically.

    PNG takes 8/16-bit; TIFF any of the three; JPEG 8-bit only. The file appears
    complete or not at all.
    """
    path = Path(path)
    array = from_float(pixels, dtype)
    suffix = path.suffix.lower()
    fd, tmp = tempfile.mkstemp(suffix=suffix, prefix=".partial-", dir=path.parent)
    os.close(fd)
    try:
        _encode(Path(tmp), array, suffix)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _encode(path: Path, array: np.ndarray, suffix: str) -> None:
    squeezed = array[:, :, 0] if array.shape[2] == 1 else array
    if suffix in (".tif", ".tiff"):
        tifffile.imwrite(path, squeezed, photometric="rgb" if array.shape[2] == 3 else "minisblack")
    elif suffix == ".png" and array.dtype == np.uint16:
        h, w, c = array.shape
        mode = "RGB;16" if c == 3 else "L;16"
        png.from_array(array.reshape(h, w * c), mode).save(str(path))
    elif suffix == ".png" and array.dtype == np.uint8:
        Image.fromarray(squeezed).save(path)
    elif suffix in (".jpg", ".jpeg") and array.dtype == np.uint8:
        Image.fromarray(squeezed).save(path, quality=95)
    else:
        raise ImageError(f"{path.name}: cannot write {array.dtype} pixels as {suffix}; use .tif")


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: not a folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
