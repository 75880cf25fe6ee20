"""LightningModule: AR-DAE training of the score network, Tweedie in validation.

Steps stay thin; the pieces live in ``noise``, ``score_loss``, ``networks`` and
``tiling``. Hyper-parameters are saved, so a checkpoint path rebuilds everything.
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from noise2score.denoiser import Denoiser, told_scorer
from noise2score.metrics import psnr
from noise2score.networks import STARTS, build_network, channel_scorer, rebase_level, widen_inputs
from noise2score.noise import make_noise
from noise2score.score_loss import SigmaASchedule, ardae_loss
from noise2score.weights import WeightsInfo, load_weights

VAL_SEED = 1234  # fixed draw for val/loss, so it is comparable across epochs


class Noise2Score(L.LightningModule):
    """Noise2Score: learn the score of noisy images; denoise with Tweedie's formula.

    Parameters
    ----------
    network, channels: score network name (see ``networks.NETWORKS``: "n2n_unet", the
        authors' U-Net, or "n2n_unet_unshared", which can start from its weights) and the images'
        channels, 1 or 3.
    per_channel: train a one-channel network on each channel of colour crops alone (and
        denoise colour images channel by channel); it can start from gray weights.
    channel_context: with ``per_channel``, each channel's pass also sees the other
        channels (a network of C inputs and one output); it can start from gray or
        per-channel weights, the added inputs at zero.
    level_input: the network is told the noise level, as an extra input channel (a
        constant map of the level's noise scale relative to ``level``); at use the level
        is given or estimated first. For blind weights; it can start from weights
        without it, the added input at zero.
    level_output: with ``level_input``, the score is the network's output divided by
        the noise's scale relative to ``level`` (``NoiseModel.noise_scale``), so the
        network outputs the same size at every level instead of one that shrinks as the
        noise grows. It can start from told weights without it (exact at ``level``).
    noise, level: noise family and level in paper units (sigma /255, zeta, k); for
        blind weights ``level`` is only the validation level. ``train.py`` turns "auto"
        into the level the training folders record, or estimate (``folder_level``).
    levels: (low, high) training range of blind (level-agnostic) weights, linked from
        the data's ``synthetic_levels``; None for weights of one level.
    init_weights: bundled weight name, .safetensors or another run's .ckpt (its trained
        network, not the EMA) to start from (warm start); ignored when a checkpoint is
        resumed.
    sigma_a_start, sigma_a_end: AR-DAE perturbation ramp; None takes the noise
        family's default (0.05 -> 0.001; Poisson zeta*1.0 -> zeta*0.5).
    sigma_a_steps: ramp length in steps; None ramps over the whole run.
    sigma_a_kind: "ramp" (one scalar per batch) or "gaussian" (per-sample N(0, delta^2)).
    antithetic: pair each perturbation u with -u (lower-variance gradient).
    lr, betas, lr_schedule: Adam; "cosine" decays to 1% over the run, "step" is the
        authors' x0.1 at half-way, "constant" none.
    ema_decay: exponential moving average of the weights, used for validation and
        export; None disables it.
    channels_last: memory format of the network (faster on CPU).
    val_tile: tile size for validation denoising (None: whole image).
    """

    def __init__(
        self,
        network: str = "n2n_unet",
        channels: int = 1,
        per_channel: bool = False,
        channel_context: bool = False,
        level_input: bool = False,
        level_output: bool = False,
        noise: str = "gaussian",
        level: float | Literal["auto"] = 25.0,
        levels: tuple[float, float] | None = None,
        init_weights: str | None = None,
        sigma_a_start: float | None = None,
        sigma_a_end: float | None = None,
        sigma_a_steps: int | None = None,
        sigma_a_kind: Literal["ramp", "gaussian"] = "ramp",
        antithetic: bool = False,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        lr_schedule: Literal["cosine", "step", "constant"] = "cosine",
        ema_decay: float | None = 0.999,
        channels_last: bool = True,
        val_tile: int | None = None,
    ) -> None:
        super().__init__()
        if level == "auto":
            raise ValueError('level "auto" is found by train.py from the training folders; give a number')
        self.save_hyperparameters()
        if channel_context and not per_channel:
            raise ValueError("channel_context needs per_channel: true")
        if level_output and not level_input:
            raise ValueError("level_output needs level_input: true")
        self.noise = make_noise(noise, level)
        info = self._info()
        self.network = build_network(network, info.network_channels, info.network_out_channels)
        if channels_last:
            self.network = self.network.to(memory_format=torch.channels_last)
        self.ema = (
            AveragedModel(self.network, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)
            if ema_decay
            else None
        )
        if self.ema is not None:
            self.ema.requires_grad_(False)  # updated by averaging, never by gradients

    # -- pieces ------------------------------------------------------------------
    @property
    def scorer(self) -> torch.nn.Module:
        """The network used to denoise: the EMA copy when there is one."""
        return self.ema.module if self.ema is not None else self.network

    def _info(self) -> WeightsInfo:
        """What this model's weights are, as an exported file would say."""
        hp = self.hparams
        return WeightsInfo(
            hp.network,
            hp.channels,
            self.noise.family,
            self.noise.level,
            levels=hp.levels,
            per_channel=hp.per_channel,
            context=hp.channel_context,
            level_input=hp.level_input,
            level_output=hp.level_output,
        )

    def _score_fn(self, network: torch.nn.Module, levels: Tensor | None = None) -> torch.nn.Module:
        """``network`` as a score of the images (per channel, alone or with context; told
        ``levels``, one per image, default the model's level, if it takes the level)."""
        hp = self.hparams
        if hp.level_input:
            told = torch.tensor([self.noise.level]) if levels is None else levels
            return told_scorer(network, self._info(), told)
        return channel_scorer(network, per_channel=hp.per_channel, context=hp.channel_context)

    def sigma_a_schedule(self) -> SigmaASchedule:
        hp = self.hparams
        start, end = self.noise.default_sigma_a
        steps = hp.sigma_a_steps or self._total_steps()
        return SigmaASchedule(
            start=hp.sigma_a_start if hp.sigma_a_start is not None else start,
            end=hp.sigma_a_end if hp.sigma_a_end is not None else end,
            steps=steps,
            kind=hp.sigma_a_kind,
        )

    def _total_steps(self) -> int:
        try:
            return max(1, int(self.trainer.estimated_stepping_batches))
        except (RuntimeError, AttributeError, OverflowError):
            return 1

    def setup(self, stage: str) -> None:
        """Warm start. Runs before Lightning restores a checkpoint, which then wins."""
        if stage == "fit" and self.hparams.init_weights:
            self._warm_start(self.hparams.init_weights)
        datamodule = self._trainer.datamodule if self._trainer is not None else None
        synthetic = getattr(datamodule, "hparams", {}).get("synthetic_noise")
        if synthetic and synthetic != self.noise.family:
            family = self.noise.family
            raise ValueError(f"data.synthetic_noise is {synthetic!r} but model.noise is {family!r}")

    def _warm_start(self, name_or_path: str) -> None:
        network, info = load_weights(name_or_path, source="network")
        ours, state = self._info(), network.state_dict()
        convert = STARTS.get(ours.network, {}).get(info.network)
        if convert is not None:  # e.g. shared U-Net weights for the unshared one
            state = convert(state)
        theirs = (ours.network if convert else info.network, info.network_channels, info.network_out_channels)
        context_start = ours.context and theirs == (ours.network, 1, 1)  # gray or per-channel weights
        level_start = ours.level_input and theirs == (
            ours.network,
            ours.network_channels - 1,
            ours.network_out_channels,
        )  # the same weights, not told the level
        if ours.level_output != info.level_output:  # untold weights have no level_output either
            rank_zero_warn(
                f"init_weights {name_or_path}: level_output {info.level_output}, this model "
                f"{ours.level_output}; the start is exact only at {self.noise}"
            )
        elif ours.level_input and info.level_input and info.level != ours.level:
            state = self._rebased(state, info)
        if theirs == (ours.network, ours.network_channels, ours.network_out_channels):
            self.network.load_state_dict(state)
        elif context_start or level_start:  # the added inputs (context, level map) start at zero
            widen_inputs(self.network, state)
        else:
            raise ValueError(
                f"init_weights {name_or_path}: {info.network} with {info.network_channels} channel(s) in, "
                f"this model is {ours.network} with {ours.network_channels}"
            )

    def _rebased(self, state: dict[str, Tensor], info: WeightsInfo) -> dict[str, Tensor]:
        """Told weights of another reference level (e.g. blind weights at zeta 0.05 for a
        run at 0.01), rebased so that the start is exact at every level."""
        if info.family != self.noise.family:  # no exact start across families
            rank_zero_warn(f"init_weights: told {info.family} weights for a {self.noise.family} model")
            return state
        theirs, ours = make_noise(info.family, info.level), torch.tensor([self.noise.level])
        input_factor = float(theirs.sigma_a_scale(ours))  # their level map at our level; ours reads 1
        output_factor = 1 / float(theirs.noise_scale(ours)) if info.level_output else 1.0
        return rebase_level(state, input_factor, output_factor)

    def on_fit_start(self) -> None:
        self._schedule = self.sigma_a_schedule()  # fixed for the run; a function of step only

    def denoiser(self, network: torch.nn.Module | None = None) -> Denoiser:
        """The scoring network (or ``network``) as a :class:`Denoiser`, the path
        inference uses."""
        return Denoiser(self.scorer if network is None else network, self._info(), tile=self.hparams.val_tile)

    def denoise(
        self, y: Tensor, network: torch.nn.Module | None = None, level: float | None = None
    ) -> Tensor:
        """Score at sigma_a = 0, then Tweedie (at ``level``, default the model's), exactly
        as ``noise2score denoise`` does."""
        return self.denoiser(network).denoise_tensor(y, level or self.noise.level).x_hat

    # -- steps -------------------------------------------------------------------
    def training_step(self, batch: Tensor | dict, batch_idx: int) -> Tensor:
        y = batch["y"] if isinstance(batch, dict) else batch
        sigma_a = self._schedule.draw(self.global_step, y.shape[0])
        levels = batch["level"] if isinstance(batch, dict) else None  # synthetic data: one per crop
        if levels is not None:
            sigma_a = sigma_a * self.noise.sigma_a_scale(levels.float().cpu()).view(-1, 1, 1, 1)
        score_fn = self._score_fn(self.network, levels)
        loss = ardae_loss(score_fn, y, sigma_a, antithetic=self.hparams.antithetic)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/sigma_a", sigma_a.abs().mean())
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.network)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: dict | Tensor, batch_idx: int) -> Tensor:
        y = batch["y"] if isinstance(batch, dict) else batch
        return self.denoise(y)

    def _evaluate(self, batch: dict, prefix: str) -> None:
        y = batch["y"]
        level = float(batch["level"]) if "level" in batch else None  # one of several val levels
        levels = None if level is None else torch.tensor([level])
        generator = torch.Generator(y.device).manual_seed(VAL_SEED + self.global_rank)
        end = torch.tensor(self.sigma_a_schedule().end)
        if levels is not None:
            end = end * self.noise.sigma_a_scale(levels)
        with torch.no_grad():
            loss = ardae_loss(self._score_fn(self.scorer, levels), y, end, generator=generator)
        self.log(f"{prefix}/loss", loss, batch_size=1)
        if "x" in batch:
            value = psnr(self.denoise(y, level=level), batch["x"])
            self.log(f"{prefix}/psnr", value, batch_size=1, prog_bar=True)  # all levels together
            if level is not None:
                self.log(f"{prefix}/psnr@{level:g}", value, batch_size=1)
            if self.ema is not None:  # the trained weights too: the EMA can lag (RECIPES.md)
                x_hat = self.denoise(y, self.network, level)
                self.log(f"{prefix}/psnr_network", psnr(x_hat, batch["x"]), batch_size=1)

    # -- optimisation ------------------------------------------------------------
    def configure_optimizers(self):
        hp = self.hparams
        optimizer = torch.optim.Adam(self.network.parameters(), lr=hp.lr, betas=tuple(hp.betas))
        total = self._total_steps()
        if hp.lr_schedule == "cosine":
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total, eta_min=hp.lr * 0.01)
        elif hp.lr_schedule == "step":
            schedule = torch.optim.lr_scheduler.StepLR(optimizer, max(1, total // 2), gamma=0.1)
        else:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
