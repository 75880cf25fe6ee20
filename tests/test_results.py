import json
import re
from pathlib import Path

import pytest

from noise2score.results import PAPER, render
from noise2score.weights import BUNDLED_DIR


def _result(psnr, ssim):
    return {"mean_psnr": psnr, "mean_ssim": ssim}


def test_render_puts_measured_numbers_beside_the_paper_and_baselines():
    rows = [
        {
            "weights": "gaussian25-gray",
            "dataset": "bsd68",
            "noise": "gaussian sigma=25",
            "ours": _result(28.9, 0.81),
            "paper": PAPER[("gaussian", 25.0)]["bsd68"],
            "command": "noise2score evaluate --weights gaussian25-gray --dataset bsd68",
            "baselines": {"bm3d": _result(28.62, 0.80)},
        },
        {
            "weights": "gaussian25-color",
            "dataset": "kodak24",
            "noise": "gaussian sigma=25",
            "ours": _result(31.0, 0.85),
            "paper": 31.89,
            "command": "x",
            "baselines": {},
        },
    ]
    text = render(rows)
    assert (
        "| gaussian25-gray | gaussian sigma=25 | bsd68 | **28.90** / 0.810 | 29.12 | -0.22 | 28.62 / 0.800 |"
        in text
    )
    assert "not run" in text
    rows[0]["baselines"]["bm3d"] = _result(29.5, 0.85)  # the best of a row is bold, whoever it is
    assert "| **28.90** /" not in render(rows) and "| **29.50** / 0.850 |" in render(rows)
    assert "`noise2score evaluate --weights gaussian25-gray --dataset bsd68`" in text


def test_keep_unchanged_reuses_only_rows_of_the_same_weights_file(monkeypatch):
    from noise2score import results
    from noise2score.evaluate import summarise

    calls = []

    def fake_evaluate(spec, *, denoiser=None, method=None, estimate_level=False):
        calls.append(spec.dataset)
        row = {"name": "a.png", "psnr": 30.0, "psnr8": 30.0, "ssim": 0.9, "seconds": 0.0}
        return summarise(spec, [row], denoiser=denoiser, method=method, estimate_level=estimate_level)

    monkeypatch.setattr(results, "bundled_names", lambda: ["gaussian25-gray"])
    monkeypatch.setattr(results, "TEST_SETS", {1: ("set12",)})
    monkeypatch.setattr(results, "evaluate", fake_evaluate)
    monkeypatch.setattr(results, "add_evaluation", lambda *args: None)  # leave the bundled card alone
    first = results.collect(None, baselines=(), log=lambda *a: None)
    assert calls == ["set12"]
    again = results.collect(None, baselines=(), previous=first, log=lambda *a: None)
    assert calls == ["set12"] and again[0]["ours"] == first[0]["ours"]
    first[0]["ours"]["weights_sha256"] = "0" * 64  # the weights file changed since
    results.collect(None, baselines=(), previous=first, log=lambda *a: None)
    assert calls == ["set12", "set12"]


def test_keep_unchanged_keeps_baselines_that_the_cache_lacks(monkeypatch):
    from noise2score import results
    from noise2score.evaluate import summarise

    calls = []

    def fake_evaluate(spec, *, denoiser=None, method=None, estimate_level=False):
        calls.append(method)
        row = {"name": "a.png", "psnr": 30.0, "psnr8": 30.0, "ssim": 0.9, "seconds": 0.0}
        return summarise(spec, [row], denoiser=denoiser, method=method, estimate_level=estimate_level)

    monkeypatch.setattr(results, "bundled_names", lambda: ["gaussian25-gray"])
    monkeypatch.setattr(results, "TEST_SETS", {1: ("set12",)})
    monkeypatch.setattr(results, "evaluate", fake_evaluate)
    monkeypatch.setattr(results, "add_evaluation", lambda *args: None)
    monkeypatch.setattr(results, "baseline_cached", lambda spec, method: False)  # a fresh checkout
    quiet = {"log": lambda *a: None, "baselines": ("noisy", "bm3d")}
    first = results.collect(None, **quiet)
    assert calls == [None, "noisy", "bm3d"]
    again = results.collect(None, previous=first, only_cached=("bm3d",), **quiet)
    assert calls == [None, "noisy", "bm3d"] and again[0]["baselines"] == first[0]["baselines"]
    results.collect(None, only_cached=("bm3d",), **quiet)  # nothing to keep: bm3d left out
    assert calls == [None, "noisy", "bm3d", None, "noisy"]


def test_keep_unchanged_measures_again_what_an_older_level_estimator_gave(monkeypatch):
    from noise2score import patch_level, results
    from noise2score.evaluate import summarise

    calls = []

    def fake_evaluate(spec, *, denoiser=None, method=None, estimate_level=False):
        calls.append(spec.noise.level)
        row = {
            "name": "a.png",
            "psnr": 30.0,
            "psnr8": 30.0,
            "ssim": 0.9,
            "seconds": 0.0,
            "estimated_level": 0.01,
        }
        return summarise(spec, [row], denoiser=denoiser, method=method, estimate_level=estimate_level)

    monkeypatch.setattr(results, "bundled_names", lambda: ["poisson-blind-gray"])
    monkeypatch.setattr(results, "TEST_SETS", {1: ("set12",)})
    monkeypatch.setattr(results, "evaluate", fake_evaluate)
    monkeypatch.setattr(results, "add_evaluation", lambda *args: None)
    quiet = {"log": lambda *a: None, "baselines": ()}
    first = results.collect(None, **quiet)
    measured = len(calls)
    assert measured == 2 and all(r["ours"]["level_estimator_revision"] == 2 for r in first)
    results.collect(None, previous=first, **quiet)
    assert len(calls) == measured  # the same estimator: kept
    for row in first:  # written before revisions were recorded: the first estimator
        del row["ours"]["level_estimator_revision"]
    results.collect(None, previous=first, **quiet)
    assert len(calls) == 2 * measured
    monkeypatch.setitem(patch_level.REVISION, "poisson", 1)
    results.collect(None, previous=first, **quiet)
    assert len(calls) == 2 * measured  # revision 1 then and now: kept


def test_bundled_cards_headline_the_numbers_of_results_md():
    measured = {}
    for row in json.loads((Path(__file__).parents[1] / "RESULTS.json").read_text()):
        measured.setdefault(row["weights"], []).append(f"{row['ours']['mean_psnr']:.2f}")
    for name, values in measured.items():
        card = json.loads((BUNDLED_DIR / f"{name}.json").read_text())
        assert re.findall(r"(\d+\.\d\d) dB", card["headline"]) == values, name


def test_views_add_a_measured_column_where_denoise_adds_a_second_view_and_keep_it(monkeypatch):
    from noise2score import results
    from noise2score.evaluate import summarise

    calls = []

    def fake_evaluate(spec, *, denoiser=None, method=None, estimate_level=False):
        views = tuple(v.info.name for v in (denoiser.vst, denoiser.gray_view) if v)
        calls.append(views)
        row = {"name": "a.png", "psnr": 31.0 if views else 30.0, "psnr8": 30.0, "ssim": 0.9, "seconds": 0.0}
        return summarise(spec, [row], denoiser=denoiser, method=method, estimate_level=estimate_level)

    names = ["gamma50-gray", "gaussian25-gray", "gaussian25-color", "gamma50-color"]
    monkeypatch.setattr(results, "bundled_names", lambda: names)
    monkeypatch.setattr(results, "TEST_SETS", {1: ("set12",), 3: ("kodak24",)})
    monkeypatch.setattr(results, "evaluate", fake_evaluate)
    monkeypatch.setattr(results, "add_evaluation", lambda *args: None)
    quiet = {"log": lambda *a: None, "baselines": ()}
    first = results.collect(None, views=True, **quiet)
    blind = ("gaussian-blind-gray",)
    assert calls == [  # none for the gray Gaussian weights
        (),
        blind,
        (),
        (),
        blind,
        (),
        ("gaussian-blind-color", "gaussian-blind-gray"),
    ]
    assert first[0]["ours_views"]["vst"] == "gaussian-blind-gray" and "ours_views" not in first[1]
    assert first[2]["ours_views"]["opponent"] == "gaussian-blind-gray"
    results.collect(None, views=True, previous=first, **quiet)
    assert len(calls) == 7  # all kept
    text = render(first)
    assert "| gamma50-gray | gamma k=50 | set12 | 30.00 / 0.900 | **31.00** / 0.900 | 30.87 | -0.87 |" in text
    assert "| gaussian25-gray | gaussian sigma=25 | set12 | **30.00** / 0.900 | - | 30.13 |" in text
    assert "--level 50 --seed 0` (and with `--vst`)" in text
    assert "--level 25 --seed 0` (and with `--opponent`)" in text
    assert "(and with `--vst` `--opponent`)" in text
    assert "ours + views" not in render(results.collect(None, previous=first, **quiet))
    for row in first:  # measured before the Gamma view had its SURE share: the mean then
        row.get("ours_views", {}).pop("vst_mix_revision", None)
    calls.clear()
    results.collect(None, views=True, previous=first, **quiet)
    assert calls == [blind, ("gaussian-blind-color", "gaussian-blind-gray")]  # the Gamma views again


def test_a_stopped_results_run_goes_on_from_its_partial_file(monkeypatch, tmp_path):
    from noise2score import results
    from noise2score.evaluate import summarise

    calls = []

    def fake_evaluate(spec, *, denoiser=None, method=None, estimate_level=False):
        calls.append(spec.dataset)
        if spec.dataset == "bsd68" and len(calls) == 2:
            raise KeyboardInterrupt  # the run is stopped while measuring its second row
        row = {"name": "a.png", "psnr": 30.0, "psnr8": 30.0, "ssim": 0.9, "seconds": 0.0}
        return summarise(spec, [row], denoiser=denoiser, method=method, estimate_level=estimate_level)

    monkeypatch.setattr(results, "bundled_names", lambda: ["gaussian25-gray"])
    monkeypatch.setattr(results, "TEST_SETS", {1: ("set12", "bsd68")})
    monkeypatch.setattr(results, "evaluate", fake_evaluate)
    monkeypatch.setattr(results, "add_evaluation", lambda *args: None)
    out = tmp_path / "RESULTS.md"
    options = {"baselines": (), "log": lambda *a: None}
    with pytest.raises(KeyboardInterrupt):
        results.write_results(out, None, **options)
    partial = tmp_path / "RESULTS.partial.json"
    assert [r["dataset"] for r in json.loads(partial.read_text())] == ["set12"] and not out.exists()
    results.write_results(out, None, **options)
    assert calls == ["set12", "bsd68", "bsd68"]  # set12 was not measured again
    assert [r["dataset"] for r in json.loads(out.with_suffix(".json").read_text())] == ["set12", "bsd68"]
    assert not partial.exists() and "| set12 |" in out.read_text()
    partial.write_text("{not json")  # a damaged partial file is set aside, not fatal
    results.write_results(out, None, **options)
    assert len(calls) == 5
