"""Poisson noise plus a camera's Gaussian read noise (``--read-noise``): the level
estimate and both estimates of the image take it into account when told it."""

import json

import numpy as np
import pytest
import tifffile
import torch
from skimage import data

from noise2score import load_denoiser
from noise2score.cli import main
from noise2score.denoiser import Denoiser
from noise2score.level import pca_level
from noise2score.metrics import psnr
from noise2score.noise import make_noise
from noise2score.white import parse_read_noise
from tests.conftest import SHARED_DATASETS, require_shared

PHOTONS, READ, OFFSET = 20, 3.0, 100  # at white; read noise and black level in counts


def _camera_counts(size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Clean (H, W) in [0, 1] and a camera's uint16 frame of it: photon counts, read
    noise and a black level."""
    x = data.camera()[:size, 128 : 128 + size] / 255.0
    rng = np.random.default_rng(0)
    counts = rng.poisson(PHOTONS * x) + rng.normal(0, READ, x.shape) + OFFSET
    return x, np.round(counts).clip(0, None).astype(np.uint16)


def test_the_level_is_estimated_through_the_read_noise():
    x = torch.from_numpy(data.camera() / 255.0).float()[None, None]
    generator = torch.Generator().manual_seed(0)
    y = make_noise("poisson", 0.01).sample(x, generator=generator) + 0.05 * torch.randn(
        x.shape, generator=generator
    )
    assert pca_level("poisson", y) > 0.013  # the read noise is taken for photon noise
    assert pca_level("poisson", y, read_noise=0.05) == pytest.approx(0.01, rel=0.08)
    with pytest.raises(ValueError, match="read noise is for Poisson noise"):
        pca_level("gamma", y.clamp_min(1e-3), read_noise=0.05)


def test_told_the_read_noise_the_estimate_is_far_better():
    x, counts = _camera_counts()
    scaled = (counts.astype(np.float32) - OFFSET) / PHOTONS
    denoiser = load_denoiser("poisson-blind-gray", vst="auto")
    ignored = denoiser.denoise(scaled)
    told = denoiser.denoise(scaled, read_noise=READ / PHOTONS)
    assert (
        psnr(np.clip(told, 0, 1)[..., None], x[..., None])
        > psnr(np.clip(ignored, 0, 1)[..., None], x[..., None]) + 1.0
    )
    with pytest.raises(ValueError, match="read noise is for Poisson weights"):
        load_denoiser("gamma50-gray").denoise(np.clip(scaled, 0.01, None), read_noise=0.1)
    with pytest.raises(ValueError, match="finite number >= 0"):
        denoiser.denoise(scaled, read_noise=float("nan"))


def test_the_command_takes_the_read_noise_in_file_units(tmp_path, capsys):
    x, counts = _camera_counts()
    tifffile.imwrite(tmp_path / "frame.tif", counts)
    args = ["denoise", str(tmp_path / "frame.tif"), "--noise", "poisson", "--black", str(OFFSET)]
    args += ["--white", str(OFFSET + PHOTONS)]
    scores = {}
    for name, extra in {"ignored": [], "told": ["--read-noise", str(READ)]}.items():
        assert main([*args, *extra, "-o", str(tmp_path / name)]) == 0
        denoised = tifffile.imread(tmp_path / name / "frame.tif")
        assert denoised.dtype == np.uint16 and denoised.shape == counts.shape  # file units kept
        scores[name] = psnr(np.clip((denoised - float(OFFSET)) / PHOTONS, 0, 1)[..., None], x[..., None])
    out = capsys.readouterr().out
    assert f"read noise {READ:g}" in out and "poisson" in out
    assert scores["told"] > scores["ignored"] + 1.0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--read-noise", "-1"], "the read noise (--read-noise) is a number, zero or above"),
        (["--read-noise", "three"], "the read noise (--read-noise) is a number, zero or above"),
        (["--read-noise", "3"], "--read-noise is for Poisson noise, not gaussian"),
        (["--read-noise", "3", "--noise", "gamma"], "--read-noise is for Poisson noise, not gamma"),
    ],
)
def test_a_bad_read_noise_is_a_one_line_error(tmp_path, capsys, extra, message):
    tifffile.imwrite(tmp_path / "frame.tif", _camera_counts(64)[1])
    assert main(["denoise", str(tmp_path / "frame.tif"), "-o", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and not (tmp_path / "o").exists()


def test_read_noise_parses_like_the_black_level():
    assert parse_read_noise(None) == 0 and parse_read_noise("2.5") == 2.5


def test_the_demo_takes_the_read_noise(tmp_path):
    from noise2score.webapp import DemoModels, run

    x, counts = _camera_counts(128)
    tifffile.imwrite(tmp_path / "frame.tif", counts)
    models = DemoModels(["poisson-blind-gray", "gaussian-blind-gray"])
    scores = {}
    for read in (0.0, READ):
        _, _, info, downloads = run(
            models, 10**6, str(tmp_path / "frame.tif"), "poisson-blind-gray", None, None,
            white=OFFSET + PHOTONS, black=OFFSET, read_noise=read,
        )  # fmt: skip
        assert ("read noise 3 (file units)" in info) == bool(read)
        saved = tifffile.imread(downloads[1]).astype(np.float64)
        scores[read] = psnr(np.clip((saved - OFFSET) / PHOTONS, 0, 1)[..., None], x[..., None])
    assert scores[READ] > scores[0.0] + 1.0
    with pytest.raises(ValueError, match="read noise is for Poisson noise; pick a Poisson model"):
        run(models, 10**6, str(tmp_path / "frame.tif"), "gaussian-blind-gray", None, None, read_noise=READ)


def test_evaluate_adds_the_read_noise_tells_the_network_and_the_baseline_takes_the_gat(
    tmp_path, capsys, monkeypatch
):
    from noise2score import evaluate
    from noise2score.baselines import run_baseline

    require_shared("set12")
    monkeypatch.setattr(evaluate, "CACHE_DIR", tmp_path / "cache")
    args = ["evaluate", "--dataset", "set12", "--noise", "poisson", "--level", "0.01", "--limit", "1"]
    args += ["--data-dir", str(SHARED_DATASETS)]
    told_to = []
    real = Denoiser.denoise_tensor
    monkeypatch.setattr(
        Denoiser,
        "denoise_tensor",
        lambda self, y, *a, **k: told_to.append(k.get("read_noise")) or real(self, y, *a, **k),
    )
    out = {}
    for read in ("0", "10"):
        for run in (["--method", "noisy"], ["--weights", "poisson0.01-gray"]):
            path = tmp_path / f"{run[1]}-{read}.json"
            assert main([*args, *run, "--read-noise", read, "--json", str(path)]) == 0
            out[run[1], read] = json.loads(path.read_text())
    assert out["noisy", "10"]["mean_psnr"] < out["noisy", "0"]["mean_psnr"] - 1  # the read noise is there
    assert (
        out["noisy", "10"]["read_noise"] == pytest.approx(10 / 255) and "read_noise" not in out["noisy", "0"]
    )
    told = out["poisson0.01-gray", "10"]["mean_psnr"]
    assert out["noisy", "10"]["mean_psnr"] + 7 < told < out["poisson0.01-gray", "0"]["mean_psnr"]
    assert told_to[0] == 0 and 10 / 255 in told_to  # the network is told it
    # the generalised Anscombe transform: told the read noise, BM3D-free baselines gain too
    x = torch.from_numpy(data.camera()[:96, :96, None] / 255.0)
    generator = torch.Generator().manual_seed(0)
    noise = make_noise("poisson", 0.01)
    y = (noise.sample(x, generator=generator) + 0.04 * torch.randn(x.shape, generator=generator)).numpy()
    told = psnr(run_baseline("wavelet", y, noise, read_noise=0.04), x.numpy())
    assert told > psnr(run_baseline("wavelet", y, noise), x.numpy()) + 0.5
    with pytest.raises(ValueError, match="read noise is for Poisson noise, not gaussian"):
        evaluate.EvalSpec("set12", make_noise("gaussian", 25), read_noise=0.01)
    assert (
        main([*args[:3], "--noise", "gaussian", "--level", "25", "--method", "noisy", "--read-noise", "3"])
        == 2
    )
    assert "--read-noise is for Poisson noise" in capsys.readouterr().err
