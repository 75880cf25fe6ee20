"""Fitting the score network to the image being denoised (test-time adaptation).

Noise2Score learns the score of noisy images, and the image being denoised is one
more of them. A hundred or so AR-DAE steps on its own crops, taken by a copy of the
trained network, fit the score to that image's scenes; still noisy-only, as training.
The copy is thrown away after the image, so every image starts from the same weights.
Measured in benchmarks/RECIPES.md ("Fitting the network to the image being denoised").
"""

from __future__ import annotations

import contextlib
import copy
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace

import torch
from torch import Tensor, nn
from tqdm import tqdm

from noise2score.noise import make_noise
from noise2score.score_loss import ardae_loss
from noise2score.weights import WeightsInfo

MAX_STEPS = 10_000
# The Adam rate where none is given: RATE_PER_RATIO times sigma_a / the noise's standard
# deviation at mid-gray, at most MAX_RATE (benchmarks/RECIPES.md, "The rate of a fit").
RATE_PER_RATIO = 3e-3
MAX_RATE = 1e-4
MID_GRAY = 0.5
# Recorded with results: 2 since the second views' networks are fitted too (1: the weights' alone).
REVISION = 2


@dataclass(frozen=True)
class Adaptation:
    """How to fit the network to an image: ``steps`` Adam steps at ``lr`` (None: from
    the perturbation, :func:`learning_rate`), each on
    ``batch`` random ``crop`` crops (turned and mirrored at random, antithetic pairs),
    scored with a running average of the weights (decay ``ema``). ``sigma_a``: the
    AR-DAE perturbation, None for the end of the weights' own training ramp (their
    card), else the family's default. ``seed`` fixes crops and draws: the same image
    gets the same result (None: torch's global generator draws them). ``progress``, if
    given, is called after each step with the fraction done (a demo's progress bar)."""

    steps: int = 120
    lr: float | None = None
    batch: int = 4
    crop: int = 96
    ema: float = 0.95
    sigma_a: float | None = None
    seed: int | None = 0
    progress: Callable[[float], None] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.steps <= MAX_STEPS:
            raise ValueError(f"adaptation steps must be in 1..{MAX_STEPS}, got {self.steps}")
        if self.lr is not None and not 0 < self.lr <= 1:
            raise ValueError(f"adaptation rate must be in (0, 1], got {self.lr}")

    @classmethod
    def parse(cls, text: str) -> Adaptation:
        """``"lr=1e-4,steps=240"`` -> the settings with those fields, the rest the
        defaults; ValueError names what is not a field or not a number in range."""
        hints = typing.get_type_hints(cls)
        kinds = {f.name: _number_kind(hints[f.name]) for f in fields(cls) if f.name != "progress"}
        pairs = [item.split("=", 1) for item in text.split(",")]
        unknown = [pair[0] for pair in pairs if len(pair) != 2 or pair[0] not in kinds]
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: not NAME=VALUE with NAME one of {', '.join(kinds)}")
        return cls(**{name: kinds[name](value) for name, value in pairs})

    def record(self) -> dict:
        """The settings, for a result's record (the progress hook is not one), what is
        fitted (``REVISION``) and, where the rate is not given, the rule that sets it."""
        settings = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "progress"}
        rule = {"rate_rule": [RATE_PER_RATIO, MAX_RATE]} if self.lr is None else {}
        return settings | {"revision": REVISION} | rule


def _number_kind(hint) -> type:
    """``int`` or ``float``, the type a field holds when it is set (``float | None``: float)."""
    return next(kind for kind in typing.get_args(hint) or (hint,) if kind is not type(None))


def fitted_network(
    network: nn.Module,
    scorer_of: Callable[[nn.Module, Tensor | None], nn.Module],
    y: Tensor,
    sigma_a: float | Sequence[float],
    settings: Adaptation,
    on_step: Callable[[int, nn.Module], None] | None = None,
) -> nn.Module:
    """A copy of ``network`` fitted to ``y`` (N, C, H, W): one image, or N images of one
    size fitted together (the opponent view's three channels), in eval mode: the weight
    average where ``settings.ema``, else the last weights. ``scorer_of(network, which)``
    makes the score of a batch of crops, the weights' own way; ``which``: the image each
    crop came from, None where there is one image. ``sigma_a``: the AR-DAE perturbation
    (:func:`perturbation`), one for all images or one per image. ``on_step(step,
    network)`` is called after each step with the network that would score now.
    ``settings.lr`` must be set (:func:`learning_rate` gives the default)."""
    if settings.lr is None:
        raise ValueError("a fit needs its rate: learning_rate() sets the default one")
    device = next(network.parameters()).device
    seeded = settings.seed is not None
    crop_generator = torch.Generator().manual_seed(settings.seed) if seeded else None
    draw_generator = torch.Generator(device=device).manual_seed(settings.seed + 1) if seeded else None
    with torch.inference_mode(False), torch.enable_grad():
        y = y.detach().clone().float()  # a normal tensor even where the caller is in inference mode
        sigmas = torch.tensor(sigma_a, dtype=torch.float32).reshape(-1)
        if len(sigmas) not in (1, y.shape[0]):
            raise ValueError(f"{len(sigmas)} perturbations for {y.shape[0]} images")
        trained = copy.deepcopy(network).train().requires_grad_(True)
        average = copy.deepcopy(trained).eval().requires_grad_(False) if settings.ema else None
        scorer = scorer_of(trained, None) if y.shape[0] == 1 else None
        optimizer = torch.optim.Adam(trained.parameters(), lr=settings.lr)
        size = min(settings.crop, *y.shape[-2:])
        scored = average if average is not None else trained
        for step in range(1, settings.steps + 1):
            crops, which = random_crops(y, size, settings.batch, crop_generator)
            sigma = sigmas[0] if len(sigmas) == 1 else sigmas[which].view(-1, 1, 1, 1)
            step_scorer = scorer if which is None else scorer_of(trained, which)
            loss = ardae_loss(step_scorer, crops.to(device), sigma, antithetic=True, generator=draw_generator)
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


def learning_rate(
    settings: Adaptation, family: str, levels: Sequence[float], sigma_a: Sequence[float]
) -> float:
    """``settings.lr``, else the rate for fitting at perturbations ``sigma_a`` images of
    ``family`` noise at ``levels`` (one each). The AR-DAE target of a step is mostly the
    unit draw u; the score's part of it is about sigma_a over the noise's standard
    deviation, so the smaller that ratio, the noisier the gradient and the smaller the
    rate that still climbs: 3e-5 at sigma 25 and sigma_a 0.001 (a ratio of 0.01), 1e-4
    where the ratio is 0.05 or more (most weights; their cards' ``sigma_a_end``)."""
    if settings.lr is not None:
        return settings.lr
    ratio = min(a / make_noise(family, v).std_at(MID_GRAY) for a, v in zip(sigma_a, levels, strict=True))
    return min(MAX_RATE, RATE_PER_RATIO * ratio)


def random_crops(
    y: Tensor, size: int, count: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor | None]:
    """``count`` ``size``-square crops of ``y`` (N, C, H, W), each turned by a random
    quarter and mirrored half the time, as one channels-last batch, with the image each
    came from (None for one image: then no image is drawn, and the draws stay those of
    one image)."""
    images, (height, width) = y.shape[0], y.shape[-2:]
    crops, which = [], []
    for _ in range(count):
        k = int(torch.randint(0, images, (1,), generator=generator)) if images > 1 else 0
        i, j, turns = (
            int(torch.randint(0, n, (1,), generator=generator))
            for n in (height - size + 1, width - size + 1, 4)
        )
        crop = torch.rot90(y[k : k + 1, :, i : i + size, j : j + size], turns, (-2, -1))
        crops.append(crop.flip(-1) if torch.rand(1, generator=generator).item() < 0.5 else crop)
        which.append(k)
    batch = torch.cat(crops).contiguous(memory_format=torch.channels_last)
    return batch, (torch.tensor(which) if images > 1 else None)


@contextlib.contextmanager
def fit_progress_bar(denoiser, label: str) -> Iterator:
    """``denoiser`` (a :class:`~noise2score.denoiser.Denoiser`), or where it fits its
    networks to each image (``adapt``: minutes on a CPU) a copy of it that shows the
    steps done, over every network fitted, on a progress bar (a terminal's only)."""
    if denoiser.adapt is None:
        yield denoiser
        return
    total = denoiser.adapt.steps * denoiser.fits()
    with tqdm(total=total, desc=f"{label}: fitting", unit="step", leave=False, disable=None) as bar:

        def report(done: float) -> None:  # each step (a second or so) redrawn, not every 0.1 s
            bar.n = round(done * total)
            bar.refresh()

        reporting = copy.copy(denoiser)
        reporting.adapt = replace(denoiser.adapt, progress=report)
        yield reporting
