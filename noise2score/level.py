"""Estimating an unknown noise level from the noisy image (and its score).

The score network does not depend on the level, so the score is computed once and
Tweedie's estimate is scanned over a grid of levels, keeping the level whose
estimate minimises a criterion (the authors' approach, METHOD.md section 5). For
Gaussian noise scikit-image's wavelet ``estimate_sigma`` is the quick alternative.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.restoration import estimate_sigma
from torch import Tensor

from noise2score.noise import make_noise

GRIDS = {
    "gaussian": np.linspace(5.0, 60.0, 56),  # sigma, /255
    "poisson": np.geomspace(0.003, 0.15, 60),  # zeta
    "gamma": np.geomspace(20.0, 200.0, 60),  # k
}
CHARBONNIER_EPS = 1e-3


def charbonnier_tv(x: Tensor) -> Tensor:
    """Mean Charbonnier total variation sqrt(dx^2 + dy^2 + eps^2) of (B, C, H, W)."""
    dx = x[..., :, 1:] - x[..., :, :-1]
    dy = x[..., 1:, :] - x[..., :-1, :]
    return (dx[..., :-1, :].square() + dy[..., :, :-1].square() + CHARBONNIER_EPS**2).sqrt().mean()


def _criterion(family: str, level: float, y: Tensor, x_hat: Tensor) -> float:
    tv = charbonnier_tv(x_hat)
    if family == "gaussian":
        return tv.item()
    x = x_hat.clamp_min(1e-4)
    if family == "poisson":  # negative log-likelihood of y given mean x, per pixel
        nll = (x - y * torch.log(x)).mean() / level
        return (0.1 * tv + nll).item()
    # gamma: -log p(y | x) = k y / x + k log x  (+ terms free of x), per pixel / k
    nll = (y / x + torch.log(x)).mean()
    return (tv + nll).item()


def grid_search_level(family: str, y: Tensor, score: Tensor, grid: np.ndarray | None = None) -> float:
    """Level on ``grid`` whose Tweedie estimate minimises the family's criterion."""
    grid = GRIDS[family] if grid is None else grid
    costs = [_criterion(family, float(v), y, make_noise(family, float(v)).tweedie(y, score)) for v in grid]
    return float(grid[int(np.argmin(costs))])


def wavelet_sigma(y: Tensor) -> float:
    """scikit-image's wavelet MAD estimate of Gaussian sigma, in /255 units."""
    pixels = y[0].permute(1, 2, 0).double().cpu().numpy()
    sigma = estimate_sigma(pixels, channel_axis=-1, average_sigmas=True)
    return float(sigma) * 255.0


ESTIMATORS = ("auto", "grid", "wavelet")


def estimate_level(family: str, y: Tensor, score: Tensor, *, method: str = "auto") -> float:
    """Estimate the noise level of ``y`` (1, C, H, W) in paper units.

    "auto" is the wavelet estimate for Gaussian noise (more reliable than the grid
    search with fixed-level weights, whose score only fits their training level) and
    the grid search for Poisson and Gamma noise.
    """
    if method == "auto":
        method = "wavelet" if family == "gaussian" else "grid"
    if method == "wavelet":
        if family != "gaussian":
            raise ValueError("the wavelet estimate is for Gaussian noise only")
        return wavelet_sigma(y)
    if method == "grid":
        return grid_search_level(family, y, score)
    raise ValueError(f"unknown level estimator {method!r}; choose from {ESTIMATORS}")
