"""The level a model trains at: checked against make-noisy's records, or found (``auto``)."""

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from noise2score.folder_level import ConfigError, training_level
from noise2score.image_io import write_image
from noise2score.metrics import from_hwc, to_hwc
from noise2score.noise import make_noise
from noise2score.noisy_copy import RECORD_NAME
from tests.conftest import clean_crops

ROOT = Path(__file__).resolve().parents[1]


def _own_folder(tmp_path: Path, noisy: Path) -> Path:
    """The noisy images without make-noisy's record: one's own noisy data."""
    own = tmp_path / "own"
    shutil.copytree(noisy, own)
    (own / RECORD_NAME).unlink()
    return own


def test_a_level_the_folder_does_not_record_is_refused(noisy_folders):
    folder = [str(noisy_folders["noisy"])]
    assert training_level("gaussian", 25.0, folder) == 25.0
    with pytest.raises(ConfigError, match=r"gaussian level 25 .* model.level is 50: give --model.level 25"):
        training_level("gaussian", 50.0, folder)
    with pytest.raises(ConfigError, match="holds gaussian noise .* model.noise is poisson"):
        training_level("poisson", 0.01, folder)


def test_auto_takes_the_recorded_level(noisy_folders):
    lines = []
    assert training_level("gaussian", "auto", [str(noisy_folders["noisy"])], log=lines.append) == 25.0
    assert "as the training folders' noisy.json records" in lines[0]


def test_auto_estimates_the_level_of_folders_without_a_record(noisy_folders, tmp_path):
    own = [str(_own_folder(tmp_path, noisy_folders["noisy"]))]
    lines = []
    found = training_level("gaussian", "auto", own, log=lines.append)
    assert 22.5 < found < 27.5 and "median pca estimate over 4 training images" in lines[0]
    lines.clear()
    assert training_level("gaussian", 25.0, own, log=lines.append) == 25.0 and not lines
    assert training_level("gaussian", 60.0, own, log=lines.append) == 60.0
    assert lines[0].startswith("warning: model.level is 60, but the training images look like gaussian")


def test_auto_estimates_a_poisson_level(tmp_path):
    generator = torch.Generator().manual_seed(0)
    for i, crop in enumerate(clean_crops(size=128)):
        noisy = make_noise("poisson", 0.02).sample(from_hwc(crop), generator=generator)
        write_image(tmp_path / f"p{i}.tif", to_hwc(noisy).astype(np.float32), dtype=np.float32)
    found = training_level("poisson", "auto", [str(tmp_path)], log=lambda line: None)
    assert 0.015 < found < 0.025


def test_train_py_says_a_wrong_level_in_one_line(noisy_folders, tmp_path, monkeypatch, capsys):
    from noise2score.training import run

    args = ["train.py", "fit", "--config", str(ROOT / "configs/smoke.yaml")]
    args += ["--data.train_dir", str(noisy_folders["noisy"]), "--model.level", "50"]
    args += ["--trainer.default_root_dir", str(tmp_path / "r")]
    monkeypatch.setattr(sys, "argv", args)
    assert run() == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("train.py: error: ") and "give --model.level 25" in err[-1]
    assert not (tmp_path / "r").exists()  # refused before anything was written


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--model.level", "-5", "model.level: gaussian noise needs sigma in [0, 255], got -5"),
        ("--model.noise", "speckle", "model.noise 'speckle' is not one of"),
    ],
)
def test_train_py_says_a_level_out_of_range_or_an_unknown_family_in_one_line(
    noisy_folders, tmp_path, monkeypatch, capsys, option, value, message
):
    from noise2score.training import run

    args = ["train.py", "fit", "--config", str(ROOT / "configs/smoke.yaml"), option, value]
    args += ["--data.train_dir", str(noisy_folders["noisy"])]
    args += ["--trainer.default_root_dir", str(tmp_path / "r")]
    monkeypatch.setattr(sys, "argv", args)
    assert run() == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_a_resumed_auto_run_keeps_the_level_it_started_with(noisy_folders, tmp_path, monkeypatch, capsys):
    from noise2score import folder_level
    from noise2score.training import main

    own, run_dir = _own_folder(tmp_path, noisy_folders["noisy"]), tmp_path / "run"
    args = ["fit", "--config", str(ROOT / "configs/smoke.yaml"), "--data.train_dir", str(own)]
    args += [
        "--model.level",
        "auto",
        "--trainer.default_root_dir",
        str(run_dir),
        "--checkpoint.every_n_train_steps",
        "2",
    ]
    main([*args, "--trainer.max_steps", "2"])
    last = run_dir / "checkpoints/last.ckpt"
    started = torch.load(last, weights_only=True)["hyper_parameters"]["level"]
    assert 22.5 < started < 27.5
    monkeypatch.setattr(folder_level, "estimate_level", lambda *a, **k: (99.0, 4))  # the folder changed since
    main([*args, "--trainer.max_steps", "4", "--ckpt_path", "last"])
    resumed = torch.load(last, weights_only=True)
    assert resumed["global_step"] == 4 and resumed["hyper_parameters"]["level"] == started
    assert f"model.level auto: {started:g}, as {last} records" in capsys.readouterr().err


def test_validation_on_noisy_images_alone_keeps_the_best_checkpoint_by_its_loss(noisy_folders, tmp_path):
    from noise2score.training import main

    run_dir = tmp_path / "run"
    args = [
        "fit",
        "--config",
        str(ROOT / "configs/smoke.yaml"),
        "--data.train_dir",
        str(noisy_folders["noisy"]),
    ]
    args += ["--data.val_dir", str(noisy_folders["noisy"]), "--trainer.default_root_dir", str(run_dir)]
    main(
        [
            *args,
            "--trainer.max_steps",
            "20",
            "--trainer.val_check_interval",
            "10",
            "--model.ema_decay",
            "null",
        ]
    )
    assert [p.name for p in (run_dir / "checkpoints").glob("best-*.ckpt")] in (
        ["best-step=10.ckpt"],
        ["best-step=20.ckpt"],
    )
    logged = (next(run_dir.glob("csv/version_*")) / "metrics.csv").read_text()
    assert "val/loss" in logged and "val/psnr" not in logged  # no clean images: no PSNR
