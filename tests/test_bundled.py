"""Every bundled weight denoises noise of its own family, with the level hidden."""

import pytest
import torch
from skimage import data

from noise2score.denoiser import load_denoiser
from noise2score.metrics import psnr, to_hwc
from noise2score.noise import make_noise
from noise2score.weights import bundled_names, load_weights


def _photo(channels: int) -> torch.Tensor:
    """(1, C, 256, 256) crop of a bundled scikit-image photograph."""
    if channels == 1:
        return torch.from_numpy(data.camera()[128:384, 128:384] / 255.0).float()[None, None]
    return torch.from_numpy(data.astronaut()[:256, 128:384] / 255.0).float().permute(2, 0, 1)[None]


@pytest.mark.parametrize("name", bundled_names())
def test_bundled_weights_beat_the_noisy_input_with_the_level_estimated(name):
    denoiser = load_denoiser(name)
    _, info = load_weights(name)
    level = info.level
    x = _photo(denoiser.channels)
    y = make_noise(info.family, level).sample(x, generator=torch.Generator().manual_seed(0))
    result = denoiser.denoise_tensor(y)
    assert result.estimated
    assert result.level == pytest.approx(level, rel=0.15)
    clean = to_hwc(x)
    assert psnr(to_hwc(result.x_hat), clean) > psnr(to_hwc(y), clean) + 3
