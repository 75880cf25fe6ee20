"""Reading and writing images as float arrays in [0, 1] (H, W, C).

Integer images are scaled by their dtype range; float TIFF is taken as-is
(unclipped: noisy training images keep values below 0 and above 1).
"""

from __future__ import annotations

import itertools
import os
import secrets
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import png
import tifffile
from PIL import Image, ImageSequence, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")  # read and written
# Also taken from folders; read only (a result of one is written as PNG).
READ_ONLY_SUFFIXES = (".webp", ".bmp", ".gif")
NO_IMAGES = "no PNG, JPEG, TIFF, WebP, BMP or GIF images found"  # a folder without any
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


def gray_stored_as_colour(pixels: np.ndarray) -> bool:
    """(H, W, 3) pixels with three equal channels: a gray image saved as RGB, as many
    tools save one. Its noise is one draw, not three, so it is denoised as gray."""
    return pixels.ndim == 3 and pixels.shape[2] == 3 and bool((pixels[..., 1:] == pixels[..., :1]).all())


def read_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read PNG, JPEG, TIFF, WebP, BMP or GIF (8/16-bit integer or float32, gray or RGB).

    Palette images become gray where every palette colour is a gray, else RGB; an alpha
    channel (or a transparent colour key, as GIF and PNG have) is dropped when fully
    opaque and refused otherwise. A multi-page TIFF (a
    stack) or an animation (GIF, PNG, WebP) is refused: :func:`read_pages` reads those.
    Raises :class:`ImageError` with a one-line message.
    """
    path = _existing(path)
    with _reading(path):
        if _is_tiff(path):
            with tifffile.TiffFile(path) as tif:
                pages = _full_pages(path, tif)
                if len(pages) > 1:
                    raise ImageError(
                        f"{path}: a stack of {len(pages)} pages; give one image "
                        "(`noise2score denoise` and training take stacks page by page)"
                    )
                array = _page_array(path, pages[0], max_pixels)
        else:
            array = _read_with_pillow(path, max_pixels)
    return LoadedImage(to_float(array, name=str(path), max_pixels=max_pixels), array.dtype, path)


def count_pages(path: str | Path) -> int:
    """How many images ``path`` holds: the full-size pages of a TIFF, the frames of an
    animation, else 1."""
    path = _existing(path)
    with _reading(path):
        if not _is_tiff(path):
            with Image.open(path) as image:
                return getattr(image, "n_frames", 1)
        with tifffile.TiffFile(path) as tif:
            return len(_full_pages(path, tif))


def read_pages(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[LoadedImage]:
    """The images in ``path``, one at a time: each page of a TIFF stack in order (its
    thumbnails left out), each frame of an animation, or the one image of any other
    file. ``max_pixels`` bounds each page; pages are decoded as they are asked for."""
    path = _existing(path)
    if not _is_tiff(path):
        frames = count_pages(path)
        if frames == 1:
            yield read_image(path, max_pixels=max_pixels)
            return
        with _reading(path), Image.open(path) as image:
            for index, frame in enumerate(ImageSequence.Iterator(image)):
                name = f"{path} (frame {index + 1} of {frames})"
                _check_size(name, *frame.size, max_pixels)
                array = _pillow_array(frame)
                yield LoadedImage(to_float(array, name=name, max_pixels=max_pixels), array.dtype, path)
        return
    with _reading(path), tifffile.TiffFile(path) as tif:
        pages = _full_pages(path, tif)
        for index, page in enumerate(pages):
            name = f"{path} (page {index + 1} of {len(pages)})" if len(pages) > 1 else str(path)
            array = _page_array(name, page, max_pixels)
            yield LoadedImage(to_float(array, name=name, max_pixels=max_pixels), array.dtype, path)


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file")
    return path


def _is_tiff(path: Path) -> bool:
    return path.suffix.lower() in (".tif", ".tiff")


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn a decoder's error into a one-line :class:`ImageError` naming ``path``."""
    try:
        yield
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"{path}: image is too large to decode safely") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not a readable image (unknown or corrupt format)") from None
    except (OSError, ValueError, SyntaxError, png.Error) as err:
        raise ImageError(f"{path}: not a readable image ({_first_line(err)})") from None


def _check_size(path: str | Path, width: int, height: int, max_pixels: int) -> None:
    """Refuse huge images before decoding them."""
    if width * height > max_pixels:
        raise ImageError(f"{path}: {width}x{height} pixels exceeds the limit of {max_pixels:,}")


def _full_pages(path: Path, tif: tifffile.TiffFile) -> list[tifffile.TiffPage]:
    """The pages that are images of their own, not reduced-size previews of another."""
    pages = [page for page in tif.pages if not page.is_reduced]
    if not pages:
        raise ImageError(f"{path}: no image in the file")
    if tif.is_imagej and (tif.imagej_metadata or {}).get("images", 1) > len(pages):
        # ImageJ writes stacks past 4 GiB as raw data after one page: not readable page by page
        raise ImageError(f"{path}: an ImageJ stack stored without a page per image; save it in parts")
    return pages


def _page_array(name: str | Path, page: tifffile.TiffPage, max_pixels: int) -> np.ndarray:
    _check_size(name, page.imagewidth, page.imagelength, max_pixels)
    array = page.asarray()
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[2] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)  # planar (C, H, W) storage
    return array


def _read_with_pillow(path: Path, max_pixels: int) -> np.ndarray:
    with Image.open(path) as image:
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            raise ImageError(
                f"{path}: an animation of {frames} frames; give one image "
                "(`noise2score denoise` and training take animations frame by frame)"
            )
        _check_size(path, *image.size, max_pixels)
        if image.format == "PNG" and image.mode == "RGB" and _png_bitdepth(path) == 16:
            return _read_png16(path)  # Pillow reduces 16-bit RGB PNG to 8 bits
        return _pillow_array(image)


def _pillow_array(image: Image.Image) -> np.ndarray:
    """An opened image (or an animation's frame) as gray, RGB or RGBA values."""
    image.load()
    if image.mode in ("P", "PA"):
        alpha = "transparency" in image.info or image.mode == "PA"
        image = image.convert(
            ("LA" if alpha else "L") if _gray_palette(image) else ("RGBA" if alpha else "RGB")
        )
    elif image.mode in ("L", "RGB") and "transparency" in image.info:
        image = image.convert("LA" if image.mode == "L" else "RGBA")  # a colour key as alpha
    elif image.mode in ("CMYK", "YCbCr", "LAB", "HSV", "1"):
        image = image.convert("L" if image.mode == "1" else "RGB")
    elif image.mode.startswith("I;16"):
        return np.asarray(image).astype(np.uint16)
    return np.asarray(image)


def _gray_palette(image: Image.Image) -> bool:
    """Whether every colour of a palette image's palette is a gray (a gray GIF)."""
    palette = image.getpalette()  # [r, g, b, r, g, b, ...]
    colours = np.reshape(palette or [0, 1, 2], (-1, 3))
    return bool((colours == colours[:, :1]).all())


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
    """Write float (H, W, C) or (H, W) pixels as ``dtype`` (uint8, uint16 or float32),
    atomically.

    PNG takes 8/16-bit; TIFF any of the three; JPEG 8-bit only. The file appears
    complete or not at all.
    """
    path = Path(path)
    pixels = np.asarray(pixels)
    if pixels.ndim not in (2, 3):
        raise ImageError(f"{path.name}: cannot write an array of shape {pixels.shape} as an image")
    array = from_float(pixels[..., None] if pixels.ndim == 2 else pixels, dtype)
    with written_whole(path) as tmp:
        _encode(tmp, array, path)
    return path


@contextmanager
def written_whole(path: Path) -> Iterator[Path]:
    """A new name beside ``path`` to write to, renamed to ``path`` only when the block
    ends without error (and removed when it does not). The file gets the usual
    permissions (umask), as any file the user writes."""
    tmp = path.with_name(f".partial-{secrets.token_hex(6)}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _encode(tmp: Path, array: np.ndarray, path: Path) -> None:
    """Write ``array`` to ``tmp`` in the format of ``path``'s suffix."""
    suffix = path.suffix.lower()
    squeezed = array[:, :, 0] if array.shape[2] == 1 else array
    if suffix in (".tif", ".tiff"):
        tifffile.imwrite(tmp, squeezed, photometric="rgb" if array.shape[2] == 3 else "minisblack")
    elif suffix == ".png" and array.dtype == np.uint16:
        h, w, c = array.shape
        mode = "RGB;16" if c == 3 else "L;16"
        png.from_array(array.reshape(h, w * c), mode).save(str(tmp))
    elif suffix == ".png" and array.dtype == np.uint8:
        Image.fromarray(squeezed).save(tmp)
    elif suffix in (".jpg", ".jpeg") and array.dtype == np.uint8:
        Image.fromarray(squeezed).save(tmp, quality=95)
    else:
        raise ImageError(f"{path.name}: cannot write {array.dtype} pixels as {suffix}; use .tif")


def write_pages(path: str | Path, pages: Iterable[np.ndarray], count: int) -> Path:
    """Write ``count`` (H, W, C) arrays, as they are (integer or float32), as one
    multi-page TIFF, atomically: pages are encoded as they come, and the file appears
    complete or not at all (an error from ``pages`` leaves nothing behind)."""
    path = Path(path)
    pages = iter(pages)
    first = next(pages)
    bigtiff = first.nbytes * count > 2**31  # classic TIFF offsets end at 4 GiB
    with written_whole(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=bigtiff) as tiff:
        for array in itertools.chain([first], pages):
            squeezed = array[:, :, 0] if array.shape[2] == 1 else array
            photometric = "rgb" if array.shape[2] == 3 else "minisblack"
            tiff.write(squeezed, photometric=photometric, metadata=None)  # one series when alike
    return path


def make_folder(path: str | Path, what: str = "output folder") -> Path:
    """``mkdir -p``, with a one-line ImageError where a file stands in the way or the
    system refuses (no traceback for a mistyped ``--output``)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ImageError(f"{path}: is a file, not a folder; choose another {what}") from None
    except OSError as err:
        raise ImageError(f"{path}: cannot make the {what} ({err.strerror})") from None
    return path


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder`` (PNG, JPEG, TIFF, WebP, BMP, GIF), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"{folder}: not a folder")
    suffixes = IMAGE_SUFFIXES + READ_ONLY_SUFFIXES
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes and p.is_file())


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
