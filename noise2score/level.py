"""Estimating an unknown noise level from the noisy image (and its score).

Four estimators:
- "pca" (default): PCA of the image's weak-texture patches, after a variance-stabilising
  transform for Poisson and Gamma (``patch_level``); needs no network.
- "grid" (the authors', METHOD.md section 5): the score is computed once and
  Tweedie's estimate is scanned over a grid of levels, keeping the level whose
  estimate minimises a criterion (total variation, plus a likelihood term for
  Poisson and Gamma).
- "wavelet": scikit-image's ``estimate_sigma`` (Gaussian only).
- "score" (Gaussian, blind weights): the noise's size measured along the direction
  of the score in the wavelet HH band, per block, median (``score_sigma``).
"auto" is "pca", the most accurate of the four (benchmarks/RECIPES.md).
"""

from __future__ import annotations

import numpy as np
import pywt
import torch
from skimage.restoration import estimate_sigma
from torch import Tensor

from noise2score import patch_level
from noise2score.image_io import ImageError
from noise2score.noise import LEVEL_RANGES, check_read_noise, make_noise

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


BLOCK = 32  # HH coefficients per block side (64x64 pixels)


def _diagonal_details(x: Tensor) -> np.ndarray:
    """(C, H/2, W/2) level-1 diagonal (HH) db2 wavelet coefficients of a (1, C, H, W)
    tensor; the periodic extension keeps the transform orthonormal, so white noise of
    std sigma gives coefficients of std sigma."""
    channels = x[0].double().cpu().numpy()
    return np.stack([pywt.dwt2(c, "db2", mode="periodization")[1][2] for c in channels])


def _blocks(a: np.ndarray, size: int) -> np.ndarray:
    """(C, H, W) -> (number of blocks, size * size) over whole size x size blocks."""
    c, h, w = a.shape
    a = a[:, : h // size * size, : w // size * size]
    a = a.reshape(c, h // size, size, w // size, size).transpose(0, 1, 3, 2, 4)
    return a.reshape(-1, size * size)


def score_sigma(y: Tensor, score: Tensor) -> float:
    """Gaussian sigma (/255) from the noisy image and a level-agnostic score.

    Such a score is about -(noise)/sigma^2, so in the wavelet HH band its direction is
    that of the noise, and the noise's size can be read off the noisy image along it:
    sigma = -<Wy, Ws> / (|Ws| sqrt(n)) over n coefficients. Only the score's direction is
    used, not its size. Texture the network mistakes for noise biases this upwards, so
    it is taken per 64x64-pixel block and the median over blocks is kept.
    """
    wy, ws = _diagonal_details(y), _diagonal_details(score)
    size = min(BLOCK, wy.shape[1], wy.shape[2])
    by, bs = _blocks(wy, size), _blocks(ws, size)
    norms = np.sqrt((bs * bs).sum(axis=1) * bs.shape[1])
    sigmas = -(by * bs).sum(axis=1) / np.maximum(norms, 1e-30)
    return max(float(np.median(sigmas)), 0.0) * 255.0


ESTIMATORS = ("auto", "pca", "grid", "wavelet", "score")
AUTO = "pca"  # the most accurate for every family and weights (benchmarks/RECIPES.md)
PAPER_UNITS = {"gaussian": 255.0, "poisson": 1.0, "gamma": 1.0}  # sigma is quoted in /255


def pca_level(family: str, y: Tensor, read_noise: float = 0.0) -> float | None:
    """Weak-texture PCA estimate in paper units, held to the family's valid range; None
    when the image is too small. ``read_noise``: Gaussian noise of that standard
    deviation added to Poisson noise (known; see ``Denoiser.denoise_tensor``)."""
    channels = y[0].double().cpu().numpy()
    check_read_noise(read_noise, family)
    if family == "gaussian":
        level = patch_level.gaussian_sigma(channels)
    elif family == "poisson":
        level = patch_level.poisson_zeta(channels, read_noise=read_noise)
    else:
        level = patch_level.gamma_k(channels)
    if level is None:
        return None
    return float(np.clip(level * PAPER_UNITS[family], *LEVEL_RANGES[family]))


def estimate_level_without_score(family: str, y: Tensor, *, method: str = "auto") -> float:
    """The estimate for weights that must be told the level before they score: "pca"
    (or "auto"), else "wavelet" (Gaussian; also where the image is too small for pca)."""
    if method in ("auto", "pca"):
        level = pca_level(family, y)
        if level is not None:
            return level
        if family != "gaussian":
            raise ImageError("the image is too small to estimate the noise level: give the level")
        method = "wavelet"
    if method == "wavelet" and family == "gaussian":
        return wavelet_sigma(y)
    raise ValueError(f"weights that take the level estimate it with 'pca' or 'wavelet', not {method!r}")


def estimate_level(family: str, y: Tensor, score: Tensor, *, method: str = "auto") -> float:
    """Estimate the noise level of ``y`` (1, C, H, W) in paper units; ``score`` is the
    network's score of ``y`` (used by "grid" and "score")."""
    if method == "auto":
        method = AUTO
    if method == "pca":
        level = pca_level(family, y)
        if level is not None:
            return level
        method = "grid"  # too small for 7x7 patches: fall back on the score
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
