"""Image quality metrics under the evaluation protocol (METHOD.md section 6).

PSNR: estimate clamped to [0, 1], peak 1, MSE over all pixels and channels.
SSIM: Wang et al. settings (Gaussian window sigma 1.5, population covariance,
data range 1); colour is the mean over channels.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import structural_similarity
from torch import Tensor


def psnr(x_hat: np.ndarray | Tensor, x: np.ndarray | Tensor) -> float:
    """PSNR in dB of ``x_hat`` (clamped to [0, 1]) against clean ``x``, peak 1."""
    if isinstance(x_hat, Tensor):
        mse = (x_hat.detach().float().clamp(0, 1) - x.float()).square().mean().item()
    else:
        mse = float(np.mean((np.clip(x_hat, 0, 1).astype(np.float64) - x) ** 2))
    return float("inf") if mse == 0 else float(-10 * np.log10(mse))


def quantize8(x_hat: np.ndarray) -> np.ndarray:
    """Round to the 8-bit grid, as when the estimate is saved as an 8-bit image."""
    return np.round(np.clip(x_hat, 0, 1) * 255) / 255


def ssim(x_hat: np.ndarray, x: np.ndarray) -> float:
    """SSIM of (H, W, C) arrays, Wang et al. settings, mean over channels."""
    return float(
        structural_similarity(
            np.clip(x_hat, 0, 1).astype(np.float64),
            np.asarray(x, np.float64),
            data_range=1.0,
            channel_axis=2,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


def to_hwc(t: Tensor) -> np.ndarray:
    """(1, C, H, W) or (C, H, W) tensor to an (H, W, C) float64 array."""
    if t.dim() == 4:
        t = t[0]
    return t.detach().float().permute(1, 2, 0).cpu().numpy().astype(np.float64)


def from_hwc(a: np.ndarray) -> Tensor:
    """(H, W, C) array to a (1, C, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(a, np.float32)).permute(2, 0, 1)[None]
