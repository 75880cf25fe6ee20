"""Fitting the network to the image being denoised (--adapt): plumbing, not quality
(benchmarks/adapt_to_image.py measures that)."""

import io
import json

import numpy as np
import pytest
import torch

from noise2score import adapt
from noise2score.adapt import Adaptation, fitted_network, learning_rate, perturbation
from noise2score.cli import main
from noise2score.denoiser import Denoiser, load_denoiser
from noise2score.image_io import write_image
from noise2score.networks import build_network, channel_scorer
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


@pytest.mark.parametrize(
    ("weights", "views", "level", "fitted"),
    [
        ("gaussian25-color", {"opponent": "auto"}, 25.0, [(1, 3), (3, 1)]),
        ("poisson0.05-color", {"vst": "auto", "opponent": "auto"}, 0.05, [(1, 3), (1, 3), (3, 1)]),
        ("gamma50-gray", {"vst": "auto"}, 50.0, [(1, 1), (1, 1)]),
    ],
)
def test_the_second_views_are_fitted_too_each_to_what_it_sees(weights, views, level, fitted, monkeypatch):
    calls = []

    def recorded(network, scorer_of, y, sigma_a, settings, on_step=None):
        calls.append((tuple(y.shape[:2]), sigma_a))
        return fitted_network(network, scorer_of, y, sigma_a, settings, on_step)

    monkeypatch.setattr("noise2score.denoiser.fitted_network", recorded)
    done = []
    denoiser = load_denoiser(weights, device="cpu", **views)
    served = {id(d): _state(d) for d in (denoiser, denoiser.vst, denoiser.gray_view) if d is not None}
    denoiser.adapt = Adaptation(steps=2, batch=2, crop=32, progress=done.append)
    channels = denoiser.channels
    y = torch.rand(1, channels, 40, 48, generator=torch.Generator().manual_seed(1)) * 0.8 + 0.1
    denoiser.denoise_tensor(y, level)
    assert [shape for shape, _ in calls] == fitted and denoiser.fits() == len(fitted)
    if denoiser.gray_view is not None:  # one perturbation per opponent channel, with its level
        sigma_a = calls[-1][1]
        assert len(sigma_a) == 3 and sigma_a[0] < sigma_a[2] < sigma_a[1]  # rows 0.58, 0.61, 0.71
    assert done == sorted(done) and done[-1] == 1 and len(done) == 2 * len(fitted)
    for d in (denoiser, denoiser.vst, denoiser.gray_view):  # the served weights stay as they were
        if d is not None:
            assert all(torch.equal(served[id(d)][k], v) for k, v in d.network.state_dict().items())


def test_several_images_are_fitted_together_each_crop_told_its_own_level():
    info = WeightsInfo("n2n_unet", 1, "gaussian", 25.0, "t", levels=(5.0, 55.0), level_input=True)
    network = build_network(info.network, info.network_channels, info.network_out_channels)
    seen = []

    def scorer_of(net, which):
        seen.append(which)
        return channel_scorer(net, per_channel=False, context=False, level_scale=torch.ones(len(which)))

    y = torch.rand(3, 1, 40, 40)
    settings = Adaptation(steps=3, lr=1e-4, batch=4, crop=16)
    fitted_network(network, scorer_of, y, [0.001, 0.002, 0.003], settings)
    assert len(seen) == 3 and all(w.shape == (4,) and w.min() >= 0 and w.max() <= 2 for w in seen)
    assert len(torch.cat(seen).unique()) > 1  # crops come from more than one image
    crops, which = adapt.random_crops(torch.arange(3.0).view(3, 1, 1, 1).expand(3, 1, 8, 8), 4, 6)
    assert torch.equal(crops[:, 0, 0, 0], which.float())  # each crop is of the image it names
    assert adapt.random_crops(y[:1], 16, 2)[1] is None
    with pytest.raises(ValueError, match="2 perturbations for 3 images"):
        fitted_network(network, scorer_of, y, [0.001, 0.002], Adaptation(steps=1, lr=1e-4))
    with pytest.raises(ValueError, match="needs its rate"):
        fitted_network(network, scorer_of, y, [0.001] * 3, Adaptation(steps=1))


def test_the_perturbation_is_the_cards_then_the_familys_and_goes_with_the_level_of_told_weights():
    fixed = WeightsInfo("n2n_unet", 1, "gaussian", 25.0, "g")
    assert perturbation(fixed, QUICK, 50.0) == make_noise("gaussian", 25.0).default_sigma_a[1]
    fixed.card = {"training": {"model": {"sigma_a_end": 0.004}}}
    assert perturbation(fixed, QUICK, 50.0) == 0.004  # one level: not scaled
    assert perturbation(fixed, Adaptation(sigma_a=0.02), None) == 0.02
    told = WeightsInfo("n2n_unet", 1, "gaussian", 25.0, "t", levels=(5.0, 55.0), level_input=True)
    told.card = fixed.card
    assert perturbation(told, QUICK, 50.0) == pytest.approx(0.008)  # twice the noise, twice sigma_a


def test_the_rate_goes_with_the_perturbation_against_the_noise_up_to_a_ceiling():
    sigma25 = learning_rate(Adaptation(), "gaussian", [25.0], [0.001])
    assert sigma25 == pytest.approx(3e-5, rel=0.05)  # the rate measured at sigma_a 0.001, sigma 25
    assert learning_rate(Adaptation(), "gaussian", [50.0], [0.001]) == pytest.approx(sigma25 / 2)
    assert learning_rate(Adaptation(), "gaussian", [50.0], [0.01]) == adapt.MAX_RATE
    # Poisson at zeta 0.01: the noise at mid-gray is sqrt(0.005); several images: the smallest ratio
    poisson = learning_rate(Adaptation(), "poisson", [0.01, 0.01], [0.0005, 0.005])
    assert poisson == pytest.approx(adapt.RATE_PER_RATIO * 0.0005 / 0.005**0.5)
    assert learning_rate(Adaptation(lr=2e-4), "gaussian", [25.0], [0.001]) == 2e-4  # given: kept


def test_the_fit_takes_the_rate_its_perturbation_sets(monkeypatch):
    rates = []

    def fit(network, _scorer_of, _y, _sigma_a, settings):
        rates.append(settings.lr)
        return network

    monkeypatch.setattr("noise2score.denoiser.fitted_network", fit)
    info = WeightsInfo("n2n_unet", 1, "gaussian", 50.0, "gray")
    info.card = {"training": {"model": {"sigma_a_end": 0.01}}}
    y = torch.rand(1, 1, 32, 32)
    _denoiser(info, None).fitted_to(y, None, Adaptation(steps=1))  # level not given: the weights'
    _denoiser(info, None).fitted_to(y, 50.0, Adaptation(steps=1, lr=1e-5))
    assert rates == [adapt.MAX_RATE, 1e-5]


def test_steps_or_rates_out_of_range_are_refused():
    with pytest.raises(ValueError, match="1..10000"):
        Adaptation(steps=0)
    with pytest.raises(ValueError, match="rate"):
        Adaptation(lr=0.0)


def test_the_command_fits_on_request_and_says_so(weights_file, tmp_path, capsys):
    write_image(tmp_path / "a.png", np.random.default_rng(0).random((40, 40, 1)))
    args = ["denoise", tmp_path / "a.png", "-o", tmp_path / "out", "--weights", weights_file, "--level", "25"]
    assert main([*map(str, args), "--adapt", "2"]) == 0
    assert "fitted to the image (2 steps, --adapt)" in capsys.readouterr().out
    assert (tmp_path / "out" / "a.png").is_file()
    assert main([*map(str, args), "--adapt", "-1", "--overwrite"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main([*map(str, args), "--adapt", "2", "--adapt-lr", "0", "--overwrite"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_the_command_shows_the_fit_on_a_terminal_only(weights_file, tmp_path, capsys, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    write_image(tmp_path / "a.png", np.random.default_rng(0).random((40, 40, 1)))
    args = ["denoise", tmp_path / "a.png", "-o", tmp_path / "out", "--weights", weights_file, "--level", "25"]
    assert main([*map(str, args), "--adapt", "3"]) == 0
    assert "fitting" not in capsys.readouterr().err  # a log file gets no bar
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main([*map(str, args), "--adapt", "3", "--overwrite"]) == 0
    assert "a.png: fitting" in terminal.getvalue() and "3/3" in terminal.getvalue()


def test_the_fit_bar_reports_on_a_copy_and_leaves_the_served_denoiser_as_it_was(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    gray = WeightsInfo("n2n_unet", 1, "gaussian", 25.0, "gray")
    served, plain = _denoiser(gray), _denoiser(gray, adapt=None)
    with adapt.fit_progress_bar(plain, "x.png") as same:
        assert same is plain
    with adapt.fit_progress_bar(served, "x.png") as reporting:
        assert reporting is not served and reporting.adapt.progress is not None
        y = torch.rand(1, 1, 40, 40, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
        reporting.denoise_tensor(y, 25)
    assert served.adapt == QUICK and served.adapt.progress is None
    assert "x.png: fitting" in terminal.getvalue() and "2/2" in terminal.getvalue()


def test_the_command_says_when_the_views_are_fitted_too(tmp_path, capsys):
    write_image(tmp_path / "a.png", np.random.default_rng(0).random((40, 40, 3)))
    args = ["denoise", tmp_path / "a.png", "-o", tmp_path / "out", "--weights", "gaussian25-color"]
    assert main([*map(str, args), "--level", "25", "--opponent", "--adapt", "1"]) == 0
    assert "fitted to the image (1 steps; its views' weights too, --adapt)" in capsys.readouterr().out


def test_evaluate_records_the_fit_settings(weights_file, tmp_path):
    require_shared("set12")
    args = ["evaluate", "--weights", weights_file, "--dataset", "set12", "--level", "25", "--limit", "1"]
    args += ["--data-dir", SHARED_DATASETS, "--adapt", "2", "--json", tmp_path / "fitted.json"]
    assert main([str(a) for a in args]) == 0
    recorded = json.loads((tmp_path / "fitted.json").read_text())["adapt"]
    settings = {"steps": 2, "lr": None, "batch": 4, "crop": 96, "ema": 0.95, "sigma_a": None, "seed": 0}
    settings["revision"] = 2  # the second views are fitted too
    settings["rate_rule"] = [adapt.RATE_PER_RATIO, adapt.MAX_RATE]  # the rate: set by this rule
    assert recorded == settings  # what it ran with, and nothing of the run's own (progress)


def test_settings_are_parsed_from_text_by_their_field_types():
    assert Adaptation.parse("lr=1e-4,steps=240") == Adaptation(lr=1e-4, steps=240)
    assert Adaptation.parse("sigma_a=0.025").sigma_a == 0.025
    with pytest.raises(ValueError, match="rate: not NAME=VALUE with NAME one of steps, lr"):
        Adaptation.parse("rate=1e-4")
    with pytest.raises(ValueError, match="invalid literal for int"):
        Adaptation.parse("steps=1e3")
    with pytest.raises(ValueError, match="adaptation steps must be in"):
        Adaptation.parse("steps=0")
