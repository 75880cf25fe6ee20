"""The opponent-colour second view of colour Gaussian images (--opponent)."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from noise2score.cli import main
from noise2score.denoiser import load_denoiser
from noise2score.image_io import read_image, write_image
from noise2score.metrics import from_hwc, psnr, to_hwc
from noise2score.noise import make_noise
from noise2score.opponent import OPPONENT, opponent_estimate
from tests.conftest import clean_crops, require_shared


class Echo:
    """Gray 'weights' that return their input: what they are given, and at what level."""

    def __init__(self, levels):
        blind = levels[0] != levels[1]
        self.info = SimpleNamespace(blind=blind, levels=levels if blind else None, level=levels[0])
        self.seen = []

    def denoise_tensor(self, y, level, clip_inverse=None):
        assert clip_inverse is False  # opponent channels are not a file's clipped pixels
        self.seen.append((y, level))
        return SimpleNamespace(x_hat=y)


def test_white_noise_stays_white_in_the_opponent_channels():
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(3, 200_000, dtype=torch.float64, generator=generator) * 0.1
    covariance = torch.cov(OPPONENT @ noise)
    expected = torch.diag(0.01 * OPPONENT.pow(2).sum(1))  # a mix that is not orthogonal is ~1e-3 off
    torch.testing.assert_close(covariance, expected, atol=6e-5, rtol=0)  # ~6 standard errors


@pytest.mark.parametrize(
    ("levels", "sigma", "told"),
    [
        ((5.0, 55.0), 25, [25 / 3**0.5, 25 / 2**0.5, 25 * 6**0.5 / 4]),  # inside: as they are
        ((5.0, 55.0), 5, [5.0, 5.0, 5.0]),  # under the range: scaled up to 5
        ((25.0, 25.0), 25, [25.0, 25.0, 25.0]),  # fixed-level weights: their level
    ],
)
def test_the_view_maps_back_exactly_and_tells_each_channel_its_level(levels, sigma, told):
    y = torch.rand(1, 3, 16, 20)
    gray = Echo(levels)
    torch.testing.assert_close(opponent_estimate(gray, y, sigma), y)
    assert [level for _, level in gray.seen] == pytest.approx(told)
    assert all(channel.shape == (1, 1, 16, 20) for channel, _ in gray.seen)


def _noisy_astronaut(sigma=25):
    x = from_hwc(np.concatenate(clean_crops(channels=3, size=96)[:2], axis=1))
    return x, make_noise("gaussian", sigma).sample(x, generator=torch.Generator().manual_seed(3))


def test_the_result_is_the_mean_of_the_colour_estimate_and_the_opponent_one_and_beats_it():
    x, y = _noisy_astronaut()
    alone = load_denoiser("gaussian25-color").denoise_tensor(y, 25).x_hat
    both = load_denoiser("gaussian25-color", opponent="auto")
    assert both.opponent.info.name == "gaussian-blind-gray" and both.gray_view is both.opponent
    second = opponent_estimate(both.opponent, y, 25)
    result = both.denoise_tensor(y, 25).x_hat
    torch.testing.assert_close(result, (alone + second) / 2)
    clean = to_hwc(x)
    assert psnr(to_hwc(result), clean) > psnr(to_hwc(alone), clean) + 0.1


def test_colour_poisson_and_gamma_give_it_to_their_stabilised_view():
    denoiser = load_denoiser("gamma50-color", vst="auto", opponent="auto")
    assert denoiser.opponent is None and denoiser.vst.opponent.info.name == "gaussian-blind-gray"
    assert denoiser.gray_view is denoiser.vst.opponent


@pytest.mark.parametrize(
    ("weights", "options", "message"),
    [
        ("gaussian25-gray", {"opponent": "auto"}, "for colour Gaussian weights"),
        ("gamma50-color", {"opponent": "auto"}, "with vst"),  # no colour Gaussian estimate
        ("gaussian25-color", {"opponent": "gaussian25-color"}, "needs gray Gaussian weights"),
        ("gaussian25-color", {"opponent": "poisson0.05-gray"}, "needs gray Gaussian weights"),
    ],
)
def test_an_opponent_view_that_does_not_fit_is_refused(weights, options, message):
    with pytest.raises(ValueError, match=message):
        load_denoiser(weights, **options)


def test_denoise_adds_the_view_to_colour_gaussian_by_default(tmp_path, capsys):
    _, y = _noisy_astronaut()
    image = str(write_image(tmp_path / "in.png", to_hwc(y[..., :48, :48]).clip(0, 1)))
    gray = str(write_image(tmp_path / "gray.png", to_hwc(y[:, :1, :48, :48]).clip(0, 1)))
    for i, (extra, line) in enumerate(
        [
            ([], "with gaussian25-color + gaussian-blind-gray (--opponent)"),
            (["--opponent", "gaussian25-gray"], "with gaussian25-color + gaussian25-gray (--opponent)"),
            (["--no-opponent"], "with gaussian25-color\n"),
        ]
    ):
        out = tmp_path / f"out{i}"
        assert main(["denoise", image, "--level", "25", "-o", str(out), *extra]) == 0
        assert read_image(out / "in.png").pixels.shape == (48, 48, 3)
        assert line in capsys.readouterr().out
    assert main(["denoise", gray, "--level", "25", "-o", str(tmp_path / "g")]) == 0  # gray: no view
    assert "(--opponent)" not in capsys.readouterr().out
    for args, message in [
        ([image, "--opponent", "--no-opponent"], "give --opponent or --no-opponent, not both"),
        ([gray, "--weights", "gaussian25-gray", "--opponent"], "--opponent is for colour Gaussian weights"),
        ([image, "--weights", "gaussian25-color", "--opponent", "gaussian25-color"], "needs gray Gaussian"),
        ([image, "--no-vst", "--weights", "poisson0.05-color", "--opponent"], "with --vst"),
    ]:
        assert main(["denoise", *args, "-o", str(tmp_path / "refused")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()


@pytest.mark.slow
def test_evaluate_records_the_opponent_view_and_it_beats_the_colour_estimate(tmp_path):
    folder = require_shared("kodak24")
    rows = {}
    for key, extra in {"colour": [], "both": ["--opponent"]}.items():
        out = tmp_path / f"{key}.json"
        args = ["evaluate", "--weights", "gaussian25-color", "--dataset", "kodak24", "--limit", "1"]
        args += ["--level", "25", "--data-dir", str(folder.parent), "--json", str(out), "--bf16"]
        assert main([*args, *extra]) == 0
        rows[key] = json.loads(out.read_text())
    assert rows["colour"]["opponent"] is None and rows["both"]["opponent"] == "gaussian-blind-gray"
    assert rows["both"]["mean_psnr"] > rows["colour"]["mean_psnr"] + 0.1
