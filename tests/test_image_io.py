import os
import stat

import numpy as np
import pytest
import tifffile
from PIL import Image

from noise2score.image_io import (
    ImageError,
    count_pages,
    read_image,
    read_pages,
    to_float,
    write_image,
    write_pages,
)

RNG = np.random.default_rng(0)


@pytest.mark.parametrize(
    ("suffix", "dtype", "channels"),
    [
        (".png", np.uint8, 1),
        (".png", np.uint8, 3),
        (".png", np.uint16, 1),
        (".png", np.uint16, 3),
        (".tif", np.uint16, 3),
        (".tif", np.float32, 1),
        (".tif", np.float32, 3),
        (".tif", np.uint8, 1),
    ],
)
def test_round_trip_keeps_values(tmp_path, suffix, dtype, channels):
    pixels = RNG.random((20, 30, channels)).astype(np.float32)
    path = write_image(tmp_path / f"a{suffix}", pixels, dtype=dtype)
    loaded = read_image(path)
    assert loaded.source_dtype == dtype and loaded.pixels.shape == (20, 30, channels)
    step = 0 if dtype == np.float32 else 0.5 / np.iinfo(dtype).max + 1e-7
    assert np.abs(loaded.pixels - pixels).max() <= step


def test_a_two_dimensional_array_is_written_gray_and_other_shapes_are_refused(tmp_path):
    pixels = RNG.random((20, 30)).astype(np.float32)
    assert read_image(write_image(tmp_path / "g.png", pixels)).pixels.shape == (20, 30, 1)
    with pytest.raises(ImageError, match=r"shape \(20,\)"):
        write_image(tmp_path / "v.png", pixels[0, :20])
    assert not (tmp_path / "v.png").exists()


def test_float_tiff_is_unclipped(tmp_path):
    pixels = np.array([[-0.2, 1.3]] * 8 * 4, np.float32).reshape(8, 8, 1)
    tifffile.imwrite(tmp_path / "n.tif", pixels[:, :, 0])
    assert read_image(tmp_path / "n.tif").pixels.min() == np.float32(-0.2)


def test_jpeg_and_palette(tmp_path):
    rgb = (RNG.random((16, 16, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.jpg")
    assert read_image(tmp_path / "a.jpg").channels == 3
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").channels == 3


def test_opaque_alpha_dropped_transparent_refused(tmp_path):
    rgba = (RNG.random((16, 16, 4)) * 255).astype(np.uint8)
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(tmp_path / "opaque.png")
    with pytest.warns(UserWarning, match="alpha"):
        assert read_image(tmp_path / "opaque.png").channels == 3
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "clear.png")
    with pytest.raises(ImageError, match="non-opaque"):
        read_image(tmp_path / "clear.png")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("hello"), "not a readable image"),
        (lambda p: Image.new("L", (1, 1)).save(p), "too small"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path, make, message):
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(ImageError, match=message) as info:
        read_image(path)
    assert "\n" not in str(info.value)


def test_truncated_png(tmp_path):
    path = tmp_path / "t.png"
    Image.fromarray((RNG.random((64, 64)) * 255).astype(np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ImageError, match="not a readable image"):
        read_image(path)


def test_array_checks():
    with pytest.raises(ImageError, match="NaN"):
        to_float(np.full((16, 16), np.nan, np.float32))
    with pytest.raises(ImageError, match="5 channels"):
        to_float(np.zeros((16, 16, 5), np.uint8))
    with pytest.raises(ImageError, match="exceeds"):
        to_float(np.zeros((100, 100), np.uint8), max_pixels=9999)
    assert to_float(np.full((8, 8), 65535, np.uint16)).max() == 1.0


def test_huge_images_are_refused_before_decoding(tmp_path):
    Image.new("L", (300, 200)).save(tmp_path / "big.png")
    tifffile.imwrite(tmp_path / "big.tif", np.zeros((200, 300), np.float32))
    for name in ("big.png", "big.tif"):
        with pytest.raises(ImageError, match="exceeds"):
            read_image(tmp_path / name, max_pixels=50_000)


def test_planar_tiff_is_read_as_rgb(tmp_path):
    planar = RNG.random((3, 20, 30)).astype(np.float32)
    tifffile.imwrite(tmp_path / "planar.tif", planar, photometric="rgb", planarconfig="separate")
    assert read_image(tmp_path / "planar.tif").pixels.shape == (20, 30, 3)


def _stack(path, pages, **kwargs):
    with tifffile.TiffWriter(path) as tiff:
        for page in pages:
            tiff.write(page, **kwargs)


def test_a_tiff_stack_is_read_page_by_page_and_refused_as_one_image(tmp_path):
    pages = [RNG.integers(0, 65536, (20, 30), dtype=np.uint16) for _ in range(5)]
    _stack(tmp_path / "s.tif", pages, photometric="minisblack")
    assert count_pages(tmp_path / "s.tif") == 5
    read = [page.pixels[:, :, 0] for page in read_pages(tmp_path / "s.tif")]
    assert np.allclose(read, np.array(pages) / 65535)
    with pytest.raises(ImageError, match="a stack of 5 pages"):
        read_image(tmp_path / "s.tif")


@pytest.mark.parametrize("suffix", [".gif", ".png", ".webp"])
def test_an_animation_is_read_frame_by_frame_and_refused_as_one_image(tmp_path, suffix):
    frames = [RNG.integers(0, 256, (20, 30), dtype=np.uint8) for _ in range(3)]
    path = tmp_path / f"a{suffix}"
    first, *rest = (Image.fromarray(f) for f in frames)
    first.save(path, save_all=True, append_images=rest, lossless=True)
    assert count_pages(path) == 3
    read = [page.pixels[..., 0] for page in read_pages(path)]
    assert np.allclose(read, np.array(frames) / 255)
    with pytest.raises(ImageError, match="an animation of 3 frames"):
        read_image(path)


def test_previews_are_not_pages(tmp_path):
    image = RNG.random((24, 32)).astype(np.float32)
    with tifffile.TiffWriter(tmp_path / "p.tif") as tiff:
        tiff.write(image)
        tiff.write(image[::2, ::2], subfiletype=1)  # a reduced-resolution preview
    assert count_pages(tmp_path / "p.tif") == 1
    assert np.array_equal(read_image(tmp_path / "p.tif").pixels[:, :, 0], image)


def test_a_bad_page_is_named(tmp_path):
    pages = [RNG.random((20, 30)).astype(np.float32) for _ in range(3)]
    pages[1][4, 4] = np.nan
    _stack(tmp_path / "s.tif", pages)
    with pytest.raises(ImageError, match=r"page 2 of 3\): contains NaN"):
        list(read_pages(tmp_path / "s.tif"))


def test_write_pages_is_one_series_and_all_or_nothing(tmp_path):
    pages = [RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8) for _ in range(4)]
    write_pages(tmp_path / "out.tif", iter(pages), count=4)
    assert np.array_equal(tifffile.imread(tmp_path / "out.tif"), np.array(pages))

    def failing():
        yield pages[0]
        raise ImageError("page 2 is bad")

    with pytest.raises(ImageError, match="page 2"):
        write_pages(tmp_path / "bad.tif", failing(), count=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]


def test_written_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_image(tmp_path / "a.png", RNG.random((8, 8, 1)).astype(np.float32))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_palette_image_is_gray_where_its_palette_holds_only_grays(tmp_path):
    gray = RNG.integers(0, 256, (20, 30), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.gif")
    read = read_image(tmp_path / "g.gif").pixels
    assert read.shape == (20, 30, 1) and np.allclose(read[..., 0], gray / 255)
    colour = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(colour).quantize(64).save(tmp_path / "c.gif")  # a palette of colours
    assert read_image(tmp_path / "c.gif").pixels.shape == (20, 30, 3)


GRAY_RAMP = (np.arange(600).reshape(20, 30) % 200).astype(np.uint8)  # 200..255 unused


@pytest.mark.parametrize("suffix", [".gif", ".png"])
def test_a_transparent_colour_key_in_use_is_refused_as_alpha(tmp_path, suffix):
    Image.fromarray(GRAY_RAMP).save(tmp_path / f"g{suffix}", transparency=int(GRAY_RAMP[0, 0]))
    colour = np.stack([GRAY_RAMP, GRAY_RAMP // 2, 255 - GRAY_RAMP], axis=-1)
    Image.fromarray(colour).save(tmp_path / "c.png", transparency=tuple(int(v) for v in colour[0, 0]))
    for name in (f"g{suffix}", "c.png"):
        with pytest.raises(ImageError, match="alpha"):
            read_image(tmp_path / name)


def test_an_unused_transparent_colour_key_is_dropped(tmp_path):
    Image.fromarray(GRAY_RAMP).save(tmp_path / "g.png", transparency=250)
    with pytest.warns(UserWarning, match="opaque alpha"):
        read = read_image(tmp_path / "g.png").pixels
    assert read.shape == (20, 30, 1) and np.allclose(read[..., 0], GRAY_RAMP / 255)
