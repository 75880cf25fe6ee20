import pytest
import torch

from noise2score.noise import make_noise
from noise2score.tiling import ALIGN, ensemble_score, estimate_score, tile_spans
from noise2score.weights import DEFAULT_WEIGHTS, bundled_names, load_weights


@pytest.mark.parametrize(
    ("length", "tile", "overlap"),
    [(1024, 256, 64), (1024, 255, 33), (481, 97, 31), (100, 64, 0), (64, 128, 16)],
)
def test_spans_cover_the_image_aligned_and_overlapping(length, tile, overlap):
    spans = tile_spans(length, tile, overlap)
    covered = torch.zeros(length, dtype=torch.bool)
    for start, end in spans:
        assert start % ALIGN == 0 and end - start <= max(tile, length if len(spans) == 1 else tile)
        covered[start:end] = True
    assert covered.all()
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert end - start >= min(overlap, length)


def test_invalid_tiles_are_refused():
    with pytest.raises(ValueError):
        tile_spans(100, 16, 0)
    with pytest.raises(ValueError):
        tile_spans(1000, 128, 64)


class Blur(torch.nn.Module):
    """Position-independent stand-in network with a 9x9 receptive field."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 9, padding=4, padding_mode="reflect", bias=False)
        torch.nn.init.constant_(self.conv.weight, 1 / 81)

    def forward(self, y):
        return self.conv(y)


def test_blending_reproduces_a_local_operator_exactly_in_the_interior():
    y = torch.rand(1, 1, 200, 170)
    whole = estimate_score(Blur(), y)
    tiled = estimate_score(Blur(), y, tile=64, overlap=24)
    assert (whole - tiled).abs().max() < 1e-5


@pytest.mark.slow
@pytest.mark.skipif(DEFAULT_WEIGHTS not in bundled_names(), reason="bundled weights not present")
@pytest.mark.parametrize(("tile", "overlap"), [(768, 256), (512, 224), (479, 229), (640, 256)])
def test_tiled_and_whole_agree_on_a_1024_image(tile, overlap, _whole_1024):
    network, y, whole = _whole_1024
    sigma2 = (25 / 255) ** 2
    tiled = estimate_score(network, y, tile=tile, overlap=overlap, batch_size=3)
    assert (sigma2 * (tiled - whole)).abs().max().item() < 1e-3


@pytest.fixture(scope="module")
def _whole_1024():
    from skimage import data

    network, _ = load_weights(DEFAULT_WEIGHTS)
    x = torch.from_numpy(data.camera()).float()[None, None] / 255
    x = torch.nn.functional.interpolate(x, size=(1024, 1024), mode="bilinear")
    y = make_noise("gaussian", 25).sample(x, generator=torch.Generator().manual_seed(0))
    return network, y, estimate_score(network, y)


def test_self_ensemble_makes_any_operator_rotation_and_mirror_equivariant():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)  # a random kernel: not symmetric
    y = torch.rand(1, 1, 24, 40)  # not square: turns change the shape
    with torch.no_grad():
        single = conv(y)
        assert not torch.allclose(torch.rot90(conv(torch.rot90(y, 1, (2, 3))), -1, (2, 3)), single)
        ens = ensemble_score(conv, y)
        assert ens.shape == y.shape
        assert torch.allclose(
            torch.rot90(ensemble_score(conv, torch.rot90(y, 1, (2, 3))), -1, (2, 3)), ens, atol=1e-6
        )
        assert torch.allclose(ensemble_score(conv, y.flip(2)).flip(2), ens, atol=1e-6)
        assert torch.allclose(ensemble_score(lambda t: 2 * t, y), 2 * y)  # equivariant already: unchanged
