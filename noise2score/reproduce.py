"""``noise2score reproduce NAME``: train weights again from scratch, as their card says.

A model card records every training stage behind its weights, newest first, in
``training`` and its nested ``warm_start``: each stage's run (``runs/<run>/...``, whose
config is ``configs/<run>.yaml`` unless the record names another), the step its weights
were taken at, and, where the next stage started from exported weights, which copy was
exported (``source``: the EMA or the trained network). :func:`plan` turns that into the
commands, oldest stage first: the noisy folders the configs name (``make-noisy``, seed 0),
each stage's ``train.py fit`` started from the stage before and stopped at its recorded
step (its schedules keep their full length), the exports between stages, and the final
export with its card. :func:`run` carries them out; started again, it skips finished
stages and resumes a killed one from its last checkpoint. A stage whose run was told
other training or validation folders or another level than its config says (one's own
noisy folder, ``--model.level auto``) is given them again.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from noise2score.model_card import export_source, training_chain
from noise2score.noisy_copy import RECORD_NAME, named_folders, parse_folder_name, read_record
from noise2score.weights import load_checkpoint

DATASETS = "../shared/datasets"  # where the configs find the clean sets
RUN_DIR = re.compile(r"(?:^|/)runs/(?P<run>.+)/checkpoints/[^/]+$")


@dataclass(frozen=True)
class Stage:
    run: str  # the original run's name, e.g. gaussian50-color-stage3 or gpu/gaussian50-color
    config: str
    steps: int  # the step its weights were taken at
    start: str | None  # "checkpoint" (the stage before's network), "weights" (its export), None
    source: str  # what is taken of it for the next stage or the final export: "ema" or "network"
    precision: str | None = None  # what it ran with, where recorded (e.g. 32-true for a bf16 config)
    seed: int | None = None  # its seed_everything, where recorded
    max_steps: int | None = None  # its trainer.max_steps (the schedules' length), where recorded


def stages(card: dict) -> list[Stage]:
    """The card's training stages, oldest first; ValueError where the record is incomplete."""
    records, name = training_chain(card), card.get("name")
    if not records:
        raise ValueError(f"{name}: the card records no training")
    out = []
    for i, record in enumerate(records):
        init = record["model"].get("init_weights")
        if i == 0 and init:
            raise ValueError(f"{name}: its first stage starts from {init}, whose training is unrecorded")
        start = None if i == 0 else "checkpoint" if str(init).endswith(".ckpt") else "weights"
        last = i == len(records) - 1
        source = export_source(card).get("source", "ema") if last else record.get("source")
        next_start = None if last else records[i + 1]["model"].get("init_weights")
        if not last and not str(next_start).endswith(".ckpt") and source is None:
            checkpoint = record["checkpoint"]
            raise ValueError(f"{name}: the card does not say which copy of {checkpoint} was exported")
        match = RUN_DIR.search(record["checkpoint"])
        config = record.get("config") or (f"configs/{match['run']}.yaml" if match else None)
        if config is None:
            raise ValueError(f"{name}: no config for the stage at {record['checkpoint']}")
        run = match["run"] if match else Path(config).stem
        seed, precision = record.get("seed"), record.get("precision")  # as run, where recorded
        seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
        precision = None if precision is None else str(precision)
        # A next stage that starts from this one's checkpoint takes its trained network.
        length = record.get("max_steps") if isinstance(record.get("max_steps"), int) else None
        stage = Stage(run, config, int(record["steps"]), start, source or "network", precision, seed, length)
        out.append(stage)
    return out


def _remapped(value, datasets: str):
    """A config path (or list of them) under ../shared/datasets, moved to ``datasets``."""
    if isinstance(value, list):
        return [_remapped(v, datasets) for v in value]
    if isinstance(value, str) and value.startswith(DATASETS):
        return datasets + value[len(DATASETS) :]
    return value


# What a stage trained on and at, where its run was told otherwise than its config says
# (e.g. one's own noisy folder, --model.level auto), with the defaults of an unset key.
REPLAYED = {
    ("data", "train_dir"): None,
    ("data", "val_dir"): None,
    ("data", "val_clean_dir"): None,
    ("model", "level"): 25.0,
}


def _as_run(config: dict, record: dict) -> dict:
    """``config`` with the folders and level its run recorded, where they differ."""
    ran = {**config, "data": dict(config.get("data") or {}), "model": dict(config.get("model") or {})}
    for (section, key), default in REPLAYED.items():
        given = ran[section].get(key, default)
        recorded = (record.get(section) or {}).get(key, given)
        numbers = all(isinstance(v, float | int) for v in (given, recorded))
        if not (given == recorded or numbers and math.isclose(given, recorded, rel_tol=1e-9)):
            ran[section][key] = recorded
    return ran


def _replayed_options(config: dict, ran: dict, datasets: str) -> list[str]:
    """The ``train.py`` options that turn ``config`` into ``ran`` (clean sets moved to
    ``datasets``)."""
    argv = []
    for (section, key), default in REPLAYED.items():
        given = (config.get(section) or {}).get(key, default)
        value = _remapped(ran[section].get(key, default), datasets)
        if value != given:
            argv += [f"--{section}.{key}", value if isinstance(value, str) else json.dumps(value)]
    return argv


@dataclass(frozen=True)
class Step:
    what: str  # "folder", "train", "export"
    argv: list[str]  # the command, as printed
    target: str  # what it makes: a folder, a run folder, a weights file
    steps: int = 0  # train: the step the stage ends at


def plan(
    card: dict, out: str | Path, *, datasets: str = DATASETS, precision: str | None = None
) -> list[Step]:
    """The commands that train ``card``'s weights again under ``out``, oldest stage first.

    ``precision`` replaces every stage's ``trainer.precision`` (e.g. ``32-true`` where
    bfloat16 is emulated); the new card records what each stage ran with. Without it, a
    stage whose record says it ran in another precision than its config's (a card made by
    ``reproduce --precision``) runs in the recorded one; likewise its recorded seed.
    """
    out = Path(out)
    chain, records = stages(card), training_chain(card)
    for stage in chain:
        if not Path(stage.config).is_file():
            raise FileNotFoundError(f"{stage.config}: the config of stage {stage.run} is missing")
    configs = [yaml.safe_load(Path(stage.config).read_text()) for stage in chain]
    ran = [_as_run(config, record) for config, record in zip(configs, records, strict=True)]
    steps: list[Step] = []
    for folder in named_folders(ran):  # one's own folders are not made
        parsed = parse_folder_name(folder)
        argv = ["noise2score", "make-noisy", f"{datasets}/{parsed.clean_set}", folder]
        argv += ["--noise", parsed.family, "--level", f"{parsed.level:g}"] + ["--gray"] * parsed.gray
        steps.append(Step("folder", argv, folder))
    previous: Path | None = None
    for i, (stage, config) in enumerate(zip(chain, configs, strict=True)):
        run_dir = out / f"{i + 1:02d}-{stage.run.replace('/', '-')}"
        argv = ["python", "train.py", "fit", "--config", stage.config]
        argv += ["--trainer.default_root_dir", str(run_dir), "--stop_at_step", str(stage.steps)]
        argv += ["--trainer.accelerator", "auto"]  # GPU recipes run on the CPU too
        if precision:
            argv += ["--trainer.precision", precision]
        elif stage.precision and stage.precision != _config_precision(config):
            argv += ["--trainer.precision", stage.precision]
        if stage.max_steps and stage.max_steps != ((config or {}).get("trainer") or {}).get("max_steps"):
            argv += ["--trainer.max_steps", str(stage.max_steps)]  # the run was told another length
        if stage.seed is not None and stage.seed != (config or {}).get("seed_everything"):
            argv += ["--seed_everything", str(stage.seed)]  # the run overrode its config's seed
        if stage.start == "checkpoint":
            argv += ["--model.init_weights", str(previous / "checkpoints/last.ckpt")]
        elif stage.start == "weights":
            exported = out / f"{i:02d}-{chain[i - 1].run.replace('/', '-')}.safetensors"
            export = ["noise2score", "export", str(previous / "checkpoints/last.ckpt"), str(exported)]
            steps.append(Step("export", [*export, "--source", chain[i - 1].source], str(exported)))
            argv += ["--model.init_weights", str(exported)]
        argv += _replayed_options(config, ran[i], datasets)
        steps.append(Step("train", argv, str(run_dir), stage.steps))
        previous = run_dir
    final = out / f"{card['name']}.safetensors"
    export = ["noise2score", "export", str(previous / "checkpoints/last.ckpt"), str(final)]
    export += ["--name", card["name"], "--source", chain[-1].source]
    first = max(i for i, stage in enumerate(chain) if stage.start != "checkpoint")
    for stage in chain[first:]:  # the stages the last run continued checkpoint to checkpoint
        export += ["--config", stage.config]
    steps.append(Step("export", export, str(final)))
    return steps


def _config_precision(config: dict) -> str:
    return str(((config or {}).get("trainer") or {}).get("precision") or "32-true")


def bf16_stages(card: dict) -> list[str]:
    """The configs of ``card``'s stages that train in bfloat16 (as recorded, else as configured)."""
    found = []
    for stage in stages(card):
        ran_with = stage.precision or _config_precision(yaml.safe_load(Path(stage.config).read_text()))
        if "bf16" in ran_with:
            found.append(stage.config)
    return found


def comparisons(card: dict, weights: str | Path, data_dir: str | None = None) -> list[str]:
    """The card's evaluation commands run on ``weights``, each with the card's PSNR."""
    lines = []
    for row in card.get("evaluation", []):
        argv = shlex.split(row["command"])
        argv[argv.index("--weights") + 1] = str(weights)
        argv += ["--data-dir", data_dir] if data_dir else []
        lines.append(f"{shlex.join(argv)}   # {card['name']}: {row['psnr']:.2f} dB")
    return lines


def _checkpoint_step(run_dir: Path) -> int | None:
    last = run_dir / "checkpoints/last.ckpt"
    if not last.is_file():
        return None
    return int(load_checkpoint(last)["global_step"])


def run(steps: list[Step], *, log=print) -> None:
    """Carry out a :func:`plan`: finished steps are skipped, a killed stage resumes."""
    for step in steps:
        target = Path(step.target)
        if step.what == "folder" and target.is_dir():
            _check_folder(target)
            continue
        if step.what in ("folder", "export"):
            if not target.exists():
                _call(step.argv, log)
            continue
        reached = _checkpoint_step(target)
        if reached is not None and reached >= step.steps:
            log(f"{target}: done (step {reached})")
            continue
        _call(step.argv + (["--ckpt_path", "last"] if reached is not None else []), log)


def _check_folder(folder: Path) -> None:
    """An existing noisy folder is used only if it holds what ``make-noisy`` would make."""
    parsed, held = parse_folder_name(folder), read_record(folder) or {}
    wanted = {"noise": parsed.family, "level": parsed.level, "seed": 0, "gray": parsed.gray}
    if {key: held.get(key, False if key == "gray" else None) for key in wanted} != wanted:
        raise ValueError(f"{folder} exists but is not make-noisy's {wanted} ({RECORD_NAME}); move it away")


def _call(argv: list[str], log) -> None:
    log("$ " + " ".join(argv))
    if argv[:2] == ["python", "train.py"]:  # the package's own, from any folder
        command = [sys.executable, "-m", "noise2score.training", *argv[2:]]
    else:
        command = [sys.executable, "-m", "noise2score.cli", *argv[1:]]
    if subprocess.run(command).returncode:
        raise RuntimeError(f"this step failed (its error is above): {' '.join(argv)}")
