"""The LightningCLI behind ``train.py``: defaults for logging and checkpoints."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint, Timer
from lightning.pytorch.cli import LightningCLI

from noise2score.data import NoisyFolderDataModule
from noise2score.folder_level import AUTO, ConfigError, training_level
from noise2score.image_io import ImageError
from noise2score.model_card import machine_facts
from noise2score.module import Noise2Score
from noise2score.noise import NOISE_MODELS, make_noise
from noise2score.noisy_copy import as_list
from noise2score.tiling import bf16_native
from noise2score.weights import load_checkpoint

CHECKPOINT_EVERY = 200  # steps
DEFAULT_ROOT = "runs/default"  # trainer.default_root_dir when a config sets none


def checkpoint_dir(root: str) -> str:
    """Where a run's checkpoints go (and ``--ckpt_path last`` finds them)."""
    return os.path.join(root, "checkpoints")


class PeriodicCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose last.ckpt also holds the final step when a run ends
    between two periodic saves (Lightning skips it once any last.ckpt was written)."""

    def on_train_end(self, trainer, pl_module) -> None:
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class StopAtStep(Callback):
    """Ends a run at ``step`` while its schedules (learning rate, sigma_a) keep the
    length of ``max_steps``: a stage that was stopped early, run again exactly."""

    def __init__(self, step: int) -> None:
        self.step = step

    def _check(self, trainer) -> None:
        if trainer.global_step >= self.step:
            trainer.should_stop = True

    def on_train_start(self, trainer, pl_module) -> None:  # a resume at or past the step
        self._check(trainer)

    def on_train_batch_end(self, trainer, *args) -> None:
        self._check(trainer)


class HardwareRecord(Callback):
    """Appends the machine of each start (or resume) to ``<root>/hardware.json``, with
    the command line (``argv``, set by the CLI): model cards say where and how each stage
    was trained, not where it was exported."""

    argv: list[str] | None = None

    def on_train_start(self, trainer, pl_module) -> None:  # after a resume's restore
        if trainer.global_rank != 0:
            return
        path = Path(trainer.default_root_dir) / "hardware.json"
        record = json.loads(path.read_text()) if path.is_file() else []
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        start = {"started": started, "from_step": trainer.global_step, "argv": self.argv}
        record.append(start | machine_facts(trainer.strategy.root_device))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1) + "\n")


class Noise2ScoreCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # The model must know the data's channel count; it is said once, in data.
        parser.link_arguments("data.channels", "model.channels")
        # Blind weights record their training range (exported with the weights).
        parser.link_arguments("data.synthetic_levels", "model.levels")
        # last.ckpt every few hundred steps: a killed run loses at most that much.
        parser.add_lightning_class_args(PeriodicCheckpoint, "checkpoint")
        parser.add_argument(
            "--stop_at_step",
            type=int | None,
            default=None,
            help="end the run at this step; the schedules still span trainer.max_steps",
        )
        parser.set_defaults(
            {
                "checkpoint.save_last": True,
                "checkpoint.save_top_k": 0,
                "checkpoint.every_n_train_steps": CHECKPOINT_EVERY,
            }
        )

    def parse_arguments(self, parser, args) -> None:
        """Keeps the command line for the hardware record (``args`` when called from Python)."""
        self.argv = list(args) if isinstance(args, list | tuple) else sys.argv[1:] if args is None else None
        super().parse_arguments(parser, args)

    def before_instantiate_classes(self) -> None:
        """The model's level checked against the training folders (``auto``: taken from
        them); CSV and TensorBoard logs under ``trainer.default_root_dir`` unless set."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        check_resume(config)
        resolve_level(config.model, config.data)
        trainer = config.trainer
        note = slow_bf16_note(trainer.precision)
        if note:
            print(f"train.py: note: {note}", file=sys.stderr)
        if trainer.logger in (None, True):
            root = trainer.default_root_dir or DEFAULT_ROOT
            trainer.default_root_dir = root
            trainer.logger = [
                {
                    "class_path": "lightning.pytorch.loggers.CSVLogger",
                    "init_args": {"save_dir": root, "name": "csv"},
                },
                {
                    "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                    "init_args": {"save_dir": root, "name": "tb"},
                },
            ]

    def instantiate_trainer(self, **kwargs):
        """Checkpoints in ``<default_root_dir>/checkpoints``, so ``--ckpt_path last``
        finds them on resume (a logger's versioned folder would change per run)."""
        trainer = super().instantiate_trainer(**kwargs)
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.data.val_dir and not config.data.val_clean_dir:
            loss_for_best_checkpoint(trainer)
        for callback in trainer.checkpoint_callbacks:
            callback.dirpath = checkpoint_dir(trainer.default_root_dir)
        for callback in trainer.callbacks:
            if isinstance(callback, HardwareRecord):
                callback.argv = self.argv
        if not any(isinstance(callback, Timer) for callback in trainer.callbacks):
            # Training time in each checkpoint, carried over a resume: a card's wall time
            # leaves out the time a killed run lay still (trainer.max_time adds its own).
            trainer.callbacks.append(Timer())
        if config.get("stop_at_step") is not None:
            trainer.callbacks.append(StopAtStep(config.stop_at_step))
        return trainer


def loss_for_best_checkpoint(trainer) -> None:
    """Validation on noisy images alone has no PSNR: the best checkpoint is then the one
    of the lowest AR-DAE loss on them (``val/loss``, the same draws at every check)."""
    for i, callback in enumerate(trainer.callbacks):
        if type(callback) is ModelCheckpoint and callback.monitor == "val/psnr":
            trainer.callbacks[i] = ModelCheckpoint(
                filename="best-{step}", monitor="val/loss", mode="min", save_top_k=callback.save_top_k
            )


def check_resume(config) -> None:
    """The checkpoint a run resumes, read before anything starts: one that is no
    checkpoint (truncated, another file) is a one-line error, not a traceback from
    Lightning. With ``model.level auto`` the run keeps the level it started with (in its
    checkpoint) instead of estimating it again."""
    path = _resumed_checkpoint(config)
    if path is None:
        return
    try:
        state = load_checkpoint(path)
    except ValueError as err:
        others = sorted(p.name for p in path.parent.glob("*.ckpt") if p != path)
        hint = f" (beside it: {', '.join(others)})" if others else ""
        raise ConfigError(
            f"--ckpt_path: {err}; resume from another checkpoint with --ckpt_path FILE{hint}, "
            "or move it aside to start afresh"
        ) from None
    if config.model.level == AUTO:
        config.model.level = float(state["hyper_parameters"]["level"])
        print(f"train.py: model.level auto: {config.model.level:g}, as {path} records", file=sys.stderr)


def _resumed_checkpoint(config) -> Path | None:
    """The checkpoint ``--ckpt_path`` resumes (``last``: the run folder's), if it exists."""
    given = config.get("ckpt_path")
    if given in (None, "best", "hpc", "registry"):
        return None
    root = config.trainer.default_root_dir or DEFAULT_ROOT
    path = Path(checkpoint_dir(root), "last.ckpt") if given == "last" else Path(given)
    return path if path.is_file() else None


def resolve_level(model, data) -> None:
    """Sets ``model.level`` to a number: checked against what the noisy training folders
    record, or with ``auto`` taken from them (recorded, else estimated from the images)."""
    family = str(model.noise).lower()
    if family not in NOISE_MODELS:
        raise ConfigError(f"model.noise {model.noise!r} is not one of {sorted(NOISE_MODELS)}")
    if model.level != AUTO:  # out of range: one line, before anything is read
        try:
            make_noise(family, model.level)
        except ValueError as err:
            raise ConfigError(f"model.level: {err}") from None
    if data.synthetic_noise:  # clean folders: the level is drawn per crop, the model's is for validation
        if model.level == AUTO:
            raise ConfigError(
                "model.level auto reads noisy training folders; with data.synthetic_noise give a number"
            )
        return
    model.level = training_level(
        family,
        model.level,
        as_list(data.train_dir),
        channels=data.channels,
        white=data.white,
        black=data.black,
        log=lambda line: print(f"train.py: {line}", file=sys.stderr),
    )


def slow_bf16_note(precision) -> str | None:
    """A line for bfloat16 training on a CPU that would emulate it; None elsewhere."""
    if "bf16" not in str(precision or "") or torch.cuda.is_available() or bf16_native("cpu"):
        return None
    return (
        f"trainer.precision {precision}: this CPU has no native bfloat16, so it is emulated: about 12x "
        "slower than --trainer.precision 32 on an AVX2-only CPU (README, bfloat16)"
    )


def default_callbacks() -> list:
    """The best checkpoint by val/psnr, the learning rate in the logs, the machine."""
    return [
        ModelCheckpoint(filename="best-{step}", monitor="val/psnr", mode="max", save_top_k=1),
        LearningRateMonitor(logging_interval="step"),
        HardwareRecord(),
    ]


def run(args: list[str] | None = None, prog: str = "train.py") -> int:
    """``train.py`` (``noise2score train``): the CLI on ``args`` (None: the command
    line), with one-line errors for bad data instead of a traceback."""
    command_line = sys.argv
    if args is not None:  # LightningCLI reads sys.argv as well: give it this one command
        sys.argv = [prog, *args]
    try:
        main()
    except (ImageError, FileNotFoundError, ConfigError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    finally:
        sys.argv = command_line
    return 0


def full_fp32() -> None:
    """No TF32 on GPUs: it rounds to ~3 significant digits, coarser than the AR-DAE
    perturbation sigma_a * u at the end of its ramp (METHOD.md section 3)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def main(args: list[str] | None = None) -> Noise2ScoreCLI:
    full_fp32()
    return Noise2ScoreCLI(
        Noise2Score,
        NoisyFolderDataModule,
        trainer_defaults={"callbacks": default_callbacks()},
        save_config_kwargs={"overwrite": True},
        args=args,
    )


if __name__ == "__main__":  # python -m noise2score.training, as train.py
    sys.exit(run())
