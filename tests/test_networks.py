import pytest
import torch

from noise2score.networks import N2NUNet, build_network


@pytest.mark.parametrize("channels", [1, 3])
def test_parameter_count_matches_noise2noise_unet(channels):
    n = sum(p.numel() for p in build_network("n2n_unet", channels).parameters())
    assert 0.69e6 < n < 0.71e6


@pytest.mark.parametrize("size", [(8, 8), (33, 70), (64, 64), (101, 37)])
def test_any_input_size_keeps_shape(size):
    net = N2NUNet(3)
    assert net(torch.rand(2, 3, *size)).shape == (2, 3, *size)


def test_initialisation():
    weights = torch.cat([m.weight.flatten() for m in N2NUNet(1).modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(weights.std().item() - 0.02) < 0.002
    assert all((m.bias == 0).all() for m in N2NUNet(1).modules() if isinstance(m, torch.nn.Conv2d))


def test_unknown_network_is_refused():
    with pytest.raises(ValueError, match="unknown network"):
        build_network("resnet", 1)
