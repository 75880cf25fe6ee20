"""Model cards for exported weights: what the weights are and how they were made.

``make_card`` records what a training run left on disk (its resolved config, the
noisy-folder record, steps, wall time, hardware); ``noise2score results`` adds the
measured evaluation to the card.
"""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path

import torch
import yaml

from noise2score.noisy_copy import as_list, read_record


def _training_facts(checkpoint: Path) -> dict:
    from noise2score.weights import load_checkpoint

    state = load_checkpoint(checkpoint)
    run_dir = checkpoint.parent.parent
    configs = sorted(run_dir.glob("csv/version_*/config.yaml"))
    facts: dict = {
        "steps": state["global_step"],
        "checkpoint": str(checkpoint),
        "model": state["hyper_parameters"],
        "data": state.get("datamodule_hyper_parameters", {}),
    }
    facts["model"].pop("_instantiator", None)
    facts["data"].pop("_instantiator", None)
    timer = _timer_state(state)
    if timer is not None:  # training time, kept across resumes (training.py adds a Timer)
        facts["wall_time_s"] = round(timer)
    elif configs:  # older runs: from the first start (its config is written then) to this checkpoint
        facts["wall_time_s"] = round(checkpoint.stat().st_mtime - configs[0].stat().st_mtime)
    if configs:
        config = yaml.safe_load(configs[-1].read_text())
        facts["precision"] = config.get("trainer", {}).get("precision")
        facts["seed"] = config.get("seed_everything")  # as run, command-line overrides included
        facts["max_steps"] = config.get("trainer", {}).get("max_steps")  # the schedules' length
    hardware = run_dir / "hardware.json"
    if hardware.is_file():  # written by train.py at each start (training.HardwareRecord)
        facts["hardware"] = json.loads(hardware.read_text())
        config = _config_argument(facts["hardware"][0].get("argv", []))
        if config:  # the stage's config as given, so that `reproduce` finds it under any run folder
            facts["config"] = config
    init = facts["model"].get("init_weights")
    if init and str(init).endswith(".ckpt") and Path(init).is_file():
        facts["warm_start"] = _training_facts(Path(init))  # an earlier stage: its facts too
    elif init:
        earlier_card = card_of(init)  # exported weights: their card holds their training
        if earlier_card.get("training"):
            source = export_source(earlier_card)  # which copy of that stage was exported
            facts["warm_start"] = {"weights": str(init), **source, **earlier_card["training"]}
    earlier = facts.get("warm_start", {})
    # Older cards record one stage only: their own steps and wall time.
    facts["total_steps"] = facts["steps"] + earlier.get("total_steps", earlier.get("steps", 0))
    earlier_wall = earlier.get("total_wall_time_s", earlier.get("wall_time_s", 0))
    facts["total_wall_time_s"] = facts.get("wall_time_s", 0) + earlier_wall
    records = [_noisy_record(d) for d in as_list(facts["data"].get("train_dir"))]
    if records and all(records):  # one folder: a dict, as older cards have; several: a list
        facts["noisy_training_data"] = records[0] if len(records) == 1 else records
    return facts


def _timer_state(state: dict) -> float | None:
    """Seconds of training a checkpoint's Lightning Timer had counted; None without one."""
    for key, value in (state.get("callbacks") or {}).items():
        if key.split("{")[0] == "Timer" and isinstance(value, dict):
            return value.get("time_elapsed", {}).get("train")
    return None


def _config_argument(argv: list[str]) -> str | None:
    """The last ``--config`` of a recorded ``train.py`` command line; None without one."""
    found = None
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith("--config="):
            found = arg.split("=", 1)[1]
    return found


def export_source(card: dict) -> dict:
    """``{"source": "ema"}`` or ``"network"``: the copy its ``export`` command took; {} if unsaid."""
    match = re.search(r"--source (\w+)", card.get("export") or "")
    return {"source": match.group(1)} if match else {}


def _noisy_record(folder: str) -> dict | None:
    """What ``make-noisy`` recorded for a training folder; None without a record."""
    noisy = read_record(folder)
    if noisy is None:
        return None
    facts = {k: noisy[k] for k in ("noise", "level", "seed", "source")}
    facts["gray"] = noisy.get("gray", False)
    facts["images"] = len(noisy["files"])
    return facts


def card_of(name_or_path: str) -> dict:
    """The model card of bundled weights or of a .safetensors file; {} if none."""
    from noise2score.weights import resolve

    try:
        card = resolve(name_or_path).with_suffix(".json")
    except FileNotFoundError:
        return {}
    return json.loads(card.read_text()) if card.is_file() else {}


def _reproduce_name(weights: Path, name: str) -> str:
    """How ``noise2score reproduce`` finds these weights: the name where bundled, else the file."""
    from noise2score.weights import BUNDLED_DIR

    return name if weights.resolve().parent == BUNDLED_DIR.resolve() else str(weights)


def write_card(card: dict, weights: str | Path) -> Path:
    """Write ``card`` as ``<weights>.json``, next to the exported weights."""
    path = Path(weights).with_suffix(".json")
    path.write_text(json.dumps(card, indent=1) + "\n")
    return path


def make_card(
    checkpoint: str | Path,
    weights: str | Path,
    *,
    name: str,
    config: str | list[str] | None = None,
    source: str = "ema",
) -> dict:
    """The model card of ``checkpoint`` exported as ``weights``; ``config`` lists the
    training stages' configs in order (one command each). Reads the card of the weights
    it started from, so make it before those are replaced."""
    configs = as_list(config)
    checkpoint, weights = Path(checkpoint), Path(weights)
    facts = _training_facts(checkpoint)
    hp = facts["model"]
    card = {
        "name": name,
        "family": hp["noise"],
        "level": hp["level"],
        "levels": hp.get("levels"),
        "channels": hp["channels"],
        **({"per_channel": True} if hp.get("per_channel") else {}),
        **({"channel_context": True} if hp.get("channel_context") else {}),
        **({"level_input": True} if hp.get("level_input") else {}),
        **({"level_output": True} if hp.get("level_output") else {}),
        "network": hp["network"],
        "trained_on": _describe_data(facts),
        "training": facts,
        "command": " && ".join(f"python train.py fit --config {c}" for c in configs) or None,
        "reproduce": f"noise2score reproduce {_reproduce_name(weights, name)}",  # every stage, from scratch
        "export": f"noise2score export <run>/checkpoints/{checkpoint.name} {name}.safetensors"
        f" --source {source}",
        # The last stage's machine; where its run has no record, the exporting one.
        "hardware": facts["hardware"][-1] if facts.get("hardware") else machine_facts(),
        "evaluation": [],
        "headline": "",
    }
    return card


def machine_facts(device: torch.device | None = None) -> dict:
    """This machine, as cards record it; ``device`` names the GPU when it is one."""
    cuda = device is not None and device.type == "cuda"
    return {
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # AVX2, AVX512...: which kernels ran
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def _cpu_name() -> str:
    """The processor's model name (bfloat16 speed and the exact bits depend on it)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def training_chain(card: dict) -> list[dict]:
    """A card's training stages, oldest first (``training`` and its nested ``warm_start``)."""
    chain, facts = [], card.get("training")
    while facts:
        chain.insert(0, facts)
        facts = facts.get("warm_start")
    return chain


def hardware_summary(card: dict) -> str:
    """Where the weights were trained, earliest stage first: "2 CPU cores, then NVIDIA H200"."""
    stages = [facts.get("hardware") for facts in training_chain(card)]
    if not any(stages):  # cards from before train.py kept a record: the exporting machine
        stages = [[card.get("hardware", {})]]
    names = []
    for record in stages:
        last = record[-1] if record else {"device": "an unrecorded machine"}
        device = last.get("device", "cpu")
        name = f"{last.get('cpu_count')} CPU cores" if device == "cpu" else device
        if not names or names[-1] != name:
            names.append(name)
    return ", then ".join(names)


def _describe_data(facts: dict) -> str:
    data, init = facts["data"], facts["model"].get("init_weights")
    if init and str(init).endswith(".ckpt"):
        warm = f"; continues the network of the earlier run {init} (facts: training.warm_start)"
    elif init and facts.get("warm_start"):
        warm = f"; warm start from the weights {init} (their training: training.warm_start)"
    else:
        warm = f"; warm start from the weights {init}" if init else ""
    if facts["model"].get("channel_context"):
        warm += "; one network for one channel, trained on each channel of a crop, the other two as context"
    elif facts["model"].get("per_channel"):
        warm += "; one network for one channel, trained on each colour channel of a crop alone"
    if facts["model"].get("level_input"):
        level = facts["model"]["level"]
        told = "each crop's noise level (an input map)"
        if not data.get("synthetic_noise"):
            told = f"the level (an input map; {level:g} throughout)"
        warm += f"; the network is told {told}; in use, given or estimated"
        if facts["model"].get("level_output"):
            warm += "; its output is divided by the noise's scale at that level"
    if data.get("synthetic_noise"):
        low, high = data["synthetic_levels"]
        spacing = "in log(level) " if data.get("synthetic_spacing") == "log" else ""
        return (
            f"clean images of {data['train_dir']}, each {data['patch_size']}x{data['patch_size']} "
            f"crop made noisy on the fly with {data['synthetic_noise']} noise at a level drawn "
            f"uniformly {spacing}in [{low:g}, {high:g}] (as the paper's blind models); the loss "
            f"sees only the noisy crops{warm}"
        )
    noisy = facts.get("noisy_training_data")
    if not noisy:  # one's own noisy data, or folders gone by export time
        model = facts["model"]
        how = " (estimated from the images: --model.level auto)" if _level_auto(facts) else ""
        return (
            f"the noisy images of {', '.join(as_list(data.get('train_dir'))) or 'unrecorded folders'} "
            f"(no make-noisy record at export), trained at {model.get('noise', 'gaussian')} level "
            f"{model['level']:g}{how}{warm}"
        )
    folders = [noisy] if isinstance(noisy, dict) else noisy
    sources = " and ".join(
        f"{f['source']}{' made gray' if f.get('gray') else ''} with one {f['noise']} draw "
        f"(level {f['level']:g}, seed {f['seed']}) per image"
        for f in folders
    )
    return (
        f"{sum(f['images'] for f in folders)} noisy-only images: {sources}, made by "
        f"`noise2score make-noisy`; no clean image was used in {'this stage' if init else 'training'}{warm}"
    )


def _level_auto(facts: dict) -> bool:
    """Whether the stage's first start was told ``--model.level auto`` (or its config)."""
    argv = ((facts.get("hardware") or [{}])[0].get("argv")) or []
    if "--model.level=auto" in argv or ("--model.level", "auto") in zip(argv, argv[1:], strict=False):
        return True
    config = Path(facts.get("config") or "")
    if not config.is_file():
        return False
    return ((yaml.safe_load(config.read_text()) or {}).get("model") or {}).get("level") == "auto"


def add_evaluation(weights: str | Path, rows: list[dict]) -> None:
    """Record evaluation rows (dataset, PSNR, SSIM, command) in the weights' card."""
    path = Path(weights).with_suffix(".json")
    if not path.is_file():
        return
    card = json.loads(path.read_text())
    # The headline is formatted from the unrounded means, as RESULTS.md is: rounding to
    # three decimals first can flip the second (28.30505 -> 28.305 -> "28.30").
    card["evaluation"] = [{**r, "psnr": round(r["psnr"], 3), "ssim": round(r["ssim"], 4)} for r in rows]
    several = len({r["noise"] for r in rows}) > 1  # blind weights: name the level of each

    def label(row: dict) -> str:  # "bsd68" or, for blind weights, "bsd68 sigma=15"
        level = row["noise"].split(",")[0].split()[-1]
        return f"{row['dataset']} {level}" if several else row["dataset"]

    card["headline"] = ", ".join(f"{label(r)} {r['psnr']:.2f} dB" for r in rows)
    path.write_text(json.dumps(card, indent=1) + "\n")
