"""Gaussian noise clipped at black and white, as an 8-bit file stores it.

A noisy image saved as PNG or JPEG holds clip(x + sigma n) in [0, 1], not x + sigma n.
Near the ends the clipped noise no longer averages to zero: its mean
m(x) = E[clip(x + sigma n)] lies above x near black (sigma phi(0), about 0.4 sigma, at
x = 0) and below it near white. Weights trained on unclipped noise estimate about that
mean there, so the estimate is mapped through the inverse of m: the exact unbiased
inverse of clipping, as the Anscombe transform has one. m increases with x, so its
inverse is found by bisection. Only the ends at which a channel is clipped (more than
``CLIPPED_SHARE`` of its pixels exactly there) are inverted; an unclipped image, such as
the benchmarks' float inputs, is left as it is.

Fitting a network to a clipped image (``--adapt``) fits the spike that clipping piles up
at an end, which no unclipped score has: on 8-bit Set12 at sigma 50 (6-14% of the
pixels clipped) it cost about 2 dB; at sigma 25 (1-3%) it still gained a little, with
one image at 6.6% losing 0.6 dB. So images with more than ``FIT_CLIPPED_SHARE`` of a
channel's pixels at a clipped end are not fitted to (:func:`too_clipped_to_fit`). Poisson
noise clipped at white lost too (0.4 dB on two 8-bit Set12 images at zeta 0.05, 3-5% of
their pixels at white), so Poisson and Gamma images clipped there are not fitted to.

Poisson and Gamma estimates are not inverted: there the same inverse, with their clipped
means, helped some images and hurt others (benchmarks/RECIPES.md, *Clipped 8-bit
files*).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.special import ndtr

from noise2score.noise import NoiseModel
from noise2score.patch_level import CLIPPED_SHARE

BISECTIONS = 40  # the bracket [-1, 2] to under 1e-11
NEAR = 6.0  # sigmas from a clipped end within which estimates are inverted
FIT_CLIPPED_SHARE = 0.05  # more of a channel at a clipped end: not fitted to (adapt)


def clipped_ends(y: Tensor, share: float = CLIPPED_SHARE) -> tuple[Tensor, Tensor]:
    """Per channel of a (1, C, H, W) image, as (1, C, 1, 1) booleans: is it clipped at
    0, and at 1 (more than ``share`` of its pixels exactly there)?"""

    def at(end: float) -> Tensor:
        return (y == end).float().mean(dim=(0, 2, 3), keepdim=True) > share

    return at(0.0), at(1.0)


def clipped_mean(x: Tensor, sigma: float, low: Tensor, high: Tensor) -> Tensor:
    """E[clip(x + sigma n)], clipped at 0 where ``low`` and at 1 where ``high``:
    clip(z) = z + max(-z, 0) - max(z - 1, 0), each term's mean in closed form."""
    return x + low * _mean_excess(-x, sigma) - high * _mean_excess(x - 1, sigma)


def _mean_excess(t: Tensor, sigma: float) -> Tensor:
    """E[max(t + sigma n, 0)] for standard normal n."""
    return t * ndtr(t / sigma) + sigma * torch.exp(-0.5 * (t / sigma) ** 2) / math.sqrt(2 * math.pi)


def invert_clipping(y: Tensor, x_hat: Tensor, noise: NoiseModel) -> tuple[Tensor, bool]:
    """(the estimate ``x_hat`` of noisy ``y`` mapped through the inverse of the clipped
    mean, whether that was done: Gaussian noise, ``y`` clipped); estimates beyond what
    clipped noise can average to are set to the end they lie past."""
    if noise.family != "gaussian" or noise.level <= 0:
        return x_hat, False
    low, high = clipped_ends(y)
    if not bool((low | high).any()):
        return x_hat, False
    sigma = noise.sigma  # clipping moves the mean only within a few sigma of an end
    low, high = low.expand_as(x_hat), high.expand_as(x_hat)
    near = (low & (x_hat < NEAR * sigma)) | (high & (x_hat > 1 - NEAR * sigma))
    target, low, high = x_hat[near], low[near], high[near]
    at_low, at_high = low.to(target.dtype), high.to(target.dtype)
    below, above = torch.full_like(target, -1.0), torch.full_like(target, 2.0)
    for _ in range(BISECTIONS):
        middle = (below + above) / 2
        under = clipped_mean(middle, sigma, at_low, at_high) < target
        below, above = torch.where(under, middle, below), torch.where(under, above, middle)
    x = (below + above) / 2
    x = torch.where(low, x.clamp(min=0.0), x)
    out = x_hat.clone()
    out[near] = torch.where(high, x.clamp(max=1.0), x)
    return out, True


def too_clipped_to_fit(y: Tensor, family: str) -> bool:
    """Whether a channel of ``y`` is clipped where fitting to it does harm: Gaussian
    noise, over ``FIT_CLIPPED_SHARE`` at either end; Poisson and Gamma noise, whose zeros
    are counts or dark, clipped at white at all."""
    if family == "gaussian":
        return bool(torch.cat(clipped_ends(y, FIT_CLIPPED_SHARE)).any())
    return bool(clipped_ends(y)[1].any())
