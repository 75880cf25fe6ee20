"""Score networks. ``build_network(name, channels)`` is the one entry point."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Noise2Noise U-Net sizes (Lehtinen et al. 2018), as used by Noise2Score.
ENCODER_WIDTH = 48
DECODER_WIDTH = 96
DEPTH = 5  # poolings, hence inputs are padded to a multiple of 2**5 = 32


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.1)]


def _up(channels: int) -> nn.Module:
    return nn.ConvTranspose2d(channels, channels, 3, stride=2, padding=1, output_padding=1)


# Blocks that the shared U-Net runs several times: encoder blocks 2-5, decoder blocks 4-2.
REPEATS = {"enc_shared": DEPTH - 1, "dec_shared": DEPTH - 2}


class N2NUNet(nn.Module):
    """Noise2Noise U-Net: 48-channel encoder with 5 poolings, 96-channel decoder.

    Encoder blocks 2-5 share one set of weights, as do decoder blocks 4-2 (about
    0.70 M parameters), as in the authors' code; ``shared=False`` gives every scale its
    own blocks (about 1.35 M parameters, the same compute). Output is linear (a score,
    not an image). Any input size: reflect-padded to a multiple of 32 and cropped back.
    """

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, shared: bool = True) -> None:
        super().__init__()
        out_channels = out_channels or in_channels
        e, d = ENCODER_WIDTH, DECODER_WIDTH
        self.shared = shared
        self.enc_first = nn.Sequential(*_conv(in_channels, e), *_conv(e, e), nn.MaxPool2d(2))
        self.enc_shared = self._blocks("enc_shared", lambda: nn.Sequential(*_conv(e, e), nn.MaxPool2d(2)))
        self.bottom = nn.Sequential(*_conv(e, e), _up(e))
        self.dec_first = nn.Sequential(*_conv(2 * e, d), *_conv(d, d), _up(d))
        self.dec_shared = self._blocks(
            "dec_shared", lambda: nn.Sequential(*_conv(d + e, d), *_conv(d, d), _up(d))
        )
        self.head = nn.Sequential(
            *_conv(d + in_channels, 64), *_conv(64, 32), nn.Conv2d(32, out_channels, 3, padding=1)
        )
        self.reset_parameters()

    def _blocks(self, name: str, make: Callable[[], nn.Module]) -> nn.Module:
        """One block, or (unshared) a list of one per use."""
        return make() if self.shared else nn.ModuleList(make() for _ in range(REPEATS[name]))

    def _block(self, blocks: nn.Module, i: int) -> nn.Module:
        return blocks if self.shared else blocks[i]

    def reset_parameters(self) -> None:
        """Weights N(0, 0.02), biases zero (the authors' initialisation)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, y: Tensor) -> Tensor:
        h, w = y.shape[-2:]
        multiple = 2**DEPTH
        pad_h, pad_w = (-h) % multiple, (-w) % multiple
        if pad_h or pad_w:
            y = _reflect_pad(y, pad_h, pad_w)
        skips = [y, self.enc_first(y)]
        for i in range(REPEATS["enc_shared"]):
            skips.append(self._block(self.enc_shared, i)(skips[-1]))
        out = self.bottom(skips.pop())
        out = self.dec_first(torch.cat([out, skips.pop()], 1))
        for i in range(REPEATS["dec_shared"]):
            out = self._block(self.dec_shared, i)(torch.cat([out, skips.pop()], 1))
        out = self.head(torch.cat([out, skips.pop()], 1))
        return out[..., :h, :w]


def _reflect_pad(y: Tensor, pad_h: int, pad_w: int) -> Tensor:
    """Reflect-pad bottom/right; falls back to replicate where the image is too small."""
    h, w = y.shape[-2:]
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(y, (0, pad_w, 0, pad_h), mode=mode)


class ChannelFolded(nn.Module):
    """Runs a one-channel network on each channel of a (B, C, H, W) batch alone, as a
    batch of C*B gray images, channel by channel (block k: channel k of every image, the
    order ``LevelInput`` repeats its levels in). Wrap at use, not in a model: the state
    dict stays the inner network's."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, y: Tensor) -> Tensor:
        b, c, h, w = y.shape
        folded = y.transpose(0, 1).reshape(c * b, 1, h, w)
        return self.network(folded).reshape(c, b, h, w).transpose(0, 1).contiguous()


class ChannelContext(ChannelFolded):
    """Runs a network of C inputs and one output once for each channel of a (B, C, H, W)
    batch: that channel first, the others after it in cyclic order (R G B, G B R, B R G).
    Each channel's score is its own network pass, as in ``ChannelFolded``, but it sees
    the other channels. Wrap at use: the state dict stays the inner network's."""

    def forward(self, y: Tensor) -> Tensor:
        b, c, h, w = y.shape
        rolled = torch.cat([torch.roll(y, -k, dims=1) for k in range(c)])  # block k: channel k first
        return self.network(rolled).reshape(c, b, h, w).transpose(0, 1).contiguous()


class LevelInput(nn.Module):
    """Runs a network whose last input channel is the noise level: a constant map of
    ``scale`` (the level's noise scale relative to the weights' own level, as
    ``NoiseModel.sigma_a_scale`` gives it: one value, or one per image) after the image
    channels. With ``output_scale`` (the noise's standard deviation relative to the
    weights' level, ``NoiseModel.noise_scale``) the output is divided by it: the score
    shrinks as the noise grows, so the network itself outputs the same size at every
    level. Per-channel networks are told inside their channel wrapper, whose batches
    are whole batches repeated once per channel. Wrap at use: the state dict stays the
    inner network's."""

    def __init__(self, network: nn.Module, scale: Tensor, output_scale: Tensor | None = None) -> None:
        super().__init__()
        self.network = network
        self.scale = scale.reshape(-1)
        self.output_scale = None if output_scale is None else output_scale.reshape(-1)

    def forward(self, y: Tensor) -> Tensor:
        b, _, h, w = y.shape
        scale = self._per_sample(self.scale, y)
        out = self.network(torch.cat([y, scale.expand(b, 1, h, w)], 1))
        return out if self.output_scale is None else out / self._per_sample(self.output_scale, y)

    @staticmethod
    def _per_sample(values: Tensor, y: Tensor) -> Tensor:
        """One value per sample of ``y``, shape (B, 1, 1, 1): repeated for antithetic pairs,
        tiles and channels."""
        b = y.shape[0]
        if b % values.numel():
            raise ValueError(f"{values.numel()} levels for a batch of {b}")
        return values.to(y).repeat(b // values.numel()).view(b, 1, 1, 1)


def channel_scorer(
    network: nn.Module,
    *,
    per_channel: bool,
    context: bool,
    level_scale: Tensor | None = None,
    output_scale: Tensor | None = None,
) -> nn.Module:
    """``network`` as a score of C-channel images: as it is, per channel alone, or per
    channel with the other channels as context; told the level (``LevelInput``) where
    ``level_scale`` is given, its output divided by ``output_scale`` where that is."""
    if level_scale is not None:
        network = LevelInput(network, level_scale, output_scale)
    if context:
        return ChannelContext(network)
    return ChannelFolded(network) if per_channel else network


def widen_inputs(target: nn.Module, state: dict[str, Tensor]) -> None:
    """Load ``state`` of a network with fewer input channels into ``target``: each
    weight goes into the leading slice of input channels, the added ones start at zero.
    For ``ChannelContext`` the own channel comes first, ``LevelInput`` puts the level
    map after the image, and every N2NUNet input concatenation puts the image channels
    last, so the widened network starts out computing exactly what the narrow one did."""
    widened = {}
    for key, ours in target.state_dict().items():
        theirs = state[key]
        if theirs.shape != ours.shape:
            narrower = theirs.dim() >= 2 and theirs.shape[1] < ours.shape[1]
            if not narrower or theirs.shape[0] != ours.shape[0] or theirs.shape[2:] != ours.shape[2:]:
                raise ValueError(f"{key}: cannot widen {tuple(theirs.shape)} to {tuple(ours.shape)}")
            added = theirs.new_zeros(ours.shape[0], ours.shape[1] - theirs.shape[1], *ours.shape[2:])
            theirs = torch.cat([theirs, added], 1)
        widened[key] = theirs
    target.load_state_dict(widened)


def rebase_level(state: dict[str, Tensor], input_factor: float, output_factor: float) -> dict[str, Tensor]:
    """``state`` of told N2NUNet weights moved to another reference level: the level
    map (the last input channel, read by the first encoder conv and, through the image
    skip, by the first head conv) weighs ``input_factor`` more, the output
    ``output_factor`` more. Both are linear there, so the rebased network computes
    exactly what the old one did at every level."""
    rebased = dict(state)
    for key in ("enc_first.0.weight", "head.0.weight"):
        weight = state[key].clone()
        weight[:, -1] *= input_factor
        rebased[key] = weight
    last = max(
        (k for k in state if k.startswith("head.") and k.endswith(".weight")),
        key=lambda k: int(k.split(".")[1]),
    )
    for key in (last, last.removesuffix("weight") + "bias"):
        rebased[key] = state[key] * output_factor
    return rebased


def unshare(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A shared U-Net's ``state`` for the unshared one: every use of a shared block gets
    its own copy, so the unshared network starts out computing exactly the same."""
    unshared = {}
    for key, value in state.items():
        name, _, rest = key.partition(".")
        if name in REPEATS:
            unshared.update({f"{name}.{i}.{rest}": value.clone() for i in range(REPEATS[name])})
        else:
            unshared[key] = value
    return unshared


NETWORKS = {"n2n_unet": N2NUNet, "n2n_unet_unshared": functools.partial(N2NUNet, shared=False)}
# Weights of the key's network can start the value's (``STARTS[ours][theirs]``).
STARTS = {"n2n_unet_unshared": {"n2n_unet": unshare}}


def build_network(name: str, channels: int, out_channels: int | None = None) -> nn.Module:
    """Score network by name (``channels`` in, ``out_channels`` out, by default as many);
    add new architectures to ``NETWORKS``."""
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; choose from {sorted(NETWORKS)}")
    return NETWORKS[name](channels, out_channels)
