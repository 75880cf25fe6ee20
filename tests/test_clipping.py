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
    y = 0.3 + 0.4 * torch.rand((1, 2, 8, 8), generator=torch.Generator().manual_seed(0))
    y[:, 0, :2] = 0  # channel 0 clipped at black, channel 1 not at all
    ends = clipped_ends(y)
    low, high = ends.low, ends.high
    assert low.flatten().tolist() == [True, False] and not high.any()
    x_hat = clipped_mean(x, SIGMA, low.float(), high.float())
    assert torch.equal(x_hat[:, 1], x[:, 1])  # an unclipped channel: its mean is x
    x_back, clipped = invert_clipping(y, x_hat, GAUSSIAN)
    assert clipped and torch.allclose(x_back, x, atol=1e-5)
    below, _ = invert_clipping(y, torch.full_like(x, 0.01), GAUSSIAN)  # under what clipped noise averages to
    assert below[:, 0].eq(0).all() and below[:, 1].eq(0.01).all()


def test_clipping_is_found_and_inverted_wherever_the_ends_lie():
    """--black and --white move a file's ends off 0 and 1 (and a sensor saturates short of
    its file's top): the same clipped image, shifted and scaled, is inverted the same way."""
    x = torch.linspace(0, 1, 64).expand(1, 1, 64, 64)  # black to white
    y = _clip8(GAUSSIAN.sample(x, generator=torch.Generator().manual_seed(0)))
    x_hat = (x + 0.2 * SIGMA).clamp(0, 1)  # about what the weights give near black
    base, clipped = invert_clipping(y, x_hat, GAUSSIAN)
    assert clipped
    shift, scale = 0.1, 0.8  # 0 -> -0.125 and 1 -> 1.125, noise scaled alike
    moved, clipped = invert_clipping(
        (y - shift) / scale, (x_hat - shift) / scale, make_noise("gaussian", 50 / scale)
    )
    assert clipped and torch.allclose(moved * scale + shift, base, atol=1e-5)
    ends = clipped_ends((y - shift) / scale)
    assert ends.low.all() and ends.high.all()
    assert (ends.lowest.item(), ends.highest.item()) == pytest.approx((-0.125, 1.125))


def test_poisson_counts_that_land_on_1_are_not_clipping():
    """20 counts at zeta 0.05 are exactly 1.0 in float32; brighter pixels lie beyond it, so
    the image is fitted to (it was not, on every Set12 image at zeta 0.05)."""
    x = torch.full((1, 1, 64, 64), 0.9)
    y = make_noise("poisson", 0.05).sample(x, generator=torch.Generator().manual_seed(0))
    assert (y == 1).float().mean() > 0.05 and y.max() > 1
    assert not too_clipped_to_fit(y, "poisson")
    assert too_clipped_to_fit(y.clamp(max=1), "poisson")  # the same image clipped at white


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
    dark = GAUSSIAN.sample(x, generator=torch.Generator().manual_seed(0)).clamp(min=0)  # at black only
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


def test_a_file_clipped_below_its_black_level_is_inverted(tmp_path, capsys):
    """A 16-bit file with a camera's offset (``--black``), clipped at its own 0: the noise is
    clipped at -black / (white - black) once scaled, and is still found and inverted (it
    was not before: the level read low too)."""
    from PIL import Image

    from noise2score.cli import main

    x = torch.from_numpy(np.stack(clean_crops(size=128))).permute(0, 3, 1, 2)[:1]  # dark coat
    black, white = 2000, 60000
    noisy = GAUSSIAN.sample(x, generator=torch.Generator().manual_seed(0))[0, 0].numpy()
    Image.fromarray(np.clip(np.round(black + noisy * (white - black)), 0, 65535).astype(np.uint16)).save(
        tmp_path / "coat.png"
    )
    args = [
        "denoise",
        str(tmp_path / "coat.png"),
        "--level",
        "50",
        "--black",
        f"{black}",
        "--white",
        f"{white}",
    ]
    scores = {}
    for flags in ([], ["--no-clip-inverse"]):
        assert main([*args, "-o", str(tmp_path / str(len(flags))), *flags]) == 0
        assert ("clipped noise: inverse applied" in capsys.readouterr().out) == (not flags)
        out = np.asarray(Image.open(tmp_path / str(len(flags)) / "coat.png"), dtype=np.float64)
        scores[len(flags)] = psnr(((out - black) / (white - black))[..., None], x[0].permute(1, 2, 0).numpy())
    assert scores[0] > scores[1] + 0.3, scores
