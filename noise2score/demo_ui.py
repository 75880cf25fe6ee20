"""The demo's page: a Gradio Blocks layout whose button and ``/denoise`` API endpoint
both call :func:`noise2score.webapp.run`."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from noise2score.image_io import IMAGE_SUFFIXES, READ_ONLY_SUFFIXES, ImageError
from noise2score.webapp import AUTO, MAX_ADAPT_STEPS, DemoModels, run, sample_images, user_message
from noise2score.white import parse_black, parse_read_noise, parse_white


@dataclass(frozen=True)
class Handlers:
    """The page's two entry points over one set of served models and bounds."""

    models: DemoModels
    max_pixels: int
    max_adapt_steps: int

    def api(
        self,
        image: str,
        model: str | None = None,
        noise: str | None = None,
        level: float | None = None,
        white: str | None = None,
        black: float | None = None,
        vst: bool = True,
        read_noise: float | None = None,
        opponent: bool = True,
        adapt: float | None = 0,
    ):
        """Denoise an image file with a bundled model; level None estimates it; white
        (a value in the file's units, or "auto") and black (a camera's offset) are taken
        as 1 and 0, for dim images; vst: Poisson and Gamma models also denoise through a
        stabilising transform with the blind Gaussian weights (the mean of both);
        read_noise: Poisson models, a camera's Gaussian read noise in file units;
        opponent: colour images also denoised one opponent colour at a time by the blind
        gray Gaussian weights (the mean of both); adapt: steps fitting a copy of the
        network to the image first (0 = none; the server bounds them)."""
        try:
            dark = parse_black(None if black is None else str(black))
            read = parse_read_noise(None if read_noise is None else str(read_noise))
            scaled = parse_white(white or None, dark)
            shown, _, info, _ = run(
                self.models,
                self.max_pixels,
                image,
                model or None,
                noise or None,
                level,
                white=scaled,
                black=dark,
                vst=vst is not False,
                read_noise=read,
                opponent=opponent is not False,
                adapt_steps=adapt or 0,
                max_adapt_steps=self.max_adapt_steps,
            )
        except (ImageError, ValueError) as err:
            raise gr.Error(user_message(err, image)) from None
        return shown, info

    def ui(
        self,
        image,
        model,
        level,
        estimate,
        ensemble,
        vst,
        opponent,
        adapt,
        stretch,
        black,
        read_noise,
        add_noise,
        noise_level,
        seed,
        progress=gr.Progress(),  # noqa: B008 (Gradio injects it)
    ):
        progress(0.1, desc="denoising")
        start = time.perf_counter()
        try:
            _, pair, info, downloads = run(
                self.models,
                self.max_pixels,
                image,
                model,
                None,
                None if estimate else level,
                add_noise,
                noise_level,
                seed,
                ensemble,
                "auto" if stretch else None,
                parse_black(str(black or 0)),
                vst,
                parse_read_noise(str(read_noise or 0)),
                opponent,
                adapt,
                self.max_adapt_steps,
                lambda done: progress(0.1 + 0.8 * done, desc="fitting the network to the image"),
            )
        except (ImageError, ValueError) as err:
            raise gr.Error(user_message(err, image)) from None
        progress(1.0, desc=f"done in {time.perf_counter() - start:.1f} s")
        return pair, info, downloads


def build_demo(
    models: DemoModels, *, max_pixels: int = 4_000_000, max_adapt_steps: int = MAX_ADAPT_STEPS
) -> gr.Blocks:
    handlers = Handlers(models, max_pixels, max_adapt_steps)
    first = models.get(None)
    with gr.Blocks(title="Noise2Score denoiser") as demo:
        gr.Markdown(
            "# Noise2Score\nSelf-supervised denoising: a network learned the score of noisy "
            "images; Tweedie's formula turns it into the denoised image."
        )
        with gr.Row():
            with gr.Column():
                upload, samples = _upload()
                model = gr.Dropdown([AUTO, *models.names], value=AUTO, label="Model")
                with gr.Accordion("About the model", open=False):
                    card = gr.Markdown(models.card(None))
                estimate = gr.Checkbox(True, label="Estimate the noise level")
                level = gr.Number(first.info.level, label="Noise level (paper units: sigma/255, zeta, k)")
                button = gr.Button("Denoise", variant="primary", elem_id="denoise-button")
                slower = _slower_options(max_adapt_steps)
                camera = _camera_options()
                with gr.Accordion("Add synthetic noise (to try a clean image)", open=False) as synthetic:
                    add_noise = gr.Checkbox(
                        False, label="Add noise of the model's family first", elem_id="add-noise"
                    )
                    noise_level = gr.Number(first.info.level, label="Synthetic noise level")
                    seed = gr.Number(0, precision=0, label="Seed")
            with gr.Column():
                slider = gr.ImageSlider(
                    label="Noisy | denoised", format="png", image_mode=None, elem_id="result-slider"
                )
                info = gr.Markdown(elem_id="result-info")
                files = gr.File(label="Download", file_count="multiple")
        model.change(models.card_and_levels, inputs=model, outputs=[card, level, noise_level])
        # The samples are clean: picking one adds noise; an upload of one's own does not.
        samples.dataset.click(
            lambda: (True, gr.Accordion(open=True)), None, [add_noise, synthetic], queue=False
        )
        upload.upload(lambda: False, None, add_noise)
        button.click(
            handlers.ui,
            [upload, model, level, estimate, *slower, *camera, add_noise, noise_level, seed],
            [slider, info, files],
            api_visibility="private",
        )
        _api_endpoint(handlers.api)
    return demo


def _upload() -> tuple[gr.File, gr.Examples]:
    """The file input and the sample photos beneath it."""
    samples_dir = Path(tempfile.gettempdir()) / "noise2score-samples"
    samples_dir.mkdir(exist_ok=True)
    upload = gr.File(
        label="Noisy image (PNG, JPEG, TIFF, WebP, BMP, GIF; 8/16-bit)",
        type="filepath",
        file_types=list(IMAGE_SUFFIXES + READ_ONLY_SUFFIXES),
    )
    samples = gr.Examples(
        [[str(p)] for p in sample_images(samples_dir)],
        inputs=[upload],
        label="Sample images (clean photos: noise of the model's family is added first)",
    )
    return upload, samples


def _slower_options(max_adapt_steps: int) -> list:
    """Self-ensemble, the two second views and fitting to the image, in that order."""
    with gr.Accordion("Slower, better: self-ensemble, second views, fitting", open=False):
        ensemble = gr.Checkbox(
            False,
            label="Self-ensemble: mean over 8 rotations and mirrorings (8x slower; +0.08-0.17 dB "
            "on the test sets)",
        )
        vst = gr.Checkbox(
            True,
            label="Poisson/Gamma: also denoise through a stabilising transform (Anscombe, log) "
            "with the blind Gaussian weights, and mix the two (Poisson: 2x slower; Gamma: "
            "4x, the share picked per image by SURE)",
        )
        opponent = gr.Checkbox(
            True,
            label="Colour: also denoise brightness and two colour differences one at a time "
            "with the blind gray Gaussian weights, and take the mean (4x slower)",
        )
        adapt = gr.Slider(
            0,
            max(max_adapt_steps, 1),
            value=0,
            step=10,
            label="Fit the network to this image first: AR-DAE steps on its own crops, "
            "as many for each view's network (0 = off; 120 gained 0.08-0.18 dB on the test "
            "sets, 0.5 on a text page; about 1 s a step for each network on a CPU)",
            visible=max_adapt_steps > 0,
            elem_id="adapt-steps",
        )
    return [ensemble, vst, opponent, adapt]


def _camera_options() -> list:
    """Stretch to the 99.9th percentile, black level and read noise, in that order."""
    with gr.Accordion("Camera data: dim images, black level, read noise", open=False):
        stretch = gr.Checkbox(
            False,
            label="Stretch: the 99.9th percentile as white (dim images: photon counts, "
            "12-bit data in 16-bit files; float images beyond 0-1)",
        )
        black = gr.Number(0, label="Black level (file units: a camera's offset, taken as 0)")
        read_noise = gr.Number(0, label="Read noise (Poisson: the camera's, file units)")
    return [stretch, black, read_noise]


def _api_endpoint(handler) -> None:
    """The /denoise API endpoint, with hidden inputs and outputs of its own."""
    with gr.Row(visible=False):
        inputs = [
            gr.File(type="filepath", label="image"),
            gr.Textbox(label="model"),
            gr.Textbox(label="noise"),
            gr.Number(None, label="level"),
            gr.Textbox(label="white"),
            gr.Number(None, label="black"),
            gr.Checkbox(True, label="vst"),
            gr.Number(None, label="read_noise"),
            gr.Checkbox(True, label="opponent"),
            gr.Number(0, label="adapt"),
        ]
        outputs = [
            gr.Image(type="filepath", format="png", label="denoised"),
            gr.Markdown(label="info"),
        ]
    inputs[0].change(handler, inputs, outputs, api_name="denoise")
