"""Classical baselines, run on the same noisy inputs as the network.

Each baseline maps (y, noise model) to x_hat, arrays (H, W, C) in [0, 1] units.
Poisson and Gamma noise are first made approximately Gaussian with unit or known
variance (Anscombe transform; logarithm), denoised, and mapped back with the exact
unbiased inverse (Anscombe) or the bias-corrected exponential (log).

BM3D comes from the ``bm3d`` package (install the ``bm3d`` extra); its licence allows
non-commercial use only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from skimage.restoration import calibrate_denoiser, denoise_nl_means, denoise_wavelet

from noise2score.noise import NoiseModel, check_read_noise
from noise2score.vst import stabilise, unstabilise

GaussianDenoiser = Callable[[np.ndarray, float], np.ndarray]  # (image, sigma) -> estimate


def _bm3d(z: np.ndarray, sigma: float) -> np.ndarray:
    try:
        import bm3d
    except ImportError:
        raise ImportError("the bm3d baseline needs `pip install bm3d` (non-commercial licence)") from None
    if z.shape[2] == 3:
        return np.asarray(bm3d.bm3d_rgb(z, sigma), np.float64)
    return np.asarray(bm3d.bm3d(z[:, :, 0], sigma_psd=sigma), np.float64)[:, :, None]


def _nl_means(z: np.ndarray, sigma: float) -> np.ndarray:
    # Patch settings of scikit-image's gallery example; h slightly below sigma.
    out = denoise_nl_means(
        z, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True, channel_axis=-1
    )
    return out.reshape(z.shape)


def _nl_means_calibrated(z: np.ndarray, sigma: float) -> np.ndarray:
    """NL-means with h chosen by J-invariant self-supervised calibration (sigma unused)."""
    image = z[:, :, 0] if z.shape[2] == 1 else z
    spread = float(np.std(image - np.median(image))) or 1.0
    grid = {
        "h": list(np.linspace(0.05, 1.0, 12) * spread),
        "patch_size": [5],
        "patch_distance": [6],
        "fast_mode": [True],
        "channel_axis": [None if image.ndim == 2 else -1],
    }
    best = calibrate_denoiser(image, denoise_nl_means, denoise_parameters=grid)
    return best(image).reshape(z.shape)


def _wavelet(z: np.ndarray, sigma: float) -> np.ndarray:
    out = denoise_wavelet(
        z, sigma=sigma, method="BayesShrink", mode="soft", rescale_sigma=True, channel_axis=-1
    )
    return out.reshape(z.shape)


GAUSSIAN_DENOISERS: dict[str, GaussianDenoiser] = {
    "bm3d": _bm3d,
    "nl_means": _nl_means,
    "nl_means_calibrated": _nl_means_calibrated,
    "wavelet": _wavelet,
}


def run_baseline(method: str, y: np.ndarray, noise: NoiseModel, *, read_noise: float = 0.0) -> np.ndarray:
    """x_hat of a classical method for noisy ``y`` (H, W, C) under ``noise``; Poisson
    with Gaussian ``read_noise`` added: through the generalised Anscombe transform, which
    is the Anscombe transform of y shifted by read_noise^2 / zeta (the shift taken off
    after; the inverse is the Poisson one, close to the exact one of the shifted counts)."""
    if method == "noisy":
        return y.astype(np.float64)
    if method not in GAUSSIAN_DENOISERS:
        raise ValueError(f"unknown method {method!r}; choose from {['noisy', *GAUSSIAN_DENOISERS]}")
    denoise = GAUSSIAN_DENOISERS[method]
    y = y.astype(np.float64)
    check_read_noise(read_noise, noise.family)
    if noise.family == "gaussian":
        return denoise(y, noise.level / 255.0)
    shift = read_noise**2 / noise.level if noise.family == "poisson" else 0.0
    z, sigma = stabilise(y + shift, noise)
    return unstabilise(denoise(z, sigma), noise) - shift


METHODS = ("noisy", *GAUSSIAN_DENOISERS)
