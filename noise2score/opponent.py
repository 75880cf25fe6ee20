"""Colour Gaussian noise: a second view through gray weights in an opponent colour space.

Brightness (R + G + B) / 3 and two colour differences, (R - B) / 2 and
(R - 2G + B) / 4, are orthogonal combinations of the channels, so white Gaussian noise
of sigma in RGB stays white and independent in them, with sigma times each row's
length (0.58, 0.71, 0.61). Gray Gaussian weights denoise each of the three alone, as
CBM3D does with its grouping; the result, mapped back to RGB, has errors that differ
from the colour network's, and the mean of the two beats both
(``Denoiser(..., opponent=...)``, ``noise2score denoise --opponent``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from noise2score.adapt import Adaptation
    from noise2score.denoiser import Denoiser

OPPONENT = torch.tensor(
    [[1 / 3, 1 / 3, 1 / 3], [1 / 2, 0.0, -1 / 2], [1 / 4, -1 / 2, 1 / 4]], dtype=torch.float64
)
# Added to each opponent channel so that images in [0, 1] stay in [0, 1] there.
OFFSET = (0.0, 0.5, 0.5)
CENTRE = 0.5  # channels are scaled about it when their noise must move into the gray weights' levels


def opponent_estimate(gray: Denoiser, y: Tensor, sigma: float) -> Tensor:
    """Estimate of the clean image behind Gaussian noisy ``y`` (1, 3, H, W) with noise
    level ``sigma`` (/255), made by the 1-channel Gaussian weights ``gray`` on each
    opponent channel. A channel whose noise falls outside the weights' levels (one
    level for fixed-level weights) is scaled about the centre to bring it inside."""
    out = []
    for (channel, level, gain), offset in zip(_channels(gray, y, sigma), OFFSET, strict=True):
        x_hat = gray.denoise_tensor(channel.float(), level, clip_inverse=False).x_hat.to(y.device).double()
        out.append((x_hat - CENTRE) / gain + CENTRE - offset)
    inverse = torch.linalg.inv(OPPONENT.to(y.device))
    return torch.einsum("ij,bjhw->bihw", inverse, torch.cat(out, 1)).to(y.dtype)


def fitted_opponent_view(gray: Denoiser, y: Tensor, sigma: float, settings: Adaptation) -> Denoiser:
    """A copy of ``gray`` fitted (``settings``) to the three opponent channels of ``y``
    together, each at its own level, as :func:`opponent_estimate` gives them."""
    channels, levels, _ = zip(*_channels(gray, y, sigma), strict=True)
    return gray.fitted_to(torch.cat(channels).float(), levels, settings)


def _channels(gray: Denoiser, y: Tensor, sigma: float) -> list[tuple[Tensor, float, float]]:
    """(channel, its noise level, gain) for each opponent channel of ``y``: the channel
    offset into [0, 1] and scaled about the centre by the gain that brings its noise into
    the levels of the weights ``gray``."""
    matrix = OPPONENT.to(y.device)
    z = torch.einsum("ij,bjhw->bihw", matrix, y.double())
    levels = gray.info.levels if gray.info.blind else (gray.info.level, gray.info.level)
    out = []
    for c, (row, offset) in enumerate(zip(matrix, OFFSET, strict=True)):
        level = sigma * float(row.norm())
        gain = min(max(level, levels[0]), levels[1]) / level
        out.append(((z[:, c : c + 1] + offset - CENTRE) * gain + CENTRE, level * gain, gain))
    return out
