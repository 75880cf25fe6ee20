"""The stabilised second view of Poisson and Gamma images (--vst)."""

import json

import numpy as np
import pytest
import torch
from skimage import data

from noise2score.cli import main
from noise2score.denoiser import load_denoiser, vst_weights
from noise2score.image_io import read_image, write_image
from noise2score.metrics import psnr, to_hwc
from noise2score.noise import make_noise
from noise2score.vst import SHARES, stabilise, stabilised_estimate, unit_span, unstabilise, view_share
from tests.conftest import require_shared


@pytest.mark.parametrize(
    ("family", "level"), [("poisson", 0.05), ("poisson", 0.01), ("gamma", 50), ("gamma", 100)]
)
def test_the_transform_makes_the_noise_spread_known_and_its_inverse_is_unbiased(family, level):
    x = torch.full((1, 1, 256, 256), 0.4)
    y = make_noise(family, level).sample(x, generator=torch.Generator().manual_seed(0))
    z, sigma = stabilise(y.double().numpy(), make_noise(family, level))
    assert z.std() == pytest.approx(sigma, rel=0.05)
    # A perfect denoiser of z returns its mean; mapped back, that is the clean value.
    assert unstabilise(np.array(z.mean()), make_noise(family, level)) == pytest.approx(0.4, rel=0.01)


def test_gaussian_noise_has_no_transform():
    with pytest.raises(ValueError, match="gaussian"):
        stabilise(np.zeros(4), make_noise("gaussian", 25))


def test_the_unit_map_spans_the_image_and_keeps_the_noise_within_the_weights_levels():
    z = np.linspace(2.0, 12.0, 10001)
    low, span, level = unit_span(z, 1.0, (5.0, 55.0))
    assert (low, span) == pytest.approx((2.05, 9.9), abs=0.01)
    assert level == pytest.approx(255 / 9.9)
    low, span, level = unit_span(np.linspace(2.0, 2.5, 1001), 1.0, (5.0, 55.0))  # flat: too noisy
    assert level == 55.0 and span == pytest.approx(255 / 55) and low + span / 2 == pytest.approx(2.25)
    assert unit_span(z, 1.0, (25.0, 25.0))[2] == 25.0  # fixed-level weights: their level


def _noisy_camera(family, level, size=128):
    x = torch.from_numpy(data.camera()[200 : 200 + size, 200 : 200 + size] / 255.0).float()[None, None]
    return x, make_noise(family, level).sample(x, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    ("weights", "family", "level"), [("gamma50-gray", "gamma", 50), ("poisson0.05-gray", "poisson", 0.05)]
)
def test_the_result_mixes_the_family_estimate_and_the_stabilised_one(weights, family, level):
    x, y = _noisy_camera(family, level)
    alone = load_denoiser(weights).denoise_tensor(y, level)
    both = load_denoiser(weights, vst="auto")
    assert both.vst.info.name == "gaussian-blind-gray"
    result = both.denoise_tensor(y, level)
    second = stabilised_estimate(both.vst, y, make_noise(family, level))
    share = result.view_share
    assert share == 0.5 if family == "poisson" else share in SHARES  # Gamma: picked by SURE
    torch.testing.assert_close(result.x_hat, (1 - share) * alone.x_hat + share * second)
    clean = to_hwc(x)
    assert psnr(to_hwc(second), clean) > psnr(to_hwc(y), clean) + 5


@pytest.mark.parametrize(
    ("weights", "views", "ensemble", "passes"),
    [
        ("poisson0.01-gray", {"vst": "auto"}, False, 2),
        ("gamma50-gray", {"vst": "auto"}, False, 4),  # the share's probe runs both again
        ("gamma50-color", {"vst": "auto", "opponent": "auto"}, False, 14),  # its own: per channel
        ("gaussian25-color", {"opponent": "auto"}, True, 32),
    ],
)
def test_work_counts_the_network_passes_over_each_pixel(weights, views, ensemble, passes):
    denoiser = load_denoiser(weights, tile=None, **views)
    denoiser.ensemble = ensemble
    for second in (denoiser.vst, denoiser.gray_view):
        if second is not None:
            second.ensemble = ensemble
    counted = []
    networks = {denoiser.network, *(d.network for d in (denoiser.vst, denoiser.gray_view) if d)}
    for network in networks:
        network.register_forward_pre_hook(
            lambda _, args: counted.append(args[0].shape[0] * args[0][0, 0].numel())
        )
    y = torch.rand(1, denoiser.channels, 48, 40) * 0.8 + 0.1
    denoiser.denoise_tensor(y, 50 if "gamma" in weights else 0.01 if "poisson" in weights else 25)
    assert denoiser.work() == passes == sum(counted) / (48 * 40)


@pytest.mark.parametrize(
    ("weights", "level", "crop"), [("gamma50-gray", 50, 256), ("gamma50-color", 50, 192)]
)
def test_the_gamma_share_sure_picks_is_near_the_best_share(weights, level, crop, monkeypatch):
    from noise2score import vst

    photo = data.camera()[..., None] if weights.endswith("gray") else data.astronaut()
    x = torch.from_numpy(photo[100 : 100 + crop, 150 : 150 + crop] / 255.0).float().permute(2, 0, 1)[None]
    noise = make_noise("gamma", level)
    y = noise.sample(x, generator=torch.Generator().manual_seed(1))
    own = load_denoiser(weights)
    view = load_denoiser(vst_weights(own.channels))
    own_estimate = lambda v: own.denoise_tensor(v, level).x_hat  # noqa: E731
    view_estimate = lambda v: stabilised_estimate(view, v, noise)  # noqa: E731
    a, b = own_estimate(y), view_estimate(y)
    scores = {w: psnr(to_hwc((1 - w) * a + w * b), to_hwc(x)) for w in SHARES}
    picked = view_share(y, noise, own_estimate, view_estimate, a, b)
    assert scores[picked] > max(scores.values()) - 0.1, (picked, scores)
    assert scores[picked] > min(scores.values()) + 0.3  # the check has teeth: shares differ
    # on a crop of a larger image, the same way
    monkeypatch.setattr(vst, "PROBE_PIXELS", (crop // 2) ** 2)
    assert view_share(y, noise, own_estimate, view_estimate, a, b) in SHARES


def test_the_stabilised_view_follows_an_estimated_level():
    _, y = _noisy_camera("poisson", 0.05)
    result = load_denoiser("poisson-blind-gray", vst="auto").denoise_tensor(y)
    assert result.estimated and result.level == pytest.approx(0.05, rel=0.2)
    assert torch.isfinite(result.x_hat).all()


@pytest.mark.parametrize(
    ("weights", "vst", "message"),
    [
        ("gaussian25-gray", "auto", "not Gaussian"),
        ("gamma50-gray", "poisson0.05-gray", "needs Gaussian weights"),
        ("gamma50-gray", "gaussian-blind-color", "channel"),
    ],
)
def test_a_second_view_that_does_not_fit_is_refused(weights, vst, message):
    with pytest.raises(ValueError, match=message):
        load_denoiser(weights, vst=vst)


def test_denoise_adds_the_view_by_default_and_refuses_it_for_gaussian_noise(tmp_path, capsys):
    _, y = _noisy_camera("gamma", 50, size=64)
    image = str(write_image(tmp_path / "in.png", to_hwc(y).clip(0, 1)))
    gamma = [image, "--noise", "gamma", "--level", "50"]
    for i, (extra, line) in enumerate(
        [
            ([], "picked by SURE) with gamma50-gray + gaussian-blind-gray (--vst)"),
            (["--vst"], "with gamma50-gray + gaussian-blind-gray (--vst)"),
            (["--no-vst"], "in.png with gamma50-gray\n"),
        ]
    ):
        out = tmp_path / f"out{i}"
        assert main(["denoise", *gamma, "-o", str(out), *extra]) == 0
        assert read_image(out / "in.png").pixels.shape == (64, 64, 1)
        printed = capsys.readouterr().out
        assert line in printed and ("the stabilised view's share " in printed) == ("--no-vst" not in extra)
    for args, message in [
        ([image, "--vst"], "--vst is for Poisson and Gamma noise: give --noise"),
        ([image, "--weights", "gaussian25-gray", "--vst"], "for Poisson and Gamma noise\n"),
        ([*gamma, "--vst", "--no-vst"], "give --vst or --no-vst, not both"),
    ]:
        assert main(["denoise", *args, "-o", str(tmp_path / "refused")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    named = ["--weights", "gamma50-gray", "-o", str(tmp_path / "named")]
    assert main(["denoise", *gamma, *named]) == 0  # weights the user named: the view is said too
    assert "with gamma50-gray + gaussian-blind-gray (--vst)" in capsys.readouterr().out
    assert main(["denoise", image, "-o", str(tmp_path / "g")]) == 0  # Gaussian: no view
    assert "(--vst)" not in capsys.readouterr().out


def test_evaluate_records_the_second_view_and_it_beats_either_estimate(tmp_path):
    require_shared("set12")
    rows = {}
    for key, extra in {"family": [], "both": ["--vst"]}.items():
        out = tmp_path / f"{key}.json"
        args = ["evaluate", "--weights", "gamma50-gray", "--dataset", "set12", "--limit", "2"]
        assert (
            main(
                [
                    *args,
                    "--level",
                    "50",
                    "--data-dir",
                    str(require_shared("set12").parent),
                    "--json",
                    str(out),
                    *extra,
                ]
            )
            == 0
        )
        rows[key] = json.loads(out.read_text())
    assert rows["family"]["vst"] is None and rows["both"]["vst"] == "gaussian-blind-gray"
    assert rows["both"]["mean_psnr"] > rows["family"]["mean_psnr"] + 0.2
