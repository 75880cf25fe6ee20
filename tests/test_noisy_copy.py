import json

import pytest

from noise2score.cli import main
from noise2score.image_io import read_image


def test_make_noisy_is_deterministic_records_itself_and_never_overwrites(noisy_folders, tmp_path, capsys):
    clean, first = noisy_folders["clean"], noisy_folders["noisy"]
    again = tmp_path / "again"
    assert main(["make-noisy", str(clean), str(again), "--noise", "gaussian", "--level", "25"]) == 0
    for path in sorted(first.glob("*.tif")):
        assert path.read_bytes() == (again / path.name).read_bytes()
        assert read_image(path).source_dtype == "float32"
    record = json.loads((again / "noisy.json").read_text())
    assert record["noise"] == "gaussian" and record["level"] == 25 and record["seed"] == 0
    assert sorted(record["files"]) == sorted(p.name for p in clean.iterdir())
    before = (again / "img0.tif").read_bytes()
    assert (
        main(["make-noisy", str(clean), str(again), "--noise", "gaussian", "--level", "25", "--seed", "1"])
        == 2
    )
    assert "--overwrite" in capsys.readouterr().err
    assert (again / "img0.tif").read_bytes() == before


@pytest.mark.parametrize(("family", "level"), [("poisson", 0.05), ("gamma", 50)])
def test_other_families_write_float_tiffs(noisy_folders, tmp_path, family, level):
    out = tmp_path / family
    assert (
        main(["make-noisy", str(noisy_folders["clean"]), str(out), "--noise", family, "--level", str(level)])
        == 0
    )
    pixels = read_image(out / "img0.tif").pixels
    assert pixels.min() >= 0 and pixels.max() > 0


def test_config_folder_names_say_which_noisy_copy_to_make():
    from noise2score.noisy_copy import parse_folder_name

    assert parse_folder_name("data/noisy/cbsd432-gaussian50") == ("cbsd432", "gaussian", 50.0, False)
    assert parse_folder_name("data/noisy/set12-poisson0.05") == ("set12", "poisson", 0.05, False)
    assert parse_folder_name("data/noisy/kodak24-gamma100") == ("kodak24", "gamma", 100.0, False)
    assert parse_folder_name("data/noisy/cbsd432-gray-gaussian25") == ("cbsd432", "gaussian", 25.0, True)
    assert parse_folder_name("../shared/datasets/cbsd432") is None


def test_configs_name_one_folder_or_several():
    from noise2score.noisy_copy import as_list

    assert as_list("data/noisy/a") == ["data/noisy/a"]  # not its characters
    assert as_list(["a", "b"]) == as_list(("a", "b")) == ["a", "b"]
    assert as_list(None) == []


def test_gray_copies_of_colour_images_are_the_luma_made_noisy(tmp_path):
    from noise2score.image_io import write_image
    from tests.conftest import clean_crops

    clean = tmp_path / "clean"
    clean.mkdir()
    for i, crop in enumerate(clean_crops(channels=3)):
        write_image(clean / f"img{i}.png", crop)
    out = tmp_path / "gray"
    args = ["make-noisy", str(clean), str(out), "--noise", "gaussian", "--level", "5", "--gray"]
    assert main(args) == 0
    assert json.loads((out / "noisy.json").read_text())["gray"] is True
    colour = read_image(clean / "img0.png").pixels
    luma = colour @ [0.299, 0.587, 0.114]
    noisy = read_image(out / "img0.tif").pixels
    assert noisy.shape == (*luma.shape, 1)
    residual = noisy[..., 0] - luma
    assert abs(residual.mean()) < 0.002 and abs(residual.std() - 5 / 255) < 0.002
