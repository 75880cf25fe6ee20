"""Metrics against scikit-image, reproducible noisy inputs, dataset registry."""

import json
import shutil

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from noise2score import datasets
from noise2score.baselines import run_baseline
from noise2score.evaluate import EvalSpec, evaluate, noisy_input
from noise2score.metrics import psnr, ssim
from noise2score.noise import make_noise
from noise2score.vst import anscombe, inverse_anscombe
from tests.conftest import SHARED_DATASETS, require_shared

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("channels", [1, 3])
def test_metrics_match_scikit_image(channels):
    x = RNG.random((64, 80, channels))
    x_hat = np.clip(x + 0.1 * RNG.standard_normal(x.shape), 0, 1)
    assert abs(psnr(x_hat, x) - peak_signal_noise_ratio(x, x_hat, data_range=1.0)) < 1e-4
    reference = structural_similarity(
        x,
        x_hat,
        data_range=1.0,
        channel_axis=2,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert abs(ssim(x_hat, x) - reference) < 1e-4
    assert abs(psnr(torch.from_numpy(x_hat), torch.from_numpy(x)) - psnr(x_hat, x)) < 1e-4


def test_psnr_clamps_the_estimate():
    x = np.full((8, 8, 1), 1.0)
    assert psnr(np.full((8, 8, 1), 1.5), x) == float("inf")


def test_anscombe_inverse_is_unbiased_for_moderate_counts():
    rng = np.random.default_rng(1)
    for mean in (2.0, 10.0, 50.0):
        z = rng.poisson(mean, 400_000).astype(np.float64)
        assert abs(inverse_anscombe(np.array([anscombe(z).mean()]))[0] / mean - 1) < 0.01


def test_baselines_see_the_noisy_input_and_improve_it():
    x = np.tile(np.linspace(0, 1, 64), (64, 1))[:, :, None]
    noise = make_noise("gaussian", 25)
    y = noise.sample(torch.from_numpy(x), generator=torch.Generator().manual_seed(0)).numpy()
    for method in ("wavelet", "nl_means", "nl_means_calibrated"):
        assert psnr(run_baseline(method, y, noise), x) > psnr(y, x) + 3, method
    for family, level in (("poisson", 0.05), ("gamma", 50)):
        noisy_model = make_noise(family, level)
        y = noisy_model.sample(torch.from_numpy(x + 0.05), generator=torch.Generator().manual_seed(0)).numpy()
        assert psnr(run_baseline("nl_means", y, noisy_model), x + 0.05) > psnr(y, x + 0.05) + 2, family


def test_same_seed_same_inputs_and_numbers_any_method_any_order():
    require_shared("set12")
    noise = make_noise("gaussian", 25)
    spec = EvalSpec("set12", noise, seed=0, limit=3, data_dir=str(SHARED_DATASETS))
    files = datasets.dataset_files("set12", SHARED_DATASETS)[:3]
    first = [noisy_input(spec, f)[1] for f in files]
    again = [noisy_input(spec, f)[1] for f in reversed(files)][::-1]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    other_seed = noisy_input(EvalSpec("set12", noise, seed=1, data_dir=str(SHARED_DATASETS)), files[0])[1]
    assert not torch.equal(first[0], other_seed)
    runs = [evaluate(spec, method="noisy") for _ in range(2)]
    assert runs[0]["images"] == runs[1]["images"]
    # The "noisy" method returns its input: its PSNR is the PSNR of the shared noisy draw.
    for row, y, f in zip(runs[0]["images"], first, files, strict=True):
        x = noisy_input(spec, f)[0]
        assert row["psnr"] == pytest.approx(psnr(y[0].permute(1, 2, 0).numpy(), x), abs=1e-9)
    wavelet = evaluate(spec, method="wavelet")
    assert wavelet["mean_psnr"] > runs[0]["mean_psnr"]
    assert {"mean_psnr", "mean_ssim", "images", "seed", "versions"} <= wavelet.keys()


def test_fetch_from_a_local_folder_verifies_checksums(tmp_path):
    source = require_shared("set12")
    folder = datasets.fetch("set12", source=source, target=tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f.name for f in datasets.get_dataset("set12").files
    )
    assert ("set12", "test", 12, "ok") in datasets.status(tmp_path)


def test_fetch_mismatch_names_the_file_and_leaves_nothing(tmp_path):
    source = require_shared("set12")
    bad = tmp_path / "bad"
    shutil.copytree(source, bad)
    (bad / "05.png").write_bytes((bad / "05.png").read_bytes()[:-10] + b"0123456789")
    with pytest.raises(datasets.DataError, match="05.png"):
        datasets.fetch("set12", source=bad, target=tmp_path / "data")
    assert not (tmp_path / "data" / "set12").exists()
    assert list((tmp_path / "data").iterdir()) == []
    (bad / "05.png").unlink()
    with pytest.raises(datasets.DataError, match="05.png"):
        datasets.fetch("set12", source=bad, target=tmp_path / "data")
    assert list((tmp_path / "data").iterdir()) == []


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(datasets.DataError, match="data fetch bsd68"):
        datasets.dataset_files("bsd68", tmp_path)
    with pytest.raises(datasets.DataError, match="unknown dataset"):
        datasets.get_dataset("imagenet")


def test_registry_matches_the_shared_manifest():
    manifest = require_shared("") / "MANIFEST.tsv"
    rows = [line.split("\t") for line in manifest.read_text().splitlines()[1:] if line]
    registry = {(d.name, f.name): f.sha256 for d in datasets.registry().values() for f in d.files}
    assert registry == {(r[0], r[1]): r[3] for r in rows}


def test_only_cached_baselines_are_left_out_until_the_whole_set_is_cached(tmp_path, monkeypatch):
    from noise2score import evaluate as evaluate_module

    require_shared("set12")
    monkeypatch.setattr(evaluate_module, "CACHE_DIR", tmp_path)
    spec = EvalSpec("set12", make_noise("gaussian", 25), seed=0, limit=2, data_dir=str(SHARED_DATASETS))
    assert not evaluate_module.baseline_cached(spec, "noisy")
    evaluate(EvalSpec("set12", spec.noise, seed=0, limit=1, data_dir=spec.data_dir), method="noisy")
    assert not evaluate_module.baseline_cached(spec, "noisy")  # one image of two
    evaluate(spec, method="noisy")
    assert evaluate_module.baseline_cached(spec, "noisy")


@pytest.mark.parametrize("level, picked", [(25, "gaussian25-gray"), (15, "gaussian-blind-gray")])
def test_auto_evaluates_the_weights_denoise_picks_for_each_image(level, picked, tmp_path, capsys):
    from noise2score.cli import main as cli

    require_shared("set12")
    common = ["--dataset", "set12", "--noise", "gaussian", "--level", str(level), "--limit", "2"]
    common += ["--data-dir", str(SHARED_DATASETS), "--estimate-level"]
    assert cli(["evaluate", "--weights", "auto", *common, "--json", str(tmp_path / "auto.json")]) == 0
    assert cli(["evaluate", "--weights", picked, *common, "--json", str(tmp_path / "named.json")]) == 0
    auto, named = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("auto", "named"))
    assert auto["weights"] == "auto" and auto["picked"] == {picked: 2}
    assert [r["weights"] for r in auto["images"]] == [picked] * 2
    assert [r["psnr"] for r in auto["images"]] == [r["psnr"] for r in named["images"]]
    assert f"| {picked} |" in capsys.readouterr().out


def test_auto_takes_no_level_method_and_needs_the_noise(capsys):
    from noise2score.cli import main as cli

    base = ["evaluate", "--weights", "auto", "--dataset", "set12", "--level", "25"]
    assert cli([*base, "--noise", "gaussian", "--level-method", "grid"]) == 2
    assert cli(base) == 2
    err = capsys.readouterr().err.splitlines()
    assert "drop --level-method" in err[0] and "--weights auto need --noise and --level" in err[1]


def test_a_stopped_network_run_goes_on_from_the_images_it_saved(tmp_path, monkeypatch, capsys):
    from noise2score.cli import main as cli
    from noise2score.denoiser import Denoiser

    require_shared("set12")
    out = tmp_path / "g25.json"
    args = ["evaluate", "--weights", "gaussian25-gray", "--dataset", "set12", "--level", "25", "--limit", "3"]
    args += ["--data-dir", str(SHARED_DATASETS), "--json", str(out)]
    calls, stop_at, real = [], [2], Denoiser.denoise_tensor

    def stopped_at_the_second(self, y, *a, **k):
        calls.append(1)
        if len(calls) in stop_at:
            raise KeyboardInterrupt
        return real(self, y, *a, **k)

    monkeypatch.setattr(Denoiser, "denoise_tensor", stopped_at_the_second)
    assert cli(args) == 130  # stopped (Ctrl-C) at the second image
    partial = tmp_path / "g25.partial.json"
    saved = json.loads(partial.read_text())["images"]
    assert [r["name"] for r in saved] == ["01.png"] and not out.exists()
    calls.clear(), stop_at.clear()
    assert cli(args) == 0  # the first image is taken from the partial file, the other two measured
    assert len(calls) == 2 and "resuming: 1 image(s)" in capsys.readouterr().err
    result = json.loads(out.read_text())
    assert result["images"][0] == saved[0] and len(result["images"]) == 3 and not partial.exists()
    calls.clear()
    cli([*args, "--json", str(tmp_path / "again.json")])
    assert len(calls) == 3  # nothing left to resume from: the finished run removed its partial file
    saved[0]["psnr"] = 99.0
    (tmp_path / "ens.partial.json").write_text(
        json.dumps({"settings": {"weights": "other"}, "images": saved})
    )
    calls.clear()
    cli([*args, "--json", str(tmp_path / "ens.json")])
    assert len(calls) == 3  # a partial file of other settings is not used


def test_clip8_stores_the_inputs_as_8_bit_files_and_records_the_inverse(tmp_path, capsys):
    from noise2score import evaluate as evaluate_module
    from noise2score.cli import main as cli

    require_shared("set12")
    noise = make_noise("gaussian", 50)
    plain, clip8 = (
        EvalSpec("set12", noise, limit=2, data_dir=str(SHARED_DATASETS), clip8=c) for c in (False, True)
    )
    path = datasets.dataset_files("set12", SHARED_DATASETS)[0]
    y, y8 = noisy_input(plain, path)[1], noisy_input(clip8, path)[1]
    assert torch.equal(y8, torch.round(y.clamp(0, 1) * 255) / 255) and (y8 == 0).any()
    assert evaluate_module._cache_path(plain, "bm3d", "a") != evaluate_module._cache_path(clip8, "bm3d", "a")
    assert "clip8" not in evaluate_module.run_settings(
        plain, None, "w", False, "auto"
    )  # old partial files hold
    args = ["evaluate", "--weights", "gaussian50-gray", "--dataset", "set12", "--level", "50", "--limit", "2"]
    args += ["--data-dir", str(SHARED_DATASETS), "--clip8"]
    runs = {}
    for extra in ([], ["--no-clip-inverse"]):
        out = tmp_path / f"run{len(runs)}.json"
        assert cli([*args, *extra, "--json", str(out)]) == 0
        runs[bool(extra)] = json.loads(out.read_text())
    assert runs[False]["clip8"] and runs[False]["clip_inverse"] and not runs[True]["clip_inverse"]
    assert runs[False]["mean_psnr"] > runs[True]["mean_psnr"] + 0.2
    capsys.readouterr()
    assert cli([*args, "--limit", "1", "--adapt", "1"]) == 0  # 6-14% clipped at sigma 50: not fitted
    assert "note: --adapt did not fit 1 of 1 image(s): clipped at black or white" in capsys.readouterr().err
