"""The white level: dim integer data (photon counts, 12-bit in 16-bit) scaled to 1 and back."""

import numpy as np
import pytest
import tifffile

from noise2score.cli import main
from noise2score.image_io import ImageError
from noise2score.metrics import psnr
from noise2score.weights import WeightsInfo, bundled_names
from noise2score.white import far_from_training, is_dim, parse_black, parse_white, unit_range
from tests.conftest import clean_crops

PEAK = 100  # photons at white: Poisson level 1 / PEAK = 0.01 once scaled


@pytest.mark.parametrize("text", ["0", "-3", "nan", "inf", "bright"])
def test_a_white_level_that_is_not_positive_is_refused(text):
    with pytest.raises(ValueError, match="white level .--white. is 'auto' or a positive number"):
        parse_white(text)


def test_black_and_white_levels_are_checked_together():
    assert parse_black(None) == 0.0 and parse_black("100") == 100.0
    for text in ["-1", "nan", "dark"]:
        with pytest.raises(ValueError, match="black level .--black. is a number, zero or above"):
            parse_black(text)
    assert parse_white("101", black=100.0) == 101.0
    with pytest.raises(ValueError, match="a number above the black level 100"):
        parse_white("100", black=100.0)


def test_unit_range_in_file_units_and_auto():
    assert parse_white(None) is None and parse_white("auto") == "auto" and parse_white("4095") == 4095.0
    pixels = np.linspace(0, 0.05, 10_001, dtype=np.float32)
    u16, f32 = np.dtype(np.uint16), np.dtype(np.float32)
    assert unit_range(pixels, u16, None) == (0.0, 1.0)
    assert unit_range(pixels, u16, 4095.0) == pytest.approx((0.0, 4095 / 65535))
    assert unit_range(pixels, u16, 4095.0, black=95.0) == pytest.approx((95 / 65535, 4000 / 65535))
    assert unit_range(pixels, f32, 0.5) == (0.0, 0.5)
    assert unit_range(pixels, u16, "auto") == pytest.approx((0.0, 0.05 * 0.999), rel=1e-4)
    assert unit_range(pixels, f32, "auto", black=0.01) == pytest.approx((0.01, 0.05 * 0.999 - 0.01), rel=1e-4)
    with pytest.raises(ImageError, match="too dark"):
        unit_range(np.zeros(100, np.float32), u16, "auto")
    with pytest.raises(ImageError, match="at or below black"):
        unit_range(pixels, f32, "auto", black=0.06)


def test_levels_far_from_training_are_named():
    blind = WeightsInfo("n2n_unet", 1, "poisson", 0.05, "pb", levels=(0.005, 0.1))
    fixed = WeightsInfo("n2n_unet", 1, "gaussian", 25.0, "g25")
    assert far_from_training(blind, 0.01) is None and far_from_training(fixed, 40) is None
    assert far_from_training(blind, 1e-4, hint=" (dim)").endswith("pb were trained at (0.005-0.1) (dim)")
    assert is_dim(np.full(10, 0.01, np.float32), np.dtype(np.uint16))
    assert not is_dim(np.full(10, 0.01, np.float32), np.dtype(np.float32))  # float: units are the user's
    assert not is_dim(np.full(10, 0.5, np.float32), np.dtype(np.uint8))
    assert far_from_training(fixed, 60).endswith("(25)")


def test_the_api_scales_and_scales_back():
    from noise2score import load_denoiser

    denoiser = load_denoiser("gaussian25-gray", tile=None)
    counts = np.random.default_rng(0).integers(0, 4096, (48, 40), dtype=np.uint16)
    scaled = denoiser.denoise(counts.astype(np.float32) / 4095, level=25)
    expected = np.round(np.clip(scaled * 4095, 0, 65535)).astype(np.uint16)
    out = denoiser.denoise(counts, level=25, white=4095)
    assert out.dtype == np.uint16 and np.abs(out.astype(int) - expected).max() <= 1
    raised = denoiser.denoise(counts + np.uint16(100), level=25, white=4195, black=100)
    assert np.abs(raised.astype(int) - 100 - expected).max() <= 1  # a black level is taken off and put back


def _photon_counts(tmp_path, pages=1):
    x = clean_crops(size=128)[0][..., 0].astype(np.float64)
    rng = np.random.default_rng(0)
    counts = np.stack([rng.poisson(PEAK * x) for _ in range(pages)]).astype(np.uint16)
    tifffile.imwrite(tmp_path / "cells.tif", counts[0] if pages == 1 else counts)
    return x, counts


@pytest.mark.skipif("poisson-blind-gray" not in bundled_names(), reason="bundled Poisson weights not present")
def test_photon_counts_need_a_white_level_and_get_a_warning_without_one(tmp_path, capsys):
    x, counts = _photon_counts(tmp_path)
    noisy = psnr(counts[0] / PEAK, x)
    args = ["denoise", str(tmp_path / "cells.tif"), "--noise", "poisson", "--overwrite"]

    assert main([*args, "-o", str(tmp_path / "plain")]) == 0
    assert "the image is dim: see --white and --black" in capsys.readouterr().err  # level ~1e-4
    for white, out in [("100", "given"), ("auto", "auto")]:
        assert main([*args, "-o", str(tmp_path / out), "--white", white]) == 0
        captured = capsys.readouterr()
        assert "warning" not in captured.err and ("white" in captured.out) == (white == "auto")
        denoised = tifffile.imread(tmp_path / out / "cells.tif")
        assert denoised.dtype == np.uint16 and psnr(denoised / PEAK, x) > noisy + 5  # file units kept

    offset = 100  # a camera's black level: counts + 100
    tifffile.imwrite(tmp_path / "cells.tif", counts[0] + np.uint16(offset))
    assert (
        main([*args, "-o", str(tmp_path / "black"), "--black", str(offset), "--white", str(offset + PEAK)])
        == 0
    )
    assert "warning" not in capsys.readouterr().err
    denoised = tifffile.imread(tmp_path / "black" / "cells.tif").astype(np.float64)
    assert psnr((denoised - offset) / PEAK, x) > noisy + 5


def test_a_bad_white_level_is_a_one_line_error(tmp_path, capsys):
    _photon_counts(tmp_path)
    assert main(["denoise", str(tmp_path / "cells.tif"), "-o", str(tmp_path / "o"), "--white", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--white" in err and not (tmp_path / "o").exists()
    tifffile.imwrite(tmp_path / "black.tif", np.zeros((32, 32), np.uint16))
    assert main(["denoise", str(tmp_path / "black.tif"), "-o", str(tmp_path / "o"), "--white", "auto"]) == 1
    assert "too dark" in capsys.readouterr().err


def test_a_stack_is_scaled_page_by_page(tmp_path, capsys):
    _, counts = _photon_counts(tmp_path, pages=3)
    counts[1] //= 2  # a dimmer page gets its own white level
    tifffile.imwrite(tmp_path / "cells.tif", counts, photometric="minisblack")
    code = main(
        [
            "denoise",
            str(tmp_path / "cells.tif"),
            "-o",
            str(tmp_path / "o"),
            "--level",
            "25",
            "--white",
            "auto",
        ]
    )
    line = capsys.readouterr().out  # Gaussian weights take the zero counts for clipped noise
    assert code == 0 and "(3 pages; " in line and "; white " in line
    out = tifffile.imread(tmp_path / "o" / "cells.tif")
    assert out.shape == counts.shape and out[1].mean() < 0.75 * out[0].mean()


def test_a_float_image_in_other_units_needs_a_white_level(tmp_path, capsys):
    x = clean_crops(size=128)[0][..., 0]
    noisy = x + np.random.default_rng(0).normal(0, 25 / 255, x.shape).astype(np.float32)
    tifffile.imwrite(tmp_path / "scan.tif", noisy * 255)  # float, 0-255
    args = ["denoise", str(tmp_path / "scan.tif"), "--weights", "gaussian25-gray", "--level", "25"]
    assert main([*args, "-o", str(tmp_path / "plain")]) == 1
    err = capsys.readouterr().err
    assert "float images are read as 0 to 1" in err and "--white" in err
    assert not (tmp_path / "plain" / "scan.tif").exists()
    assert main([*args, "-o", str(tmp_path / "given"), "--white", "255"]) == 0
    denoised = tifffile.imread(tmp_path / "given" / "scan.tif")
    assert denoised.dtype == np.float32 and psnr(denoised / 255, x) > psnr(noisy, x) + 5  # units kept
    with pytest.raises(ImageError, match="99.9th percentile"):
        unit_range(noisy[..., None] * 255, np.dtype(np.float32), None)
    assert unit_range(noisy[..., None], np.dtype(np.float32), None) == (0.0, 1.0)  # a noisy 0-1 image
