"""Variance-stabilising transforms, and a second view of Poisson and Gamma images.

The Anscombe transform (Poisson) and the logarithm (Gamma) make the noise nearly
Gaussian with a known variance that no longer depends on the signal. The classical
baselines denoise that with a Gaussian denoiser and map it back (exact unbiased inverse;
exponential with the log's bias taken off first).

The same route through Gaussian score weights gives an estimate whose errors differ
from those of the family's own Tweedie estimate; their mean beats both
(``Denoiser(..., vst=...)``, ``noise2score denoise --vst``). The stabilised image is
mapped linearly onto the unit range, where the Gaussian weights were trained, so its
noise there has sigma = spread / span.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.special import polygamma, psi
from torch import Tensor

from noise2score.noise import NoiseModel

if TYPE_CHECKING:
    from noise2score.denoiser import Denoiser

# Robust ends of the stabilised image, percent at each side: mapped to 0 and 1.
SPAN_PERCENTILE = 0.5


def anscombe(z: np.ndarray) -> np.ndarray:
    """Counts -> approximately unit-variance Gaussian: 2 sqrt(z + 3/8)."""
    return 2.0 * np.sqrt(np.maximum(z, 0) + 3.0 / 8.0)


def inverse_anscombe(d: np.ndarray) -> np.ndarray:
    """Closed-form approximation of the exact unbiased inverse (Makitalo & Foi, 2011)."""
    d = np.maximum(d, 0.8)  # the approximation holds for d above ~0.8 (z near 0)
    s = math.sqrt(1.5)
    return np.maximum(0.25 * d**2 + 0.25 * s / d - 11 / 8 / d**2 + 0.625 * s / d**3 - 0.125, 0.0)


def stabilise(y: np.ndarray, noise: NoiseModel) -> tuple[np.ndarray, float]:
    """Noisy ``y`` in [0, 1] units -> (stabilised image, its noise standard deviation)."""
    if noise.family == "poisson":
        return anscombe(y / noise.level), 1.0
    if noise.family == "gamma":  # log y = log x + log g: E[log g] = psi(k) - log k, Var = psi'(k)
        k = noise.level
        bias = psi(k) - math.log(k)
        return np.log(np.maximum(y, 1e-6)) - bias, math.sqrt(polygamma(1, k))
    raise ValueError(f"no variance-stabilising transform for {noise.family} noise")


def unstabilise(d: np.ndarray, noise: NoiseModel) -> np.ndarray:
    """A denoised stabilised image back to [0, 1] intensity units."""
    if noise.family == "poisson":
        return noise.level * inverse_anscombe(d)
    return np.exp(d)


def unit_span(z: np.ndarray, sigma: float, levels: tuple[float, float]) -> tuple[float, float, float]:
    """(low end, span, Gaussian level in /255) of the linear map of stabilised ``z`` onto
    the unit range: its robust ends go to 0 and 1, unless the noise would then fall outside
    the Gaussian weights' ``levels`` (one level for fixed-level weights), where the span is
    widened or narrowed about the same centre to bring it inside."""
    low, high = np.percentile(z, [SPAN_PERCENTILE, 100 - SPAN_PERCENTILE])
    span = max(float(high - low), 1e-6)
    level = float(np.clip(255 * sigma / span, *levels))
    new_span = 255 * sigma / level
    return float(low + high) / 2 - new_span / 2, new_span, level


def stabilised_estimate(gaussian: Denoiser, y: Tensor, noise: NoiseModel) -> Tensor:
    """Estimate of the clean image behind Poisson or Gamma noisy ``y`` (1, C, H, W), made
    by ``gaussian`` (Gaussian weights) on its stabilised, unit-range version."""
    z, sigma = stabilise(y.detach().cpu().double().numpy(), noise)
    info = gaussian.info
    low, span, level = unit_span(z, sigma, info.levels if info.blind else (info.level, info.level))
    u = torch.from_numpy(((z - low) / span).astype(np.float32))
    d = gaussian.denoise_tensor(u, level).x_hat.double().numpy() * span + low
    return torch.from_numpy(unstabilise(d, noise).astype(np.float32))
