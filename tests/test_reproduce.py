"""``noise2score reproduce``: every bundled card holds a whole chain, and a chain runs again."""

import json
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from noise2score.cli import main as cli
from noise2score.model_card import training_chain
from noise2score.reproduce import bf16_stages, plan, stages
from noise2score.training import main as train

ROOT = Path(__file__).resolve().parents[1]
CARDS = sorted((ROOT / "noise2score/weights").glob("*.json"))


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.stem)
def test_every_bundled_card_plans_its_whole_chain_from_scratch(card_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    card = json.loads(card_path.read_text())
    steps = plan(card, "out")
    trains = [s for s in steps if s.what == "train"]
    records = training_chain(card)
    assert len(trains) == len(records)
    assert "--model.init_weights" not in trains[0].argv  # from scratch
    for step, record in zip(trains, records, strict=True):
        assert step.steps == record["steps"]
        assert step.argv[step.argv.index("--stop_at_step") + 1] == str(record["steps"])
        assert (ROOT / step.argv[step.argv.index("--config") + 1]).is_file()
    final = steps[-1].argv
    assert final[:2] == ["noise2score", "export"] and final[3] == f"out/{card['name']}.safetensors"
    assert final[final.index("--source") + 1] in card["export"]
    assert card["reproduce"] == f"noise2score reproduce {card['name']}"


def _stage_records() -> dict[str, dict]:
    """Each training stage behind the bundled weights once, by its config."""
    found = {}
    for card_path in CARDS:
        card = json.loads(card_path.read_text())
        for stage, record in zip(stages(card), training_chain(card), strict=True):
            found.setdefault(stage.config, record)
    return found


STAGES = _stage_records()


@pytest.mark.parametrize("config", sorted(STAGES))
def test_each_stage_config_still_says_what_its_run_recorded(config, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(SystemExit):
        train(["fit", "--config", config, "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    record = STAGES[config]
    for section in ("model", "data"):
        now = printed[section]
        now = now.get("init_args", now)
        differ = {
            key: (value, now[key])
            for key, value in record[section].items()
            if key in now and key != "init_weights" and now[key] != value
        }
        assert not differ, f"{section}: recorded vs config now {differ}"


def _write_config(path: Path, run: str, train_dir: Path, max_steps: int, init: str | None) -> None:
    config = yaml.safe_load((ROOT / "configs/smoke.yaml").read_text())
    config["trainer"].update(max_steps=max_steps, default_root_dir=f"runs/{run}")
    config["checkpoint"]["every_n_train_steps"] = 20
    config["data"]["train_dir"] = str(train_dir)
    config["model"]["init_weights"] = init
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))


@pytest.mark.slow
def test_a_two_stage_chain_is_trained_again_to_the_same_weights(noisy_folders, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # The original: a stage from scratch, exported (EMA); a second from that export,
    # stopped at step 30 of 60 and exported (network) with its card.
    _write_config(Path("configs/first.yaml"), "first", noisy_folders["noisy"], 40, None)
    _write_config(Path("configs/second.yaml"), "second", noisy_folders["noisy"], 60, "first.safetensors")
    train(["fit", "--config", "configs/first.yaml"])
    assert cli(["export", "runs/first/checkpoints/last.ckpt", "first.safetensors"]) == 0
    train(["fit", "--config", "configs/second.yaml", "--stop_at_step", "30"])
    export = ["export", "runs/second/checkpoints/last.ckpt", "second.safetensors", "--source", "network"]
    assert cli([*export, "--config", "configs/second.yaml"]) == 0
    card = json.loads(Path("second.json").read_text())
    assert card["training"]["steps"] == 30 and card["training"]["warm_start"]["source"] == "ema"
    assert card["reproduce"] == "noise2score reproduce second.safetensors"

    assert cli(["reproduce", "second.safetensors", "--out", "again"]) == 0
    original, again = load_file("second.safetensors"), load_file("again/second.safetensors")
    assert original.keys() == again.keys()
    for key in original:  # the same seeds, data and schedules on the same machine: the same weights
        assert (original[key] == again[key]).all(), key
    redone = json.loads(Path("again/second.json").read_text())["training"]
    assert redone["steps"] == 30 and redone["warm_start"]["steps"] == 40
    assert {"cpu", "cpu_capability", "torch_threads"} <= redone["hardware"][-1].keys()  # what the bits need
    assert [r["config"] for r in training_chain(json.loads(Path("again/second.json").read_text()))] == [
        "configs/first.yaml",
        "configs/second.yaml",
    ]  # recorded from each stage's command line: a reproduced card reproduces again
    assert cli(["reproduce", "again/second.safetensors", "--out", "again2", "--dry-run"]) == 0

    capsys.readouterr()
    mtime = Path("again/second.safetensors").stat().st_mtime
    assert cli(["reproduce", "second.safetensors", "--out", "again"]) == 0  # started again: nothing to do
    assert capsys.readouterr().out.count(": done (step") == 2
    assert Path("again/second.safetensors").stat().st_mtime == mtime


def test_a_card_whose_first_stage_starts_from_unrecorded_weights_is_refused(tmp_path, capsys):
    card = json.loads(CARDS[0].read_text())
    first = {"steps": 10, "checkpoint": "runs/x/checkpoints/last.ckpt", "model": {"init_weights": "y"}}
    card["training"] = first
    (tmp_path / "x.json").write_text(json.dumps(card))
    (tmp_path / "x.safetensors").write_bytes(CARDS[0].with_suffix(".safetensors").read_bytes())
    assert cli(["reproduce", str(tmp_path / "x.safetensors"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "starts from y, whose training is unrecorded" in err


@pytest.mark.parametrize("config", sorted((ROOT / "configs").rglob("*.yaml")), ids=lambda p: p.stem)
def test_every_config_runs_in_the_folder_its_name_gives(config):
    # A card records a stage by its run folder; reproduce finds the config by that name.
    name = config.relative_to(ROOT / "configs").with_suffix("")
    assert yaml.safe_load(config.read_text())["trainer"]["default_root_dir"] == f"runs/{name}"


def test_an_existing_noisy_folder_of_another_draw_is_refused_not_reused(tmp_path, monkeypatch, capsys):
    from noise2score.reproduce import Step, run

    monkeypatch.chdir(tmp_path)
    folder = Path("data/noisy/set12-gaussian25")
    folder.mkdir(parents=True)
    (folder / "noisy.json").write_text(json.dumps({"noise": "gaussian", "level": 25.0, "seed": 7}))
    with pytest.raises(ValueError, match="set12-gaussian25 exists but is not make-noisy's"):
        run([Step("folder", [], str(folder))])
    (folder / "noisy.json").write_text(json.dumps({"noise": "gaussian", "level": 25.0, "seed": 0}))
    run([Step("folder", [], str(folder))])  # the same draw: used as it is


def test_precision_replaces_every_stages_and_bf16_on_an_emulating_cpu_gets_a_note(monkeypatch, capsys):
    from noise2score import training

    monkeypatch.chdir(ROOT)
    card = json.loads((ROOT / "noise2score/weights/gaussian25-gray.json").read_text())
    trains = [s.argv for s in plan(card, "out", precision="32-true") if s.what == "train"]
    assert all(argv[argv.index("--trainer.precision") + 1] == "32-true" for argv in trains)
    assert all("--trainer.precision" not in s.argv for s in plan(card, "out"))

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr(training, "bf16_native", lambda device="cpu": False)
    assert cli(["reproduce", "gaussian25-gray", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 of the stages train in bfloat16" in err
    assert "--precision 32-true" in err
    assert cli(["reproduce", "gaussian25-gray", "--dry-run", "--precision", "32-true"]) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(training, "bf16_native", lambda device="cpu": True)
    assert cli(["reproduce", "gaussian25-gray", "--dry-run"]) == 0
    assert capsys.readouterr().err == ""


def test_a_card_made_by_reproduce_in_fp32_reproduces_in_fp32_without_the_flag(monkeypatch):
    monkeypatch.chdir(ROOT)
    card = json.loads((ROOT / "noise2score/weights/gaussian25-gray.json").read_text())
    card["training"]["precision"] = card["training"]["warm_start"]["precision"] = "32-true"
    trains = [s.argv for s in plan(card, "out") if s.what == "train"]
    assert [argv[argv.index("--trainer.precision") + 1] for argv in trains] == ["32-true", "32-true"]
    assert bf16_stages(card) == []
    card["training"]["precision"] = "bf16-mixed"  # as its config says: nothing added
    trains = [s.argv for s in plan(card, "out") if s.what == "train"]
    assert "--trainer.precision" not in trains[1] and bf16_stages(card) == [trains[1][4]]


def test_a_stage_run_with_another_seed_than_its_configs_is_planned_with_that_seed(monkeypatch):
    monkeypatch.chdir(ROOT)
    card = json.loads((ROOT / "noise2score/weights/gaussian25-gray.json").read_text())
    card["training"]["seed"], card["training"]["warm_start"]["seed"] = 9, 2  # stage 1's config says 2
    first, second = [s.argv for s in plan(card, "out") if s.what == "train"]
    assert "--seed_everything" not in first
    assert second[second.index("--seed_everything") + 1] == "9"


def test_a_stage_trained_on_its_own_folder_at_a_found_level_is_planned_so(monkeypatch):
    monkeypatch.chdir(ROOT)
    card = json.loads((ROOT / "noise2score/weights/poisson0.01-gray.json").read_text())
    last = card["training"]  # run as: --data.train_dir my_noisy --data.val_dir null --model.level auto
    last["data"].update(train_dir="my_noisy", val_dir=None, val_clean_dir=None)
    last["model"]["level"] = 0.0301
    last["max_steps"] = 30  # --trainer.max_steps 30: the schedules' length, not the config's 2500
    steps = plan(card, "out")
    *earlier, final = [s.argv for s in steps if s.what == "train"]
    folders = [s.target for s in steps if s.what == "folder"]
    assert "data/noisy/train400-poisson0.01" not in folders and "data/noisy/set12-poisson0.01" in folders
    given = {name: final[final.index(name) + 1] for name in final if name.startswith("--")}
    assert given["--data.train_dir"] == "my_noisy" and given["--model.level"] == "0.0301"
    assert given["--data.val_dir"] == "null" and given["--data.val_clean_dir"] == "null"
    assert given["--trainer.max_steps"] == "30"
    assert not any({"--model.level", "--data.val_dir", "--trainer.max_steps"} & set(argv) for argv in earlier)


def test_weights_made_by_reproduce_are_not_reproduced_into_their_own_folder(tmp_path, monkeypatch, capsys):
    import shutil

    monkeypatch.chdir(ROOT)
    made = tmp_path / "made"
    made.mkdir()
    for suffix in (".safetensors", ".json"):
        shutil.copy(ROOT / f"noise2score/weights/gaussian25-gray{suffix}", made / f"gaussian25-gray{suffix}")
    weights = str(made / "gaussian25-gray.safetensors")
    assert cli(["reproduce", weights, "--out", str(made), "--dry-run"]) == 2
    assert "where reproduce would write: give --out another folder" in capsys.readouterr().err
    assert cli(["reproduce", weights, "--out", str(tmp_path / "again"), "--dry-run"]) == 0
    assert sorted(p.name for p in made.iterdir()) == ["gaussian25-gray.json", "gaussian25-gray.safetensors"]


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.stem)
def test_the_comparison_commands_evaluate_the_new_weights_as_the_card_did(card_path):
    import shlex

    from noise2score.cli import build_parser
    from noise2score.reproduce import comparisons

    card = json.loads(card_path.read_text())
    lines = comparisons(card, "out/new.safetensors", "data")
    assert len(lines) == len(card["evaluation"]) > 0
    for line, row in zip(lines, card["evaluation"], strict=True):
        command, psnr = line.split("   # ")
        args = build_parser().parse_args(shlex.split(command)[1:])
        assert (args.weights, args.data_dir, args.dataset) == ("out/new.safetensors", "data", row["dataset"])
        assert psnr == f"{card['name']}: {row['psnr']:.2f} dB"
