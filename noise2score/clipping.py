"""Gaussian noise clipped at black and white, as an 8-bit file stores it.

A noisy image saved as PNG or JPEG holds clip(x + sigma n) in [0, 1], not x + sigma n.
Near the ends the clipped noise no longer averages to zero: its mean
m(x) = E[clip(x + sigma n)] lies above x near black (sigma phi(0), about 0.4 sigma, at
x = 0) and below it near white. Weights trained on unclipped noise estimate about that
mean there, so the estimate is mapped through the inverse of m: the exact unbiased
inverse of clipping, as the Anscombe transform has one. m increases with x, so its
inverse is found by bisection. Only the ends at which a channel is clipped are inverted:
its lowest or highest value, where more than ``CLIPPED_SHARE`` of its pixels sit exactly
(noise left unclipped spreads its extremes thin). That is 0 and 1 for an 8-bit file, and
wherever ``--black`` or ``--white`` put a file's ends or a sensor's saturation. An
unclipped image, such as the benchmarks' float inputs, is left as it is. Poisson counts
that land on 1 exactly (20 counts at zeta 0.05) are no clipping: brighter pixels lie
beyond them.

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
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.special import ndtr

from noise2score.noise import NoiseModel

# A channel with more of its pixels than this exactly at its lowest or highest value was
# clipped there. Unclipped noise leaves a handful at its extremes, even when rounded to
# 8 bits; clipping piles up every pixel whose noise went past the end.
CLIPPED_SHARE = 1e-3
MIN_PILED = 8  # and more pixels than this: a small image's extremes are single pixels
BISECTIONS = 40  # a bracket 1 beyond each end ([-1, 2] for a [0, 1] image) to under 1e-11
NEAR = 6.0  # sigmas from a clipped end within which estimates are inverted
FIT_CLIPPED_SHARE = 0.05  # more of a channel at a clipped end: not fitted to (adapt)


@dataclass(frozen=True)
class Ends:
    """Per channel of a (1, C, H, W) image, each (1, C, 1, 1): its lowest and highest
    value, and whether it is clipped there."""

    lowest: Tensor
    highest: Tensor
    low: Tensor  # bool
    high: Tensor  # bool

    @property
    def any(self) -> bool:
        return bool((self.low | self.high).any())


def clipped_ends(y: Tensor, share: float = CLIPPED_SHARE) -> Ends:
    """The ends of each channel of ``y`` (1, C, H, W), clipped where more than ``share``
    of the channel's pixels (and more than ``MIN_PILED``; not all) sit exactly at them."""
    lowest, highest = y.amin(dim=(0, 2, 3), keepdim=True), y.amax(dim=(0, 2, 3), keepdim=True)

    pixels = y.shape[0] * y.shape[2] * y.shape[3]
    least = max(share * pixels, MIN_PILED)

    def piled(end: Tensor) -> Tensor:  # a constant channel holds no noise to clip
        return ((y == end).sum(dim=(0, 2, 3), keepdim=True) > least) & (highest > lowest)

    return Ends(lowest, highest, piled(lowest), piled(highest))


def clipped_mean(
    x: Tensor,
    sigma: float,
    low: Tensor,
    high: Tensor,
    lowest: Tensor | float = 0.0,
    highest: Tensor | float = 1.0,
) -> Tensor:
    """E[clip(x + sigma n)], clipped at ``lowest`` where ``low`` and at ``highest`` where
    ``high``: clip(z) = z + max(lowest - z, 0) - max(z - highest, 0), each term's mean in
    closed form."""
    return x + low * _mean_excess(lowest - x, sigma) - high * _mean_excess(x - highest, sigma)


def _mean_excess(t: Tensor, sigma: float) -> Tensor:
    """E[max(t + sigma n, 0)] for standard normal n."""
    return t * ndtr(t / sigma) + sigma * torch.exp(-0.5 * (t / sigma) ** 2) / math.sqrt(2 * math.pi)


def invert_clipping(y: Tensor, x_hat: Tensor, noise: NoiseModel) -> tuple[Tensor, bool]:
    """(the estimate ``x_hat`` of noisy ``y`` mapped through the inverse of the clipped
    mean, whether that was done: Gaussian noise, ``y`` clipped); estimates beyond what
    clipped noise can average to are set to the end they lie past."""
    if noise.family != "gaussian" or noise.level <= 0:
        return x_hat, False
    ends = clipped_ends(y)
    if not ends.any:
        return x_hat, False
    sigma = noise.sigma  # clipping moves the mean only within a few sigma of an end
    low, high = ends.low.expand_as(x_hat), ends.high.expand_as(x_hat)
    lowest, highest = (
        ends.lowest.to(x_hat.dtype).expand_as(x_hat),
        ends.highest.to(x_hat.dtype).expand_as(x_hat),
    )
    near = (low & (x_hat < lowest + NEAR * sigma)) | (high & (x_hat > highest - NEAR * sigma))
    target, low, high, lowest, highest = x_hat[near], low[near], high[near], lowest[near], highest[near]
    at_low, at_high = low.to(target.dtype), high.to(target.dtype)
    below, above = lowest - 1, highest + 1
    for _ in range(BISECTIONS):
        middle = (below + above) / 2
        under = clipped_mean(middle, sigma, at_low, at_high, lowest, highest) < target
        below, above = torch.where(under, middle, below), torch.where(under, above, middle)
    x = (below + above) / 2
    x = torch.where(low, torch.maximum(x, lowest), x)
    out = x_hat.clone()
    out[near] = torch.where(high, torch.minimum(x, highest), x)
    return out, True


def too_clipped_to_fit(y: Tensor, family: str) -> bool:
    """Whether a channel of ``y`` is clipped where fitting to it does harm: Gaussian
    noise, over ``FIT_CLIPPED_SHARE`` at either end; Poisson and Gamma noise, whose zeros
    are counts or dark, clipped at white at all."""
    if family == "gaussian":
        return clipped_ends(y, FIT_CLIPPED_SHARE).any
    return bool(clipped_ends(y).high.any())
