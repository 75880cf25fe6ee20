"""Estimating an unknown noise level from the noisy image (and its score).

Three estimators:
- "grid" (the authors', METHOD.md section 5): the score is computed once and
  Tweedie's estimate is scanned over a grid of levels, keeping the level whose
  estimate minimises a criterion (total variation, plus a likelihood term for
  Poisson and Gamma).
- "wavelet": scikit-image's ``estimate_sigma`` (Gaussian only).
- "score" (Gaussian, blind weights): the level whose Tweedie estimate
  x(sigma) = y + sigma^2 s(y) keeps the least high-frequency energy, in closed form.
  A level-agnostic score is about -(noise)/sigma^2, so the noise it removes is
  measured directly, not mixed with the image's own fine texture as in "wavelet".
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


def _highpass(x: Tensor) -> Tensor:
    """Horizontal and vertical first differences, flattened (B, C, H, W) -> (B, N)."""
    dx = x[..., :, 1:] - x[..., :, :-1]
    dy = x[..., 1:, :] - x[..., :-1, :]
    return torch.cat([dx.flatten(1), dy.flatten(1)], dim=1).double()


def score_sigma(y: Tensor, score: Tensor) -> float:
    """Gaussian sigma (/255) minimising ||H(y + sigma^2 s)||^2 over sigma, H a high-pass
    filter: sigma^2 = -<Hy, Hs> / ||Hs||^2. Needs a level-agnostic score."""
    hy, hs = _highpass(y), _highpass(score)
    variance = -(hy * hs).sum() / (hs * hs).sum().clamp_min(1e-30)
    return float(variance.clamp_min(0).sqrt()) * 255.0


ESTIMATORS = ("auto", "grid", "wavelet", "score")


def auto_method(family: str, blind: bool) -> str:
    """Gaussian: "score" with blind weights, else "wavelet" (a fixed-level score only
    fits its training level, so "grid" and "score" fail elsewhere). Poisson and
    Gamma: "grid"."""
    if family != "gaussian":
        return "grid"
    return "score" if blind else "wavelet"


def estimate_level(
    family: str, y: Tensor, score: Tensor, *, method: str = "auto", blind: bool = False
) -> float:
    """Estimate the noise level of ``y`` (1, C, H, W) in paper units.

    ``blind``: the score comes from level-agnostic weights (chooses "auto").
    """
    if method == "auto":
        method = auto_method(family, blind)
    if method == "score":
        if family != "gaussian":
            raise ValueError("the score estimate is for Gaussian noise only")
        return score_sigma(y, score)
    if method == "wavelet":
        if family != "gaussian":
            raise ValueError("the wavelet estimate is for Gaussian noise only")
        return wavelet_sigma(y)
    if method == "grid":
        return grid_search_level(family, y, score)
    raise ValueError(f"unknown level estimator {method!r}; choose from {ESTIMATORS}")
