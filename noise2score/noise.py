"""Noise models: seeded sampling and Tweedie's posterior-mean estimate.

All tensors are float (B, C, H, W) in [0, 1] intensity units; the score is
d/dy log p(y) in the same units. Levels are given in the paper's units:
Gaussian sigma in /255, Poisson zeta, Gamma shape k.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

# Largest exponent allowed in the Poisson estimate: exp(10) ~ 2.2e4 is far above any
# plausible ratio x_hat / (y + zeta/2), and keeps float32 finite.
POISSON_MAX_EXPONENT = 10.0
# Smallest Gamma denominator, relative to k: the exact denominator is k*y/x >= k*y.
GAMMA_MIN_DENOMINATOR = 1e-3


@dataclass(frozen=True)
class NoiseModel:
    """Base class. ``level`` is in paper units; subclasses define the rest."""

    level: float
    family: ClassVar[str] = ""
    unit: ClassVar[str] = ""

    def sample(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        raise NotImplementedError

    def tweedie_with_guard(self, y: Tensor, score: Tensor) -> tuple[Tensor, int]:
        """Tweedie estimate and the number of pixels where a numerical guard fired."""
        raise NotImplementedError

    def tweedie(self, y: Tensor, score: Tensor) -> Tensor:
        """Posterior mean E[x | y] from the noisy image and the score of p(y)."""
        return self.tweedie_with_guard(y, score)[0]

    def with_level(self, level: float) -> NoiseModel:
        return type(self)(float(level))

    @property
    def default_sigma_a(self) -> tuple[float, float]:
        """(start, end) of the AR-DAE perturbation ramp, intensity units."""
        return (0.05, 0.001)

    def noise_scale(self, levels: Tensor) -> Tensor:
        """The noise's standard deviation at ``levels`` relative to this model's level.
        The score's size goes as its inverse."""
        raise NotImplementedError

    def std_at(self, x: float) -> float:
        """The noise's standard deviation where the clean intensity is ``x``."""
        raise NotImplementedError

    def sigma_a_scale(self, levels: Tensor) -> Tensor:
        """Factor on sigma_a for crops noisy at ``levels`` (blind training): the noise
        scale of each crop relative to this model's level. sigma_a then keeps the same
        ratio to the noise at every level, so every level is smoothed alike and weighs
        alike in the loss (with one sigma_a, the low levels, whose scores are largest,
        dominate it and the high levels are left unlearnt)."""
        return self.noise_scale(levels)

    def __str__(self) -> str:
        return f"{self.family} {self.unit}={self.level:g}"


@dataclass(frozen=True)
class GaussianNoise(NoiseModel):
    r"""Additive white Gaussian noise, :math:`y = x + \sigma n`, :math:`\sigma = s/255`.

    Tweedie: :math:`\hat x = y + \sigma^2 s(y)`.
    """

    family: ClassVar[str] = "gaussian"
    unit: ClassVar[str] = "sigma"

    @property
    def sigma(self) -> float:
        return self.level / 255.0

    def sample(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        n = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        return x + self.sigma * n

    def tweedie_with_guard(self, y: Tensor, score: Tensor) -> tuple[Tensor, int]:
        return y + self.sigma**2 * score, 0

    def noise_scale(self, levels: Tensor) -> Tensor:
        return levels / self.level

    def std_at(self, x: float) -> float:
        return self.sigma


@dataclass(frozen=True)
class PoissonNoise(NoiseModel):
    r"""Scaled Poisson noise, :math:`y = \zeta\,\mathrm{Poisson}(x/\zeta)`.

    Mean x, variance :math:`\zeta x`. Tweedie, written in intensity units:
    :math:`\hat x = (y + \zeta/2)\exp(\zeta s(y))`.
    """

    family: ClassVar[str] = "poisson"
    unit: ClassVar[str] = "zeta"

    @property
    def zeta(self) -> float:
        return self.level

    def sample(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        rate = (x.clamp_min(0) / self.zeta).double()
        return (self.zeta * torch.poisson(rate, generator=generator)).to(x.dtype)

    def tweedie_with_guard(self, y: Tensor, score: Tensor) -> tuple[Tensor, int]:
        exponent = self.zeta * score
        guarded = int((exponent > POISSON_MAX_EXPONENT).sum())
        x_hat = (y + self.zeta / 2) * torch.exp(exponent.clamp(max=POISSON_MAX_EXPONENT))
        return x_hat, guarded

    @property
    def default_sigma_a(self) -> tuple[float, float]:
        # The authors' ramp is 1.0 -> 0.5 in count units, i.e. zeta times that here.
        return (self.zeta * 1.0, self.zeta * 0.5)

    def noise_scale(self, levels: Tensor) -> Tensor:
        return (levels / self.zeta).sqrt()  # the noise's standard deviation is sqrt(zeta x)

    def std_at(self, x: float) -> float:
        return math.sqrt(self.zeta * x)

    def sigma_a_scale(self, levels: Tensor) -> Tensor:
        # Not the noise scale: Poisson values lie on a lattice of step zeta, which
        # sigma_a must smooth.
        return levels / self.zeta


@dataclass(frozen=True)
class GammaNoise(NoiseModel):
    r"""Multiplicative Gamma noise, :math:`y = x g`, :math:`g \sim \Gamma(k, 1/k)`.

    Mean x, variance :math:`x^2/k`. Tweedie: :math:`\hat x = k y / ((k-1) - y s(y))`.
    """

    family: ClassVar[str] = "gamma"
    unit: ClassVar[str] = "k"

    @property
    def k(self) -> float:
        return self.level

    def sample(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        g = sample_standard_gamma(self.k, x.shape, generator=generator, device=x.device)
        return x * (g / self.k).to(x.dtype)

    def tweedie_with_guard(self, y: Tensor, score: Tensor) -> tuple[Tensor, int]:
        denominator = (self.k - 1) - y * score
        floor = GAMMA_MIN_DENOMINATOR * self.k
        guarded = int((denominator < floor).sum())
        return self.k * y / denominator.clamp_min(floor), guarded

    def noise_scale(self, levels: Tensor) -> Tensor:
        return (self.k / levels).sqrt()  # the noise's standard deviation is x / sqrt(k)

    def std_at(self, x: float) -> float:
        return x / math.sqrt(self.k)


def sample_standard_gamma(
    shape_k: float,
    size: torch.Size | tuple[int, ...],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draw Gamma(shape_k, scale 1) with Marsaglia-Tsang, from a seedable generator.

    torch's own Gamma sampler accepts no generator; this one uses only ``randn`` and
    ``rand``, so the same generator state gives the same draw.
    """
    boost = shape_k < 1  # Gamma(k) = Gamma(k + 1) * U^(1/k)
    d = (shape_k + 1 if boost else shape_k) - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out = torch.empty(size, dtype=torch.float64, device=device).view(-1)
    todo = torch.arange(out.numel(), device=device)
    while todo.numel():
        n = torch.randn(todo.numel(), generator=generator, dtype=torch.float64, device=device)
        u = torch.rand(todo.numel(), generator=generator, dtype=torch.float64, device=device)
        v = (1 + c * n) ** 3
        ok = (v > 0) & (torch.log(u) < 0.5 * n**2 + d - d * v + d * torch.log(v.clamp_min(1e-300)))
        out[todo[ok]] = d * v[ok]
        todo = todo[~ok]
    if boost:
        u = torch.rand(out.shape, generator=generator, dtype=torch.float64, device=device)
        out = out * u ** (1.0 / shape_k)
    return out.view(size).float()


NOISE_MODELS: dict[str, type[NoiseModel]] = {m.family: m for m in (GaussianNoise, PoissonNoise, GammaNoise)}

# Levels the paper reports; also used to validate user input.
LEVEL_RANGES: dict[str, tuple[float, float]] = {
    "gaussian": (0.0, 255.0),
    "poisson": (1e-4, 1.0),
    "gamma": (1.0 + 1e-3, 1e5),
}


def make_noise(family: str, level: float) -> NoiseModel:
    """Build a noise model: ``make_noise("gaussian", 25)``, ``("poisson", 0.01)``,
    ``("gamma", 100)``. Raises ``ValueError`` for an unknown family or a level out of
    range."""
    key = family.lower()
    if key not in NOISE_MODELS:
        raise ValueError(f"unknown noise family {family!r}; choose from {sorted(NOISE_MODELS)}")
    low, high = LEVEL_RANGES[key]
    level = float(level)
    if not (math.isfinite(level) and low <= level <= high):
        unit = NOISE_MODELS[key].unit
        raise ValueError(f"{key} noise needs {unit} in [{low:g}, {high:g}], got {level:g}")
    return NOISE_MODELS[key](level)


def check_read_noise(read_noise: float, family: str, *, name: str = "read noise", hint: str = "") -> None:
    """Read noise (a camera's Gaussian noise on photon counts) goes with Poisson noise
    only; ``name`` and ``hint`` word the error for where the value came from."""
    if read_noise and family != "poisson":
        raise ValueError(f"{name} is for Poisson noise, not {family}{hint}")


def derive_seed(seed: int, *keys: str) -> int:
    """A 63-bit seed from a base seed and names, stable across runs and platforms."""
    text = "/".join([str(int(seed)), *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def seeded_generator(seed: int, *keys: str) -> torch.Generator:
    """CPU generator for the draw that belongs to (seed, *keys) and nothing else."""
    return torch.Generator().manual_seed(derive_seed(seed, *keys))
