"""Gaussian noise clipped at black and white: the mean of clipped noise and its inverse."""

import numpy as np
import pytest
import torch

from noise2score.clipping import clipped_ends, clipped_mean, invert_clipping, too_clipped_to_fit
from noise2score.denoiser import load_denoiser
from noise2score.metrics import psnr, to_hwc
from noise2score.noise import make_noise
from tests.conftest import clean_crops

GAUSSIAN = make_noise("gaussian", 50)
SIGMA = GAUSSIAN.sigma


def _clip8(y: torch.Tensor) -> torch.Tensor:
    return torch.round(y.clamp(0, 1) * 255) / 255


def test_the_clipped_mean_is_that_of_clipped_noise():
    x = torch.tensor([-0.1, 0.0, 0.05, 0.3, 0.5, 0.9, 1.0, 1.1]).reshape(1, 1, 1, -1)
    z = x + SIGMA * torch.randn((200_000, 1, 1, x.shape[-1]), generator=torch.Generator().manual_seed(0))
    both, low, none = torch.ones(1, 1, 1, 1), torch.ones(1, 1, 1, 1), torch.zeros(1, 1, 1, 1)
    for lower, upper, clipped in [(both, both, z.clamp(0, 1)), (low, none, z.clamp(min=0)), (none, none, z)]:
        expected = clipped.mean(0, keepdim=True)
        assert torch.allclose(clipped_mean(x, SIGMA, lower, upper), expected, atol=2e-3)


def test_the_inverse_undoes_the_clipped_mean_at_the_clipped_ends_only():
    x = torch.linspace(0, 1, 101).reshape(1, 1, 1, -1).repeat(1, 2, 1, 1)
    y = torch.full((1, 2, 8, 8), 0.5)
    y[:, 0, :2] = 0  # channel 0 clipped at black, channel 1 not at all
    low, high = clipped_ends(y)
    assert low.flatten().tolist() == [True, False] and not high.any()
    x_hat = clipped_mean(x, SIGMA, low.float(), high.float())
    assert torch.equal(x_hat[:, 1], x[:, 1])  # an unclipped channel: its mean is x
    x_back, clipped = invert_clipping(y, x_hat, GAUSSIAN)
    assert clipped and torch.allclose(x_back, x, atol=1e-5)
    below, _ = invert_clipping(y, torch.full_like(x, 0.01), GAUSSIAN)  # under what clipped noise averages to
    assert below[:, 0].eq(0).all() and below[:, 1].eq(0.01).all()


def test_an_unclipped_image_is_left_as_it_is():
    y = 0.5 + SIGMA * torch.randn((1, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    x_hat = torch.rand_like(y)
    out, clipped = invert_clipping(y, x_hat, GAUSSIAN)
    assert out is x_hat and not clipped
    for family, level in [("poisson", 0.05), ("gamma", 50)]:  # the inverse measured mixed there
        assert not invert_clipping(y.clamp(0, 1), x_hat, make_noise(family, level))[1]


def test_a_clipped_8_bit_image_is_denoised_better_with_the_inverse():
    x = torch.from_numpy(np.stack(clean_crops(size=128))).permute(0, 3, 1, 2)  # camera: dark coat, bright sky
    y = _clip8(GAUSSIAN.sample(x, generator=torch.Generator().manual_seed(0)))
    denoiser = load_denoiser("gaussian50-gray", device="cpu")
    gains = []
    for image, noisy in zip(x, y, strict=True):
        with_inverse = denoiser.denoise_tensor(noisy[None], 50)
        without = denoiser.denoise_tensor(noisy[None], 50, clip_inverse=False)
        assert with_inverse.clipped and not without.clipped
        clean = image.permute(1, 2, 0).numpy()
        gains.append(psnr(to_hwc(with_inverse.x_hat), clean) - psnr(to_hwc(without.x_hat), clean))
    assert min(gains) > 0.3, gains


@pytest.mark.parametrize("weights, noise", [("gaussian25-color", "opponent"), ("poisson0.05-gray", "vst")])
def test_the_second_views_are_not_inverted(weights, noise, monkeypatch):
    """Their inputs are stabilised or opponent channels, not a file's clipped pixels."""
    denoiser = load_denoiser(weights, device="cpu", **{noise: "auto"})
    view = denoiser.opponent if noise == "opponent" else denoiser.vst
    asked = []
    original = type(view).denoise_tensor

    def spy(self, *args, **kwargs):
        asked.append(kwargs.get("clip_inverse"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(view), "denoise_tensor", spy)
    y = _clip8(
        torch.rand((1, denoiser.channels, 32, 32), generator=torch.Generator().manual_seed(0)) * 1.2 - 0.1
    )
    level = 25 if noise == "opponent" else 0.05
    denoiser.denoise_tensor(y, level)
    assert asked[0] is None and len(asked) > 1 and all(flag is False for flag in asked[1:])  # [0]: this call


def test_a_clipped_image_is_not_fitted_to_and_says_so():
    from noise2score.adapt import Adaptation

    x = torch.from_numpy(clean_crops(size=128)[0]).permute(2, 0, 1)[None]  # the dark coat
    y = _clip8(GAUSSIAN.sample(x, generator=torch.Generator().manual_seed(0)))
    dark = y.clamp(max=0.99)  # clipped at black only
    assert too_clipped_to_fit(dark, "gaussian") and not too_clipped_to_fit(
        dark, "poisson"
    )  # Poisson zeros are counts
    assert too_clipped_to_fit(y.clamp(max=0.9) + 0.1, "poisson")  # at white
    light = torch.full((1, 1, 100, 100), 0.5)
    light[..., 0, :3] = 1.0  # 0.03% at white: not clipped
    assert not too_clipped_to_fit(light, "poisson")
    light[..., 1:3, :] = 0.0  # 2% at black: clipped, yet fitted (Gaussian)
    assert not too_clipped_to_fit(light, "gaussian")
    light[..., 3, :] = 1.0  # 1% at white: Poisson is not fitted
    assert too_clipped_to_fit(light, "poisson")
    denoiser = load_denoiser("gaussian50-gray", device="cpu", adapt=Adaptation(steps=2))
    result = denoiser.denoise_tensor(y, 50)
    alone = load_denoiser("gaussian50-gray", device="cpu").denoise_tensor(y, 50)
    assert result.fit_skipped and not alone.fit_skipped and torch.equal(result.x_hat, alone.x_hat)
    assert not denoiser.denoise_tensor(GAUSSIAN.sample(x), 50).fit_skipped  # unclipped: fitted
