"""Training end to end on the smoke config: learning, noisy-only data, resume, DDP."""

import csv
import json
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from noise2score.cli import main as cli_main
from noise2score.data import NoisyFolderDataModule, load_folder
from noise2score.image_io import list_images, read_image
from noise2score.metrics import from_hwc, psnr
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


def test_150_steps_beat_the_noisy_input_by_2db(noisy_folders, tmp_path):
    # Constant lr, sigma_a on the 300-step schedule, a short EMA: the network passes the
    # noisy input by about 7 dB in half the smoke run's time.
    fast = ["--model.lr_schedule", "constant", "--model.sigma_a_steps", "300", "--model.ema_decay", "0.95"]
    steps = ["--trainer.max_steps", "150", "--trainer.val_check_interval", "150"]
    cli = main(_smoke_args(noisy_folders, tmp_path / "run", *fast, *steps))
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


def test_gray_images_stored_as_rgb_train_gray_weights_and_are_refused_for_colour_ones(tmp_path):
    from noise2score.image_io import ImageError, write_image

    gray = np.random.default_rng(0).random((32, 32, 1)).astype(np.float32)
    write_image(tmp_path / "scan.png", np.repeat(gray, 3, axis=2))
    [(_, pixels)] = load_folder(tmp_path, channels=1)
    assert pixels.shape == (1, 32, 32)
    with pytest.raises(ImageError, match="gray image stored as RGB"):
        load_folder(tmp_path, channels=3)


def _logged_sigma_a(run_dir: Path) -> dict[int, float]:
    values = {}
    for path in run_dir.glob("csv/version_*/metrics.csv"):
        for row in csv.DictReader(path.open()):
            if row.get("train/sigma_a"):
                values[int(row["step"])] = float(row["train/sigma_a"])
    return values


def test_killed_run_resumes_from_last_checkpoint_with_same_sigma_a(noisy_folders, tmp_path):
    run_dir = tmp_path / "run"
    every = ["--checkpoint.every_n_train_steps", "15"]
    args = _smoke_args(
        noisy_folders, run_dir, "--trainer.max_steps", "40", "--trainer.val_check_interval", "40", *every
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
    assert 0 < saved_step < 40

    cli = main([*args, "--ckpt_path", "last"])
    assert cli.trainer.global_step == 40
    schedule = SigmaASchedule(start=0.05, end=0.001, steps=40)
    logged = _logged_sigma_a(run_dir)
    resumed = [s for s in logged if s > saved_step]
    assert resumed, logged
    for step in resumed:
        assert logged[step] == pytest.approx(schedule.level(step), rel=1e-5)
    record = json.loads((run_dir / "hardware.json").read_text())  # one entry per start
    assert [r["from_step"] for r in record] == [0, saved_step]


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


@pytest.mark.parametrize(
    "config", sorted((ROOT / "configs").rglob("*.yaml")), ids=lambda p: str(p.relative_to(ROOT / "configs"))
)
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
    monkeypatch.setattr(sys, "argv", ["pytest", "-q"])  # a command line of its own
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli_main(["train", *args[1:]]) == 2  # the installed command, the same parser
    err = capsys.readouterr().err
    assert err.startswith("noise2score train: error: ") and "missing: not a folder" in err
    assert sys.argv == ["pytest", "-q"] and not [w for w in caught if "args parameter" in str(w.message)]


def test_synthetic_mode_draws_a_level_per_crop_within_the_range():
    from noise2score.data import NoisyPatches, RandomLevelNoise

    torch.manual_seed(0)
    flat = torch.full((1, 64, 64), 0.5)
    patches = NoisyPatches([flat], 32, 200, RandomLevelNoise("gaussian", 5, 55))
    items = [patches[i] for i in range(len(patches))]
    sigmas = torch.stack([item["y"].std() for item in items]) * 255
    assert torch.allclose(sigmas, torch.stack([item["level"] for item in items]), rtol=0.15)
    assert sigmas.min() > 4 and sigmas.max() < 60  # within [5, 55] up to sampling error
    assert sigmas.min() < 12 and sigmas.max() > 48  # and spread over it
    with pytest.raises(ValueError, match="synthetic_levels"):
        RandomLevelNoise("gaussian", 30, 10)
    with pytest.raises(ValueError, match="set both or neither"):
        NoisyFolderDataModule("x", synthetic_noise="gaussian")


def test_log_spacing_draws_as_many_crops_per_octave_of_level():
    from noise2score.data import RandomLevelNoise

    torch.manual_seed(0)
    patch = torch.full((1, 8, 8), 0.5)
    counts = {}
    for spacing in ("uniform", "log"):
        draw = RandomLevelNoise("poisson", 0.005, 0.08, spacing)
        levels = torch.tensor([draw(patch)["level"].item() for _ in range(4000)])
        assert levels.min() >= 0.005 and levels.max() <= 0.08
        counts[spacing] = [((levels >= lo) & (levels < 2 * lo)).float().mean().item() for lo in (0.005, 0.04)]
    assert all(abs(share - 0.25) < 0.03 for share in counts["log"])  # four octaves, one each
    assert counts["uniform"][0] < 0.1 and counts["uniform"][1] > 0.45
    with pytest.raises(ValueError, match="synthetic_spacing"):
        RandomLevelNoise("poisson", 0.005, 0.08, "linear")


def test_channel_shuffle_permutes_colours_of_the_chosen_share_of_crops():
    from noise2score.data import NoisyPatches

    torch.manual_seed(0)
    rgb = torch.stack([torch.full((16, 16), value) for value in (0.1, 0.5, 0.9)])
    orders = {}
    for share in (0.0, 0.5):
        patches = NoisyPatches([rgb], 8, 600, channel_shuffle=share)
        firsts = [tuple(patches[i][:, 0, 0].tolist()) for i in range(len(patches))]
        assert all(sorted(first) == sorted(firsts[0]) for first in firsts)  # values kept
        orders[share] = sum(first != tuple(rgb[:, 0, 0].tolist()) for first in firsts) / len(firsts)
    assert orders[0.0] == 0
    assert 0.3 < orders[0.5] < 0.5  # half the crops shuffled; 1 in 6 of those keeps the order
    with pytest.raises(ValueError, match="channel_shuffle"):
        NoisyFolderDataModule("x", channel_shuffle=1.5)


def test_warm_start_loads_the_named_weights(tmp_path):
    from safetensors.torch import save_file

    from noise2score.networks import build_network
    from noise2score.weights import WeightsInfo

    source = build_network("n2n_unet", 1)
    info = WeightsInfo("n2n_unet", 1, "gaussian", 25.0, name="start")
    path = tmp_path / "start.safetensors"
    save_file(source.state_dict(), str(path), metadata=info.metadata())
    model = Noise2Score(init_weights=str(path))
    model.setup("fit")
    for key, value in source.state_dict().items():
        assert torch.equal(model.network.state_dict()[key], value)
    with pytest.raises(ValueError, match="1 channel.*is n2n_unet with 3"):
        Noise2Score(channels=3, init_weights=str(path)).setup("fit")


@pytest.mark.parametrize(
    ("family", "theirs", "ours", "probe", "level_output"),
    [
        ("poisson", 0.05, 0.01, 0.03, True),
        ("gaussian", 25.0, 50.0, 15.0, True),
        ("gamma", 100.0, 50.0, 70.0, False),
    ],
)
def test_warm_start_rebases_told_weights_to_another_level(
    tmp_path, family, theirs, ours, probe, level_output
):
    from safetensors.torch import save_file

    from noise2score.denoiser import told_scorer
    from noise2score.networks import build_network
    from noise2score.weights import WeightsInfo

    torch.manual_seed(0)
    source = build_network("n2n_unet", 2, 1)  # image and level map in
    for parameter in source.parameters():  # biases too, so that none of them is zero
        parameter.data.normal_(0.0, 0.05)
    info = WeightsInfo("n2n_unet", 1, family, theirs, level_input=True, level_output=level_output)
    path = tmp_path / "told.safetensors"
    save_file(source.state_dict(), str(path), metadata=info.metadata())
    model = Noise2Score(
        noise=family, level=ours, level_input=True, level_output=level_output, init_weights=str(path)
    )
    model.setup("fit")
    y = torch.rand(2, 1, 32, 32) + 0.5
    for level in (ours, probe, theirs):
        told = torch.tensor([level])
        with torch.no_grad():
            expected = told_scorer(source, info, told)(y)
            got = told_scorer(model.network, model._info(), told)(y)
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5), level
    assert not torch.equal(model.network.state_dict()["head.0.weight"], source.state_dict()["head.0.weight"])


def test_blind_run_exports_weights_that_know_their_range(noisy_folders, tmp_path):
    import json

    from noise2score.cli import main as cli
    from noise2score.weights import load_weights

    args = _smoke_args(noisy_folders, tmp_path / "run", "--trainer.max_steps", "2")
    args[args.index("--data.train_dir") + 1] = str(noisy_folders["clean"])
    main([*args, "--data.synthetic_noise", "gaussian", "--data.synthetic_levels", "[5, 55]"])
    out = tmp_path / "blind.safetensors"
    assert cli(["export", str(tmp_path / "run/checkpoints/last.ckpt"), str(out)]) == 0
    _, info = load_weights(out)
    assert info.blind and info.levels == (5.0, 55.0)
    assert "on the fly" in json.loads(out.with_suffix(".json").read_text())["trained_on"]
    with pytest.raises(ValueError, match="synthetic_noise is 'poisson'"):
        main([*args, "--data.synthetic_noise", "poisson", "--data.synthetic_levels", "[0.01, 0.05]"])


def test_blind_run_validates_each_noisy_copy_at_its_recorded_level(noisy_folders, tmp_path):
    from noise2score.noise import make_noise
    from noise2score.noisy_copy import make_noisy

    noisy50 = tmp_path / "noisy50"
    make_noisy(noisy_folders["clean"], noisy50, make_noise("gaussian", 50), seed=0)
    steps = ["--trainer.max_steps", "2", "--trainer.val_check_interval", "2"]
    args = _smoke_args(noisy_folders, tmp_path / "run", *steps)
    args[args.index("--data.train_dir") + 1] = str(noisy_folders["clean"])
    args[args.index("--data.val_dir") + 1] = f"[{noisy_folders['noisy']}, {noisy50}]"
    blind = ["--data.synthetic_noise", "gaussian", "--data.synthetic_levels", "[5, 55]"]
    start = ["--model.init_weights", "gaussian-blind-gray", "--model.lr", "1e-9"]  # a score that knows levels
    told = ["--model.level_input", "true", "--model.level_output", "true"]  # as the bundled blind weights
    cli = main([*args, *blind, *start, *told])
    metrics = cli.trainer.callback_metrics
    model = cli.model.eval()

    def mean_psnr(folder, level):
        pairs = zip(list_images(folder), list_images(noisy_folders["clean"]), strict=True)
        images = [(from_hwc(read_image(n).pixels), from_hwc(read_image(c).pixels)) for n, c in pairs]
        return np.mean([psnr(model.denoise(y, level=level), x) for y, x in images])

    assert metrics["val/psnr@50"].item() == pytest.approx(mean_psnr(noisy50, 50.0), abs=1e-3)
    assert metrics["val/psnr@25"].item() == pytest.approx(mean_psnr(noisy_folders["noisy"], 25.0), abs=1e-3)
    assert mean_psnr(noisy50, 50.0) > mean_psnr(noisy50, 25.0) + 1.0  # the level matters
    together = (metrics["val/psnr@25"] + metrics["val/psnr@50"]) / 2
    assert metrics["val/psnr"].item() == pytest.approx(together.item(), abs=1e-3)


def test_several_val_folders_need_their_level_recorded(noisy_folders, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for path in list_images(noisy_folders["noisy"]):
        (bare / path.name).write_bytes(path.read_bytes())
    val_dirs = [str(noisy_folders["noisy"]), str(bare)]
    data = NoisyFolderDataModule(str(noisy_folders["noisy"]), val_dir=val_dirs)
    with pytest.raises(ValueError, match="noisy.json"):
        data.setup("validate")


def test_level_input_run_starts_as_its_start_weights_and_estimates_the_level_first(noisy_folders, tmp_path):
    from noise2score.cli import main as cli
    from noise2score.denoiser import load_denoiser

    args = _smoke_args(noisy_folders, tmp_path / "run", "--trainer.max_steps", "2")
    args[args.index("--data.train_dir") + 1] = str(noisy_folders["clean"])
    blind = ["--data.synthetic_noise", "gaussian", "--data.synthetic_levels", "[5, 55]"]
    start = ["--model.init_weights", "gaussian25-gray", "--model.lr", "1e-9", "--model.ema_decay", "null"]
    main([*args, *blind, *start, "--model.level_input", "true"])  # from weights not told the level
    out = tmp_path / "told.safetensors"
    assert cli(["export", str(tmp_path / "run/checkpoints/last.ckpt"), str(out)]) == 0
    told, plain = load_denoiser(str(out)), load_denoiser("gaussian25-gray")
    assert not plain.info.level_input
    assert told.info.level_input and told.info.network_channels == 2
    y = from_hwc(read_image(list_images(noisy_folders["noisy"])[0]).pixels)
    ours, theirs = told.denoise_tensor(y), plain.denoise_tensor(y)  # the level estimated (pca)
    assert ours.estimated and ours.level == pytest.approx(theirs.level)
    assert torch.allclose(ours.x_hat, theirs.x_hat, atol=1e-4)  # widened: the level map starts at zero
    assert torch.allclose(told.denoise_tensor(y, 40.0).x_hat, plain.denoise_tensor(y, 40.0).x_hat, atol=1e-4)
    with pytest.raises(ValueError, match="'pca' or 'wavelet'"):
        told.denoise_tensor(y, level_method="grid")


def test_level_output_run_starts_from_told_weights_exactly_at_their_level(noisy_folders, tmp_path):
    import dataclasses

    from safetensors.torch import save_file

    from noise2score.cli import main as cli
    from noise2score.denoiser import load_denoiser
    from noise2score.weights import load_weights

    network, info = load_weights("gaussian-blind-gray", source="network")
    start_path = tmp_path / "told.safetensors"  # told weights without level_output
    save_file(
        network.state_dict(),
        str(start_path),
        metadata=dataclasses.replace(info, level_output=False).metadata(),
    )
    args = _smoke_args(noisy_folders, tmp_path / "run", "--trainer.max_steps", "2")
    args[args.index("--data.train_dir") + 1] = str(noisy_folders["clean"])
    blind = ["--data.synthetic_noise", "gaussian", "--data.synthetic_levels", "[5, 55]"]
    start = ["--model.init_weights", str(start_path), "--model.lr", "1e-9", "--model.ema_decay", "null"]
    with pytest.warns(UserWarning, match="exact only at gaussian sigma=25"):
        main([*args, *blind, *start, "--model.level_input", "true", "--model.level_output", "true"])
    out = tmp_path / "scaled.safetensors"
    assert cli(["export", str(tmp_path / "run/checkpoints/last.ckpt"), str(out)]) == 0
    scaled, told = load_denoiser(str(out)), load_denoiser(str(start_path))
    assert scaled.info.level_output and not told.info.level_output
    y = from_hwc(read_image(list_images(noisy_folders["noisy"])[0]).pixels)
    assert torch.allclose(scaled.score(y, 25.0), told.score(y, 25.0), atol=1e-4)  # at their own level
    assert torch.allclose(scaled.score(y, 50.0), told.score(y, 50.0) / 2, atol=1e-4)  # sigma twice as large
    with pytest.raises(ValueError, match="level_output needs level_input"):
        main([*args, "--model.level_output", "true"])
    untold = ["--model.init_weights", "gaussian25-gray", "--trainer.default_root_dir", str(tmp_path / "run2")]
    with pytest.warns(
        UserWarning, match="gaussian25-gray: level_output False"
    ):  # from weights not told either
        main([*args, *blind, *untold, "--model.level_input", "true", "--model.level_output", "true"])


@pytest.mark.parametrize("context", [False, True])
def test_per_channel_run_starts_from_gray_weights_and_denoises_colour(tmp_path, context):
    from safetensors.torch import save_file

    from noise2score.cli import main as cli
    from noise2score.denoiser import load_denoiser
    from noise2score.image_io import write_image
    from noise2score.networks import build_network
    from noise2score.noise import make_noise
    from noise2score.noisy_copy import make_noisy
    from noise2score.weights import WeightsInfo
    from tests.conftest import clean_crops

    clean = tmp_path / "clean"
    clean.mkdir()
    for i, crop in enumerate(clean_crops(channels=3)):
        write_image(clean / f"img{i}.png", crop)
    make_noisy(clean, tmp_path / "noisy", make_noise("gaussian", 25), seed=0)
    gray = build_network("n2n_unet", 1)
    start = tmp_path / "gray.safetensors"
    save_file(gray.state_dict(), str(start), metadata=WeightsInfo("n2n_unet", 1, "gaussian", 25.0).metadata())

    folders = {"noisy": tmp_path / "noisy", "clean": clean}
    args = _smoke_args(folders, tmp_path / "run", "--trainer.max_steps", "2", "--data.channels", "3")
    extra = ["--model.channel_context", "true"] if context else []
    main([*args, "--model.per_channel", "true", *extra, "--model.init_weights", str(start)])
    out = tmp_path / "colour.safetensors"
    assert cli(["export", str(tmp_path / "run/checkpoints/last.ckpt"), str(out), "--source", "network"]) == 0
    denoiser = load_denoiser(str(out))
    assert denoiser.channels == 3 and denoiser.info.per_channel and denoiser.info.context == context
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["per_channel"] is True and card.get("channel_context", False) == context

    y = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    if context:  # channel c first, then the others in cyclic order
        passes = [denoiser.network(torch.roll(y, -c, dims=1)) for c in range(3)]
    else:
        passes = [denoiser.network(y[:, c : c + 1]) for c in range(3)]
    assert torch.allclose(denoiser.score(y), torch.cat(passes, 1), atol=1e-5)
    if context:  # told the level from here: a fresh draw per crop, the level map starting at zero
        blind = [
            "--data.train_dir",
            str(clean),
            "--data.synthetic_noise",
            "gaussian",
            "--data.synthetic_levels",
            "[5, 55]",
        ]
        told_args = ["--model.level_input", "true", "--model.lr", "1e-9", "--model.ema_decay", "null"]
        args = _smoke_args(
            folders, tmp_path / "told", "--trainer.max_steps", "2", "--data.channels", "3", *blind
        )
        main([*args, "--model.per_channel", "true", *extra, *told_args, "--model.init_weights", str(out)])
        assert (
            cli(["export", str(tmp_path / "told/checkpoints/last.ckpt"), str(tmp_path / "told.safetensors")])
            == 0
        )
        told = load_denoiser(str(tmp_path / "told.safetensors"))
        assert told.info.level_input and told.info.context and told.info.network_channels == 4
        assert torch.allclose(told.score(y, 40.0), denoiser.score(y), atol=1e-4)
        assert told.denoise_tensor(y).estimated  # the level estimated first (pca)
    with pytest.raises(ValueError, match="1 channel.*with 3"):
        Noise2Score(channels=3, init_weights=str(start)).setup("fit")  # not per channel: 3-channel net
    with pytest.raises(ValueError, match="needs per_channel"):
        Noise2Score(channels=3, channel_context=True)


def test_blind_poisson_scales_sigma_a_with_each_crops_zeta(monkeypatch):
    import noise2score.module as module_file
    from noise2score.score_loss import SigmaASchedule

    seen = {}

    def spy(network, y, sigma_a, **kwargs):
        seen["sigma_a"] = sigma_a
        return y.mean()

    monkeypatch.setattr(module_file, "ardae_loss", spy)
    model = Noise2Score(noise="poisson", level=0.01)
    model._schedule = SigmaASchedule(start=0.01, end=0.005, steps=10)
    model.log = lambda *args, **kwargs: None
    batch = {"y": torch.rand(2, 1, 32, 32), "level": torch.tensor([0.01, 0.05])}
    model.training_step(batch, 0)
    assert torch.allclose(seen["sigma_a"].flatten(), torch.tensor([0.01, 0.05]))
    model.training_step(batch["y"], 0)  # folder data: one sigma_a for the batch
    assert torch.allclose(seen["sigma_a"].flatten(), torch.tensor([0.01, 0.01]))


def test_last_checkpoint_holds_the_final_step_between_periodic_saves(noisy_folders, tmp_path):
    main(_smoke_args(noisy_folders, tmp_path / "run", "--trainer.max_steps", "60"))  # saves every 50
    state = torch.load(tmp_path / "run/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 60


def test_a_truncated_last_checkpoint_is_a_one_line_error(noisy_folders, tmp_path, monkeypatch, capsys):
    from noise2score.training import run

    steps = ["--trainer.max_steps", "2", "--trainer.val_check_interval", "2"]
    args = ["train.py", *_smoke_args(noisy_folders, tmp_path / "run", *steps)]
    monkeypatch.setattr(sys, "argv", args)
    assert run() == 0
    last = tmp_path / "run/checkpoints/last.ckpt"
    truncated = last.read_bytes()[: last.stat().st_size // 2]
    last.write_bytes(truncated)
    monkeypatch.setattr(sys, "argv", [*args, "--trainer.max_steps", "4", "--ckpt_path", "last"])
    assert run() == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("train.py: error: --ckpt_path: ") and "not a readable checkpoint" in err, err
    assert "beside it: best-step=2.ckpt" in err, err
    assert last.read_bytes() == truncated  # left for the user to look at


def test_hardware_summary_names_the_machine_of_each_stage():
    from noise2score.model_card import hardware_summary

    gpu, cpu = {"device": "NVIDIA H200", "cpu_count": 16}, {"device": "cpu", "cpu_count": 2}
    card = {"hardware": gpu, "training": {"hardware": [gpu], "warm_start": {"hardware": [cpu, cpu]}}}
    assert hardware_summary(card) == "2 CPU cores, then NVIDIA H200"
    unrecorded = {"hardware": gpu, "training": {"hardware": [gpu], "warm_start": {"steps": 3}}}
    assert hardware_summary(unrecorded) == "an unrecorded machine, then NVIDIA H200"
    before_records = {"hardware": {"machine": "x86_64", "cpu_count": 2}, "training": {"steps": 5}}
    assert hardware_summary(before_records) == "2 CPU cores"


def test_unshared_run_starts_from_shared_weights_and_exports_them_unshared(noisy_folders, tmp_path):
    from safetensors.torch import save_file

    from noise2score.cli import main as cli
    from noise2score.networks import build_network, unshare
    from noise2score.weights import WeightsInfo, load_weights

    module = Noise2Score(network="n2n_unet_unshared", init_weights="gaussian25-gray")
    module.setup("fit")
    shared, _ = load_weights("gaussian25-gray", source="network")
    expected = unshare(shared.state_dict())
    assert all(torch.equal(module.network.state_dict()[k], v) for k, v in expected.items())

    unshared = tmp_path / "unshared.safetensors"
    state = build_network("n2n_unet_unshared", 1).state_dict()
    save_file(state, str(unshared), metadata=WeightsInfo("n2n_unet_unshared", 1, "gaussian", 25.0).metadata())
    with pytest.raises(ValueError, match="n2n_unet_unshared with 1 channel.*is n2n_unet"):
        Noise2Score(init_weights=str(unshared)).setup("fit")  # no way back to shared weights

    start = ["--model.init_weights", "gaussian25-gray", "--model.network", "n2n_unet_unshared"]
    main(_smoke_args(noisy_folders, tmp_path / "run", "--trainer.max_steps", "2", *start))
    out = tmp_path / "out.safetensors"
    assert cli(["export", str(tmp_path / "run/checkpoints/last.ckpt"), str(out)]) == 0
    network, info = load_weights(out)
    assert info.network == "n2n_unet_unshared"
    assert sum(p.numel() for p in network.parameters()) > 1.3e6


def test_several_noisy_folders_train_together_and_the_card_names_each(noisy_folders, tmp_path):
    from noise2score.cli import main as cli
    from noise2score.noise import make_noise
    from noise2score.noisy_copy import make_noisy

    second = tmp_path / "second"
    make_noisy(noisy_folders["clean"], second, make_noise("gaussian", 25), seed=1)
    folders = f"[{noisy_folders['noisy']}, {second}]"
    args = _smoke_args(noisy_folders, tmp_path / "run", "--trainer.max_steps", "2")
    args[args.index("--data.train_dir") + 1] = folders
    main(args)
    data = NoisyFolderDataModule(train_dir=[str(noisy_folders["noisy"]), str(second)], patch_size=32)
    data.setup("fit")
    assert len(data.train_set.images) == 8
    out = tmp_path / "two.safetensors"
    assert cli(["export", str(tmp_path / "run/checkpoints/last.ckpt"), str(out)]) == 0
    trained_on = json.loads(out.with_suffix(".json").read_text())["trained_on"]
    assert trained_on.startswith("8 noisy-only images") and "seed 0" in trained_on and "seed 1" in trained_on


def test_each_page_of_a_noisy_stack_is_a_training_image(tmp_path):
    pages = np.random.default_rng(0).random((5, 40, 48)).astype(np.float32)
    tifffile.imwrite(tmp_path / "cells.tif", pages)
    tifffile.imwrite(tmp_path / "single.tif", pages[0])
    loaded = load_folder(tmp_path, channels=1)
    assert [stem for stem, _ in loaded] == [f"cells-{i}" for i in range(1, 6)] + ["single"]
    assert torch.equal(loaded[2][1][0], torch.from_numpy(pages[2]))


def test_dim_counts_train_at_the_white_and_black_levels_given(tmp_path):
    counts = np.random.default_rng(0).poisson(100 * np.random.default_rng(1).random((3, 40, 48))) + 100
    for i, page in enumerate(counts.astype(np.uint16)):
        tifffile.imwrite(tmp_path / f"c{i}.tif", page)
    loaded = load_folder(tmp_path, channels=1, white=200, black=100)
    assert torch.allclose(loaded[1][1][0], torch.from_numpy((counts[1] - 100) / 100).float())
    for white, black in [("auto", 0.0), (100.0, 100.0), (200.0, -1.0)]:
        with pytest.raises(ValueError, match="data.white must be a number above data.black"):
            NoisyFolderDataModule(str(tmp_path), white=white, black=black)
    data = NoisyFolderDataModule(str(tmp_path), white=200, black=100)
    data.setup("fit")
    assert 0.4 < float(torch.stack(data.train_set.images).mean()) < 0.6


def test_stop_at_step_ends_the_run_there_with_the_schedules_of_max_steps(noisy_folders, tmp_path):
    args = _smoke_args(noisy_folders, tmp_path / "run", "--trainer.max_steps", "100")
    cli = main([*args, "--stop_at_step", "40", "--trainer.val_check_interval", "20"])
    assert cli.trainer.global_step == 40
    state = torch.load(tmp_path / "run/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 40
    schedule = SigmaASchedule(start=0.05, end=0.001, steps=100)  # the ramp of max_steps, not of 40
    logged = _logged_sigma_a(tmp_path / "run")
    assert max(logged) <= 40
    assert logged[max(logged)] == pytest.approx(schedule.level(max(logged)), rel=1e-5)


def test_bf16_training_on_a_cpu_that_would_emulate_it_gets_a_note(monkeypatch):
    import noise2score.training as training

    monkeypatch.setattr(training.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(training, "bf16_native", lambda device="cpu": False)
    assert "no native bfloat16" in training.slow_bf16_note("bf16-mixed")
    assert training.slow_bf16_note("32") is None and training.slow_bf16_note(None) is None
    monkeypatch.setattr(training, "bf16_native", lambda device="cpu": True)
    assert training.slow_bf16_note("bf16-mixed") is None


@pytest.mark.slow
def test_a_cards_wall_time_counts_training_not_the_time_a_killed_run_lay_still(noisy_folders, tmp_path):
    import os

    from noise2score.model_card import _training_facts

    args = _smoke_args(noisy_folders, tmp_path / "run", "--trainer.max_steps", "40")
    main([*args, "--stop_at_step", "20", "--trainer.val_check_interval", "20"])
    last = tmp_path / "run/checkpoints/last.ckpt"
    first = _training_facts(last)["wall_time_s"]
    day_ago = time.time() - 86400  # as if the run had been killed a day ago
    for path in (tmp_path / "run").rglob("*"):
        os.utime(path, (day_ago, day_ago))
    main([*args, "--ckpt_path", "last", "--trainer.val_check_interval", "20"])
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 40
    assert first <= _training_facts(last)["wall_time_s"] < 600  # the day between is left out
