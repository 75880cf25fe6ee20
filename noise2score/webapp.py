"""The web demo's requests: the served models, and one upload denoised over the same
:class:`Denoiser` path as the command line. The page itself is :mod:`noise2score.demo_ui`."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np
import torch

from noise2score.adapt import Adaptation
from noise2score.denoise_files import COLOUR_WEIGHTS_ON_GRAY, output_dtype
from noise2score.denoiser import (
    NEAR_LEVEL,
    OPPONENT_WEIGHTS,
    Denoiser,
    attach_opponent,
    choose_denoiser,
    inference_device,
    load_denoiser,
    vst_weights,
)
from noise2score.image_io import (
    ImageError,
    gray_stored_as_colour,
    read_image,
    write_image,
)
from noise2score.level import pca_level
from noise2score.metrics import from_hwc, psnr, ssim, to_hwc
from noise2score.model_card import hardware_summary
from noise2score.noise import make_noise, seeded_generator
from noise2score.tiling import DEFAULT_TILE, DIHEDRAL
from noise2score.weights import DEFAULT_WEIGHTS
from noise2score.white import (
    White,
    dtype_top,
    far_from_training,
    is_dim,
    unit_range,
    unit_spread,
)

AUTO = "auto (match the image)"
DEFAULT_LEVELS = {"gaussian": 25.0, "poisson": 0.01, "gamma": 100.0}
ENSEMBLE_COST = len(DIHEDRAL)  # forward passes of the self-ensemble; its images are bounded 8x smaller
MAX_ADAPT_STEPS = 240  # fitting to an upload, over all its networks: about 4 minutes on 2 CPU cores


class DemoModels:
    """Denoisers by name, loaded once at start-up. Poisson and Gamma models get the
    stabilised Gaussian view (``vst``) of the served blind Gaussian weights of their
    channel count, and colour Gaussian estimates the opponent-colour view of the served
    blind gray weights, where those are served."""

    def __init__(self, names: list[str], *, tile: int = DEFAULT_TILE, device: str = "cpu") -> None:
        self.denoisers: dict[str, Denoiser] = {}
        for name in names:
            denoiser = load_denoiser(name, tile=tile, device=inference_device(device))
            self.denoisers[denoiser.info.name or name] = denoiser
        for denoiser in self.denoisers.values():
            gaussian = self.denoisers.get(vst_weights(denoiser.channels))
            if denoiser.family != "gaussian" and gaussian is not None:
                denoiser.with_vst(gaussian)
        gray = self.denoisers.get(OPPONENT_WEIGHTS)
        for denoiser in self.denoisers.values() if gray else ():
            attach_opponent(denoiser, gray)

    @property
    def names(self) -> list[str]:
        return list(self.denoisers)

    def for_image(
        self, channels: int, family: str | None = None, level: float | None = None, tolerance: float = 0.0
    ) -> Denoiser:
        """The served model that fits: same channel count (and family, when given);
        weights trained at ``level`` (within ``tolerance``, relative) when there are
        some, else blind weights; Gaussian weights when the family is not given."""
        candidates = [d for d in self.denoisers.values() if family in (None, d.family)]
        if not candidates:
            raise ImageError(
                f"no served model is for {family} noise; this demo serves {', '.join(self.names)}"
            )
        return choose_denoiser(candidates, channels, level, tolerance)

    def get(self, name: str | None) -> Denoiser:
        if not name:
            return self.denoisers.get(DEFAULT_WEIGHTS) or next(iter(self.denoisers.values()))
        if name not in self.denoisers:
            raise ImageError(f"unknown model {name!r}; this demo serves {', '.join(self.names)}")
        return self.denoisers[name]

    def card_and_levels(self, name: str | None) -> tuple[str, float, float]:
        """The card and the model's level, for the level and synthetic-level boxes
        (paper units differ by family)."""
        level = self.get(None if name == AUTO else name).info.level
        return self.card(name), level, level

    def card(self, name: str | None) -> str:
        """A short model card: what the weights are, what they saw, how they score."""
        if not name or name == AUTO:  # one line per model; pick one for its card
            lines = [f"- {self._summary(n)}" for n in self.names]
            return "\n".join(["Picks the model that fits the image (gray or colour), from:", "", *lines])
        d = self.get(name)
        card = d.info.card
        lines = [self._summary(name)]
        if card.get("trained_on"):
            lines.append(f"- trained on {card['trained_on']}")
        training = card.get("training", {})
        if training.get("steps"):  # all stages where the card has them
            steps = training.get("total_steps", training["steps"])
            hours = training.get("total_wall_time_s", training.get("wall_time_s", 0)) / 3600
            lines.append(f"- {steps} steps, {hours:.1f} h on {hardware_summary(card)}")
        for row in card.get("evaluation", []):
            paper = f" (paper {row['paper']})" if row.get("paper") else ""
            score = f"PSNR {row['psnr']:.2f} dB{paper}, SSIM {row['ssim']:.3f}"
            lines.append(f"- {row['dataset']}, {row['noise']}: {score}")
        if card.get("reproduce"):
            lines.append(f"- trained again from scratch, from the repository root: `{card['reproduce']}`")
        return "\n".join(lines)

    def _summary(self, name: str) -> str:
        d = self.get(name)
        kind = "colour" if d.channels == 3 else "gray"
        if d.info.blind:
            low, high = d.info.levels
            level = f"any level in {low:g}-{high:g} (blind; the level is estimated)"
        else:
            level = f"level {d.info.level:g}"
        return f"**{d.info.name}**: {d.family} noise, {level}, {kind} images."


def _display(pixels: np.ndarray) -> np.ndarray:
    """(H, W, C) float -> 8-bit array the browser can show."""
    out = np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)
    return out[:, :, 0] if out.shape[2] == 1 else out


def sample_images(folder: Path) -> list[Path]:
    """scikit-image sample photos written as PNG, for visitors without an image."""
    from skimage import data

    samples = {"camera.png": data.camera(), "astronaut.png": data.astronaut(), "coffee.png": data.coffee()}
    paths = []
    for name, image in samples.items():
        path = folder / name
        if not path.exists():
            write_image(path, image.astype(np.float32).reshape(*image.shape[:2], -1) / 255)
        paths.append(path)
    return paths


def _match_channels(pixels: np.ndarray, channels: int, synthetic: bool) -> np.ndarray:
    """Bundled colour samples may be shown to a gray model: convert clean inputs only."""
    if pixels.shape[2] == channels or not synthetic:
        return pixels
    if channels == 1:
        return (pixels @ np.array([0.2989, 0.5870, 0.1140], np.float32))[:, :, None]
    return np.repeat(pixels, 3, axis=2)


def run(
    models: DemoModels,
    max_pixels: int,
    image,
    model=None,
    noise=None,
    level=None,
    add_noise: bool = False,
    noise_level=None,
    seed: int = 0,
    ensemble: bool = False,
    white: White = None,
    black: float = 0.0,
    vst: bool = True,
    read_noise: float = 0.0,
    opponent: bool = True,
    adapt_steps: float = 0,
    max_adapt_steps: int = MAX_ADAPT_STEPS,
    progress=None,
) -> tuple:
    """Denoise one upload; returns (result path, slider pair, info markdown, downloads).
    ``white`` (file units, or "auto") and ``black`` are shown as white and black and
    taken as 1 and 0 by the weights. ``vst``: Poisson and Gamma models also take the
    stabilised Gaussian view where the demo serves its weights. ``read_noise``: Poisson
    models, a camera's Gaussian read noise (file units; added too with synthetic noise).
    ``opponent``: colour Gaussian estimates also take the opponent-colour view where the
    demo serves its weights and the image is within the bound on work. ``adapt_steps``:
    fit a copy of the network to the image first (0 = no; up to ``max_adapt_steps``),
    calling ``progress(fraction)`` as it goes."""
    if image is None:
        raise ImageError("upload an image or pick an example first")
    adaptation = _adaptation(adapt_steps, max_adapt_steps, progress)
    loaded = read_image(image, max_pixels=max_pixels)
    offset, scale = map(np.float32, unit_range(loaded.pixels, loaded.source_dtype, white, black))
    bound = max_pixels // ENSEMBLE_COST
    if ensemble and loaded.pixels.shape[0] * loaded.pixels.shape[1] > bound:
        raise ImageError(f"the self-ensemble does {ENSEMBLE_COST}x the work: images up to {bound} pixels")
    gray_rgb = gray_stored_as_colour(loaded.pixels)  # denoised as gray by gray weights
    channels = 1 if gray_rgb else loaded.channels
    denoiser = _asked_model(models, model, noise, level, channels, read_noise=bool(read_noise))
    read = unit_spread(read_noise, loaded.source_dtype, scale)
    pixels = (loaded.pixels - offset) / scale
    pixels = pixels[..., :1] if gray_rgb and denoiser.channels == 1 else pixels
    pixels = _match_channels(pixels, denoiser.channels, add_noise)
    clean = None
    y = from_hwc(pixels)
    if add_noise:
        clean = pixels
        synthetic = make_noise(denoiser.family, noise_level or DEFAULT_LEVELS[denoiser.family])
        generator = seeded_generator(int(seed or 0), "demo")
        y = synthetic.sample(y, generator=generator)
        if read:
            y = y + read * torch.randn(y.shape, generator=generator)
    estimated = level is None
    if level is not None:
        make_noise(denoiser.family, float(level))  # range check with a clear message
    elif not model or model == AUTO:  # estimate first, then prefer weights trained near it
        level = pca_level(denoiser.family, y, read)
        if level is not None:
            denoiser = models.for_image(denoiser.channels, denoiser.family, level, NEAR_LEVEL)
    area = pixels.shape[0] * pixels.shape[1]
    denoiser, left_out, asked = _within_work(
        denoiser, area, max_pixels, ensemble=ensemble, vst=vst, opponent=opponent
    )
    if adaptation and adaptation.steps * denoiser.fits() > max_adapt_steps:
        fits = denoiser.fits()
        raise ImageError(
            f"fitting {fits} networks (the weights and their second views) takes {fits}x the steps: "
            f"up to {max_adapt_steps // fits} steps with these views on this server"
        )
    denoiser.adapt = adaptation  # a per-request copy: the served one stays as it was
    result = denoiser.denoise_tensor(y, None if level is None else float(level), read_noise=read)
    x_hat, noisy = to_hwc(result.x_hat), to_hwc(y)
    info = [
        f"**{denoiser.family} level {'estimated' if estimated else 'given'}: {result.level:.4g}**",
        f"model {denoiser.info.name}{_view(denoiser, result.view_share)}"
        f"{' (self-ensemble x8)' if ensemble else ''}"
        f"{'' if result.fit_skipped else _fitting(adaptation, denoiser.fits())}, "
        f"{result.seconds:.2f} s for {pixels.shape[1]}x{pixels.shape[0]} pixels",
    ]
    info += _left_out_note(left_out, asked, max_pixels)
    if read_noise:
        info.append(f"read noise {read_noise:g} (file units) taken into account")
    info += _result_notes(denoiser, result, gray_rgb=gray_rgb and not add_noise)
    info += _levels_note(loaded, offset, scale, stretched=white is not None or bool(black))
    if clean is not None:
        info.append(
            f"noisy: PSNR {psnr(noisy, clean):.2f} dB, SSIM {ssim(noisy, clean):.3f}  \n"
            f"denoised: PSNR {psnr(x_hat, clean):.2f} dB, SSIM {ssim(x_hat, clean):.3f}"
        )
    downloads = _save(Path(str(image)).stem, x_hat * scale + offset, loaded, restore_rgb=not add_noise)
    shown = str(downloads[0]) if loaded.source_dtype.itemsize == 1 else _display(x_hat)
    return shown, (_display(noisy), _display(x_hat)), "\n\n".join(info), [str(p) for p in downloads]


def _asked_model(
    models: DemoModels, model: str | None, noise: str | None, level, channels: int, *, read_noise: bool
) -> Denoiser:
    """The served denoiser a request names, or for ``auto`` the one the demo picks for
    the image's channels, family and level (given: before any estimate)."""
    if model and model != AUTO:
        denoiser = models.get(model)
    else:
        denoiser = models.for_image(channels, noise or None, None if level is None else float(level))
    if noise and noise != denoiser.family:
        raise ImageError(f"model {denoiser.info.name} is for {denoiser.family} noise, not {noise}")
    if read_noise and denoiser.family != "poisson":
        raise ImageError(f"read noise is for Poisson noise; pick a Poisson model, not {denoiser.info.name}")
    return denoiser


def _left_out_note(left_out: list[str], asked: int, max_pixels: int) -> list[str]:
    if not left_out:
        return []
    views = f"{' and '.join(left_out)} view{'s were' if len(left_out) > 1 else ' was'}"
    return [
        f"The {views} left out: with {'them' if len(left_out) > 1 else 'it'} this request does "
        f"{asked}x the work of the weights alone, for images up to {max_pixels // asked} pixels."
    ]


def _result_notes(denoiser: Denoiser, result, *, gray_rgb: bool) -> list[str]:
    """What the user should know about the estimate: clipping, a fit left out, gray
    stored as RGB (an upload's, not synthetic noise's), a level far from training."""
    notes = []
    if result.clipped:
        notes.append("The noise is clipped at black or white (an 8-bit file): the estimate was mapped back.")
    if result.fit_skipped:
        notes.append("Not fitted to the image: fitting to noise clipped at black or white does harm.")
    if gray_rgb:
        notes.append(
            "A gray image stored as RGB (three equal channels): denoised as gray."
            if denoiser.channels == 1
            else f"Warning: {COLOUR_WEIGHTS_ON_GRAY}; pick 'auto' or a gray model."
        )
    warning = far_from_training(denoiser.info, result.level)
    if warning:
        notes.append(f"Warning: {warning}.")
    return notes


def _save(stem: str, saved: np.ndarray, loaded, *, restore_rgb: bool) -> list[Path]:
    """The estimate ``saved`` (in the file's units) written for download to a fresh
    folder: a PNG of the upload's bit depth, and a 16-bit TIFF beside it for deeper
    uploads. ``restore_rgb``: a gray image stored as RGB, denoised as gray, is RGB again."""
    out_dir = Path(tempfile.mkdtemp(prefix="n2s-"))
    if saved.shape[2] < loaded.channels and restore_rgb:
        saved = np.repeat(saved, loaded.channels, axis=2)
    downloads = [
        write_image(out_dir / f"{stem}-denoised.png", saved, dtype=output_dtype(loaded.source_dtype, ".png"))
    ]
    if loaded.source_dtype.itemsize > 1:
        downloads.append(write_image(out_dir / f"{stem}-denoised.tif", saved, dtype=np.uint16))
    return downloads


def _levels_note(loaded, offset: float, scale: float, *, stretched: bool) -> list[str]:
    """The black and white levels taken, in file units, where asked for; else a hint
    where the image is dim."""
    if stretched:
        top = dtype_top(loaded.source_dtype)
        dark = f"black level {offset * top:.4g}, " if offset else ""
        return [f"{dark}white level {(offset + scale) * top:.4g} (file units)"]
    if is_dim(loaded.pixels, loaded.source_dtype):
        return [
            "The image is dim (its bright end is under a quarter of its range): for photon counts "
            "or 12-bit data in 16-bit files, tick 'Stretch' (under 'Camera data')."
        ]
    return []


def _fitting(adaptation: Adaptation | None, fits: int) -> str:
    if adaptation is None:
        return ""
    each = f" for each of {fits} networks" if fits > 1 else ""
    return f", fitted to the image first ({adaptation.steps} steps{each})"


def _adaptation(steps, bound: int, progress) -> Adaptation | None:
    """The request's fit to the image (None for 0 steps), within the server's bound."""
    steps = float(steps or 0)
    if not 0 <= steps <= bound or not steps.is_integer():
        raise ImageError(f"fitting to the image takes a whole number of steps, 0 to {bound} on this server")
    return Adaptation(steps=int(steps), progress=progress) if steps else None


def _within_work(
    served: Denoiser, area: int, max_pixels: int, *, ensemble: bool, vst: bool, opponent: bool
) -> tuple[Denoiser, list[str], int]:
    """The request's denoiser (:func:`_for_request`) within the bound on work: second
    views are left out, the opponent-colour one first, while ``area`` pixels times its
    network passes (:meth:`Denoiser.work`) pass ``max_pixels``. Returns it, the views
    left out and the passes asked for."""
    denoiser = _for_request(served, ensemble=ensemble, vst=vst, opponent=opponent)
    asked, left_out = denoiser.work(), []
    for view, keep_vst in (("opponent-colour", vst), ("stabilised", False)):
        if area * denoiser.work() <= max_pixels:
            break
        fewer = _for_request(served, ensemble=ensemble, vst=keep_vst, opponent=False)
        if fewer.work() < denoiser.work():
            denoiser = fewer
            left_out.append(view)
    return denoiser, left_out, asked


def _for_request(served: Denoiser, *, ensemble: bool, vst: bool, opponent: bool) -> Denoiser:
    """A per-request copy of ``served`` (served ones are shared) with the request's
    self-ensemble (over every view) and second views."""
    denoiser = copy.copy(served)
    denoiser.ensemble = ensemble
    second = served.vst if vst else None
    denoiser.with_vst(second and _for_request(second, ensemble=ensemble, vst=vst, opponent=opponent))
    gray = served.opponent if opponent else None
    denoiser.with_opponent(gray and _for_request(gray, ensemble=ensemble, vst=vst, opponent=opponent))
    return denoiser


def _view(denoiser: Denoiser, share: float | None = None) -> str:
    text = f" with {denoiser.vst.info.name} through a stabilising transform" if denoiser.vst else ""
    if denoiser.vst and denoiser.family == "gamma" and share is not None:
        text += f" (its share {share:g}, picked by SURE)"
    if denoiser.gray_view:
        text += f"{' and' if text else ' with'} {denoiser.gray_view.info.name} on opponent colours"
    return text


def user_message(err: Exception, image) -> str:
    """The error without the server's temporary folder in it."""
    text = str(err)
    return text.replace(f"{Path(str(image)).parent}/", "") if image else text
