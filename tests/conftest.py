"""Shared fixtures: small natural images from scikit-image (no dataset needed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from skimage import data as skdata

from noise2score.image_io import write_image
from noise2score.noise import make_noise
from noise2score.noisy_copy import make_noisy

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("NOISE2SCORE_DATA", ROOT.parent / "shared" / "datasets"))


def clean_crops(channels: int = 1, size: int = 96) -> list[np.ndarray]:
    """Four float (H, W, C) crops of scikit-image sample photos."""
    image = skdata.astronaut() if channels == 3 else skdata.camera()[..., None]
    image = image.astype(np.float32) / 255
    corners = [(40, 40), (40, 300), (300, 40), (250, 250)]
    return [image[r : r + size, c : c + size] for r, c in corners]


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A real (untrained) safetensors file of gray Gaussian sigma-25 weights; tests with
    it check plumbing, not quality."""
    from safetensors.torch import save_file

    from noise2score.networks import build_network
    from noise2score.weights import WeightsInfo

    path = tmp_path_factory.mktemp("w") / "tiny.safetensors"
    state = {k: v.contiguous() for k, v in build_network("n2n_unet", 1).state_dict().items()}
    save_file(state, str(path), metadata=WeightsInfo("n2n_unet", 1, "gaussian", 25.0, "tiny").metadata())
    return path


@pytest.fixture
def noisy_folders(tmp_path: Path) -> dict[str, Path]:
    """clean/ and noisy/ (Gaussian sigma 25, seed 0) folders of four 96x96 gray crops."""
    clean = tmp_path / "clean"
    clean.mkdir()
    for i, crop in enumerate(clean_crops()):
        write_image(clean / f"img{i}.png", crop)
    make_noisy(clean, tmp_path / "noisy", make_noise("gaussian", 25), seed=0)
    return {"clean": clean, "noisy": tmp_path / "noisy"}


def require_shared(name: str) -> Path:
    folder = SHARED_DATASETS / name
    if not folder.is_dir():
        pytest.skip(f"{folder} not found: set NOISE2SCORE_DATA to the benchmark datasets folder")
    return folder
