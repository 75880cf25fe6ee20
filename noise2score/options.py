"""The weights options of the ``noise2score`` commands (``denoise``, ``evaluate``,
``results``): defined on a parser, and turned into the denoisers they ask for, second
views attached."""

from __future__ import annotations

import argparse
import functools
import sys

from noise2score.noise import check_read_noise
from noise2score.tiling import DEFAULT_BATCH, DEFAULT_TILE

ADAPT_STEPS = 120  # --adapt alone: the steps measured in benchmarks/RECIPES.md


def add_device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="auto",
        help="where the network runs: auto (a CUDA GPU where there is one, default), cpu, cuda, cuda:N",
    )


def add_weights_options(p: argparse.ArgumentParser) -> None:
    add_device_option(p)
    p.add_argument(
        "--no-clip-inverse",
        action="store_true",
        help="Gaussian: keep the estimate of an image clipped at black or white (an 8-bit file) "
        "as it is (default: mapped through the exact unbiased inverse of clipping)",
    )
    p.add_argument("--tile", type=int, default=DEFAULT_TILE, help="tile side in pixels; 0 = whole image")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="tiles per forward pass")
    p.add_argument(
        "--bf16",
        action="store_true",
        help="bfloat16 autocast: about 2x faster on GPUs and CPUs with native bfloat16 (AVX512-BF16, AMX), "
        "several times slower on others (a note says so)",
    )
    p.add_argument(
        "--ensemble",
        action="store_true",
        help="average the score over 8 rotations/mirrorings (8x slower; +0.08-0.17 dB on the test sets)",
    )
    p.add_argument(
        "--adapt",
        nargs="?",
        type=int,
        const=ADAPT_STEPS,
        default=0,
        metavar="STEPS",
        help=f"fit a copy of the network (and of each second view's) to each image first: STEPS "
        f"AR-DAE steps on its own crops (default {ADAPT_STEPS}; minutes per image on a CPU; "
        "+0.08-0.18 dB on the test sets)",
    )
    p.add_argument(
        "--adapt-lr",
        type=float,
        default=None,
        metavar="RATE",
        help="Adam rate of --adapt (default: set from the weights' AR-DAE perturbation against "
        "the noise: 3e-5 for gaussian25 weights, 1e-4 for most others)",
    )
    p.add_argument(
        "--vst",
        nargs="?",
        const="auto",
        metavar="GAUSSIAN_WEIGHTS",
        help="Poisson/Gamma: also denoise through a variance-stabilising transform (Anscombe, "
        "log) with Gaussian weights (default: the bundled blind ones) and mix the two "
        "estimates: Poisson their mean (about 2x the time), Gamma the share SURE picks per "
        "image (about 4x); denoise does this unless --no-vst",
    )
    p.add_argument(
        "--opponent",
        nargs="?",
        const="auto",
        metavar="GRAY_WEIGHTS",
        help="colour Gaussian (also the colour --vst view): also denoise brightness and two "
        "colour differences, one at a time, with gray Gaussian weights (default: the bundled "
        "blind ones) and average the two estimates (about 4x the time; denoise does this "
        "unless --no-opponent)",
    )


@functools.cache
def note_slow_bf16(device: str) -> None:
    """Once per run: --bf16 where the device would emulate it."""
    from noise2score.tiling import bf16_native

    if not bf16_native(device):
        print(
            f"note: --bf16: this {device.upper()} has no native bfloat16, so it is emulated and slower"
            " than without --bf16 (8x on an AVX2-only CPU)",
            file=sys.stderr,
        )


def asked_denoiser(
    args: argparse.Namespace, name: str | None = None, *, vst: bool = True, adapt: bool = True
):
    """The weights ``name`` (default --weights) with the options asked for; ``adapt``
    False for the weights of a second view, which --adapt leaves as they are."""
    from noise2score.adapt import Adaptation
    from noise2score.denoiser import inference_device, load_denoiser

    device = inference_device(args.device)
    if args.bf16:
        note_slow_bf16(str(device))
    options = {
        "device": device,
        "tile": args.tile or None,
        "batch_size": args.batch_size,
        "bf16": args.bf16,
        "ensemble": args.ensemble,
        "adapt": Adaptation(steps=args.adapt, lr=args.adapt_lr) if args.adapt and adapt else None,
        "clip_inverse": not args.no_clip_inverse,
    }
    return load_denoiser(name or args.weights, vst=args.vst if vst else None, **options)


def bundled_chooser(args: argparse.Namespace, level: float | None):
    """For each image, the bundled weights of the noise family (--noise, Gaussian by
    default) for its channel count, trained at its level (given, or estimated without a
    network; too small to estimate: blind) where there are such weights, else the blind
    ones, as the demo picks. It returns the weights and the estimate, so that the level
    is estimated once."""
    from noise2score.denoiser import NEAR_LEVEL, choose_denoiser
    from noise2score.image_io import gray_stored_as_colour
    from noise2score.level import pca_level
    from noise2score.metrics import from_hwc
    from noise2score.weights import bundled_names

    family = args.noise or "gaussian"
    candidates = [
        d for d in (asked_denoiser(args, name, vst=False) for name in bundled_names()) if d.family == family
    ]
    if not candidates:
        raise ValueError(f"no bundled weights for {family} noise; pass --weights")
    attach_vst_view(args, candidates)
    attach_opponent_view(args, candidates, asked=False)

    def choose(pixels, read_noise=0.0):
        pixels = pixels[..., :1] if gray_stored_as_colour(pixels) else pixels  # gray weights for it
        near = level if level is not None else pca_level(family, from_hwc(pixels), read_noise)
        return choose_denoiser(candidates, pixels.shape[2], near, NEAR_LEVEL), near

    return choose


def denoise_vst(args: argparse.Namespace, family: str) -> str | None:
    """The stabilised view ``denoise`` adds: on by default for Poisson and Gamma noise
    (the bundled blind Gaussian weights), off with --no-vst; --vst asks for it."""
    if args.vst and args.no_vst:
        raise ValueError("give --vst or --no-vst, not both")
    if args.vst and family == "gaussian":
        hint = "" if args.weights else ": give --noise poisson|gamma"
        raise ValueError(f"--vst is for Poisson and Gamma noise{hint}")
    if args.no_vst or family == "gaussian":
        return None
    return args.vst or "auto"


def attach_vst_view(args: argparse.Namespace, denoisers: list) -> None:
    """Give ``denoisers`` the stabilised view ``args.vst`` asks for: one Gaussian
    denoiser per channel count (or the named weights), shared."""
    from noise2score.denoiser import vst_weights

    if not args.vst:
        return
    gaussians = {}
    for d in denoisers:
        name = vst_weights(d.channels) if args.vst == "auto" else args.vst
        if name not in gaussians:
            gaussians[name] = asked_denoiser(args, name, vst=False, adapt=False)
        d.with_vst(gaussians[name])


def denoise_opponent(args: argparse.Namespace) -> str | None:
    """The opponent-colour view ``denoise`` adds to colour Gaussian estimates: on by
    default (the bundled blind gray weights), off with --no-opponent."""
    if args.opponent and args.no_opponent:
        raise ValueError("give --opponent or --no-opponent, not both")
    return None if args.no_opponent else args.opponent or "auto"


def attach_opponent_view(args: argparse.Namespace, denoisers: list, *, asked: bool) -> None:
    """Give the colour Gaussian estimates of ``denoisers`` the opponent-colour view
    ``args.opponent`` asks for (one gray denoiser, shared); ``asked``: a denoiser
    without a colour Gaussian estimate is an error, not skipped."""
    from noise2score.denoiser import OPPONENT_WEIGHTS, attach_opponent, colour_gaussian

    if not args.opponent:
        return
    without = [d for d in denoisers if colour_gaussian(d) is None]
    if without and asked:
        what = "colour Gaussian weights, or colour Poisson/Gamma ones with --vst"
        raise ValueError(f"--opponent is for {what}; {without[0].info.name or 'these'} are not")
    if len(without) < len(denoisers):  # the gray weights are loaded only where they are used
        gray = asked_denoiser(
            args, OPPONENT_WEIGHTS if args.opponent == "auto" else args.opponent, vst=False, adapt=False
        )
        for d in denoisers:
            attach_opponent(d, gray)


def check_noise(args: argparse.Namespace, family: str) -> None:
    if args.noise and args.noise != family:
        raise ValueError(f"the weights are for {family} noise, not {args.noise}")


def check_read_noise_option(read_noise: float, family: str) -> None:
    check_read_noise(read_noise, family, name="--read-noise", hint=": give --noise poisson")
