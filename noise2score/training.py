"""The LightningCLI behind ``train.py``: defaults for logging and checkpoints."""

from __future__ import annotations

import os
import sys

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from noise2score.data import NoisyFolderDataModule
from noise2score.image_io import ImageError
from noise2score.module import Noise2Score

CHECKPOINT_EVERY = 200  # steps


class PeriodicCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose last.ckpt also holds the final step when a run ends
    between two periodic saves (Lightning skips it once any last.ckpt was written)."""

    def on_train_end(self, trainer, pl_module) -> None:
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class Noise2ScoreCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # The model must know the data's channel count; it is said once, in data.
        parser.link_arguments("data.channels", "model.channels")
        # Blind weights record their training range (exported with the weights).
        parser.link_arguments("data.synthetic_levels", "model.levels")
        # last.ckpt every few hundred steps: a killed run loses at most that much.
        parser.add_lightning_class_args(PeriodicCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.save_last": True,
                "checkpoint.save_top_k": 0,
                "checkpoint.every_n_train_steps": CHECKPOINT_EVERY,
            }
        )

    def before_instantiate_classes(self) -> None:
        """CSV and TensorBoard logs under ``trainer.default_root_dir`` unless set."""
        trainer = self.config[self.subcommand].trainer if self.subcommand else self.config.trainer
        if trainer.logger in (None, True):
            root = trainer.default_root_dir or "runs/default"
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
        for callback in trainer.checkpoint_callbacks:
            callback.dirpath = os.path.join(trainer.default_root_dir, "checkpoints")
        return trainer


def default_callbacks() -> list:
    """The best checkpoint by val/psnr, and the learning rate in the logs."""
    return [
        ModelCheckpoint(filename="best-{step}", monitor="val/psnr", mode="max", save_top_k=1),
        LearningRateMonitor(logging_interval="step"),
    ]


def run() -> int:
    """``train.py``: the CLI, with one-line errors for bad data instead of a traceback."""
    try:
        main()
    except (ImageError, FileNotFoundError) as err:
        print(f"train.py: error: {err}", file=sys.stderr)
        return 2
    return 0


def main(args: list[str] | None = None) -> Noise2ScoreCLI:
    return Noise2ScoreCLI(
        Noise2Score,
        NoisyFolderDataModule,
        trainer_defaults={"callbacks": default_callbacks()},
        save_config_kwargs={"overwrite": True},
        args=args,
    )
