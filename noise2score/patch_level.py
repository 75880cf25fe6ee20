"""Noise level from the image alone: PCA of weak-texture patches.

The noise variance is the smallest eigenvalue of the covariance of the image's
weak-texture patches (Liu, Tanaka and Okutomi, "Single-image noise level estimation
for blind denoising", TIP 2013): patches whose gradient energy is within what noise
alone would give at the current estimate are kept, and the estimate is refined on them.

The smallest eigenvalue of a sample covariance sits below the true variance (by a few
percent: more when fewer patches are kept). Here that bias is measured instead of
assumed: the same estimate is made on unit white noise at the kept patch positions, and
the image's eigenvalue is divided by it.

Poisson and Gamma noise are first made signal-independent: the Anscombe transform
2 sqrt(y / zeta + 3/8) has unit noise variance (where there are a few counts per pixel:
darker patches are left out), so zeta is refined until it does; log(y) under Gamma
noise of shape k has noise variance trigamma(k).
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import uniform_filter
from scipy.optimize import brentq
from scipy.special import gammaincinv, polygamma

from noise2score.clipping import CLIPPED_SHARE, Ends, clipped_ends
from noise2score.vst import anscombe

PATCH = 7
CONFIDENCE = 0.99  # share of pure-noise patches that pass the weak-texture test
ROUNDS = 3
MAX_PATCHES = 250_000  # larger images are sampled on a coarser patch grid
SEED = 0
# Counts per pixel below which the Anscombe transform's noise variance falls under one
# (0.92 at 2, 0.98 at 3, 1.00 at 5): darker patches would pull the Poisson estimate low.
MIN_COUNTS = 3.0
# Where a channel is clipped (clipping.clipped_ends at CLIPPED_SHARE: an 8-bit file), the
# Gaussian estimate uses the patches at least CLIP_MARGIN sigma inside its clipped ends.
CLIP_MARGIN = 2.0
# Bumped when a family's estimate changes: results measured with the level estimated by
# an earlier revision are measured again (``noise2score results --keep-unchanged``).
REVISION = {"gaussian": 1, "poisson": 2, "gamma": 1}


def _gradient_rows(d: int) -> tuple[np.ndarray, np.ndarray]:
    """Central-difference operators from a flattened d x d patch to its horizontal and
    vertical gradients, (d * (d - 2), d * d) each."""
    index = np.arange(d * d).reshape(d, d)
    horizontal = np.zeros((d * (d - 2), d * d))
    vertical = np.zeros_like(horizontal)
    for row, (i, j) in enumerate(np.ndindex(d, d - 2)):
        horizontal[row, index[i, j + 2]], horizontal[row, index[i, j]] = 0.5, -0.5
        vertical[row, index[j + 2, i]], vertical[row, index[j, i]] = 0.5, -0.5
    return horizontal, vertical


def _threshold(horizontal: np.ndarray, vertical: np.ndarray) -> float:
    """Gradient energy of a unit-noise patch at quantile CONFIDENCE (gamma approximation)."""
    dd = horizontal.T @ horizontal + vertical.T @ vertical
    rank = np.linalg.matrix_rank(dd)
    return float(gammaincinv(rank / 2, CONFIDENCE) * 2 * np.trace(dd) / rank)


def _patches(channel: np.ndarray, stride: int) -> np.ndarray:
    return sliding_window_view(channel, (PATCH, PATCH))[::stride, ::stride].reshape(-1, PATCH * PATCH)


def _smallest_eigenvalue(rows: np.ndarray) -> float:
    rows = rows - rows.mean(axis=0)
    return float(np.linalg.eigvalsh(rows.T @ rows / (len(rows) - 1))[0])


def weak_texture_variance(channel: np.ndarray, valid: np.ndarray | None = None) -> float | None:
    """Noise variance of a 2-D array of signal-independent noise; None when the image
    has too few patches. ``valid``: pixels that may be used (all by default)."""
    h, w = channel.shape
    if min(h, w) < PATCH:
        return None
    stride = max(1, int(np.ceil(np.sqrt((h - PATCH + 1) * (w - PATCH + 1) / MAX_PATCHES))))
    rows = _patches(channel.astype(np.float64), stride)
    keep = np.ones(len(rows), dtype=bool)
    if valid is not None:
        keep = _patches(valid.astype(np.float64), stride).min(axis=1) > 0
    if keep.sum() <= PATCH * PATCH:
        return None
    reference = _patches(np.random.default_rng(SEED).standard_normal((h, w)), stride)
    horizontal, vertical = _gradient_rows(PATCH)
    limit = _threshold(horizontal, vertical)
    energy = np.square(rows @ horizontal.T).sum(axis=1) + np.square(rows @ vertical.T).sum(axis=1)
    variance = _smallest_eigenvalue(rows[keep]) / _smallest_eigenvalue(reference[keep])
    for _ in range(ROUNDS - 1):
        weak = keep & (energy < variance * limit)
        if weak.sum() <= PATCH * PATCH:
            break
        keep = weak
        variance = _smallest_eigenvalue(rows[keep]) / _smallest_eigenvalue(reference[keep])
    return max(variance, 0.0)


def _mean_variance(channels: np.ndarray, valid: np.ndarray | None = None) -> float | None:
    """Mean over channels (C, H, W) of the weak-texture noise variance."""
    masks = [None] * len(channels) if valid is None else list(valid)
    variances = [weak_texture_variance(c, m) for c, m in zip(channels, masks, strict=True)]
    if any(v is None for v in variances):
        return None
    return float(np.mean(variances))


def gaussian_sigma(channels: np.ndarray) -> float | None:
    """Gaussian sigma in the image's units, from (C, H, W). Where a channel was clipped
    (8-bit files), patches near its clipped ends are left out (:func:`_unclipped`)."""
    variance = _mean_variance(channels)
    ends = clipped_ends(torch.from_numpy(channels)[None], CLIPPED_SHARE)
    if variance is not None and ends.any:
        variance = _unclipped(channels, variance, ends)
    return None if variance is None else float(np.sqrt(variance))


def _unclipped(channels: np.ndarray, variance: float, ends: Ends) -> float:
    """The noise variance of a clipped image from its patches whose mean lies more than
    CLIP_MARGIN sigma inside its clipped ends, refined with the estimate: nearer them,
    clipping narrows the noise (sigma 50 on 8-bit Set12 read 46.5 instead of 50). Leaving
    out only the patches with a clipped pixel would keep those whose noise happened to be
    small."""
    mean = uniform_filter(channels, size=(1, PATCH, PATCH), mode="nearest")
    # (C, 1, 1) each; an end that is not clipped leaves no patch out
    lowest = np.where(ends.low.numpy(), ends.lowest.double().numpy(), -np.inf)[0]
    highest = np.where(ends.high.numpy(), ends.highest.double().numpy(), np.inf)[0]
    for _ in range(ROUNDS):
        margin = CLIP_MARGIN * np.sqrt(variance)
        refined = _mean_variance(channels, (mean > lowest + margin) & (mean < highest - margin))
        if refined is None:  # too few patches that far inside: keep the last estimate
            break
        variance = refined
    return variance


def poisson_zeta(channels: np.ndarray, rounds: int = 4, read_noise: float = 0.0) -> float | None:
    """Poisson zeta of y = zeta * Poisson(x / zeta) (+ Gaussian read noise of known
    standard deviation ``read_noise``), from (C, H, W). With read noise, y + read^2/zeta
    has the mean and variance of scaled Poisson noise, so the Anscombe transform of that
    (the generalised Anscombe transform of y) is refined to unit variance instead. Its
    variance at a guess zeta is then about (zeta' x + read^2) / (zeta x + read^2) for the
    true zeta', so the update takes it to the power 1 + read^2 / (zeta x), x the mean."""
    y = np.clip(channels, 0.0, None) if not read_noise else channels
    zeta = _mean_variance(2.0 * np.sqrt(np.clip(y, 0.0, None)))  # 2 sqrt(y): noise variance ~ zeta
    local_mean = np.stack([uniform_filter(c, PATCH) for c in y])
    mean = max(float(np.mean(y)), 1e-6)
    for _ in range(rounds if not read_noise else 2 * rounds):
        if not zeta:  # None (too small) or 0 (noise-free)
            return zeta
        shift = read_noise**2 / zeta
        stabilised = anscombe((y + shift) / zeta)
        unit = _mean_variance(stabilised, (local_mean + shift) / zeta >= MIN_COUNTS)
        if unit is None:  # too few bright patches: all of them, at a small bias
            unit = _mean_variance(stabilised)
        if unit is None:
            return None
        zeta *= unit ** (1 + shift / mean)
        if read_noise and abs(unit - 1) < 1e-3:
            break
    return zeta


def _inverse_trigamma(value: float, low: float = 1e-3, high: float = 1e7) -> float:
    """k with trigamma(k) = value, held to [low, high]."""
    value = float(np.clip(value, polygamma(1, high), polygamma(1, low)))
    return float(brentq(lambda k: float(polygamma(1, k)) - value, low, high))


def gamma_k(channels: np.ndarray) -> float | None:
    """Gamma shape k of y = x * Gamma(k, 1/k), from (C, H, W); pixels <= 0 are left out."""
    positive = channels > 0
    variance = _mean_variance(np.log(np.where(positive, channels, 1.0)), positive)
    return None if variance is None else _inverse_trigamma(variance)
