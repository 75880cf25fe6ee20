"""Fitting the network to the image being denoised (--adapt): plumbing, not quality
(benchmarks/adapt_to_image.py measures that)."""

import json

import numpy as np
import pytest
import torch

from noise2score.adapt import Adaptation, perturbation
from noise2score.cli import main
from noise2score.denoiser import Denoiser
from noise2score.image_io import write_image
from noise2score.networks import build_network
from noise2score.noise import make_noise
from noise2score.weights import WeightsInfo
from tests.conftest import SHARED_DATASETS, require_shared

QUICK = Adaptation(steps=2, batch=2, crop=32, lr=1e-2, ema=0.0)  # a large rate: a change to see


def _denoiser(info: WeightsInfo, adapt: Adaptation | None = QUICK) -> Denoiser:
    torch.manual_seed(0)
    network = build_network(info.network, info.network_channels, info.network_out_channels)
    return Denoiser(network, info, adapt=adapt, device="cpu")


def _state(denoiser: Denoiser) -> dict:
    return {k: v.clone() for k, v in denoiser.network.state_dict().items()}


@pytest.mark.parametrize(
    "info, level, adapt",
    [
        (WeightsInfo("n2n_unet", 1, "gaussian", 25.0, "gray"), 25.0, Adaptation(2, 1e-2, 2, 32, ema=0.5)),
        (
            WeightsInfo(
                "n2n_unet",
                3,
                "poisson",
                0.01,
                "told colour",
                levels=(0.005, 0.1),
                per_channel=True,
                context=True,
                level_input=True,
            ),
            0.02,
            QUICK,
        ),
    ],
)
def test_each_image_gets_a_fitted_copy_and_the_same_image_the_same_result(info, level, adapt):
    denoiser = _denoiser(info, adapt)
    y = torch.rand(1, info.channels, 40, 48, generator=torch.Generator().manual_seed(1)) * 0.8 + 0.1
    before = _state(denoiser)
    with torch.inference_mode():  # as callers may be; the fit still gets gradients
        first = denoiser.denoise_tensor(y, level).x_hat
    second = denoiser.denoise_tensor(y, level).x_hat
    plain = _denoiser(info, adapt=None).denoise_tensor(y, level).x_hat
    assert all(torch.equal(before[k], v) for k, v in denoiser.network.state_dict().items())
    assert torch.equal(first, second)
    assert (first - plain).abs().max() > 1e-4


def test_the_perturbation_is_the_cards_then_the_familys_and_goes_with_the_level_of_told_weights():
    fixed = WeightsInfo("n2n_unet", 1, "gaussian", 25.0, "g")
    assert perturbation(fixed, QUICK, 50.0) == make_noise("gaussian", 25.0).default_sigma_a[1]
    fixed.card = {"training": {"model": {"sigma_a_end": 0.004}}}
    assert perturbation(fixed, QUICK, 50.0) == 0.004  # one level: not scaled
    assert perturbation(fixed, Adaptation(sigma_a=0.02), None) == 0.02
    told = WeightsInfo("n2n_unet", 1, "gaussian", 25.0, "t", levels=(5.0, 55.0), level_input=True)
    told.card = fixed.card
    assert perturbation(told, QUICK, 50.0) == pytest.approx(0.008)  # twice the noise, twice sigma_a


def test_steps_out_of_range_are_refused():
    with pytest.raises(ValueError, match="1..10000"):
        Adaptation(steps=0)


def test_the_command_fits_on_request_and_says_so(weights_file, tmp_path, capsys):
    write_image(tmp_path / "a.png", np.random.default_rng(0).random((40, 40, 1)))
    args = ["denoise", tmp_path / "a.png", "-o", tmp_path / "out", "--weights", weights_file, "--level", "25"]
    assert main([*map(str, args), "--adapt", "2"]) == 0
    assert "fitted to the image (2 steps, --adapt)" in capsys.readouterr().out
    assert (tmp_path / "out" / "a.png").is_file()
    assert main([*map(str, args), "--adapt", "-1", "--overwrite"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_evaluate_records_the_fit_settings(weights_file, tmp_path):
    require_shared("set12")
    args = ["evaluate", "--weights", weights_file, "--dataset", "set12", "--level", "25", "--limit", "1"]
    args += ["--data-dir", SHARED_DATASETS, "--adapt", "2", "--json", tmp_path / "fitted.json"]
    assert main([str(a) for a in args]) == 0
    recorded = json.loads((tmp_path / "fitted.json").read_text())["adapt"]
    settings = {"steps": 2, "lr": 3e-5, "batch": 4, "crop": 96, "ema": 0.95, "sigma_a": None, "seed": 0}
    assert recorded == settings  # what it ran with, and nothing of the run's own (progress)
