"""Fitting the score network to the image being denoised (test-time adaptation).

Noise2Score learns the score of noisy images, and the image being denoised is one
more of them. A hundred or so AR-DAE steps on its own crops, taken by a copy of the
trained network, fit the score to that image's scenes; still noisy-only, as training.
The copy is thrown away after the image, so every image starts from the same weights.
Measured in benchmarks/RECIPES.md ("Fitting the network to the image being denoised").
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import torch
from torch import Tensor, nn

from noise2score.noise import make_noise
from noise2score.score_loss import ardae_loss
from noise2score.weights import WeightsInfo

MAX_STEPS = 10_000


@dataclass(frozen=True)
class Adaptation:
    """How to fit the network to an image: ``steps`` Adam steps at ``lr``, each on
    ``batch`` random ``crop`` crops (turned and mirrored at random, antithetic pairs),
    scored with a running average of the weights (decay ``ema``). ``sigma_a``: the
    AR-DAE perturbation, None for the end of the weights' own training ramp (their
    card), else the family's default. ``seed`` fixes crops and draws: the same image
    gets the same result (None: torch's global generator draws them). ``progress``, if
    given, is called after each step with the fraction done (a demo's progress bar)."""

    steps: int = 120
    lr: float = 3e-5
    batch: int = 4
    crop: int = 96
    ema: float = 0.95
    sigma_a: float | None = None
    seed: int | None = 0
    progress: Callable[[float], None] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.steps <= MAX_STEPS:
            raise ValueError(f"adaptation steps must be in 1..{MAX_STEPS}, got {self.steps}")

    def record(self) -> dict:
        """The settings, for a result's record (the progress hook is not one)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "progress"}


def fitted_network(
    network: nn.Module,
    scorer_of: Callable[[nn.Module], nn.Module],
    y: Tensor,
    sigma_a: float,
    settings: Adaptation,
    on_step: Callable[[int, nn.Module], None] | None = None,
) -> nn.Module:
    """A copy of ``network`` fitted to ``y`` (1, C, H, W), in eval mode: the weight
    average where ``settings.ema``, else the last weights. ``scorer_of`` makes the
    score of images from a network (the weights' own way); ``sigma_a``: the AR-DAE
    perturbation (:func:`perturbation`). ``on_step(step, network)`` is called after each
    step with the network that would score now (to follow the fit)."""
    device = next(network.parameters()).device
    seeded = settings.seed is not None
    crop_generator = torch.Generator().manual_seed(settings.seed) if seeded else None
    draw_generator = torch.Generator(device=device).manual_seed(settings.seed + 1) if seeded else None
    with torch.inference_mode(False), torch.enable_grad():
        y = y.detach().clone().float()  # a normal tensor even where the caller is in inference mode
        trained = copy.deepcopy(network).train().requires_grad_(True)
        average = copy.deepcopy(trained).eval().requires_grad_(False) if settings.ema else None
        scorer = scorer_of(trained)
        optimizer = torch.optim.Adam(trained.parameters(), lr=settings.lr)
        size = min(settings.crop, *y.shape[-2:])
        scored = average if average is not None else trained
        for step in range(1, settings.steps + 1):
            crops = random_crops(y, size, settings.batch, crop_generator).to(device)
            loss = ardae_loss(scorer, crops, torch.tensor(sigma_a), antithetic=True, generator=draw_generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if average is not None:
                with torch.no_grad():
                    for kept, new in zip(average.parameters(), trained.parameters(), strict=True):
                        kept.lerp_(new, 1 - settings.ema)
            if on_step is not None:
                on_step(step, scored)
                trained.train()
            if settings.progress is not None:
                settings.progress(step / settings.steps)
    return scored.eval().requires_grad_(False)


def perturbation(info: WeightsInfo, settings: Adaptation, level: float | None) -> float:
    """sigma_a for fitting weights ``info`` to an image at ``level``: ``settings.sigma_a``,
    else where the weights' training ended (their card's last stage), else the family's
    default end; for weights trained across levels (told or not) scaled with the level,
    as their training scaled it with each crop's (``module.training_step``)."""
    base = settings.sigma_a
    if base is None:
        recorded = info.card.get("training", {}).get("model", {}).get("sigma_a_end")
        base = abs(float(recorded)) if recorded else make_noise(info.family, info.level).default_sigma_a[1]
    if level is None or not (info.level_input or info.levels):
        return base
    return base * float(make_noise(info.family, info.level).sigma_a_scale(torch.tensor([float(level)])))


def random_crops(y: Tensor, size: int, count: int, generator: torch.Generator | None = None) -> Tensor:
    """``count`` ``size``-square crops of ``y`` (1, C, H, W), each turned by a random
    quarter and mirrored half the time, as one channels-last batch."""
    height, width = y.shape[-2:]
    crops = []
    for _ in range(count):
        i, j, turns = (
            int(torch.randint(0, n, (1,), generator=generator))
            for n in (height - size + 1, width - size + 1, 4)
        )
        crop = torch.rot90(y[..., i : i + size, j : j + size], turns, (-2, -1))
        crops.append(crop.flip(-1) if torch.rand(1, generator=generator).item() < 0.5 else crop)
    return torch.cat(crops).contiguous(memory_format=torch.channels_last)
