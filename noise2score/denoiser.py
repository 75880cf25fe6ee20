"""The one inference path: image -> tiles -> score -> blend -> Tweedie -> image.

The web demo, the ``denoise`` and ``evaluate`` commands and ``predict_step`` all end
up in :meth:`Denoiser.denoise_tensor`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from noise2score.adapt import Adaptation, fitted_network, learning_rate, perturbation
from noise2score.clipping import invert_clipping, too_clipped_to_fit
from noise2score.image_io import ImageError, from_float, to_float
from noise2score.level import estimate_level, estimate_level_without_score, pca_level
from noise2score.metrics import from_hwc, to_hwc
from noise2score.networks import channel_scorer
from noise2score.noise import NoiseModel, make_noise
from noise2score.opponent import fitted_opponent_view, opponent_estimate
from noise2score.tiling import (
    DEFAULT_BATCH,
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
    DIHEDRAL,
    ensemble_score,
    estimate_score,
)
from noise2score.vst import fitted_stabilised_view, stabilised_estimate, stabilised_mix
from noise2score.weights import WeightsInfo, load_weights
from noise2score.white import White, unit_range, unit_spread


@dataclass
class DenoiseResult:
    x_hat: Tensor  # (1, C, H, W) float, unclipped
    level: float  # used, paper units
    estimated: bool
    seconds: float
    guarded: int  # pixels where the Tweedie guard fired
    view_share: float | None = None  # the stabilised view's share in the estimate (vst)
    clipped: bool = False  # Gaussian noise clipped at black or white, inverted (clip_inverse)
    fit_skipped: bool = False  # adapt asked, not done: too clipped (clipping.too_clipped_to_fit)


class Denoiser:
    """A score network with its noise family; ``denoise`` any image at any level.

    Build with :func:`load_denoiser`. ``level=None`` estimates the level per image.
    ``vst``: Gaussian weights that also denoise Poisson or Gamma images through a
    variance-stabilising transform; the result is the mean of the two estimates.
    ``opponent``: gray Gaussian weights that also denoise colour Gaussian images in an
    opponent colour space, one channel at a time; the result is again the mean.
    ``device``: where the network runs (see :func:`inference_device`); inputs and
    results stay on theirs, tiles travel.
    ``adapt``: fit a copy of the network to each image before it scores it
    (:mod:`noise2score.adapt`), and copies of the second views' networks to what they
    see of it; not an image much clipped at black or white
    (:func:`clipping.too_clipped_to_fit`).
    ``clip_inverse``: a Gaussian image clipped at black or white (an 8-bit file) gets
    its estimate mapped through the inverse of clipping (:mod:`noise2score.clipping`).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        info: WeightsInfo,
        *,
        tile: int | None = DEFAULT_TILE,
        overlap: int = DEFAULT_OVERLAP,
        batch_size: int = DEFAULT_BATCH,
        bf16: bool = False,
        ensemble: bool = False,
        vst: Denoiser | None = None,
        opponent: Denoiser | None = None,
        device: torch.device | str | None = None,
        adapt: Adaptation | None = None,
        clip_inverse: bool = True,
    ) -> None:
        self.network = network.to(device, memory_format=torch.channels_last).eval()
        self.info = info
        self.with_vst(vst)
        self.with_opponent(opponent)
        self._scorer = None if info.level_input else self._scorer_of(self.network, None)  # told: per level
        self.tile, self.overlap, self.batch_size, self.bf16 = tile, overlap, batch_size, bf16
        self.ensemble = ensemble  # average the score over 8 rotations/mirrorings
        self.adapt = adapt
        self.clip_inverse = clip_inverse

    def with_vst(self, gaussian: Denoiser | None) -> Denoiser:
        """Set (or clear, None) the Gaussian weights of the stabilised second view."""
        if gaussian is not None:
            _check_vst(self.info, gaussian.info)
        self.vst = gaussian
        return self

    def with_opponent(self, gray: Denoiser | None) -> Denoiser:
        """Set (or clear, None) the gray weights of the opponent-colour second view."""
        if gray is not None:
            _check_opponent(self.info, gray.info)
        self.opponent = gray
        return self

    @property
    def gray_view(self) -> Denoiser | None:
        """The gray weights of the opponent-colour view of its colour Gaussian estimate
        (:func:`colour_gaussian`): its own, or its stabilised view's."""
        target = colour_gaussian(self)
        return target.opponent if target is not None else None

    def work(self) -> int:
        """Network passes over each pixel of an image, relative to the weights alone:
        the self-ensemble, the second views, and the Gamma share's probe, which runs
        both estimators again (fitting with ``adapt`` aside)."""
        passes = (len(DIHEDRAL) if self.ensemble else 1) * (self.channels if self.info.per_channel else 1)
        if self.vst is not None:
            passes += self.vst.work()
            passes *= 2 if self.family == "gamma" else 1
        if self.opponent is not None:
            passes += self.channels * self.opponent.work()  # one gray pass per opponent channel
        return passes

    @property
    def family(self) -> str:
        return self.info.family

    @property
    def channels(self) -> int:
        return self.info.channels

    def score(self, y: Tensor, level: float | None = None) -> Tensor:
        """Score of ``y`` at sigma_a = 0; weights that take the level need ``level``."""
        if self.info.level_input and level is None:
            raise ValueError(f"the model {self.info.name} takes the noise level: give or estimate it first")
        scorer = self._scorer_of(self.network, level) if self.info.level_input else self._scorer
        once = functools.partial(
            estimate_score,
            scorer,
            tile=self.tile,
            overlap=self.overlap,
            batch_size=self.batch_size,
            bf16=self.bf16,
        )
        return ensemble_score(once, y) if self.ensemble else once(y)

    def _scorer_of(self, network: nn.Module, level: float | None) -> nn.Module:
        """``network`` as a score of images at ``level``, the way these weights score."""
        if self.info.level_input:
            return told_scorer(network, self.info, torch.tensor([float(level)]))
        return channel_scorer(network, per_channel=self.info.per_channel, context=self.info.context)

    def fitted_to(
        self, y: Tensor, level: float | None | Sequence[float], settings: Adaptation | None = None
    ) -> Denoiser:
        """A copy whose network is fitted to ``y`` (``settings``, by default ``self.adapt``;
        :mod:`noise2score.adapt`), without the second views; ``self`` is left as it was.
        ``y`` may hold several images of one size, fitted together, ``level`` then one per
        image."""
        settings = settings or self.adapt
        levels = list(level) if isinstance(level, Sequence) else [level] * y.shape[0]
        if self.info.levels:  # trained across levels: sigma_a goes with the level
            levels = [
                estimate_level_without_score(self.family, y[i : i + 1]) if v is None else v
                for i, v in enumerate(levels)
            ]

        def scorer_of(network: nn.Module, which: Tensor | None) -> nn.Module:
            if not self.info.level_input:
                return self._scorer_of(network, None)
            told = levels if which is None else [levels[i] for i in which.tolist()]
            return told_scorer(network, self.info, torch.tensor([float(v) for v in told]))

        sigma_a = [perturbation(self.info, settings, v) for v in levels]
        at = [self.info.level if v is None else v for v in levels]  # fixed-level weights: their level
        rate = learning_rate(settings, self.family, at, sigma_a)
        network = fitted_network(self.network, scorer_of, y, sigma_a, dataclasses.replace(settings, lr=rate))
        options = {"tile": self.tile, "overlap": self.overlap, "batch_size": self.batch_size}
        return Denoiser(network, self.info, bf16=self.bf16, ensemble=self.ensemble, **options)

    def fitted(self, y: Tensor, level: float | Sequence[float], settings: Adaptation) -> Denoiser:
        """A copy with every network fitted (``settings``) to what it denoises of ``y`` at
        ``level`` (known): its own, and its second views' (:meth:`fitted_views`)."""
        fitted = self.fitted_to(y, level, settings)
        if self.vst is not None or self.opponent is not None:
            vst, opponent = self.fitted_views(y, make_noise(self.family, level), settings)
            fitted.with_vst(vst).with_opponent(opponent)
        return fitted

    def fitted_views(
        self, y: Tensor, noise: NoiseModel, settings: Adaptation
    ) -> tuple[Denoiser | None, Denoiser | None]:
        """(stabilised view, opponent view), each a copy fitted to what it sees of ``y``:
        the Gaussian weights to the stabilised image (and their own opponent view), the
        gray weights to the three opponent channels together; None where there is none."""
        vst, opponent = self.vst, self.opponent
        return (
            None if vst is None else fitted_stabilised_view(vst, y, noise, settings),
            None if opponent is None else fitted_opponent_view(opponent, y, noise.level, settings),
        )

    def fits(self) -> int:
        """Networks that ``adapt`` fits for each image: its own and its second views'."""
        return 1 + (self.vst.fits() if self.vst is not None else 0) + (self.opponent is not None)

    def denoise_tensor(
        self,
        y: Tensor,
        level: float | None = None,
        *,
        level_method: str = "auto",
        read_noise: float = 0.0,
        clip_inverse: bool | None = None,
    ) -> DenoiseResult:
        """Denoise a (1, C, H, W) float tensor in [0, 1] units. ``read_noise``: the
        standard deviation of Gaussian noise added to Poisson noise (a camera's read
        noise, in the same units), known. Gray weights take a gray image stored as colour
        (three equal channels) and give its three channels back. ``clip_inverse``:
        overrides the denoiser's (False for the second views, whose inputs are not a
        file's pixels)."""
        if self.channels == 1 and y.shape[1] == 3 and bool((y[:, 1:] == y[:, :1]).all()):
            gray = self.denoise_tensor(
                y[:, :1], level, level_method=level_method, read_noise=read_noise, clip_inverse=clip_inverse
            )
            return dataclasses.replace(gray, x_hat=gray.x_hat.expand(-1, 3, -1, -1).contiguous())
        if read_noise:
            return self._with_read_noise(y, level, read_noise, level_method)
        if y.shape[1] != self.channels:
            raise ImageError(
                f"image has {y.shape[1]} channel(s); the model "
                f"{self.info.name or ''} takes {self.channels}".replace("  ", " ")
            )
        start = time.perf_counter()
        estimated = level is None
        if estimated and self.info.level_input:  # the network needs the level: estimate it first
            level = estimate_level_without_score(self.family, y, method=level_method)
        fit = _whole_fit(self.adapt, self.fits())
        fit_skipped = bool(fit) and too_clipped_to_fit(y, self.family)
        fit = None if fit_skipped else fit  # it would fit the clipped spike
        scoring = self.fitted_to(y, level, fit) if fit else self
        score = scoring.score(y, level)
        if estimated and not self.info.level_input:
            level = estimate_level(self.family, y, score, method=level_method)
        noise = make_noise(self.family, level)
        x_hat, guarded = noise.tweedie_with_guard(y, score)
        vst, opponent = self.fitted_views(y, noise, fit) if fit else (self.vst, self.opponent)
        share = None
        if vst is not None:
            x_hat, share = stabilised_mix(
                y,
                noise,
                lambda v: noise.tweedie_with_guard(v, scoring.score(v, level))[0],
                lambda v: stabilised_estimate(vst, v, noise),
                x_hat,
            )
        if opponent is not None:
            x_hat = (x_hat + opponent_estimate(opponent, y, level)) / 2
        clipped = False
        if self.clip_inverse if clip_inverse is None else clip_inverse:
            x_hat, clipped = invert_clipping(y, x_hat, noise)
        seconds = time.perf_counter() - start
        return DenoiseResult(x_hat, float(level), estimated, seconds, guarded, share, clipped, fit_skipped)

    def _with_read_noise(
        self, y: Tensor, level: float | None, read_noise: float, method: str
    ) -> DenoiseResult:
        """Poisson noise of level zeta plus Gaussian noise of known ``read_noise``:
        y + read_noise^2 / zeta has the mean and variance of scaled Poisson noise on an
        image brighter by that shift (its Anscombe transform is the generalised Anscombe
        transform of y), so both estimates are made on the shifted image and the shift
        is taken off after. The level is estimated the same way (``pca`` only)."""
        if self.family != "poisson":
            name = self.info.name or "these weights"
            raise ValueError(f"read noise is for Poisson weights; {name} are for {self.family} noise")
        if not math.isfinite(read_noise) or read_noise < 0:
            raise ValueError(f"read noise must be a finite number >= 0, got {read_noise}")
        if method not in ("auto", "pca"):
            raise ValueError(f"with read noise the level is estimated by 'pca' only, not {method!r}")
        start = time.perf_counter()
        estimated = level is None
        if estimated:
            level = pca_level(self.family, y, read_noise)
            if level is None:
                raise ImageError("the image is too small to estimate the noise level: give the level")
        shift = read_noise**2 / level
        result = self.denoise_tensor(y + shift, level)
        seconds = time.perf_counter() - start
        return DenoiseResult(result.x_hat - shift, result.level, estimated, seconds, result.guarded)

    def denoise(
        self,
        image: np.ndarray | Tensor,
        level: float | None = None,
        *,
        level_method: str = "auto",
        white: White = None,
        black: float = 0.0,
        read_noise: float = 0.0,
    ) -> np.ndarray | Tensor:
        """Denoise an (H, W) or (H, W, C) array/tensor of uint8, uint16 or float.

        ``white`` and ``black``: the input values the weights see as 1 and 0 (by default
        the dtype's top and 0; white "auto": the image's 99.9th percentile), for dim data
        such as photon counts; the level is then that of the scaled image.
        ``read_noise``: Poisson weights only, the standard deviation of Gaussian noise
        added to the photon noise, in input units (as ``black``). Returns the estimate in
        the input's layout and dtype range (integers are rounded and clipped; floats
        unclipped).
        """
        is_tensor = isinstance(image, Tensor)
        array = image.detach().cpu().numpy() if is_tensor else np.asarray(image)
        pixels = to_float(array, name="image", max_pixels=10**9)
        offset, scale = map(np.float32, unit_range(pixels, array.dtype, white, black))
        read = unit_spread(read_noise, array.dtype, scale)
        y = from_hwc((pixels - offset) / scale)
        result = self.denoise_tensor(y, level, level_method=level_method, read_noise=read)
        out = from_float(to_hwc(result.x_hat) * scale + offset, array.dtype)
        out = out.reshape(array.shape)
        return torch.from_numpy(out) if is_tensor else out


def told_scorer(network: nn.Module, info: WeightsInfo, levels: Tensor) -> nn.Module:
    """``network`` (of weights that take the level) as a score of images noisy at
    ``levels`` (one, or one per image): told them as noise scales relative to the
    weights' own level, its output divided by the noise scale for ``level_output``."""
    noise, levels = make_noise(info.family, info.level), levels.float().cpu()
    return channel_scorer(
        network,
        per_channel=info.per_channel,
        context=info.context,
        level_scale=noise.sigma_a_scale(levels),
        output_scale=noise.noise_scale(levels) if info.level_output else None,
    )


def _check_vst(info: WeightsInfo, gaussian: WeightsInfo) -> None:
    if info.family == "gaussian":
        raise ValueError("the stabilised view (vst) is for Poisson and Gamma weights, not Gaussian ones")
    if gaussian.family != "gaussian":
        name = gaussian.name or "these"
        raise ValueError(f"vst needs Gaussian weights; {name} are for {gaussian.family} noise")
    if gaussian.channels != info.channels:
        raise ValueError(
            f"vst weights {gaussian.name} take {gaussian.channels} channel(s); "
            f"{info.name or 'the weights'} take {info.channels}"
        )


def _check_opponent(info: WeightsInfo, gray: WeightsInfo) -> None:
    if info.family != "gaussian" or info.channels != 3:
        name = info.name or "these weights"
        raise ValueError(f"the opponent-colour view is for colour Gaussian weights; {name} are not")
    if gray.family != "gaussian" or gray.channels != 1:
        name = gray.name or "these"
        raise ValueError(f"the opponent-colour view needs gray Gaussian weights; {name} are not")


OPPONENT_WEIGHTS = "gaussian-blind-gray"  # the bundled gray weights of opponent="auto"


def vst_weights(channels: int) -> str:
    """The bundled Gaussian weights of ``vst="auto"``: the blind ones for ``channels``."""
    return "gaussian-blind-gray" if channels == 1 else "gaussian-blind-color"


def load_denoiser(
    name_or_path: str = "gaussian25-gray", *, vst: str | None = None, opponent: str | None = None, **options
) -> Denoiser:
    """Bundled weight name, ``.safetensors`` or Lightning ``.ckpt`` -> :class:`Denoiser`.

    ``vst``: Gaussian weights (a name or path, or "auto": the bundled blind ones) for the
    stabilised second view of Poisson and Gamma images; None: the family's estimate alone.
    ``opponent``: gray Gaussian weights (or "auto": the bundled blind ones) for the
    opponent-colour view of the colour Gaussian estimate (see :func:`attach_opponent`).
    """
    network, info = load_weights(name_or_path)
    second = None
    if vst is not None:
        second = load_denoiser(vst_weights(info.channels) if vst == "auto" else vst, **options)
    denoiser = Denoiser(network, info, vst=second, **options)
    if opponent is not None:
        gray = load_denoiser(OPPONENT_WEIGHTS if opponent == "auto" else opponent, **options)
        if not attach_opponent(denoiser, gray):
            raise ValueError(
                f"the opponent-colour view is for colour Gaussian weights, or colour Poisson/Gamma "
                f"ones with vst; {info.name or 'these'} are not"
            )
    return denoiser


def colour_gaussian(denoiser: Denoiser) -> Denoiser | None:
    """The denoiser that makes the colour Gaussian estimate of ``denoiser``: itself for
    colour Gaussian weights, its stabilised view's for colour Poisson and Gamma ones;
    None where there is none (gray images, no stabilised view)."""
    target = denoiser if denoiser.family == "gaussian" else denoiser.vst
    return target if target is not None and target.channels == 3 else None


def attach_opponent(denoiser: Denoiser, gray: Denoiser | None) -> bool:
    """Give the colour Gaussian estimate of ``denoiser`` (:func:`colour_gaussian`) the
    opponent-colour view of ``gray`` (None: take it away); False where it has none."""
    target = colour_gaussian(denoiser)
    if target is not None:
        target.with_opponent(gray)
    return target is not None


def inference_device(name: str = "auto") -> torch.device:
    """``name`` ("auto": the first CUDA GPU where there is one, else the CPU; "cpu",
    "cuda", "cuda:N") as a device that exists here, or a ValueError saying why not.
    On a GPU it turns off TF32 convolutions, so fp32 results match the CPU's to
    about 1e-3 dB; ``bf16`` is the fast setting there too."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}: give auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {name!r}: give auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise ValueError(f"no CUDA device {name} here ({count} found, torch {torch.__version__})")
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    return device


NEAR_LEVEL = 0.1  # an estimate within 10% of a fixed-level model's level picks that model
# (or blind weights of its family that measured better there)
# ``denoise``'s pick among the bundled weights for one image: (pixels (H, W, C) in [0, 1],
# read noise) -> (the weights, the level estimated for the pick; None where one was given)
Chooser = Callable[[np.ndarray, float], tuple[Denoiser, float | None]]


def choose_denoiser(
    candidates: list[Denoiser], channels: int, level: float | None = None, tolerance: float = 0.0
) -> Denoiser:
    """The candidate that fits an image of ``channels``: same channel count where there
    is one; weights trained at ``level`` (within ``tolerance``, relative) first, unless
    blind weights of that family measured better at their level (model cards), then
    blind weights, then any; Gaussian before other families."""
    fitting = [d for d in candidates if d.channels == channels] or candidates

    def rank(d: Denoiser) -> tuple[bool, int]:
        if level is not None and not d.info.blind and abs(d.info.level - level) <= tolerance * level:
            return d.family != "gaussian", 0
        return d.family != "gaussian", 1 if d.info.blind else 2

    chosen = min(fitting, key=rank)
    if rank(chosen)[1] == 0:  # blind weights of its family that measured better at its level win
        family, at = chosen.family, chosen.info.level
        sets = measured_psnr(chosen.info, family, at)

        def mean(d: Denoiser) -> float:  # over the sets ``chosen`` was measured on; ties: chosen
            measured = measured_psnr(d.info, family, at)
            return (
                float(np.mean([measured[s] for s in sets]))
                if sets and sets.keys() <= measured.keys()
                else -np.inf
            )

        blind = [d for d in fitting if d.info.blind and d.family == family]
        chosen = max([chosen, *blind], key=mean)
    return chosen


def measured_psnr(info: WeightsInfo, family: str, level: float) -> dict[str, float]:
    """PSNR per test set that the weights' model card records for ``family`` noise at
    ``level`` (level given or estimated)."""
    noise = str(make_noise(family, level))
    rows = info.card.get("evaluation", [])
    return {r["dataset"]: r["psnr"] for r in rows if r.get("noise", "").split(",")[0] == noise}


class _Spread:
    """A progress report of several fits in a row, each reporting 0 -> 1 of its own."""

    def __init__(self, report: Callable[[float], None], fits: int) -> None:
        self.report, self.fits, self.done = report, fits, 0

    def __call__(self, fraction: float) -> None:
        self.report(min((self.done + fraction) / self.fits, 1.0))
        self.done += fraction >= 1.0


def _whole_fit(settings: Adaptation | None, fits: int) -> Adaptation | None:
    """``settings`` for ``fits`` fits in a row, their progress spread over one report."""
    if settings is None or settings.progress is None or fits == 1:
        return settings
    return dataclasses.replace(settings, progress=_Spread(settings.progress, fits))
