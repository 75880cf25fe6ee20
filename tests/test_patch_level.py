"""Weak-texture PCA noise level, on a real photograph (scikit-image's camera, bundled)."""

import numpy as np
import pytest
import torch
from skimage import data

from noise2score.level import pca_level
from noise2score.noise import LEVEL_RANGES, make_noise
from noise2score.patch_level import gaussian_sigma, weak_texture_variance


@pytest.fixture(scope="module")
def camera() -> torch.Tensor:
    """(1, 1, 512, 512) in [0, 1], with its textured grass and flat sky."""
    return torch.from_numpy(data.camera() / 255.0).float()[None, None]


def _noisy(x: torch.Tensor, family: str, level: float) -> torch.Tensor:
    return make_noise(family, level).sample(x, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    ("family", "level", "tolerance"),
    [
        ("gaussian", 5.0, 0.05),
        ("gaussian", 25.0, 0.03),
        ("gaussian", 50.0, 0.03),
        ("poisson", 0.01, 0.08),
        ("poisson", 0.05, 0.08),
        ("gamma", 50.0, 0.08),
        ("gamma", 100.0, 0.08),
    ],
)
def test_pca_level_recovers_the_level(camera, family, level, tolerance):
    assert pca_level(family, _noisy(camera, family, level)) == pytest.approx(level, rel=tolerance)


@pytest.mark.parametrize("brightness", [1.0, 0.5])
def test_dark_patches_do_not_pull_the_poisson_estimate_low(camera, brightness):
    """At zeta 0.1 the sky has 5-10 counts per pixel and the dark coat under 2, where the
    Anscombe transform's noise variance is well below one; without leaving those patches
    out the estimate was 13% (full brightness) and 23% (half) low."""
    y = _noisy(camera * brightness, "poisson", 0.1)
    assert pca_level("poisson", y) == pytest.approx(0.1, rel=0.04)


@pytest.mark.parametrize("sigma", [25.0, 50.0])
def test_an_8bit_file_clipped_at_black_and_white_is_not_read_low(camera, sigma):
    """Stored as 8 bits, the noise is clipped on 7% (sigma 25) and 16% (sigma 50) of the
    camera's pixels and narrower near black and white: the estimate over all patches
    read 23.3 and 41.9. Only patches well inside the range are used now."""
    y = torch.round(_noisy(camera, "gaussian", sigma).clamp(0, 1) * 255) / 255
    assert pca_level("gaussian", y) == pytest.approx(sigma, rel=0.05)
    moved = (y[0].double().numpy() + 0.1) / 1.25  # clipped at 0.08 and 0.88 (--black, --white)
    assert gaussian_sigma(moved) * 1.25 == pytest.approx(gaussian_sigma(y[0].double().numpy()), rel=1e-6)


def test_an_image_with_almost_no_bright_patches_still_gets_a_poisson_estimate(camera):
    """Under 2 counts almost everywhere: too few bright patches, so all are used (it was
    40% low before dark patches were left out in the rounds that have enough bright ones)."""
    assert pca_level("poisson", _noisy(camera * 0.2, "poisson", 0.1)) == pytest.approx(0.1, rel=0.2)


def test_texture_alone_is_not_taken_for_noise(camera):
    """The clean photograph has far less 'noise' than the weakest level we estimate;
    estimates stay within the family's valid range."""
    assert pca_level("gaussian", camera) < 1.0
    assert pca_level("poisson", camera) == pytest.approx(LEVEL_RANGES["poisson"][0], abs=1e-4)
    assert pca_level("gamma", camera) > 1000
    assert pca_level("gamma", torch.full((1, 1, 64, 64), 0.5)) == LEVEL_RANGES["gamma"][1]


def test_colour_channels_are_averaged(camera):
    rgb = camera.repeat(1, 3, 1, 1)
    assert pca_level("gaussian", _noisy(rgb, "gaussian", 20.0)) == pytest.approx(20.0, rel=0.03)


def test_the_bias_correction_is_what_brings_the_estimate_up():
    """Pure white noise: the smallest sample eigenvalue of the covariance is about 10%
    low for this few patches; with the correction the variance is within 4%."""
    noise = np.random.default_rng(1).standard_normal((200, 200))
    assert weak_texture_variance(noise) == pytest.approx(1.0, rel=0.04)


def test_images_smaller_than_a_patch_have_no_estimate():
    assert gaussian_sigma(np.zeros((1, 6, 40))) is None


def test_large_images_are_sampled_not_copied_whole():
    noise = 0.1 * np.random.default_rng(2).standard_normal((1, 1500, 1500))
    assert gaussian_sigma(noise) == pytest.approx(0.1, rel=0.03)
