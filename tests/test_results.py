from noise2score.results import PAPER, render


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
