"""Variance-stabilising transforms, and a second view of Poisson and Gamma images.

The Anscombe transform (Poisson) and the logarithm (Gamma) make the noise nearly
Gaussian with a known variance that no longer depends on the signal. The classical
baselines denoise that with a Gaussian denoiser and map it back (exact unbiased inverse;
exponential with the log's bias taken off first).

The same route through Gaussian score weights gives an estimate whose errors differ
from those of the family's own Tweedie estimate; a mix of the two beats both
(``Denoiser(..., vst=...)``, ``noise2score denoise --vst``): for Poisson their mean, for
Gamma the share of each that SURE in the log domain picks per image (:func:`view_share`).
The stabilised image is mapped linearly onto the unit range, where the Gaussian weights
were trained, so its noise there has sigma = spread / span.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.special import polygamma, psi
from torch import Tensor

from noise2score.noise import NoiseModel

if TYPE_CHECKING:
    from noise2score.adapt import Adaptation
    from noise2score.denoiser import Denoiser

# Robust ends of the stabilised image, percent at each side: mapped to 0 and 1.
SPAN_PERCENTILE = 0.5
LOG_FLOOR = 1e-6  # the log of Gamma images is taken above this
# Gamma: shares of the stabilised view tried, the log-domain step of the divergence probe,
# and the most pixels the probe runs on (a central crop of larger images).
SHARES = np.arange(11) / 10
# How the view is mixed in, per family, for results' records: 1 the mean, 2 the SURE share.
MIX_REVISION = {"poisson": 1, "gamma": 2}
PROBE_STEP = 1e-3
PROBE_PIXELS = 1 << 20


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
        return np.log(np.maximum(y, LOG_FLOOR)) - bias, math.sqrt(polygamma(1, k))
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
    u, low, span, level = _unit_stabilised(gaussian, y, noise)
    d = gaussian.denoise_tensor(u, level, clip_inverse=False).x_hat.double().numpy() * span + low
    return torch.from_numpy(unstabilise(d, noise).astype(np.float32))


def fitted_stabilised_view(
    gaussian: Denoiser, y: Tensor, noise: NoiseModel, settings: Adaptation
) -> Denoiser:
    """A copy of ``gaussian`` (and its own views) fitted (``settings``) to the stabilised,
    unit-range version of ``y`` that :func:`stabilised_estimate` gives it."""
    u, _, _, level = _unit_stabilised(gaussian, y, noise)
    return gaussian.fitted(u, level, settings)


def _unit_stabilised(gaussian: Denoiser, y: Tensor, noise: NoiseModel) -> tuple[Tensor, float, float, float]:
    """(stabilised ``y`` on the unit range, its low end, span, Gaussian level in /255)."""
    z, sigma = stabilise(y.detach().cpu().double().numpy(), noise)
    info = gaussian.info
    low, span, level = unit_span(z, sigma, info.levels if info.blind else (info.level, info.level))
    return torch.from_numpy(((z - low) / span).astype(np.float32)), low, span, level


Estimator = Callable[[Tensor], Tensor]


def stabilised_mix(
    y: Tensor, noise: NoiseModel, own: Estimator, view: Estimator, x_own: Tensor
) -> tuple[Tensor, float]:
    """The family's estimate ``x_own`` = ``own(y)`` mixed with the stabilised view
    ``view(y)``: (estimate, the view's share). Poisson: their mean. Gamma: the share
    :func:`view_share` picks for this image (it runs both estimators twice more, on a
    crop of at most ``PROBE_PIXELS``)."""
    x_view = view(y)
    share = view_share(y, noise, own, view, x_own, x_view) if noise.family == "gamma" else 0.5
    return (1 - share) * x_own + share * x_view, share


def view_share(
    y: Tensor, noise: NoiseModel, own: Estimator, view: Estimator, x_own: Tensor, x_view: Tensor
) -> float:
    """Gamma noise: the share w of the view, among ``SHARES``, whose mix (1 - w) own + w
    view has the least SURE in the log domain, where the noise is additive, nearly
    Gaussian, of known variance psi'(k) (its mean taken off). Each pixel's term is
    weighted by the square of the mean estimate, so that shares rank as by the squared
    error of the image itself. The divergence is a Monte Carlo probe with a fixed seed:
    the same image gets the same share."""
    crop = _central_crop(y.shape[-2:], PROBE_PIXELS)
    if crop is not None:  # the probe compares estimates of the same pixels: both on the crop
        y = y[..., crop[0], crop[1]]
        x_own, x_view = own(y), view(y)
    probe = torch.randn(y.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y_probe = (y.double() * torch.exp(PROBE_STEP * probe)).float()  # log y moved by STEP * probe
    now = [x_own.double().numpy(), x_view.double().numpy()]
    moved = [own(y_probe).double().numpy(), view(y_probe).double().numpy()]
    z, sigma = stabilise(y.double().numpy(), noise)  # log y, its noise's mean taken off
    weight = np.maximum((now[0] + now[1]) / 2, 0) ** 2
    if not weight.sum() > 0:  # a black image: nothing to rank by
        return 0.5
    weight /= weight.mean()
    probe = probe.numpy()

    def risk(share: float) -> float:
        h, h_moved = (np.log(np.maximum((1 - share) * a + share * b, LOG_FLOOR)) for a, b in (now, moved))
        divergence = float((weight * probe * (h_moved - h)).sum()) / PROBE_STEP
        return float((weight * (h - z) ** 2).sum()) + sigma**2 * (2 * divergence - float(weight.sum()))

    return float(min(SHARES, key=risk))


def _central_crop(shape, pixels: int) -> tuple[slice, slice] | None:
    """The central square-ish crop of at most ``pixels`` of an image of ``shape`` (H, W);
    None where the image is that small already."""
    height, width = shape
    if height * width <= pixels:
        return None
    side = int(math.isqrt(pixels))
    h, w = min(height, side), min(width, pixels // min(height, side))
    top, left = (height - h) // 2, (width - w) // 2
    return slice(top, top + h), slice(left, left + w)
