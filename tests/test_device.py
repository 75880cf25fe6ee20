"""``--device``: the network runs on a GPU where one is asked for (or found), and a
device that is not there is a one-line error before anything is written."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from noise2score import load_denoiser
from noise2score.cli import main
from noise2score.denoiser import Denoiser, inference_device
from noise2score.image_io import write_image
from noise2score.networks import build_network
from noise2score.weights import WeightsInfo

ROOT = Path(__file__).resolve().parents[1]
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
without_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here")
# Compared on the GPU; benchmarks/gpu_prepare.sh keeps them in a lent machine's carry.
GPU_WEIGHTS = ("gaussian25-gray", "poisson0.05-color")


def test_device_names():
    assert inference_device("cpu") == torch.device("cpu")
    assert inference_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for name, message in [("bogus", "unknown device"), ("mps", "unsupported device")]:
        with pytest.raises(ValueError, match=message):
            inference_device(name)
    with pytest.raises(ValueError, match="no CUDA device cuda:99"):
        inference_device("cuda:99")


def test_without_a_device_the_network_stays_where_it_is():
    network = build_network("n2n_unet", 1).to("meta")  # Lightning's predict_step relies on this
    denoiser = Denoiser(network, WeightsInfo("n2n_unet", 1, "gaussian", 25.0, "meta"))
    assert next(denoiser.network.parameters()).device.type == "meta"


@without_gpu
def test_a_missing_gpu_is_a_one_line_error_and_nothing_is_written(tmp_path, capsys):
    write_image(tmp_path / "in.png", np.full((64, 64), 0.5, np.float32))
    args = ["denoise", str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "--device", "cuda"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("noise2score denoise: error: no CUDA device cuda") and "\n" not in err
    assert not (tmp_path / "out").exists()


@without_gpu
def test_the_demo_refuses_a_missing_gpu_in_one_line():
    import subprocess

    done = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--device", "cuda", "--weights", "gaussian25-gray"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"app.py: error: no CUDA device cuda here (0 found, torch {torch.__version__})"
    ]


@needs_gpu
@pytest.mark.parametrize("name", GPU_WEIGHTS)
def test_gpu_and_cpu_give_the_same_estimate(name):
    rng = np.random.default_rng(0)
    channels = 3 if name.endswith("color") else 1
    y = torch.from_numpy(rng.random((1, channels, 96, 128), dtype=np.float32))
    level = load_denoiser(name).info.level
    cpu = load_denoiser(name, device="cpu").denoise_tensor(y, level).x_hat
    gpu = load_denoiser(name, device=inference_device("cuda")).denoise_tensor(y, level).x_hat
    assert gpu.device.type == "cpu"  # results stay with the input
    assert (gpu - cpu).abs().max() < 1e-3
