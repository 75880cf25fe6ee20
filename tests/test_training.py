"""Training end to end on the smoke config: learning, noisy-only data, resume, DDP."""

import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from noise2score.data import NoisyFolderDataModule
from noise2score.image_io import list_images, read_image
from noise2score.metrics import psnr
from noise2score.module import Noise2Score
from noise2score.score_loss import SigmaASchedule
from noise2score.training import main

ROOT = Path(__file__).resolve().parents[1]


def _smoke_args(folders, run_dir, *extra):
    return [
        "fit",
        "--config",
        str(ROOT / "configs/smoke.yaml"),
        "--data.train_dir",
        str(folders["noisy"]),
        "--data.val_dir",
        str(folders["noisy"]),
        "--data.val_clean_dir",
        str(folders["clean"]),
        "--trainer.default_root_dir",
        str(run_dir),
        *extra,
    ]


def _noisy_psnr(folders) -> float:
    values = [
        psnr(read_image(n).pixels, read_image(c).pixels)
        for n, c in zip(list_images(folders["noisy"]), list_images(folders["clean"]), strict=True)
    ]
    return float(np.mean(values))


def test_a_few_hundred_steps_beat_the_noisy_input_by_2db(noisy_folders, tmp_path):
    cli = main(_smoke_args(noisy_folders, tmp_path / "run"))
    val_psnr = cli.trainer.callback_metrics["val/psnr"].item()
    assert val_psnr > _noisy_psnr(noisy_folders) + 2.0, val_psnr


def test_clean_images_never_reach_training_step(noisy_folders, tmp_path, monkeypatch):
    clean_values = torch.cat(
        [torch.from_numpy(read_image(p).pixels).flatten() for p in list_images(noisy_folders["clean"])]
    ).unique()
    noisy_values = torch.cat(
        [torch.from_numpy(read_image(p).pixels).flatten() for p in list_images(noisy_folders["noisy"])]
    ).unique()
    seen = []
    original = Noise2Score.training_step

    def spy(self, y, batch_idx):
        seen.append(y.detach().clone())
        return original(self, y, batch_idx)

    monkeypatch.setattr(Noise2Score, "training_step", spy)
    main(_smoke_args(noisy_folders, tmp_path / "run", "--trainer.max_steps", "5"))
    batch_values = torch.cat(seen).flatten()
    assert len(seen) == 5
    # The check has teeth: most clean values are not noisy values.
    assert (~torch.isin(clean_values, noisy_values)).float().mean() > 0.9
    assert torch.isin(batch_values, noisy_values).all()  # crops, flips, transposes only


def test_datamodule_rejects_wrong_channel_count(noisy_folders):
    from noise2score.image_io import ImageError

    dm = NoisyFolderDataModule(str(noisy_folders["noisy"]), channels=3)
    with pytest.raises(ImageError, match="channels"):
        dm.setup("fit")


def _logged_sigma_a(run_dir: Path) -> dict[int, float]:
    values = {}
    for path in run_dir.glob("csv/version_*/metrics.csv"):
        for row in csv.DictReader(path.open()):
            if row.get("train/sigma_a"):
                values[int(row["step"])] = float(row["train/sigma_a"])
    return values


def test_killed_run_resumes_from_last_checkpoint_with_same_sigma_a(noisy_folders, tmp_path):
    run_dir = tmp_path / "run"
    args = _smoke_args(
        noisy_folders, run_dir, "--trainer.max_steps", "120", "--trainer.val_check_interval", "120"
    )
    command = [sys.executable, str(ROOT / "train.py"), *args]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert last.exists(), "no checkpoint was written before the kill"
    saved_step = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    assert 0 < saved_step < 120

    cli = main([*args, "--ckpt_path", "last"])
    assert cli.trainer.global_step == 120
    schedule = SigmaASchedule(start=0.05, end=0.001, steps=120)
    logged = _logged_sigma_a(run_dir)
    resumed = [s for s in logged if s > saved_step]
    assert resumed, logged
    for step in resumed:
        assert logged[step] == pytest.approx(schedule.level(step), rel=1e-5)


@pytest.mark.slow
def test_two_process_ddp_on_cpu(noisy_folders, tmp_path):
    args = _smoke_args(
        noisy_folders,
        tmp_path / "run",
        "--trainer.max_steps",
        "10",
        "--trainer.devices",
        "2",
        "--trainer.strategy",
        "ddp",
        "--trainer.accelerator",
        "cpu",
        "--trainer.val_check_interval",
        "10",
    )
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()


@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_config_parses(config, capsys):
    with pytest.raises(SystemExit) as info:
        main(["fit", "--config", str(config), "--print_config"])
    assert info.value.code in (None, 0)
    printed = capsys.readouterr().out
    assert "model:" in printed and "channels:" in printed


def test_predict_step_is_the_denoiser_path():
    from noise2score.denoiser import Denoiser
    from noise2score.weights import WeightsInfo

    module = Noise2Score(channels=1, ema_decay=None)
    y = torch.rand(1, 1, 40, 56)
    expected = Denoiser(module.network, WeightsInfo("n2n_unet", 1, "gaussian", 25.0)).denoise_tensor(y, 25)
    assert torch.equal(module.predict_step({"y": y}, 0), expected.x_hat)


def test_missing_training_folder_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    from noise2score.training import run

    args = [
        "train.py",
        "fit",
        "--config",
        str(ROOT / "configs/smoke.yaml"),
        "--data.train_dir",
        str(tmp_path / "missing"),
        "--trainer.default_root_dir",
        str(tmp_path / "r"),
    ]
    monkeypatch.setattr(sys, "argv", args)
    assert run() == 2
    assert "missing: not a folder" in capsys.readouterr().err
