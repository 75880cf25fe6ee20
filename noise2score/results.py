"""``noise2score results``: RESULTS.md from measured runs, never typed by hand.

For every bundled weight, on the test sets of its channel count: our PSNR/SSIM,
the paper's Table 2 value, and the classical baselines on the same noisy inputs,
each with the command that reproduces the row. With ``views``, the weights are also
measured with the second views ``denoise`` adds by default: the stabilised Gaussian
view of Poisson and Gamma (``--vst``), the opponent-colour view of colour Gaussian
estimates (``--opponent``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from noise2score import __version__, patch_level
from noise2score.denoiser import OPPONENT_WEIGHTS, Denoiser, attach_opponent, load_denoiser, vst_weights
from noise2score.evaluate import EvalSpec, baseline_cached, evaluate
from noise2score.image_io import written_whole
from noise2score.model_card import add_evaluation
from noise2score.noise import make_noise
from noise2score.stored_runs import RUNS_DIR, noise_label, stored_runs
from noise2score.stored_runs import render as render_stored
from noise2score.vst import MIX_REVISION
from noise2score.weights import BUNDLED_DIR, bundled_names

# Paper Table 2 (Kim & Ye 2021), Noise2Score, known level. Kodak24 at sigma 50 is a
# typo in the paper and left out.
PAPER = {
    ("gaussian", 25.0): {"bsd68": 29.12, "set12": 30.13, "cbsd68": 30.85, "kodak24": 31.89},
    ("gaussian", 50.0): {"bsd68": 26.21, "set12": 27.16, "cbsd68": 27.75},
    ("poisson", 0.01): {"bsd68": 30.81, "set12": 31.58, "cbsd68": 32.61, "kodak24": 33.41},
    ("poisson", 0.05): {"bsd68": 27.12, "set12": 27.86, "cbsd68": 28.68, "kodak24": 29.71},
    ("gamma", 100.0): {"bsd68": 32.67, "set12": 33.01, "cbsd68": 33.82, "kodak24": 34.22},
    ("gamma", 50.0): {"bsd68": 30.53, "set12": 30.87, "cbsd68": 31.05, "kodak24": 31.34},
}
TEST_SETS = {1: ("bsd68", "set12"), 3: ("cbsd68", "kodak24")}
# Blind (level-agnostic) weights are scored at these levels with the level hidden.
BLIND_LEVELS = {"gaussian": (15.0, 25.0, 35.0, 50.0), "poisson": (0.01, 0.05), "gamma": (50.0, 100.0)}
BASELINES = ("noisy", "wavelet", "nl_means", "nl_means_calibrated", "bm3d")


def _command(spec: EvalSpec, who: str, estimated: bool = False) -> str:
    return (
        f"noise2score evaluate {who} --dataset {spec.dataset} --noise {spec.noise.family} "
        f"--level {spec.noise.level:g} --seed {spec.seed}" + (" --estimate-level" if estimated else "")
    )


def _noises(denoiser) -> list:
    """The noise settings a weight is scored at: its own level, or the blind grid."""
    if denoiser.info.blind:
        return [make_noise(denoiser.family, v) for v in BLIND_LEVELS[denoiser.family]]
    return [make_noise(denoiser.family, denoiser.info.level)]


def collect(
    data_dir: str | None,
    *,
    seed: int = 0,
    baselines: tuple[str, ...] = BASELINES,
    color_baselines: tuple[str, ...] | None = None,
    only_cached: tuple[str, ...] = (),
    previous: list[dict] | None = None,
    views: bool = False,
    device: str | None = None,
    log=print,
    on_row=None,
) -> list[dict]:
    """Evaluate every bundled weight and the baselines on its test sets.

    ``color_baselines`` overrides the list for colour sets: BM3D takes about half an hour
    per colour set on a small CPU. Baselines in ``only_cached`` are taken from the cache
    where all of a set is there, and left out of the row ("not run") where it is not.
    ``previous`` (the rows of an earlier RESULTS.json) supplies our measurement where the
    weights file, set, noise, seed and package version are all unchanged, and a baseline's
    where its cache does not have it (a fresh checkout has no cache). ``views`` adds the
    "ours_views" measurement to the rows of weights that ``denoise`` gives a second view
    (kept from ``previous`` likewise).
    ``device``: where our networks run (the baselines run on the CPU).
    ``on_row``: called with the rows so far after each row is measured.
    """
    kept = {_row_key(r[k]): r[k] for r in previous or [] for k in ("ours", "ours_views") if k in r}
    kept |= {(m, _row_key(b)): b for r in previous or [] for m, b in r["baselines"].items()}
    rows, helpers = [], {}
    for name in bundled_names():
        denoiser = load_denoiser(name, device=device)
        viewed = _with_views(denoiser, helpers, device) if views else None
        card_rows = []
        blind = denoiser.info.blind
        for noise, dataset in [(n, d) for n in _noises(denoiser) for d in TEST_SETS[denoiser.channels]]:
            spec = EvalSpec(dataset, noise, seed, data_dir=data_dir)
            log(f"{name} on {dataset}, {noise}")
            ours = kept.get(_row_key(_spec_key(spec, denoiser, blind)))
            if ours is None:
                ours = evaluate(spec, denoiser=denoiser, estimate_level=blind)
            else:
                log("  unchanged since the last RESULTS.json: kept")
            row = {
                "weights": name,
                "dataset": dataset,
                "noise": noise_label(noise, blind),
                "ours": ours,
                "paper": None if blind else PAPER.get((noise.family, noise.level), {}).get(dataset),
                "command": _command(spec, f"--weights {name}", estimated=blind),
                "baselines": {},
            }
            if viewed is not None:
                row["ours_views"] = kept.get(_row_key(_spec_key(spec, viewed, blind)))
                if row["ours_views"] is None:
                    log("  with its second views")
                    row["ours_views"] = evaluate(spec, denoiser=viewed, estimate_level=blind)
            methods = color_baselines if denoiser.channels == 3 and color_baselines else baselines
            for method in methods:
                cached = baseline_cached(spec, method)  # reads one cache file per image
                earlier = kept.get((method, _row_key(_spec_key(spec, None, False))))
                if earlier is not None and not cached:
                    log(f"  baseline {method}: kept from the last RESULTS.json")
                    row["baselines"][method] = earlier
                    continue
                if method in only_cached and not cached:
                    log(f"  baseline {method}: not in the cache, left out")
                    continue
                log(f"  baseline {method}")
                row["baselines"][method] = evaluate(spec, method=method)
            rows.append(row)
            if on_row is not None:
                on_row(rows)
            card_rows.append(
                {
                    "dataset": dataset,
                    "noise": row["noise"],
                    "seed": seed,
                    "psnr": ours["mean_psnr"],
                    "ssim": ours["mean_ssim"],
                    "paper": row["paper"],
                    "command": row["command"],
                }
            )
        add_evaluation(BUNDLED_DIR / f"{name}.safetensors", card_rows)
    return rows


def _with_views(denoiser: Denoiser, helpers: dict, device) -> Denoiser | None:
    """A copy of ``denoiser`` with the second views ``denoise`` gives it by default, or
    None where it gives none (gray Gaussian weights). ``helpers``: their weights, shared."""

    def helper(name: str) -> Denoiser:
        if name not in helpers:
            helpers[name] = load_denoiser(name, device=device)
        return copy.copy(helpers[name])

    viewed = copy.copy(denoiser)
    if denoiser.family != "gaussian":
        viewed.with_vst(helper(vst_weights(denoiser.channels)))
    if not attach_opponent(viewed, helper(OPPONENT_WEIGHTS)) and viewed.vst is None:
        return None
    return viewed


def _view_flags(measured: dict) -> str:
    """The ``evaluate`` flags of the second views a measurement was made with."""
    return " ".join(f"`--{view}`" for view in ("vst", "opponent") if measured.get(view))


def _spec_key(spec: EvalSpec, denoiser, estimated: bool) -> dict:
    """The key fields of a measurement of ``denoiser`` (None: a baseline) on ``spec``."""
    noise = spec.noise
    return {
        "weights_sha256": denoiser.info.sha256 if denoiser is not None else None,
        "vst_sha256": denoiser.vst.info.sha256 if denoiser is not None and denoiser.vst else None,
        "vst_mix_revision": MIX_REVISION[noise.family] if denoiser is not None and denoiser.vst else None,
        "opponent_sha256": gray.info.sha256 if (gray := denoiser and denoiser.gray_view) else None,
        "dataset": spec.dataset,
        "noise": noise.family,
        "level": noise.level,
        "seed": spec.seed,
        "limit": spec.limit,
        "estimate_level": estimated,
        "level_estimator_revision": patch_level.REVISION[noise.family] if estimated else None,
        "versions": {"noise2score": __version__},
    }


def _row_key(result: dict) -> tuple:
    """What makes a measurement of our weights reusable: same file, inputs and code."""
    names = ("weights_sha256", "vst_sha256", "opponent_sha256", "dataset", "noise", "level", "seed", "limit")
    names += ("estimate_level",)
    # rows measured before revisions were recorded used each family's first estimator
    revision = result.get("level_estimator_revision", 1 if result.get("estimate_level") else None)
    mix = result.get("vst_mix_revision", 1 if result.get("vst_sha256") else None)  # before: the mean
    return (*(result.get(n) for n in names), revision, mix, result.get("versions", {}).get("noise2score"))


def render(rows: list[dict], runs: list[dict] = (), runs_dir: str | Path = RUNS_DIR) -> str:
    """RESULTS.md: the main table of ``rows``, then the stored test-time option ``runs``
    (kept in ``runs_dir``)."""
    out = [
        "# Results",
        "",
        "Generated by `noise2score results --data-dir DIR` (do not edit by hand). PSNR in dB",
        "(estimate clamped to [0, 1], no border crop) / SSIM, mean over the set; all methods on",
        "the same noisy inputs (seed 0, one draw per image, METHOD.md section 6).",
        "Blind weights are given no level: they estimate it per image; the baselines are",
        "given the true level. The best PSNR of each row, among the methods run, is in bold.",
        "",
    ]
    methods = sorted({m for r in rows for m in r["baselines"]}, key=BASELINES.index)
    viewed = any("ours_views" in r for r in rows)
    if viewed:
        out += [
            "`ours + views`: the weights with the second views `denoise` adds by default (README,",
            "Denoise): Poisson and Gamma with the stabilised Gaussian view (`--vst`), colour",
            "Gaussian estimates with the opponent-colour view (`--opponent`), each the mean of",
            "two estimates (Gamma: a mix whose share SURE picks per image); the gap is that of `ours`.",
            "",
        ]
    views_head = "ours + views | " if viewed else ""
    out.append(f"| weights | noise | set | ours | {views_head}paper | gap | " + " | ".join(methods) + " |")
    out.append("|---" * (6 + viewed + len(methods)) + "|")
    for r in rows:
        ours = r["ours"]["mean_psnr"]
        gap = f"{ours - r['paper']:+.2f}" if r["paper"] else "-"
        measured = [r["ours"], *([r["ours_views"]] if "ours_views" in r else []), *r["baselines"].values()]
        best = max(m["mean_psnr"] for m in measured)
        cells = [_cell(r["baselines"][m], best) if m in r["baselines"] else "not run" for m in methods]
        views_cell = (f"{_cell(r['ours_views'], best)} | " if "ours_views" in r else "- | ") if viewed else ""
        out.append(
            f"| {r['weights']} | {r['noise']} | {r['dataset']} | {_cell(r['ours'], best)} | {views_cell}"
            f"{r['paper'] or '-'} | {gap} | " + " | ".join(cells) + " |"
        )
    out += ["", "Reproduce a row (add `--data-dir DIR` where the sets are):", ""]
    for r in rows:
        flags = _view_flags(r.get("ours_views", {}))
        out.append(f"- `{r['command']}`" + (f" (and with {flags})" if flags else ""))
    out += [
        "",
        "Baselines: `--method noisy|wavelet|nl_means|nl_means_calibrated|bm3d` in place of",
        "`--weights`. BM3D is the `bm3d` package (non-commercial licence).",
        "",
    ]
    return "\n".join(out + render_stored(list(runs), rows, runs_dir))


def _cell(result: dict, best: float) -> str:
    """One table cell, PSNR / SSIM, with the PSNR in bold when it is the row's best."""
    value = f"{result['mean_psnr']:.2f}"
    value = f"**{value}**" if result["mean_psnr"] == best else value
    return f"{value} / {result['mean_ssim']:.3f}"


def write_results(
    path: str | Path,
    data_dir: str | None,
    *,
    keep_unchanged: bool = False,
    runs_dir: str | Path = RUNS_DIR,
    **options,
) -> Path:
    """Write RESULTS.md and RESULTS.json; ``keep_unchanged`` reuses the measurements of
    weights unchanged since the last RESULTS.json, and its baselines where their cache
    lacks them. ``runs_dir``: where the stored ``evaluate --json`` runs of the test-time
    options are read from.

    Each row is also saved, as it is measured, to a partial file beside RESULTS.json
    (``RESULTS.partial.json``); a run that was stopped takes its rows from there and goes
    on where it stopped. The file is removed once RESULTS.md is written."""
    path = Path(path)
    log = options.get("log", print)
    previous_path, partial = path.with_suffix(".json"), path.with_suffix(".partial.json")
    previous = json.loads(previous_path.read_text()) if keep_unchanged and previous_path.is_file() else []
    done = _read_partial(partial, log)
    if done:
        log(f"resuming: {len(done)} rows measured before are in {partial}")
    if previous or done:
        options["previous"] = previous + done
    rows = collect(data_dir, on_row=lambda rows: _write_json(partial, rows), **options)
    path.write_text(render(rows, stored_runs(runs_dir, options.get("seed", 0)), runs_dir))
    _write_json(previous_path, rows)
    partial.unlink(missing_ok=True)
    return path


def _read_partial(partial: Path, log) -> list[dict]:
    """The rows a stopped run saved, or none where the file is absent or unreadable."""
    if not partial.is_file():
        return []
    try:
        rows = json.loads(partial.read_text())
    except (OSError, ValueError) as err:
        log(f"ignoring {partial}: {err}")
        return []
    return rows if isinstance(rows, list) else []


def _write_json(path: Path, rows: list[dict]) -> None:
    """Write ``rows`` so that a run killed mid-write leaves the former file whole."""
    with written_whole(path) as tmp:
        tmp.write_text(json.dumps(rows, indent=1) + "\n")
