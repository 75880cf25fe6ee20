import json
import sys
from pathlib import Path

from noise2score.adapt import Adaptation
from noise2score.denoiser import attach_opponent, load_denoiser
from noise2score.evaluate import EvalSpec, summarise
from noise2score.noise import make_noise
from noise2score.results import render
from noise2score.stored_runs import command, options, stored_runs
from noise2score.stored_runs import render as render_stored

ROW = {"name": "a.png", "psnr": 30.5, "psnr8": 30.5, "ssim": 0.9, "seconds": 1.0}


def _run(monkeypatch, weights="gaussian25-gray", *, ensemble=True, adapt=None, opponent=False, limit=None):
    """What ``noise2score evaluate --json`` writes for ``weights`` on Set12 / Kodak24."""
    denoiser = load_denoiser(weights)
    denoiser.ensemble, denoiser.adapt = ensemble, adapt
    if opponent:
        attach_opponent(denoiser, load_denoiser("gaussian-blind-gray"))
    dataset = "kodak24" if denoiser.channels == 3 else "set12"
    argv = ["noise2score", "evaluate", "--weights", weights, "--dataset", dataset, "--level", "25"]
    argv += ["--ensemble", "--data-dir", "/my/sets", "--device", "cpu", "--json", "/tmp/elsewhere.json"]
    monkeypatch.setattr(sys, "argv", argv)
    spec = EvalSpec(dataset, make_noise("gaussian", 25), limit=limit)
    return summarise(spec, [ROW], denoiser=denoiser, method=None, estimate_level=False)


def _write(folder, name, run):
    (folder / name).write_text(json.dumps(run))


def test_only_full_set_option_runs_of_todays_weights_files_are_read(monkeypatch, tmp_path):
    _write(tmp_path, "a_ensemble.json", _run(monkeypatch))
    _write(tmp_path, "b_plain.json", _run(monkeypatch, ensemble=False))  # no option: the main table's
    _write(tmp_path, "c_limit.json", _run(monkeypatch, limit=4))  # part of a set
    changed = _run(monkeypatch) | {"weights_sha256": "0" * 64}  # weights trained again since
    _write(tmp_path, "d_changed.json", changed)
    old_fit = _run(monkeypatch, "gaussian25-color", adapt=Adaptation(steps=5), opponent=True)
    old_fit["adapt"].pop("revision")  # made when --adapt left the views' weights as trained
    _write(tmp_path, "e_old_fit.json", old_fit)
    gray_fit = _run(monkeypatch, adapt=Adaptation(steps=5))
    gray_fit["adapt"].pop("revision")  # no views: the same fit then and now
    _write(tmp_path, "f_gray_fit.json", gray_fit)
    view_fit = _run(monkeypatch, "gaussian25-color", adapt=Adaptation(steps=5), opponent=True)
    _write(tmp_path, "g_view_fit.json", view_fit)
    other_rule = _run(monkeypatch, adapt=Adaptation(steps=5))
    other_rule["adapt"]["rate_rule"] = [1e-3, 1e-4]  # its rate set by a rule since changed
    _write(tmp_path, "g_other_rule.json", other_rule)
    (tmp_path / "h_broken.json").write_text("{not json")
    _write(tmp_path, "i_list.json", [1, 2])

    found = [run["file"] for run in stored_runs(tmp_path)]
    assert found == ["a_ensemble.json", "f_gray_fit.json", "g_view_fit.json"]
    assert stored_runs(tmp_path / "absent") == []
    assert stored_runs(tmp_path, seed=1) == []


def test_the_options_table_sits_beside_the_main_rows_with_its_command(monkeypatch, tmp_path):
    _write(tmp_path, "set12_fit.json", _run(monkeypatch, adapt=Adaptation(steps=5)))
    rows = [
        {
            "weights": "gaussian25-gray",
            "dataset": "set12",
            "noise": "gaussian sigma=25",
            "ours": {"mean_psnr": 29.9, "mean_ssim": 0.85},
            "paper": 30.13,
            "command": "noise2score evaluate --weights gaussian25-gray --dataset set12",
            "baselines": {"bm3d": {"mean_psnr": 30.0, "mean_ssim": 0.852}},
        }
    ]
    runs = stored_runs(tmp_path)
    text = render(rows, runs, tmp_path)
    line = "| gaussian25-gray | gaussian sigma=25 | set12 | `--ensemble --adapt 5` | 30.50 / 0.900 |"
    assert line + " 29.90 | 30.13 | 30.00 |" in text  # beside the plain weights, the paper, BM3D
    assert command(runs[0], tmp_path) == (
        "noise2score evaluate --weights gaussian25-gray --dataset set12 --level 25 --ensemble "
        f"--json {tmp_path.as_posix()}/set12_fit.json"
    )
    assert f"- `{command(runs[0], tmp_path)}`" in text
    assert "With the test-time options" not in render(rows, [], tmp_path)


def test_a_run_whose_fit_rate_was_given_says_so_in_options_and_command(monkeypatch, tmp_path):
    _write(tmp_path, "set12_fit.json", _run(monkeypatch, adapt=Adaptation(steps=5, lr=3e-5)))
    run = stored_runs(tmp_path)[0]
    assert options(run) == "--ensemble --adapt 5 --adapt-lr 3e-05"  # no longer the default rate
    kept = f"--json {tmp_path.as_posix()}/set12_fit.json"
    assert command(run, tmp_path).endswith(f"--ensemble --adapt-lr 3e-05 {kept}")


def test_results_md_lists_the_stored_runs_that_hold_today():
    root = Path(__file__).parents[1]
    rows = json.loads((root / "RESULTS.json").read_text())
    runs = stored_runs(root / "benchmarks" / "results")
    table = "\n".join(render_stored(runs, rows, "benchmarks/results"))
    assert runs and table in (root / "RESULTS.md").read_text(), "run `noise2score results --keep-unchanged`"
