"""RESULTS.md's second table: the test-time options (``--ensemble``, ``--adapt``) as
measured by ``noise2score evaluate --json`` runs kept in ``benchmarks/results``.

They cost 8x (ensemble) to minutes per image (adapt), too much to run for every row on
each ``noise2score results``; the stored runs are read instead, and only those that
measure today's bundled files: a full set, the weights and their views' weights
unchanged (by hash), the same views' mix and fit revisions, and the same package version.
"""

from __future__ import annotations

import json
from pathlib import Path

from noise2score import __version__, adapt, patch_level
from noise2score.datasets import sha256_file
from noise2score.noise import make_noise
from noise2score.vst import MIX_REVISION
from noise2score.weights import BUNDLED_DIR, bundled_names

RUNS_DIR = Path("benchmarks/results")


def stored_runs(directory: str | Path, seed: int = 0) -> list[dict]:
    """The full-set ``evaluate`` results in ``directory`` that measure a bundled weight
    with ``--ensemble`` or ``--adapt`` and still hold for the files shipped today."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    hashes = {name: sha256_file(BUNDLED_DIR / f"{name}.safetensors") for name in bundled_names()}
    runs = []
    for path in sorted(directory.glob("*.json")):
        try:
            run = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(run, dict) and _current(run, hashes, seed):
            runs.append(run | {"file": path.name})
    return runs


def _current(run: dict, hashes: dict[str, str], seed: int) -> bool:
    """Whether ``run`` is a full-set, test-time-option run of today's bundled files
    (``hashes``: their SHA-256 by name)."""
    if run.get("method") != "noise2score" or run.get("weights") not in hashes:
        return False
    if run.get("limit") is not None or run.get("read_noise") or run.get("clip8") or run.get("seed") != seed:
        return False
    if not (run.get("ensemble") or run.get("adapt")):
        return False
    if run.get("versions", {}).get("noise2score") != __version__:
        return False
    if run.get("weights_sha256") != hashes[run["weights"]]:
        return False
    for view in ("vst", "opponent"):
        if run.get(view) and run.get(f"{view}_sha256") != hashes.get(run[view]):
            return False
    if run.get("vst") and run.get("vst_mix_revision") != MIX_REVISION[run["noise"]]:
        return False
    estimator = patch_level.REVISION[run["noise"]]
    if run.get("estimate_level") and run.get("level_estimator_revision") != estimator:
        return False
    fit = run.get("adapt")
    if fit and fit.get("lr") is None and fit.get("rate_rule") != [adapt.RATE_PER_RATIO, adapt.MAX_RATE]:
        return False  # the rate was set by another rule than today's
    # before revision 2 a fit left the views' weights as trained; runs without views are alike
    return not fit or fit.get("revision", 1) == adapt.REVISION or not (run.get("vst") or run.get("opponent"))


def options(run: dict) -> str:
    """The ``evaluate`` flags a stored run adds to the plain weights."""
    flags = [f"--{view}" for view in ("vst", "opponent") if run.get(view)]
    flags += ["--ensemble"] if run.get("ensemble") else []
    flags += [f"--adapt {run['adapt']['steps']}"] if run.get("adapt") else []
    return " ".join(flags + _given_rate(run))


def _given_rate(run: dict) -> list[str]:
    """``--adapt-lr`` where the run's fit had its rate given: all runs made before the
    rate was set from the perturbation recorded 3e-5, which is no longer the default."""
    rate = (run.get("adapt") or {}).get("lr")
    return [] if rate is None else ["--adapt-lr", f"{rate:g}"]


def noise_label(noise, estimated: bool) -> str:
    """A noise as RESULTS.md's tables write it."""
    return str(noise) + (", level estimated" if estimated else "")


def _run_noise(run: dict) -> str:
    return noise_label(make_noise(run["noise"], run["level"]), bool(run.get("estimate_level")))


def command(run: dict, directory: str | Path = RUNS_DIR) -> str:
    """The run's command as recorded, less the machine's data folder and device, writing
    to the file it is kept in; empty where none was recorded."""
    words, kept = (run.get("command") or "").split(), []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in ("--data-dir", "--device", "--json"):
            skip = True
        else:
            kept.append(word)
    if kept and "--adapt-lr" not in kept:
        kept += _given_rate(run)
    return " ".join([*kept, "--json", f"{Path(directory).as_posix()}/{run['file']}"]) if kept else ""


def render(runs: list[dict], rows: list[dict], directory: str | Path = RUNS_DIR) -> list[str]:
    """The lines of RESULTS.md's test-time options table; ``rows``: the main table's,
    for the same weights' plain number, the paper's and BM3D's on the same inputs;
    ``directory``: where the runs are kept."""
    if not runs:
        return []
    runs = sorted(runs, key=lambda r: (r["weights"], r["dataset"], r["level"], options(r)))
    main = {(r["weights"], r["dataset"], r["noise"]): r for r in rows}
    out = [
        "## With the test-time options",
        "",
        f"Full-set runs of `noise2score evaluate --json` kept in `{Path(directory).as_posix()}`, read",
        "back only while they measure today's weights files (README, Denoise: `--ensemble`",
        "averages the score over the 8 rotations and mirrorings, `--adapt N` fits the networks",
        "to each image for N steps first). `ours` and `bm3d`: the main table's numbers on the",
        "same inputs.",
        "",
        "| weights | noise | set | options | PSNR / SSIM | ours | paper | bm3d |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        row = main.get((run["weights"], run["dataset"], _run_noise(run)), {})
        ours = row.get("ours", {}).get("mean_psnr")
        bm3d = row.get("baselines", {}).get("bm3d", {}).get("mean_psnr")
        out.append(
            f"| {run['weights']} | {_run_noise(run)} | {run['dataset']} | `{options(run)}` | "
            f"{run['mean_psnr']:.2f} / {run['mean_ssim']:.3f} | {_number(ours)} | "
            f"{row.get('paper') or '-'} | {_number(bm3d)} |"
        )
    out += ["", "Reproduce (add `--data-dir DIR`):", ""]
    out += [f"- `{line}`" for run in runs if (line := command(run, directory))]
    return out + [""]


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
