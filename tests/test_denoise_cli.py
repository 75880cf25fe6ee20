"""The ``denoise`` command and the Python API: formats kept, bad inputs reported."""

import subprocess
import sys

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from noise2score import load_denoiser
from noise2score.cli import main
from noise2score.denoiser import Denoiser
from noise2score.image_io import read_image, write_image
from noise2score.weights import WeightsInfo

RNG = np.random.default_rng(0)


def _denoise(weights, *args):
    return main(["denoise", "--weights", str(weights), "--level", "25", *map(str, args)])


def test_api_keeps_layout_and_dtype(weights_file):
    from noise2score import load_denoiser

    denoiser = load_denoiser(str(weights_file))
    for image in [
        RNG.integers(0, 256, (40, 50), dtype=np.uint8),
        RNG.integers(0, 65536, (40, 50, 1), dtype=np.uint16),
        RNG.random((40, 50)).astype(np.float32),
    ]:
        out = denoiser.denoise(image, level=25)
        assert out.shape == image.shape and out.dtype == image.dtype
    t = torch.rand(40, 50)
    assert denoiser.denoise(t, level=25).shape == t.shape
    with pytest.raises(ValueError, match="channel"):
        denoiser.denoise(RNG.random((40, 50, 3)), level=25)


def test_ensemble_option_reaches_the_score_and_keeps_the_shape(weights_file, tmp_path):
    from noise2score import load_denoiser

    image = RNG.random((40, 56)).astype(np.float32)
    plain = load_denoiser(str(weights_file)).denoise(image, level=25)
    ensembled = load_denoiser(str(weights_file), ensemble=True).denoise(image, level=25)
    assert ensembled.shape == image.shape and not np.allclose(ensembled, plain)
    write_image(tmp_path / "a.png", image[..., None])
    assert _denoise(weights_file, tmp_path / "a.png", "--ensemble", "--output", tmp_path / "out") == 0
    assert (tmp_path / "out" / "a.png").is_file()


def test_16_bit_in_16_bit_out_and_inputs_untouched(weights_file, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "a.png", RNG.random((40, 40, 1)), dtype=np.uint16)
    write_image(src / "b.tif", RNG.random((40, 40, 1)).astype(np.float32), dtype=np.float32)
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    assert _denoise(weights_file, src, "--output", tmp_path / "out") == 0
    assert read_image(tmp_path / "out" / "a.png").source_dtype == np.uint16
    assert read_image(tmp_path / "out" / "b.tif").source_dtype == np.float32
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before


def test_a_folder_without_images_is_reported_and_fails(weights_file, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    status = _denoise(weights_file, tmp_path / "empty", "--output", tmp_path / "out")
    assert status == 1
    assert "empty: no PNG, JPEG, TIFF, WebP, BMP or GIF images found" in capsys.readouterr().err


def test_refuses_to_write_over_an_input(weights_file, tmp_path, capsys):
    write_image(tmp_path / "a.png", RNG.random((40, 40, 1)))
    before = (tmp_path / "a.png").read_bytes()
    assert _denoise(weights_file, tmp_path / "a.png", "--output", tmp_path) != 0
    assert (tmp_path / "a.png").read_bytes() == before
    assert "overwrite an input" in capsys.readouterr().err


def test_two_inputs_of_one_output_name_do_not_overwrite_each_other(weights_file, tmp_path, capsys):
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        write_image(tmp_path / folder / "a.png", RNG.random((40, 40, 1)))
    out = tmp_path / "out"
    inputs = (tmp_path / "x" / "a.png", tmp_path / "y" / "a.png")
    code = _denoise(weights_file, *inputs, "--output", out, "--overwrite")
    assert code != 0 and sorted(p.name for p in out.iterdir()) == ["a.png"]
    assert "already the result of" in capsys.readouterr().err


def test_folders_give_webp_bmp_and_gif_too_written_as_png(weights_file, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    pixels = RNG.integers(0, 256, (40, 40), dtype=np.uint8)
    Image.fromarray(pixels).save(src / "a.webp", lossless=True)
    Image.fromarray(pixels).save(src / "b.bmp")
    Image.fromarray(pixels).save(src / "c.gif")  # a palette of grays: read as gray
    assert _denoise(weights_file, src, "--output", tmp_path / "out") == 0
    assert read_image(tmp_path / "out" / "b.png").pixels.shape == (40, 40, 1)
    assert read_image(tmp_path / "out" / "c.png").pixels.shape == (40, 40, 1)
    webp = read_image(tmp_path / "out" / "a.png").pixels  # WebP has no gray mode: gray stored as RGB
    assert webp.shape == (40, 40, 3) and (webp == webp[..., :1]).all()


@pytest.mark.parametrize("output", ["a.png", "a.png/sub"])
def test_an_output_path_through_a_file_is_a_one_line_error(weights_file, tmp_path, output, capsys):
    write_image(tmp_path / "a.png", RNG.random((40, 40, 1)))
    before = (tmp_path / "a.png").read_bytes()
    assert _denoise(weights_file, tmp_path / "a.png", "--output", tmp_path / output) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "output folder" in err and "Traceback" not in err
    assert (tmp_path / "a.png").read_bytes() == before


def _bad_files(folder):
    good = (RNG.random((64, 64)) * 255).astype(np.uint8)
    Image.fromarray(good).save(folder / "truncated.png")
    (folder / "truncated.png").write_bytes((folder / "truncated.png").read_bytes()[:200])
    (folder / "text.png").write_text("not an image")
    (folder / "empty.png").write_bytes(b"")
    Image.new("L", (1, 1)).save(folder / "tiny.png")
    tifffile.imwrite(folder / "four.tif", RNG.random((32, 32, 4)).astype(np.float32))
    nan = RNG.random((32, 32)).astype(np.float32)
    nan[3, 3] = np.nan
    tifffile.imwrite(folder / "nan.tif", nan)
    Image.fromarray(good).save(folder / "good.png")


def test_bad_files_are_reported_skipped_and_leave_no_output(weights_file, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    _bad_files(src)
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    status = _denoise(weights_file, src, "--output", tmp_path / "out")
    err = capsys.readouterr().err
    assert status != 0
    assert "Traceback" not in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]
    skipped = [line for line in err.splitlines() if line.startswith("skipped:")]
    assert len(skipped) == 6
    for word in ["truncated.png", "text.png", "empty", "too small", "4 channels", "NaN"]:
        assert any(word in line for line in skipped), word
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before


def test_wrong_family_and_level_are_errors(weights_file, tmp_path, capsys):
    write_image(tmp_path / "a.png", RNG.random((40, 40, 1)))
    args = ["denoise", "--weights", str(weights_file), str(tmp_path / "a.png"), "-o", str(tmp_path / "o")]
    assert main([*args, "--noise", "poisson"]) == 2
    assert main([*args, "--level", "-3"]) == 2
    assert main(["denoise", "--weights", "no-such-weights", str(tmp_path / "a.png"), "-o", "x"]) == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "metadata",
    [
        {"channels": "3"},  # the tensors are of a one-channel network
        {"channel_context": "true"},  # context without per_channel
    ],
)
def test_weights_whose_metadata_does_not_fit_are_a_one_line_error(weights_file, tmp_path, metadata, capsys):
    from safetensors.torch import load_file, save_file

    bad = tmp_path / "bad.safetensors"
    meta = {**WeightsInfo("n2n_unet", 1, "gaussian", 25.0, "bad").metadata(), **metadata}
    save_file(load_file(str(weights_file)), str(bad), metadata=meta)
    write_image(tmp_path / "a.png", RNG.random((40, 40, 3)))
    assert _denoise(bad, tmp_path / "a.png", "-o", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "bad.safetensors" in err or "channel_context needs per_channel" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_export_writes_self_describing_safetensors_and_a_card(tmp_path, noisy_folders):
    import json

    from noise2score.training import main as train
    from noise2score.weights import load_weights

    cli = train(
        [
            "fit",
            "--config",
            "configs/smoke.yaml",
            "--data.train_dir",
            str(noisy_folders["noisy"]),
            "--trainer.max_steps",
            "2",
            "--trainer.default_root_dir",
            str(tmp_path / "run"),
        ]
    )
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    out = tmp_path / "m.safetensors"
    assert main(["export", str(ckpt), str(out), "--config", "configs/smoke.yaml"]) == 0
    kept = out.read_bytes(), out.with_suffix(".json").read_bytes()
    assert main(["export", str(ckpt), str(out)]) == 2  # never replaces existing weights
    assert (out.read_bytes(), out.with_suffix(".json").read_bytes()) == kept
    denoiser = Denoiser(*load_weights(out))
    assert denoiser.family == "gaussian" and denoiser.info.level == 25 and denoiser.channels == 1
    expected = cli.model.ema.module.state_dict()
    for key, value in denoiser.network.state_dict().items():
        assert torch.equal(value, expected[key])
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["training"]["steps"] == 2 and "noisy-only" in card["trained_on"]
    assert card["command"] == "python train.py fit --config configs/smoke.yaml"
    assert card["export"].startswith("noise2score export <run>/checkpoints/last.ckpt m.safetensors")
    best = ckpt.with_name("best-step=2.ckpt")  # the card names the checkpoint exported
    best.write_bytes(ckpt.read_bytes())
    assert main(["export", str(best), str(tmp_path / "b.safetensors")]) == 0
    card = json.loads((tmp_path / "b.json").read_text())
    assert card["export"].startswith("noise2score export <run>/checkpoints/best-step=2.ckpt b.safetensors")
    # The same checkpoint gives the same bytes (and sha256) at every export, in any process.
    again = subprocess.run(
        [sys.executable, "-c", "from noise2score.cli import main; raise SystemExit(main())", "export"]
        + [str(ckpt), str(tmp_path / "m2.safetensors"), "--name", "m"],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "m2.safetensors").read_bytes() == (tmp_path / "m.safetensors").read_bytes()


@pytest.mark.parametrize("content", [b"not a checkpoint", b"PK\x03\x04 truncated zip"])
def test_a_file_that_is_no_checkpoint_is_a_one_line_error(tmp_path, content, capsys):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(content)
    image = tmp_path / "in.png"
    Image.fromarray(np.full((32, 32), 128, np.uint8)).save(image)
    assert main(["export", str(bad), str(tmp_path / "m.safetensors")]) == 2
    assert main(["denoise", str(image), "-o", str(tmp_path / "out.png"), "--weights", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("not a readable checkpoint") == 2 and "Traceback" not in err
    assert not (tmp_path / "m.safetensors").exists() and not (tmp_path / "out.png").exists()


def test_second_stage_starts_from_the_trained_network_and_its_card_has_both(tmp_path, noisy_folders):
    import json

    from safetensors.torch import load_file

    from noise2score.module import Noise2Score
    from noise2score.training import main as train

    def fit(root, steps, *extra):
        base = ["fit", "--config", "configs/smoke.yaml", "--data.train_dir", str(noisy_folders["noisy"])]
        args = [*base, "--trainer.max_steps", str(steps), "--trainer.default_root_dir", str(root), *extra]
        return train(args)

    first = fit(tmp_path / "one", 2)
    ckpt = tmp_path / "one" / "checkpoints" / "last.ckpt"
    warm = Noise2Score()
    warm._warm_start(str(ckpt))
    trained = first.model.network.state_dict()
    for key, value in warm.network.state_dict().items():  # the network, not its EMA
        assert torch.equal(value, trained[key])

    fit(tmp_path / "two", 1, "--model.init_weights", str(ckpt))
    out = tmp_path / "m.safetensors"
    second = str(tmp_path / "two" / "checkpoints" / "last.ckpt")
    assert main(["export", second, str(out), "--config", "a.yaml", "--config", "b.yaml"]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["command"] == "python train.py fit --config a.yaml && python train.py fit --config b.yaml"
    assert card["training"]["warm_start"]["steps"] == 2 and card["training"]["total_steps"] == 3
    # Each stage's machine, as train.py recorded it at the start, not the exporting one.
    record = json.loads((tmp_path / "two" / "hardware.json").read_text())
    assert [(r["device"], r["from_step"]) for r in record] == [("cpu", 0)]
    assert card["hardware"] == record[-1]
    assert card["training"]["warm_start"]["hardware"][0]["device"] == "cpu"

    # A stage started from exported weights takes the earlier facts from their card.
    first_out = tmp_path / "first.safetensors"
    assert main(["export", str(ckpt), str(first_out), "--config", "a.yaml"]) == 0
    fit(tmp_path / "three", 1, "--model.init_weights", str(first_out))
    out3 = tmp_path / "m3.safetensors"
    assert main(["export", str(tmp_path / "three" / "checkpoints" / "last.ckpt"), str(out3)]) == 0
    card3 = json.loads(out3.with_suffix(".json").read_text())
    assert card3["training"]["warm_start"]["weights"] == str(first_out)
    assert card3["training"]["warm_start"]["steps"] == 2 and card3["training"]["total_steps"] == 3
    assert f"from the weights {first_out} (their training" in card3["trained_on"]

    # The stage's weights may replace the ones it started from, but only when asked;
    # the new card still holds the replaced weights' history.
    third = str(tmp_path / "three" / "checkpoints" / "last.ckpt")
    before = first_out.read_bytes()
    assert main(["export", third, str(first_out)]) == 2 and first_out.read_bytes() == before
    assert main(["export", third, str(first_out), "--replace"]) == 0
    new, exported = load_file(first_out), load_file(out3)
    assert new.keys() == exported.keys() and all(torch.equal(new[k], exported[k]) for k in new)
    replaced = json.loads(first_out.with_suffix(".json").read_text())
    assert replaced["training"]["total_steps"] == 3 and replaced["training"]["warm_start"]["steps"] == 2


def test_a_reader_that_leaves_early_gets_no_traceback():
    import subprocess
    import sys

    code = "import sys; from noise2score.cli import main; sys.exit(main(['weights']))"
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    writer.stdout.close()  # the reader leaves before the first line, as ``| head -0`` would
    err = writer.stderr.read().decode()
    assert writer.wait(timeout=120) == 141
    assert "Traceback" not in err and "Exception ignored" not in err, err


@pytest.mark.parametrize(
    ("channels", "noise", "level", "expected"),
    [
        (3, "gamma", "50", "gamma50-color"),  # trained at the level given
        (1, "gaussian", "25", "gaussian25-gray"),
        (1, "gaussian", "35", "gaussian-blind-gray"),  # no weights at 35: the blind ones
        (1, "gaussian", None, "gaussian50-gray"),  # the level estimated first (50)
        (3, "poisson", "0.03", "poisson-blind-color"),
        (3, "poisson", "0.01", "poisson0.01-color"),  # measured above poisson-blind-color there
    ],
)
def test_without_weights_each_image_gets_the_bundled_ones_that_fit(
    tmp_path, capsys, channels, noise, level, expected
):
    from skimage import data

    from noise2score.noise import make_noise
    from noise2score.weights import bundled_names

    if expected not in bundled_names():
        pytest.skip(f"{expected} is not bundled")
    photo = data.camera()[128:384, 128:384, None] if channels == 1 else data.astronaut()[:256, 128:384]
    x = torch.from_numpy(photo / 255.0).float().permute(2, 0, 1)[None]
    true_level = float(level) if level else 50.0
    y = make_noise(noise or "gaussian", true_level).sample(x, generator=torch.Generator().manual_seed(0))
    write_image(tmp_path / "in.tif", y[0].permute(1, 2, 0).numpy(), dtype=np.float32)
    args = ["denoise", str(tmp_path / "in.tif"), "-o", str(tmp_path / "out"), "--noise", noise]
    assert main(args + (["--level", level] if level else [])) == 0
    assert f"with {expected}" in capsys.readouterr().out


def test_an_image_too_small_to_estimate_is_skipped_by_name_and_the_rest_denoised(tmp_path, capsys):
    from noise2score.weights import bundled_names

    if "poisson-blind-gray" not in bundled_names():
        pytest.skip("poisson-blind-gray is not bundled")
    small, good = tmp_path / "small.png", tmp_path / "good.png"
    write_image(small, RNG.random((8, 9, 1)).astype(np.float32), dtype=np.uint8)
    write_image(good, RNG.random((64, 64, 1)).astype(np.float32), dtype=np.uint8)
    args = ["denoise", str(small), str(good), "-o", str(tmp_path / "out"), "--weights", "poisson-blind-gray"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"skipped: {small}: the image is too small to estimate the noise level" in err
    assert (tmp_path / "out" / "good.png").is_file() and not (tmp_path / "out" / "small.png").exists()


def test_a_tiff_stack_is_denoised_page_by_page_into_one_stack(weights_file, tmp_path, capsys):
    pages = RNG.integers(0, 65536, (5, 40, 48), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", pages)
    assert _denoise(weights_file, tmp_path / "stack.tif", "--output", tmp_path / "out") == 0
    out = tifffile.imread(tmp_path / "out" / "stack.tif")
    assert out.shape == pages.shape and out.dtype == np.uint16
    single = load_denoiser(str(weights_file)).denoise(pages[3], level=25)
    assert np.array_equal(out[3], single)
    assert "5 pages" in capsys.readouterr().out
    as_png = ["--output", tmp_path / "png", "--format", "png"]
    assert _denoise(weights_file, tmp_path / "stack.tif", *as_png) != 0
    assert "TIFF only" in capsys.readouterr().err
    assert not list((tmp_path / "png").iterdir())


@pytest.mark.parametrize("native", [False, True])
def test_bf16_on_a_device_that_would_emulate_it_gets_one_note(
    weights_file, tmp_path, monkeypatch, capsys, native
):
    import noise2score.options as options
    import noise2score.tiling as tiling

    monkeypatch.setattr(tiling, "bf16_native", lambda device="cpu": native)
    options.note_slow_bf16.cache_clear()
    for i in range(2):
        write_image(tmp_path / f"in{i}.png", RNG.integers(0, 256, (40, 50), dtype=np.uint8))
    assert (
        _denoise(weights_file, tmp_path / "in0.png", tmp_path / "in1.png", "-o", tmp_path / "out", "--bf16")
        == 0
    )
    notes = [line for line in capsys.readouterr().err.splitlines() if "no native bfloat16" in line]
    assert len(notes) == (0 if native else 1)
    assert (tmp_path / "out/in1.png").is_file()


def _gray_stored_as_rgb(tmp_path, name="gray_rgb.png"):
    """A noisy gray photo (sigma 25) written as 8-bit RGB with three equal channels, and
    the same noisy image as 8-bit gray; with the clean photo."""
    from skimage import data

    x = data.camera()[128:384, 128:384].astype(np.float32) / 255
    y = np.clip(x + np.random.default_rng(0).normal(0, 25 / 255, x.shape), 0, 1).astype(np.float32)
    write_image(tmp_path / name, np.repeat(y[..., None], 3, axis=2), dtype=np.uint8)
    write_image(tmp_path / "gray.png", y[..., None], dtype=np.uint8)
    return tmp_path / name, tmp_path / "gray.png", x


def test_a_gray_image_stored_as_rgb_is_denoised_as_gray_and_written_as_rgb(tmp_path, capsys):
    from noise2score.metrics import psnr
    from noise2score.weights import bundled_names

    if not {"gaussian25-gray", "gaussian25-color"} <= set(bundled_names()):
        pytest.skip("bundled Gaussian weights not present")
    rgb, gray, x = _gray_stored_as_rgb(tmp_path)
    assert main(["denoise", str(rgb), str(gray), "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "gray_rgb.png (gray stored as RGB; estimated gaussian level" in out
    assert out.count("with gaussian25-gray") == 2
    as_rgb = read_image(tmp_path / "out" / "gray_rgb.png").pixels
    as_gray = read_image(tmp_path / "out" / "gray.png").pixels
    assert as_rgb.shape == (256, 256, 3)
    np.testing.assert_array_equal(as_rgb, np.repeat(as_gray, 3, axis=2))  # the gray result, thrice
    # The colour weights, named, take the noise for three draws: far worse, and a warning.
    assert main(["denoise", str(rgb), "-o", str(tmp_path / "colour"), "--weights", "gaussian25-color"]) == 0
    assert "gray image stored as RGB (three equal channels): colour weights" in capsys.readouterr().err
    as_colour = read_image(tmp_path / "colour" / "gray_rgb.png").pixels
    assert psnr(as_rgb[..., :1], x[..., None]) > psnr(as_colour[..., :1], x[..., None]) + 3


def test_gray_weights_take_three_equal_channels_and_refuse_three_different_ones(weights_file):
    denoiser = load_denoiser(str(weights_file))
    gray = RNG.random((40, 50, 1)).astype(np.float32)
    out = denoiser.denoise(np.repeat(gray, 3, axis=2), level=25)
    np.testing.assert_array_equal(out, np.repeat(denoiser.denoise(gray, level=25), 3, axis=2))
    with pytest.raises(ValueError, match="3 channel"):
        denoiser.denoise(RNG.random((40, 50, 3)).astype(np.float32), level=25)


def test_a_clipped_8_bit_file_gets_the_inverse_of_clipping_and_says_so(tmp_path, capsys):
    from tests.conftest import clean_crops

    x = clean_crops(size=128)[0][..., 0]  # the camera's dark coat
    noisy = np.round(np.clip(x + RNG.normal(0, 50 / 255, x.shape), 0, 1) * 255).astype(np.uint8)
    Image.fromarray(noisy).save(tmp_path / "scan.png")
    args = ["denoise", str(tmp_path / "scan.png"), "--weights", "gaussian50-gray", "--level", "50"]
    assert main([*args, "-o", str(tmp_path / "on")]) == 0
    assert "clipped noise: inverse applied" in capsys.readouterr().out
    assert main([*args, "-o", str(tmp_path / "off"), "--no-clip-inverse"]) == 0
    assert "inverse applied" not in capsys.readouterr().out
    assert main([*args, "-o", str(tmp_path / "fit"), "--adapt", "2"]) == 0
    assert "not fitted (--adapt): clipped at black or white" in capsys.readouterr().out
    on, off = (read_image(tmp_path / d / "scan.png").pixels[..., 0] for d in ("on", "off"))
    assert np.abs(on - x).mean() < np.abs(off - x).mean()


def test_the_command_says_its_version(capsys):
    from noise2score import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"noise2score {__version__}"
