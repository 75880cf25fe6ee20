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


def test_widened_context_network_starts_as_the_gray_one_per_channel():
    from noise2score.networks import channel_scorer, widen_inputs

    gray = N2NUNet(1)
    torch.nn.init.normal_(gray.head[0].bias, 0.0, 0.1)  # not all-zero, so the check has teeth
    context = build_network("n2n_unet", 3, 1)
    widen_inputs(context, gray.state_dict())
    y = torch.rand(2, 3, 40, 40)
    alone = channel_scorer(gray, per_channel=True, context=False)(y)
    with_context = channel_scorer(context, per_channel=True, context=True)
    assert torch.allclose(with_context(y), alone, atol=1e-6)
    torch.nn.init.normal_(context.enc_first[0].weight[:, 1:], 0.0, 1.0)  # the context inputs now count
    assert not torch.allclose(with_context(y), alone, atol=1e-4)
    with pytest.raises(ValueError, match="cannot widen"):
        widen_inputs(N2NUNet(1), context.state_dict())


def test_level_input_network_widened_from_plain_weights_starts_as_them():
    from noise2score.networks import LevelInput, widen_inputs

    plain = N2NUNet(3)
    torch.nn.init.normal_(plain.head[0].bias, 0.0, 0.1)
    told = build_network("n2n_unet", 4, 3)
    widen_inputs(told, plain.state_dict())
    y = torch.rand(2, 3, 40, 40)
    for scale in (torch.tensor([0.6]), torch.tensor([0.6, 2.0])):
        assert torch.allclose(LevelInput(told, scale)(y), plain(y), atol=1e-6)
    torch.nn.init.normal_(told.enc_first[0].weight[:, 3:], 0.0, 1.0)  # the level map now counts
    low, high = LevelInput(told, torch.tensor([0.6])), LevelInput(told, torch.tensor([2.0]))
    assert not torch.allclose(low(y), high(y), atol=1e-4)
    both = LevelInput(told, torch.tensor([0.6, 2.0]))(torch.cat([y[:1], y[:1]]))  # one level per image
    assert torch.allclose(both[0], low(y[:1])[0], atol=1e-5)
    assert torch.allclose(both[1], high(y[:1])[0], atol=1e-5)
    with pytest.raises(ValueError, match="2 levels for a batch of 3"):
        LevelInput(told, torch.tensor([0.6, 2.0]))(torch.rand(3, 3, 40, 40))


def test_level_output_divides_each_images_output_by_its_noise_scale():
    from noise2score.networks import LevelInput, channel_scorer

    told = build_network("n2n_unet", 2, 1)
    torch.nn.init.normal_(told.head[0].bias, 0.0, 0.1)
    y = torch.rand(2, 1, 40, 40)
    scales, noise = torch.tensor([0.6, 2.0]), torch.tensor([0.5, 4.0])
    plain = LevelInput(told, scales)(y)
    scaled = LevelInput(told, scales, noise)(y)
    assert torch.allclose(scaled, plain / noise.view(2, 1, 1, 1), atol=1e-6)
    folded = channel_scorer(told, per_channel=True, context=False, level_scale=scales, output_scale=noise)
    y3 = torch.rand(2, 3, 40, 40)  # per channel: each image's three channels keep its own scale
    expected = channel_scorer(told, per_channel=True, context=False, level_scale=scales)(y3)
    assert torch.allclose(folded(y3), expected / noise.view(2, 1, 1, 1), atol=1e-6)


@pytest.mark.parametrize("context", [False, True])
def test_per_channel_network_is_told_each_image_its_own_level(context):
    from noise2score.networks import channel_scorer, widen_inputs

    plain = build_network("n2n_unet", 3 if context else 1, 1)
    torch.nn.init.normal_(plain.head[0].bias, 0.0, 0.1)
    told = build_network("n2n_unet", plain.enc_first[0].in_channels + 1, 1)
    widen_inputs(told, plain.state_dict())
    y = torch.rand(2, 3, 40, 40)
    scales = torch.tensor([0.6, 2.0])
    as_plain = channel_scorer(plain, per_channel=True, context=context)(y)
    assert torch.allclose(
        channel_scorer(told, per_channel=True, context=context, level_scale=scales)(y), as_plain, atol=1e-6
    )
    torch.nn.init.normal_(told.enc_first[0].weight[:, -1:], 0.0, 1.0)  # the level map now counts
    both = channel_scorer(told, per_channel=True, context=context, level_scale=scales)(y)
    for i in range(2):  # each image scored as if alone at its own level, on every channel
        alone = channel_scorer(told, per_channel=True, context=context, level_scale=scales[i : i + 1])(
            y[i : i + 1]
        )
        assert torch.allclose(both[i], alone[0], atol=1e-5)
    assert not torch.allclose(
        both[0],
        channel_scorer(told, per_channel=True, context=context, level_scale=scales[1:])(y[:1])[0],
        atol=1e-4,
    )


@pytest.mark.parametrize("channels", [1, 3])
def test_unshared_network_starts_as_the_shared_one_and_then_can_differ(channels):
    from noise2score.networks import unshare

    shared, unshared = build_network("n2n_unet", channels), build_network("n2n_unet_unshared", channels)
    assert 1.3e6 < sum(p.numel() for p in unshared.parameters()) < 1.4e6
    unshared.load_state_dict(unshare(shared.state_dict()))
    y = torch.rand(2, channels, 40, 72)
    assert torch.equal(unshared(y), shared(y))
    with torch.no_grad():  # the copies are separate weights: one scale changes alone
        unshared.dec_shared[1][0].weight.add_(0.01)
    assert not torch.allclose(unshared(y), shared(y))
