"""The ``noise2score`` command: make-noisy, data, evaluate, denoise, weights, results,
export, reproduce."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from noise2score import __version__
from noise2score.datasets import DataError
from noise2score.image_io import ImageError
from noise2score.level import ESTIMATORS
from noise2score.noise import NOISE_MODELS, make_noise
from noise2score.options import (
    add_device_option,
    add_weights_options,
    asked_denoiser,
    attach_opponent_view,
    attach_vst_view,
    bundled_chooser,
    check_noise,
    check_read_noise_option,
    denoise_opponent,
    denoise_vst,
)

FAMILIES = sorted(NOISE_MODELS)


def _make_noisy(args: argparse.Namespace) -> int:
    from noise2score.noisy_copy import make_noisy

    record = make_noisy(
        args.clean_dir,
        args.out_dir,
        make_noise(args.noise, args.level),
        seed=args.seed,
        overwrite=args.overwrite,
        gray=args.gray,
    )
    print(f"wrote noisy copies and {record}")
    return 0


def _data(args: argparse.Namespace) -> int:
    from noise2score import datasets

    if args.action == "list":
        print(f"data directory: {datasets.data_dir(args.data_dir)}")
        for name, split, count, state in datasets.status(args.data_dir):
            print(f"  {name:10s} {split:5s} {count:4d} images  {state}")
        return 0
    for name in args.names:
        folder = datasets.fetch(name, source=args.source, target=args.data_dir)
        print(f"{name}: verified in {folder}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from noise2score.evaluate import (
        EvalSpec,
        evaluate,
        markdown_table,
        read_partial,
        run_settings,
        save_partial,
    )
    from noise2score.image_io import make_folder
    from noise2score.white import parse_read_noise

    if (args.weights is None) == (args.method is None):
        raise ValueError("give exactly one of --weights and --method")
    auto = args.weights == "auto"
    if auto and args.level_method != "auto":
        raise ValueError("--weights auto estimates the level as denoise does; drop --level-method")
    denoiser = asked_denoiser(args) if args.weights and not auto else None
    if denoiser:
        attach_opponent_view(args, [denoiser], asked=True)
    family = args.noise or (denoiser.family if denoiser else None)
    if family is None or args.level is None:
        raise ValueError(
            "--method and --weights auto need --noise and --level; "
            "--weights needs --level (of the noise to add)"
        )
    if denoiser:
        check_noise(args, denoiser.family)
    read_noise = parse_read_noise(args.read_noise) / 255  # the sets are 8-bit: file units are /255
    check_read_noise_option(read_noise, family)
    noise = make_noise(family, args.level)
    spec = EvalSpec(args.dataset, noise, args.seed, args.limit, args.data_dir, read_noise, clip8=args.clip8)
    picker = bundled_chooser(args, None if args.estimate_level else args.level) if auto else None
    if args.json:  # before the run, not after it
        make_folder(Path(args.json).parent, "folder for --json")
    # A network run with --json saves each image's row beside it; started again, it goes on.
    partial = Path(args.json).with_suffix(".partial.json") if args.json and args.weights else None
    settings = run_settings(spec, denoiser, args.weights, args.estimate_level, args.level_method)
    done = read_partial(partial, settings) if partial else {}
    if done:
        print(f"resuming: {len(done)} image(s) measured before are in {partial}", file=sys.stderr)
    result = evaluate(
        spec,
        denoiser=denoiser,
        picker=picker,
        method=args.method,
        estimate_level=args.estimate_level,
        level_method=args.level_method,
        progress=lambda f: tqdm(f, desc=args.dataset),
        done=done,
        on_row=partial and (lambda rows: save_partial(partial, settings, rows)),
    )
    print(markdown_table(result))
    unfitted = sum(bool(row.get("fit_skipped")) for row in result["images"])
    if unfitted:  # --adapt leaves out images it would harm; the rows say which
        count = f"{unfitted} of {len(result['images'])} image(s)"
        print(f"note: --adapt did not fit {count}: clipped at black or white", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        if partial:
            partial.unlink(missing_ok=True)
    return 0


def _denoise(args: argparse.Namespace) -> int:
    from noise2score.denoise_files import denoise_files
    from noise2score.white import parse_black, parse_read_noise, parse_white

    black = parse_black(args.black)
    white = parse_white(args.white, black)
    read_noise = parse_read_noise(args.read_noise)
    level = None if args.level in (None, "auto") else float(args.level)
    denoiser = asked_denoiser(args, vst=False) if args.weights else None
    if denoiser:
        check_noise(args, denoiser.family)
    family = denoiser.family if denoiser else args.noise or "gaussian"
    check_read_noise_option(read_noise, family)
    args.vst = denoise_vst(args, family)
    asked = bool(args.opponent)
    args.opponent = denoise_opponent(args)
    if denoiser:
        attach_vst_view(args, [denoiser])
        attach_opponent_view(args, [denoiser], asked=asked)
    if level is not None:  # validates the range
        make_noise(family, level)
    chosen = denoiser or bundled_chooser(args, level)
    failures = denoise_files(
        chosen,
        args.inputs,
        Path(args.output),
        level=level,
        fmt=args.format,
        overwrite=args.overwrite,
        white=white,
        black=black,
        read_noise=read_noise,
    )
    return 1 if failures else 0


def _weights(args: argparse.Namespace) -> int:
    from noise2score.weights import bundled_names, load_weights

    for name in bundled_names():
        _, info = load_weights(name)
        headline = info.card.get("headline", "")
        level = f"levels {info.levels[0]:g}-{info.levels[1]:g}" if info.blind else f"level {info.level:g}"
        level += " (told)" if info.level_input else ""
        per_channel = " (each, in context)" if info.context else " (each alone)" if info.per_channel else ""
        channels = f"{info.channels}ch{per_channel}"
        print(f"{name:24s} {info.family:9s} {level:23s} {channels:22s} {headline}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from noise2score.model_card import make_card, write_card
    from noise2score.weights import export_weights, refuse_existing

    name = args.name or Path(args.out).stem
    refuse_existing(args.out, args.replace)  # before the checkpoint is read
    # First: with --replace, the card of the weights being replaced may be this stage's start.
    card = make_card(args.checkpoint, args.out, name=name, config=args.config, source=args.source)
    out = export_weights(args.checkpoint, args.out, name=name, source=args.source, replace=args.replace)
    print(f"wrote {out} and {write_card(card, out)}")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    import shlex

    from noise2score.datasets import ENV_VAR
    from noise2score.model_card import card_of
    from noise2score.reproduce import DATASETS, bf16_stages, comparisons, plan, run
    from noise2score.training import slow_bf16_note
    from noise2score.weights import resolve

    card = card_of(args.weights)
    if not card:
        raise FileNotFoundError(
            f"{args.weights}: no model card (a bundled name, or .safetensors with its .json)"
        )
    if not Path("configs").is_dir():
        raise FileNotFoundError(
            "configs/ not found: run from the repository root, where the cards' configs are"
        )
    datasets = args.data_dir or os.environ.get(ENV_VAR) or DATASETS
    out = Path(args.out or f"runs/reproduce/{card['name']}")
    if out.resolve() in resolve(args.weights).resolve().parents:  # a card made by reproduce
        raise ValueError(
            f"{args.weights} lies in {out}, where reproduce would write: give --out another folder"
        )
    steps = plan(card, out, datasets=datasets, precision=args.precision)
    training = card["training"]
    stages = sum(step.what == "train" for step in steps)
    hours = training.get("total_wall_time_s", 0) / 3600
    print(f"{card['name']}: {stages} stages, {training.get('total_steps')} steps; they took {hours:.1f} h")
    slow = [] if args.precision else bf16_stages(card)
    if slow and slow_bf16_note("bf16-mixed"):
        print(
            f"note: {len(slow)} of the stages train in bfloat16, which this CPU emulates (about 12x "
            "slower); --precision 32-true runs them in fp32 instead (the new card records it)",
            file=sys.stderr,
        )
    if args.dry_run:
        for step in steps:
            print(shlex.join(step.argv))
        return 0
    try:
        run(steps, log=lambda line: print(line, flush=True))
    except RuntimeError as err:
        print(f"noise2score reproduce: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {out / card['name']}.safetensors (and its card); to compare it with the card's results:")
    for line in comparisons(card, out / f"{card['name']}.safetensors", args.data_dir):
        print("  " + line)
    return 0


def _results(args: argparse.Namespace) -> int:
    from noise2score.denoiser import inference_device
    from noise2score.results import BASELINES, write_results
    from noise2score.stored_runs import RUNS_DIR

    baselines = tuple(args.baselines.split(",")) if args.baselines else BASELINES
    color = tuple(args.color_baselines.split(",")) if args.color_baselines else None
    cached = tuple(args.only_cached.split(",")) if args.only_cached else ()
    options = {
        "seed": args.seed,
        "baselines": baselines,
        "color_baselines": color,
        "only_cached": cached,
        "views": args.views,
        "device": inference_device(args.device),
    }
    written = write_results(
        args.out, args.data_dir, keep_unchanged=args.keep_unchanged, runs_dir=args.runs or RUNS_DIR, **options
    )
    print(written)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="noise2score", description="Noise2Score denoising")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("make-noisy", help="write one seeded noisy draw of each clean image")
    p.add_argument("clean_dir")
    p.add_argument("out_dir")
    p.add_argument("--noise", required=True, choices=FAMILIES)
    p.add_argument("--level", required=True, type=float, help="sigma (/255), zeta or k")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace existing noisy files")
    p.add_argument("--gray", action="store_true", help="make colour images gray first (BT.601 luma)")
    p.set_defaults(run=_make_noisy)

    p = commands.add_parser("data", help="benchmark datasets: list, fetch")
    p.add_argument("action", choices=["list", "fetch"])
    p.add_argument("names", nargs="*", help="datasets to fetch")
    p.add_argument("--from", dest="source", help="copy from this local folder instead of downloading")
    p.add_argument("--data-dir", help="data directory (default $NOISE2SCORE_DATA or ./data)")
    p.set_defaults(run=_data)

    p = commands.add_parser("evaluate", help="PSNR/SSIM table on a benchmark set")
    p.add_argument(
        "--weights",
        help="bundled weight name or a .safetensors/.ckpt path; auto: for each image the bundled "
        "weights denoise picks without --weights (views only as asked: --vst, --opponent)",
    )
    p.add_argument("--method", choices=["noisy", "bm3d", "nl_means", "nl_means_calibrated", "wavelet"])
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-dir")
    p.add_argument("--noise", choices=FAMILIES)
    p.add_argument("--level", type=float, help="paper units: sigma (/255), zeta or k")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="first N images only")
    p.add_argument("--estimate-level", action="store_true", help="hide the level from the denoiser")
    p.add_argument("--level-method", default="auto", choices=ESTIMATORS)
    p.add_argument(
        "--read-noise",
        help="Poisson: also add Gaussian noise of this standard deviation (/255, as sigma), a "
        "camera's read noise; the network is told it, as denoise --read-noise",
    )
    p.add_argument(
        "--clip8",
        action="store_true",
        help="store the noisy inputs as an 8-bit file would: clipped to black and white, rounded",
    )
    p.add_argument(
        "--json",
        help="write the full result here; with --weights, each image's row is also saved to "
        "JSON.partial.json as it is measured, and a stopped run started again goes on from there",
    )
    add_weights_options(p)
    p.set_defaults(run=_evaluate)

    p = commands.add_parser("denoise", help="denoise image files")
    p.add_argument("inputs", nargs="+", help="files, folders or glob patterns (a TIFF stack page by page)")
    p.add_argument("--output", "-o", required=True, help="output folder")
    p.add_argument(
        "--weights",
        help="bundled weight name or a .safetensors/.ckpt path (default: the bundled weights "
        "that fit each image: its channels, the noise family, the level given or estimated)",
    )
    p.add_argument("--noise", choices=FAMILIES, help="noise family (default gaussian); must match --weights")
    p.add_argument("--level", default=None, help="noise level in paper units, or 'auto' (default)")
    p.add_argument("--format", choices=["png", "tif", "jpg"], help="output format (default: as input)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (never inputs)")
    p.add_argument(
        "--white",
        help="input value taken as 1 (file units, e.g. 4095 for 12-bit data), or 'auto' "
        "(each image's 99.9th percentile); for dim data such as photon counts. The level "
        "is that of the scaled image (photon counts: Poisson level 1/(WHITE - BLACK))",
    )
    p.add_argument("--black", help="input value taken as 0 (file units: a camera's offset; default 0)")
    p.add_argument(
        "--read-noise",
        help="Poisson: standard deviation of the Gaussian noise a camera adds to the photon "
        "noise (file units, as --black; default 0)",
    )
    add_weights_options(p)
    p.add_argument(
        "--no-vst",
        action="store_true",
        help="Poisson/Gamma: the weights' own estimate alone (default: mixed with the "
        "stabilised view of --vst, which costs 2x the time, 4x for Gamma)",
    )
    p.add_argument(
        "--no-opponent",
        action="store_true",
        help="colour Gaussian: the colour estimate alone (default: averaged with the "
        "opponent-colour view of --opponent, which costs 4x the time)",
    )
    p.set_defaults(run=_denoise)

    p = commands.add_parser("weights", help="list bundled weights")
    p.set_defaults(run=_weights)

    p = commands.add_parser("results", help="regenerate RESULTS.md for the bundled weights")
    p.add_argument("--out", default="RESULTS.md")
    p.add_argument("--data-dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--baselines", help="comma-separated subset of baselines")
    p.add_argument("--color-baselines", help="subset for colour sets (default: as --baselines)")
    p.add_argument(
        "--only-cached",
        help="baselines taken from the cache only; a set not all there is left out of its row (e.g. bm3d)",
    )
    p.add_argument(
        "--keep-unchanged",
        action="store_true",
        help="reuse our rows of the last RESULTS.json whose weights file and inputs are unchanged",
    )
    p.add_argument(
        "--views",
        action="store_true",
        help="also measure the weights with the second views denoise adds by default: the "
        "stabilised view of Poisson/Gamma (2x/4x their time), the opponent-colour view of colour "
        "Gaussian estimates (4x)",
    )
    p.add_argument(
        "--runs",
        help="folder of stored 'evaluate --json' results; those that measure today's weights with "
        "--ensemble or --adapt make RESULTS.md's second table (default: benchmarks/results)",
    )
    add_device_option(p)
    p.set_defaults(run=_results)

    p = commands.add_parser(
        "reproduce", help="train weights again from scratch, every stage their card records"
    )
    p.add_argument(
        "weights", help="bundled weight name, or a .safetensors file with its card (.json) beside it"
    )
    p.add_argument("--out", help="folder for the runs and the weights (default runs/reproduce/NAME)")
    p.add_argument("--data-dir", help="the clean sets (default $NOISE2SCORE_DATA, else ../shared/datasets)")
    p.add_argument(
        "--precision",
        choices=("32-true", "bf16-mixed"),
        help="train every stage in this precision instead of its config's (a deviation the new card "
        "records); 32-true where bfloat16 would be emulated",
    )
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.set_defaults(run=_reproduce)

    p = commands.add_parser("export", help="Lightning checkpoint -> self-describing .safetensors")
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument("--name", default="")
    p.add_argument(
        "--config",
        action="append",
        help="the config the run was trained with (recorded in the card); repeat for stages, in order",
    )
    p.add_argument(
        "--source",
        default="ema",
        choices=["ema", "network"],
        help="export the weight average (default) or the last trained weights",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="replace OUT and its card if they exist, e.g. the bundled weights a stage continued "
        "(their card is read for the new card's history first)",
    )
    p.set_defaults(run=_export)
    # Listed here for --help; main hands their arguments to train.py's and app.py's parsers.
    commands.add_parser(
        "train", add_help=False, help="train a score network, as python train.py (noise2score train --help)"
    )
    commands.add_parser(
        "demo", add_help=False, help="serve the web demo, as python app.py (noise2score demo --help)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:  # LightningCLI, as train.py
        from noise2score.training import run

        return run(argv[1:], prog="noise2score train")
    if argv[:1] == ["demo"]:  # the web demo takes app.py's options
        from noise2score.demo import main as demo

        return demo(argv[1:], prog="noise2score demo")
    args = build_parser().parse_args(argv)
    warnings.simplefilter("ignore")
    try:
        code = args.run(args)
        sys.stdout.flush()  # inside the try: a reader gone early is caught here, not at exit
        return code
    except (ImageError, DataError, ValueError, FileNotFoundError, FileExistsError, ImportError) as err:
        print(f"noise2score {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left early (``| head``): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
        return 141


if __name__ == "__main__":
    sys.exit(main())
