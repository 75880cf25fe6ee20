"""AR-DAE objective and the schedule of its perturbation size sigma_a.

Loss (Lim et al. 2020, used by Noise2Score):

    L = mean over pixels of (u + sigma_a * R(y + sigma_a * u))^2,   u ~ N(0, I).

At the optimum R(y) is the score of p(y) smoothed by N(0, sigma_a^2); annealing
sigma_a towards zero makes R approach the score of y itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

ScoreFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class SigmaASchedule:
    """sigma_a as a pure function of the global step, so a resumed run continues it.

    kind="ramp": one positive scalar per batch, linear from ``start`` to ``end`` over
        ``steps`` steps, then held at ``end`` (the authors' code, without its per-epoch
        restart).
    kind="gaussian": per-sample sigma_a ~ N(0, delta^2), with delta on the same ramp
        (the paper's figure, and DeepInverse).
    """

    start: float = 0.05
    end: float = 0.001
    steps: int = 20_000
    kind: Literal["ramp", "gaussian"] = "ramp"

    def level(self, step: int) -> float:
        """The scalar sigma_a (ramp) or delta (gaussian) at ``step``."""
        t = min(max(step, 0) / max(self.steps, 1), 1.0)
        return self.start + t * (self.end - self.start)

    def draw(self, step: int, batch: int, *, generator: torch.Generator | None = None) -> Tensor:
        """sigma_a for each sample of a batch, shape (batch, 1, 1, 1)."""
        level = self.level(step)
        if self.kind == "ramp":
            return torch.full((batch, 1, 1, 1), level)
        if self.kind == "gaussian":
            return level * torch.randn((batch, 1, 1, 1), generator=generator)
        raise ValueError(f"unknown sigma_a schedule {self.kind!r}")


def ardae_loss(
    score_fn: ScoreFn,
    y: Tensor,
    sigma_a: Tensor,
    *,
    antithetic: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """AR-DAE loss of ``score_fn`` on noisy images ``y`` (B, C, H, W).

    ``sigma_a`` broadcasts against ``y`` (a scalar tensor or (B, 1, 1, 1)).
    With ``antithetic=True`` each u is paired with -u on the same input (one batch of
    2B): the cross term u * R(y + sigma_a u), almost pure noise at small sigma_a,
    cancels to first order, which lowers the variance of the gradient.
    """
    u = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device)
    sigma_a = sigma_a.to(device=y.device, dtype=y.dtype)
    if antithetic:
        u = torch.cat([u, -u])
        y = torch.cat([y, y])
        if sigma_a.dim() > 0 and sigma_a.shape[0] > 1:
            sigma_a = torch.cat([sigma_a, sigma_a])
    residual = u + sigma_a * score_fn(y + sigma_a * u)
    return residual.square().mean()
