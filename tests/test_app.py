"""The web demo end to end: API through gradio_client, parallel visitors, a real browser."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from noise2score.image_io import read_image, write_image
from noise2score.metrics import psnr
from noise2score.noise import make_noise
from noise2score.weights import DEFAULT_WEIGHTS, bundled_names
from tests.conftest import clean_crops

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(DEFAULT_WEIGHTS not in bundled_names(), reason="bundled weights not present")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--port", str(port), "--concurrency", "4"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(process.stderr.read().decode()[-2000:]) from None
            time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def noisy_image(tmp_path_factory):
    folder = tmp_path_factory.mktemp("app")
    x = clean_crops(size=128)[0]
    y = make_noise("gaussian", 25).sample(torch.from_numpy(x), generator=torch.Generator().manual_seed(0))
    write_image(folder / "noisy.png", y.numpy())
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return folder, x


def _client(url):
    from gradio_client import Client

    return Client(url, verbose=False)


def test_denoise_endpoint_beats_the_noisy_input(server, noisy_image):
    from gradio_client import handle_file

    folder, x = noisy_image
    result = _client(server).predict(image=handle_file(folder / "noisy.png"), level=25, api_name="/denoise")
    noisy = read_image(folder / "noisy.png").pixels
    assert psnr(read_image(result[0]).pixels, x) > psnr(noisy, x) + 3
    estimated = _client(server).predict(image=handle_file(folder / "noisy.png"), api_name="/denoise")
    assert "estimated" in estimated[1]
    assert "model gaussian25-gray" in estimated[1]  # the estimate is near 25: not the blind weights


def test_wrong_family_is_a_clear_error_and_a_family_picks_its_weights(server, noisy_image):
    from gradio_client import handle_file

    image = handle_file(noisy_image[0] / "noisy.png")
    with pytest.raises(Exception, match="is for gaussian noise, not poisson"):
        _client(server).predict(image=image, model="gaussian25-gray", noise="poisson", api_name="/denoise")
    if "poisson-blind-gray" in bundled_names():
        _, info = _client(server).predict(image=image, noise="poisson", api_name="/denoise")
        assert "model poisson" in info  # the blind weights, or fixed-level ones near the estimate


def test_parallel_requests_and_a_corrupt_upload(server, noisy_image):
    from gradio_client import handle_file

    folder, x = noisy_image
    client = _client(server)

    def call(name):
        try:
            return client.predict(image=handle_file(folder / name), level=25, api_name="/denoise")
        except Exception as err:  # the client raises AppError with the page's message
            return err

    names = ["noisy.png"] * 4 + ["corrupt.png"] + ["noisy.png"] * 4
    with ThreadPoolExecutor(len(names)) as pool:
        results = list(pool.map(call, names))
    bad = results.pop(4)
    assert "not a readable image" in str(bad)
    assert len(results) == 8
    for result in results:
        assert not isinstance(result, Exception), result
        assert psnr(read_image(result[0]).pixels, x) > 25


@pytest.mark.slow
def test_browser_upload_and_denoise(server, noisy_image, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    flags = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-sync",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-dev-shm-usage",
    ]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=flags)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(server)
        add_noise = page.locator("#add-noise input[type=checkbox]")
        page.get_by_text("camera.png").click()  # a clean sample: noise is added to it
        playwright.expect(add_noise).to_be_checked()
        page.wait_for_timeout(1000)
        page.locator("#denoise-button").click()
        page.locator("#result-info").get_by_text("denoised: PSNR").wait_for(timeout=60_000)
        page.get_by_role("button", name="Clear").first.click()
        page.locator("input[type=file]").first.set_input_files(str(noisy_image[0] / "noisy.png"))
        playwright.expect(add_noise).not_to_be_checked()  # one's own upload is noisy already
        page.locator("#denoise-button").click()
        page.locator("#result-info").get_by_text("128x128 pixels").wait_for(timeout=60_000)
        assert "PSNR" not in page.locator("#result-info").inner_text()
        page.locator("#result-slider img").first.wait_for(timeout=10_000)
        page.screenshot(path=str(ROOT / "runs" / "demo-screenshot.png"), full_page=True)
        page.get_by_text("Slower, better").click()  # the options sit in a closed accordion
        steps = page.locator("#adapt-steps input[type=number]")
        steps.fill("10")
        steps.press("Enter")
        page.locator("#denoise-button").click()
        fitted = page.locator("#result-info").get_by_text("fitted to the image first (10 steps)")
        fitted.wait_for(timeout=120_000)
        browser.close()


def test_auto_model_choice_prefers_weights_of_the_level_then_blind_weights():
    from noise2score.denoiser import Denoiser
    from noise2score.networks import build_network
    from noise2score.webapp import DemoModels
    from noise2score.weights import WeightsInfo

    def denoiser(name, channels, level, levels=None, family="gaussian"):
        info = WeightsInfo("n2n_unet", channels, family, level, name=name, levels=levels)
        return Denoiser(build_network("n2n_unet", channels), info)

    models = DemoModels([])
    for d in [
        denoiser("poisson", 1, 0.05, (0.005, 0.1), family="poisson"),
        denoiser("g25", 1, 25.0),
        denoiser("g50", 1, 50.0),
        denoiser("blind", 1, 25.0, (5.0, 55.0)),
        denoiser("c25", 3, 25.0),
    ]:
        models.denoisers[d.info.name] = d
    assert models.for_image(1, level=50.0).info.name == "g50"
    assert models.for_image(1, level=25.0).info.name == "g25"
    assert models.for_image(1).info.name == "blind"  # level to be estimated
    assert models.for_image(1, level=15.0).info.name == "blind"
    assert models.for_image(1, level=23.0, tolerance=0.1).info.name == "g25"  # an estimate near 25
    assert models.for_image(1, level=21.0, tolerance=0.1).info.name == "blind"
    assert models.for_image(3).info.name == "c25"  # no blind colour weights served
    assert models.for_image(1, "poisson").info.name == "poisson"  # Gaussian only when no family is given
    assert models.card_and_levels("poisson")[1:] == (0.05, 0.05)  # the level boxes follow the model
    listed = [line for line in models.card(None).splitlines() if line.startswith("- ")]
    assert len(listed) == len(models.names)  # "auto" lists every model in one line, not whole cards


def test_blind_weights_that_measured_better_at_a_level_are_picked_over_those_trained_there():
    from noise2score.denoiser import Denoiser, choose_denoiser
    from noise2score.networks import build_network
    from noise2score.weights import WeightsInfo

    def denoiser(name, level, levels=None, measured=()):
        card = {"evaluation": [{"dataset": s, "noise": n, "psnr": v} for s, n, v in measured]}
        info = WeightsInfo("n2n_unet", 1, "poisson", level, name=name, levels=levels, card=card)
        return Denoiser(build_network("n2n_unet", 1), info)

    fixed = denoiser(
        "p01", 0.01, measured=[("bsd68", "poisson zeta=0.01", 30.5), ("set12", "poisson zeta=0.01", 31.0)]
    )
    estimated = "poisson zeta=0.01, level estimated"
    better = denoiser("better", 0.05, (0.005, 0.1), [("bsd68", estimated, 30.6), ("set12", estimated, 31.0)])
    worse = denoiser("worse", 0.05, (0.005, 0.1), [("bsd68", estimated, 30.6), ("set12", estimated, 30.8)])
    elsewhere = denoiser(
        "elsewhere", 0.05, (0.005, 0.1), [("bsd68", "poisson zeta=0.05, level estimated", 40.0)]
    )
    assert choose_denoiser([fixed, better], 1, 0.0105, 0.1).info.name == "better"
    assert choose_denoiser([fixed, worse], 1, 0.0105, 0.1).info.name == "p01"
    assert choose_denoiser([fixed, elsewhere], 1, 0.0105, 0.1).info.name == "p01"  # not measured at 0.01
    assert choose_denoiser([fixed, better], 1, 0.03, 0.1).info.name == "better"  # no weights at 0.03
    assert choose_denoiser([denoiser("bare", 0.01), better], 1, 0.01).info.name == "bare"  # no card rows


def test_self_ensemble_is_per_request_and_bounded(noisy_image):
    from noise2score.image_io import ImageError
    from noise2score.webapp import DemoModels, run

    folder, x = noisy_image
    models = DemoModels([DEFAULT_WEIGHTS])
    image = str(folder / "noisy.png")
    plain = run(models, 10**6, image, DEFAULT_WEIGHTS, None, 25)
    ensembled = run(models, 10**6, image, DEFAULT_WEIGHTS, None, 25, ensemble=True)
    assert "self-ensemble" in ensembled[2] and "self-ensemble" not in plain[2]
    assert psnr(read_image(ensembled[0]).pixels, x) > psnr(read_image(plain[0]).pixels, x) - 0.5
    assert not models.get(DEFAULT_WEIGHTS).ensemble  # the served denoiser is left as it was
    with pytest.raises(ImageError, match="8x the work"):
        run(models, 128 * 128 * 4, image, DEFAULT_WEIGHTS, None, 25, ensemble=True)


def test_fitting_to_the_image_is_per_request_reported_and_bounded(noisy_image):
    from noise2score.image_io import ImageError
    from noise2score.webapp import DemoModels, run

    folder, x = noisy_image
    models = DemoModels([DEFAULT_WEIGHTS])
    served = {k: v.clone() for k, v in models.get(DEFAULT_WEIGHTS).network.state_dict().items()}
    image = str(folder / "noisy.png")
    done = []
    fitted = run(models, 10**6, image, DEFAULT_WEIGHTS, None, 25, adapt_steps=3, progress=done.append)
    assert "fitted to the image first (3 steps)" in fitted[2]
    assert done == pytest.approx([1 / 3, 2 / 3, 1])
    assert psnr(read_image(fitted[0]).pixels, x) > psnr(read_image(folder / "noisy.png").pixels, x) + 3
    network = models.get(DEFAULT_WEIGHTS)
    assert network.adapt is None
    assert all(torch.equal(served[k], v) for k, v in network.network.state_dict().items())
    for steps in (3, 2.5, -1, float("nan")):
        with pytest.raises(ImageError, match="0 to 2 on this server"):
            run(models, 10**6, image, DEFAULT_WEIGHTS, None, 25, adapt_steps=steps, max_adapt_steps=2)


def test_the_api_takes_adapt_and_the_server_bounds_it(server, noisy_image):
    from gradio_client import handle_file

    request = {"image": handle_file(noisy_image[0] / "noisy.png"), "level": 25, "api_name": "/denoise"}
    _, info = _client(server).predict(adapt=2, **request)
    assert "fitted to the image first (2 steps)" in info
    with pytest.raises(Exception, match="0 to 240 on this server"):
        _client(server).predict(adapt=100000, **request)
    refused = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--max-adapt-steps", "-1"], capture_output=True, text=True
    )
    assert refused.returncode == 2 and "--max-adapt-steps must be in 0.." in refused.stderr


def test_the_installed_command_runs_the_demo_and_names_the_missing_gradio(monkeypatch, capsys):
    from noise2score.cli import main

    assert main(["demo", "--max-adapt-steps", "-1"]) == 2  # app.py's options, app.py's checks
    assert capsys.readouterr().err.startswith("noise2score demo: error: --max-adapt-steps must be in 0..")
    monkeypatch.delitem(sys.modules, "noise2score.demo_ui", raising=False)
    monkeypatch.setitem(sys.modules, "gradio", None)  # installed without the [app] extra
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs Gradio: pip install 'noise2score[app]'" in err


def test_a_bundled_models_card_says_how_to_train_it_again():
    from noise2score.webapp import DemoModels

    card = DemoModels([DEFAULT_WEIGHTS]).card(DEFAULT_WEIGHTS)
    assert f"`noise2score reproduce {DEFAULT_WEIGHTS}`" in card


def test_a_dim_upload_is_named_and_stretched_on_request(tmp_path):
    import numpy as np
    import tifffile

    from noise2score.webapp import DemoModels, run

    x = clean_crops(size=96)[0][..., 0]
    counts = np.random.default_rng(0).poisson(400 * x).astype(np.uint16)  # 12-bit-like, far below 65535
    tifffile.imwrite(tmp_path / "dim.tif", counts)
    models = DemoModels([DEFAULT_WEIGHTS])
    _, _, info, _ = run(models, 10**6, str(tmp_path / "dim.tif"), DEFAULT_WEIGHTS, None, 25)
    assert "dim" in info and "white level" not in info
    _, pair, info, downloads = run(
        models, 10**6, str(tmp_path / "dim.tif"), DEFAULT_WEIGHTS, None, 25, white="auto"
    )
    assert "white level" in info and "dim" not in info
    assert pair[0].max() > 200  # shown stretched
    saved = tifffile.imread(downloads[1])
    assert abs(float(saved.mean()) - float(counts.mean())) < 0.1 * counts.mean()  # in the file's units
    tifffile.imwrite(tmp_path / "offset.tif", counts + np.uint16(100))
    _, pair, info, downloads = run(
        models, 10**6, str(tmp_path / "offset.tif"), DEFAULT_WEIGHTS, None, 25, white="auto", black=100
    )
    assert "black level 100" in info and pair[0].min() < 40  # the offset shown as black (kept: >= 52)
    offset = tifffile.imread(downloads[1]).astype(float) - 100
    assert abs(offset.mean() - saved.mean()) < 0.02 * saved.mean()  # the same result, offset put back


def test_a_clipped_8_bit_upload_says_its_estimate_was_mapped_back(tmp_path):
    import numpy as np
    from PIL import Image

    from noise2score.webapp import DemoModels, run

    x = clean_crops(size=96)[0][..., 0]  # the camera's dark coat: clipped at black
    noisy = x + np.random.default_rng(0).normal(0, 50 / 255, x.shape)
    Image.fromarray(np.round(noisy.clip(0, 1) * 255).astype(np.uint8)).save(tmp_path / "clipped.png")
    Image.fromarray(np.round(noisy * 80 + 80).astype(np.uint8)).save(tmp_path / "inside.png")  # 39-197
    models = DemoModels([DEFAULT_WEIGHTS])
    for name, clipped in [("clipped.png", True), ("inside.png", False)]:
        _, _, info, _ = run(models, 10**6, str(tmp_path / name), DEFAULT_WEIGHTS, None, 25)
        assert ("clipped at black or white" in info) == clipped, name


def test_the_api_takes_a_white_level(server, tmp_path):
    import numpy as np
    import tifffile
    from gradio_client import handle_file

    counts = np.random.default_rng(0).poisson(400 * clean_crops(size=96)[0][..., 0]).astype(np.uint16)
    tifffile.imwrite(tmp_path / "dim.tif", counts)
    _, info = _client(server).predict(
        image=handle_file(tmp_path / "dim.tif"), white="400", api_name="/denoise"
    )
    assert "white level 400" in info
    offset = tmp_path / "offset.tif"
    tifffile.imwrite(offset, counts + np.uint16(100))
    _, info = _client(server).predict(image=handle_file(offset), white="500", black=100, api_name="/denoise")
    assert "black level 100, white level 500" in info
    with pytest.raises(Exception, match="white level"):
        _client(server).predict(image=handle_file(tmp_path / "dim.tif"), white="-4", api_name="/denoise")
    camera = {"image": handle_file(offset), "white": "500", "black": 100, "api_name": "/denoise"}
    _, info = _client(server).predict(noise="poisson", read_noise=3, **camera)
    assert "read noise 3 (file units) taken into account" in info
    refused = [({"noise": "poisson", "read_noise": -1}, "read noise"), ({"read_noise": 3}, "Poisson")]
    for bad, message in refused:
        with pytest.raises(Exception, match=message):
            _client(server).predict(**bad, **camera)


def test_poisson_and_gamma_models_take_the_stabilised_view_unless_told_not_to(tmp_path, monkeypatch):
    from noise2score import denoiser as denoiser_module
    from noise2score.webapp import DemoModels, run

    x = clean_crops(size=128)[0]
    y = make_noise("gamma", 50).sample(
        torch.from_numpy(x).permute(2, 0, 1)[None], generator=torch.Generator().manual_seed(0)
    )
    write_image(tmp_path / "gamma.png", y[0].permute(1, 2, 0).clamp(0, 1).numpy())
    models = DemoModels(["gamma50-gray", "gaussian-blind-gray", DEFAULT_WEIGHTS])
    assert models.get("gamma50-gray").vst is models.get("gaussian-blind-gray")
    assert models.get(DEFAULT_WEIGHTS).vst is None
    image = str(tmp_path / "gamma.png")
    both = run(models, 10**6, image, "gamma50-gray", None, 50)
    alone = run(models, 10**6, image, "gamma50-gray", None, 50, vst=False)
    assert "through a stabilising transform (its share" in both[2] and "stabilising" not in alone[2]
    assert models.get("gamma50-gray").vst is not None  # the served model is left as it was
    assert psnr(read_image(both[0]).pixels, x) > psnr(read_image(alone[0]).pixels, x)
    assert DemoModels(["gamma50-gray"]).get("gamma50-gray").vst is None  # no Gaussian weights served
    bounded = run(models, 128 * 128 * 3, image, "gamma50-gray", None, 50)  # the view does 4x the work
    assert "stabilised view was left out" in bounded[2] and "stabilising" not in bounded[2]
    assert "4x the work" in bounded[2]
    ensembled, real = [], denoiser_module.ensemble_score
    monkeypatch.setattr(
        denoiser_module, "ensemble_score", lambda once, y: ensembled.append(y.shape) or real(once, y)
    )
    run(models, 10**6, image, "gamma50-gray", None, 50, ensemble=True)
    assert len(ensembled) == 4  # the family's score and the stabilised view's; again for Gamma's SURE probe
    assert not models.get("gaussian-blind-gray").ensemble  # the served ones are left as they were


def test_the_api_takes_vst(server, tmp_path):
    from gradio_client import handle_file

    x = clean_crops(size=96)[0]
    y = make_noise("poisson", 0.05).sample(
        torch.from_numpy(x).permute(2, 0, 1)[None], generator=torch.Generator().manual_seed(0)
    )
    write_image(tmp_path / "p.png", y[0].permute(1, 2, 0).clamp(0, 1).numpy())
    _, info = _client(server).predict(
        image=handle_file(tmp_path / "p.png"), noise="poisson", level=0.05, api_name="/denoise"
    )
    assert "gaussian-blind-gray through a stabilising transform" in info
    _, info = _client(server).predict(
        image=handle_file(tmp_path / "p.png"), noise="poisson", level=0.05, vst=False, api_name="/denoise"
    )
    assert "stabilising" not in info


def _noisy_colour(tmp_path, size=96):
    x = clean_crops(channels=3, size=size)[0]
    y = make_noise("gaussian", 25).sample(torch.from_numpy(x), generator=torch.Generator().manual_seed(0))
    return write_image(tmp_path / "colour.png", y.clamp(0, 1).numpy()), x


def test_colour_gaussian_takes_the_opponent_view_per_request_and_within_the_bound(tmp_path, monkeypatch):
    from noise2score import denoiser as denoiser_module
    from noise2score.image_io import ImageError
    from noise2score.webapp import DemoModels, run

    models = DemoModels(["gaussian25-color", "gaussian-blind-gray", "gamma50-color", "gaussian-blind-color"])
    gray = models.get("gaussian-blind-gray")
    assert models.get("gaussian25-color").opponent is gray
    assert models.get("gamma50-color").gray_view is gray  # through its stabilised view
    assert DemoModels(["gaussian25-color"]).get("gaussian25-color").opponent is None  # no gray weights
    path, x = _noisy_colour(tmp_path)
    image = str(path)
    both = run(models, 10**6, image, "gaussian25-color", None, 25)
    alone = run(models, 10**6, image, "gaussian25-color", None, 25, opponent=False)
    assert "gaussian-blind-gray on opponent colours" in both[2] and "opponent" not in alone[2]
    assert models.get("gaussian25-color").opponent is gray  # the served model is left as it was
    assert psnr(read_image(both[0]).pixels, x) > psnr(read_image(alone[0]).pixels, x)
    bounded = run(models, 96 * 96 * 3, image, "gaussian25-color", None, 25)  # 4x the work: over
    assert "opponent-colour view was left out" in bounded[2] and "on opponent colours" not in bounded[2]
    gamma = make_noise("gamma", 50).sample(torch.from_numpy(x), generator=torch.Generator().manual_seed(0))
    path = write_image(tmp_path / "gamma.png", gamma.clamp(0, 1).numpy())
    # colour Gamma: 14x the work with both views, 8x without the opponent-colour one
    bounded = run(models, 96 * 96 * 10, str(path), "gamma50-color", None, 50)
    assert "opponent-colour view was left out" in bounded[2] and "14x the work" in bounded[2]
    assert "through a stabilising transform" in bounded[2] and "on opponent colours" not in bounded[2]
    ensembled, real = [], denoiser_module.ensemble_score
    monkeypatch.setattr(
        denoiser_module, "ensemble_score", lambda once, y: ensembled.append(y.shape) or real(once, y)
    )
    run(models, 10**6, image, "gaussian25-color", None, 25, ensemble=True)
    assert [shape[1] for shape in ensembled] == [3, 1, 1, 1]  # the colour score, then each opponent channel
    assert not gray.ensemble  # the served ones are left as they were
    # fitting fits the opponent view's weights too: twice the steps, within the server's bound
    with pytest.raises(ImageError, match="fitting 2 networks .* up to 2 steps with these views"):
        run(models, 10**6, image, "gaussian25-color", None, 25, adapt_steps=3, max_adapt_steps=5)
    fitted = run(models, 10**6, image, "gaussian25-color", None, 25, adapt_steps=2, max_adapt_steps=5)
    assert "fitted to the image first (2 steps for each of 2 networks)" in fitted[2]
    fitted = run(
        models, 10**6, image, "gaussian25-color", None, 25, adapt_steps=3, opponent=False, max_adapt_steps=5
    )
    assert "fitted to the image first (3 steps)" in fitted[2]


def test_the_api_takes_opponent(server, tmp_path):
    from gradio_client import handle_file

    path, _ = _noisy_colour(tmp_path, size=64)
    request = {"image": handle_file(path), "model": "gaussian25-color", "level": 25, "api_name": "/denoise"}
    _, info = _client(server).predict(**request)
    assert "gaussian-blind-gray on opponent colours" in info
    _, info = _client(server).predict(opponent=False, **request)
    assert "opponent" not in info


def test_a_gray_upload_stored_as_rgb_is_denoised_as_gray_and_given_back_as_rgb(tmp_path):
    from noise2score.webapp import DemoModels, run

    x = clean_crops(size=128)[0]
    y = make_noise("gaussian", 25).sample(torch.from_numpy(x), generator=torch.Generator().manual_seed(0))
    write_image(tmp_path / "rgb.png", y.numpy().repeat(3, axis=2))
    models = DemoModels(["gaussian25-gray", "gaussian25-color"])
    result = run(models, 10**6, str(tmp_path / "rgb.png"))  # auto: the gray model
    assert (
        "model gaussian25-gray" in result[2]
        and "stored as RGB (three equal channels): denoised as gray" in result[2]
    )
    download = read_image(result[3][0]).pixels
    assert download.shape == (128, 128, 3) and (download == download[..., :1]).all()
    assert psnr(download[..., :1], x) > psnr(read_image(tmp_path / "rgb.png").pixels[..., :1], x) + 5
    named = run(models, 10**6, str(tmp_path / "rgb.png"), "gaussian25-color")
    assert "Warning: a gray image stored as RGB" in named[2]
