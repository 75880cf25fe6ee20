"""Noise2Score: self-supervised denoising with Tweedie's formula and a learned score."""

from noise2score.denoiser import Denoiser, load_denoiser
from noise2score.noise import make_noise

__all__ = ["Denoiser", "load_denoiser", "make_noise"]
__version__ = "0.1.0"
