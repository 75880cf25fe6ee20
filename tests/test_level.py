"""Noise-level estimators, checked with an oracle score whose level is known."""

import numpy as np
import pytest
import torch

from noise2score.level import estimate_level, grid_search_level, pca_level, score_sigma, wavelet_sigma


def _smooth_image(size: int = 128) -> torch.Tensor:
    """A smooth (1, 1, H, W) image: almost no energy at high frequencies."""
    r = torch.linspace(0, 1, size)
    return (0.3 + 0.4 * r[:, None] * r[None, :] + 0.1 * torch.sin(3 * r)[None, :])[None, None]


def _noisy_with_blind_oracle(sigma: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """y = x + noise and the score of a perfect level-agnostic network: -(y - x) / s^2."""
    x = _smooth_image()
    s = sigma / 255
    y = x + s * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    return y, -(y - x) / s**2


@pytest.mark.parametrize("sigma", [5.0, 25.0, 50.0])
def test_score_estimate_recovers_sigma_from_a_blind_score(sigma):
    y, score = _noisy_with_blind_oracle(sigma)
    assert score_sigma(y, score) == pytest.approx(sigma, rel=0.02)


@pytest.mark.parametrize("sigma", [10.0, 35.0])
def test_grid_search_finds_the_level_of_a_blind_score(sigma):
    y, score = _noisy_with_blind_oracle(sigma)
    grid = np.arange(5.0, 60.0, 1.0)
    assert grid_search_level("gaussian", y, score, grid) == pytest.approx(sigma, abs=1.0)


def test_wavelet_estimate_is_in_255_units():
    y, _ = _noisy_with_blind_oracle(20.0)
    assert wavelet_sigma(y) == pytest.approx(20.0, rel=0.05)


def test_auto_is_pca_and_falls_back_on_the_grid_for_tiny_images():
    y, score = _noisy_with_blind_oracle(30.0)
    assert estimate_level("gaussian", y, score) == pca_level("gaussian", y)
    tiny, tiny_score = y[..., :5, :5], score[..., :5, :5]
    assert pca_level("gaussian", tiny) is None
    assert estimate_level("gaussian", tiny, tiny_score) == grid_search_level("gaussian", tiny, tiny_score)
    with pytest.raises(ValueError, match="Gaussian noise only"):
        estimate_level("gamma", y, score, method="score")
