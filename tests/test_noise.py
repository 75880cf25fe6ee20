import math

import pytest
import torch

from noise2score import make_noise
from noise2score.noise import derive_seed, sample_standard_gamma, seeded_generator

SHAPE = (2, 1, 64, 64)


def test_gaussian_prior_gives_linear_shrinkage():
    # x ~ N(mu, tau^2), y = x + sigma n  =>  y ~ N(mu, tau^2 + sigma^2)
    noise = make_noise("gaussian", 25)
    mu, tau, sigma = 0.4, 0.1, noise.sigma
    y = torch.linspace(-0.5, 1.5, 101).view(1, 1, 1, -1)
    score = -(y - mu) / (tau**2 + sigma**2)
    expected = mu + tau**2 / (tau**2 + sigma**2) * (y - mu)
    torch.testing.assert_close(noise.tweedie(y, score), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("k", [50, 100])
def test_gamma_constant_image_is_recovered(k):
    # y ~ Gamma(shape k, scale c/k): score = (k - 1)/y - k/c; Tweedie returns c.
    c = 0.3
    noise = make_noise("gamma", k)
    y = noise.sample(torch.full(SHAPE, c), generator=torch.Generator().manual_seed(0)).double()
    score = (k - 1) / y - k / c
    torch.testing.assert_close(noise.tweedie(y, score), torch.full_like(y, c), rtol=1e-9, atol=1e-9)


def test_poisson_estimate_matches_formula():
    zeta = 0.05
    noise = make_noise("poisson", zeta)
    y = torch.rand(SHAPE)
    score = torch.randn(SHAPE)
    expected = (y + zeta / 2) * torch.exp(zeta * score)
    torch.testing.assert_close(noise.tweedie(y, score), expected)


def test_guards_keep_estimates_finite_and_count():
    gamma = make_noise("gamma", 50)
    y = torch.full((1, 1, 2, 2), 0.5)
    x_hat, fired = gamma.tweedie_with_guard(y, torch.full_like(y, 1e6))  # denominator < 0
    assert torch.isfinite(x_hat).all() and fired == 4
    poisson = make_noise("poisson", 0.01)
    x_hat, fired = poisson.tweedie_with_guard(y, torch.full_like(y, 1e9))  # exp overflow
    assert torch.isfinite(x_hat).all() and fired == 4


@pytest.mark.parametrize(
    ("family", "level", "variance"),
    [
        ("gaussian", 25, lambda x: torch.full_like(x, (25 / 255) ** 2)),
        ("poisson", 0.01, lambda x: 0.01 * x),
        ("poisson", 0.05, lambda x: 0.05 * x),
        ("gamma", 100, lambda x: x**2 / 100),
        ("gamma", 50, lambda x: x**2 / 50),
    ],
)
def test_noise_statistics(family, level, variance):
    x = torch.tensor([0.1, 0.5, 0.9]).view(3, 1, 1, 1).expand(3, 1, 200, 200).contiguous()
    y = make_noise(family, level).sample(x, generator=torch.Generator().manual_seed(1))
    n = 200 * 200
    for i, value in enumerate([0.1, 0.5, 0.9]):
        var = variance(torch.tensor(value)).item()
        assert abs(y[i].mean().item() - value) < 5 * math.sqrt(var / n)
        assert abs(y[i].var().item() / var - 1) < 5 * math.sqrt(2 / n)
        assert make_noise(family, level).std_at(value) == pytest.approx(math.sqrt(var), rel=1e-6)


@pytest.mark.parametrize(("family", "level"), [("gaussian", 25), ("poisson", 0.01), ("gamma", 100)])
def test_same_seed_same_draw(family, level):
    noise = make_noise(family, level)
    x = torch.rand(SHAPE, generator=torch.Generator().manual_seed(3))
    a = noise.sample(x, generator=torch.Generator().manual_seed(7))
    b = noise.sample(x, generator=torch.Generator().manual_seed(7))
    c = noise.sample(x, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sampling_leaves_input_untouched():
    x = torch.rand(SHAPE)
    before = x.clone()
    for family, level in [("gaussian", 50), ("poisson", 0.05), ("gamma", 50)]:
        make_noise(family, level).sample(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, before)


def test_standard_gamma_below_one_has_right_mean():
    g = sample_standard_gamma(0.5, (100_000,), generator=torch.Generator().manual_seed(0))
    assert abs(g.mean().item() - 0.5) < 0.01 and (g >= 0).all()


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(0, "bsd68", "test001.png") == derive_seed(0, "bsd68", "test001.png")
    assert derive_seed(0, "bsd68", "test001.png") != derive_seed(1, "bsd68", "test001.png")
    a = torch.randn(3, generator=seeded_generator(0, "a"))
    assert torch.equal(a, torch.randn(3, generator=seeded_generator(0, "a")))


@pytest.mark.parametrize(
    ("family", "level"),
    [("speckle", 1), ("gaussian", -1), ("poisson", 0), ("gamma", 1), ("gaussian", float("nan"))],
)
def test_bad_noise_arguments_raise(family, level):
    with pytest.raises(ValueError):
        make_noise(family, level)


def test_blind_sigma_a_follows_the_noise_scale_of_each_level():
    levels = {"gaussian": (25.0, [5.0, 50.0]), "gamma": (100.0, [25.0, 400.0])}
    for family, (reference, drawn) in levels.items():
        scale = make_noise(family, reference).sigma_a_scale(torch.tensor(drawn))
        # the ratio of the noise standard deviations at a mid-grey pixel
        x = torch.full((1, 1, 64, 64), 0.5)
        gen = torch.Generator().manual_seed(0)
        stds = [(make_noise(family, v).sample(x, generator=gen) - x).std() for v in [reference, *drawn]]
        expected = torch.tensor([stds[1] / stds[0], stds[2] / stds[0]])
        assert torch.allclose(scale, expected, rtol=0.1), family
    # Poisson follows the lattice step zeta of its values, which sigma_a has to smooth.
    scale = make_noise("poisson", 0.01).sigma_a_scale(torch.tensor([0.005, 0.1]))
    assert torch.allclose(scale, torch.tensor([0.5, 10.0]))


def test_noise_scale_is_the_ratio_of_noise_standard_deviations():
    levels = {
        "gaussian": (25.0, [5.0, 50.0]),
        "gamma": (100.0, [25.0, 400.0]),
        "poisson": (0.01, [0.0025, 0.04]),
    }
    x = torch.full((1, 1, 128, 128), 0.5)
    for family, (reference, drawn) in levels.items():
        scale = make_noise(family, reference).noise_scale(torch.tensor(drawn))
        gen = torch.Generator().manual_seed(0)
        stds = [(make_noise(family, v).sample(x, generator=gen) - x).std() for v in [reference, *drawn]]
        expected = torch.tensor([stds[1] / stds[0], stds[2] / stds[0]])
        assert torch.allclose(scale, expected, rtol=0.05), family
