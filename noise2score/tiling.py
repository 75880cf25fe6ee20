"""Score of a whole image, computed whole or in overlapping tiles.

Tiles start on multiples of the network's pooling stride (32), so inside a tile the
pooling grid matches the whole-image one; tile scores are blended with weights that
fall off linearly towards edges shared with a neighbouring tile. Tweedie is applied
once, afterwards, on the whole image (see ``denoiser``).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator

import torch
from torch import Tensor, nn

ALIGN = 32  # the N2N U-Net pools 5 times
MIN_TILE = 2 * ALIGN
DEFAULT_TILE = 768  # bounds memory: about 0.7 GB of activations per RGB tile in fp32
# The trained U-Net looks far. Largest difference of sigma^2 * score, tiled against whole,
# on a 1024 px image (tests/test_tiling.py): 2e-6 at tile 768 / overlap 256 (128 discarded
# per side), 7e-5 at 768 / 192, 2e-3 at 512 / 192, 2e-2 with an overlap of 64.
DEFAULT_OVERLAP = 256
DEFAULT_BATCH = 2


def tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Half-open spans [start, end) covering ``range(length)``.

    Starts are multiples of ``ALIGN``; consecutive tiles overlap by at least
    ``overlap`` pixels where the image is long enough.
    """
    if tile < MIN_TILE or not 0 <= overlap < tile // 2:
        raise ValueError(f"tile must be >= {MIN_TILE} and overlap in [0, tile/2), got {tile}, {overlap}")
    if tile >= length:
        return [(0, length)]
    step = max(ALIGN, (tile - overlap) // ALIGN * ALIGN)
    last = -(-(length - tile) // ALIGN) * ALIGN  # round up: the last tile ends at length
    starts = [*range(0, last, step), last]
    return [(s, length if s == last else min(length, s + tile)) for s in starts]


def _edge_weights(span: tuple[int, int], length: int, overlap: int) -> Tensor:
    """1-D blending weights at interior edges: zero over the outer half of the overlap
    (where the tile lacks context), then a linear ramp up to one."""
    start, end = span
    margin = overlap // 2
    ramp = max(overlap - margin, 1)
    index = torch.arange(end - start, dtype=torch.float32)
    w = torch.ones_like(index)
    if start > 0:
        w = torch.minimum(w, ((index + 1 - margin) / ramp).clamp(0, 1))
    if end < length:
        w = torch.minimum(w, ((end - start - index - margin) / ramp).clamp(0, 1))
    return w


def bf16_native(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` computes in bfloat16 natively. A CPU without it (AVX2 only:
    no AVX512-BF16 or AMX) emulates autocast: measured 8x slower than fp32 for inference
    and 12x for training on such a CPU (README, bfloat16)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@torch.no_grad()
def estimate_score(
    network: nn.Module,
    y: Tensor,
    *,
    tile: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
    batch_size: int = DEFAULT_BATCH,
    bf16: bool = False,
) -> Tensor:
    """Score R(y) of a (B, C, H, W) batch at sigma_a = 0, whole or tiled.

    Memory is bounded by ``tile`` (and ``batch_size`` tiles at once), not by the image.
    """
    device = next(network.parameters()).device
    _, _, h, w = y.shape
    if tile is None or (tile >= h and tile >= w):
        with _autocast(device, bf16):
            return network(y.to(device)).float().to(y.device)
    score = torch.zeros_like(y, dtype=torch.float32)
    weight = torch.zeros((1, 1, h, w), dtype=torch.float32, device=y.device)
    for group in _tile_groups(h, w, tile, overlap):
        for i in range(0, len(group), batch_size):
            chunk = group[i : i + batch_size]
            crops = torch.cat([y[..., r0:r1, c0:c1] for (r0, r1), (c0, c1) in chunk])
            with _autocast(device, bf16):
                out = network(crops.to(device)).float().to(y.device)
            for j, ((r0, r1), (c0, c1)) in enumerate(chunk):
                wr = _edge_weights((r0, r1), h, overlap)
                wc = _edge_weights((c0, c1), w, overlap)
                tile_weight = (wr[:, None] * wc[None, :]).to(y.device)
                part = out[j * y.shape[0] : (j + 1) * y.shape[0]]
                score[..., r0:r1, c0:c1] += tile_weight * part
                weight[..., r0:r1, c0:c1] += tile_weight
    return score / weight


# The eight symmetries of the square: (quarter turns, mirrored).
DIHEDRAL = [(turns, mirror) for mirror in (False, True) for turns in range(4)]


@torch.no_grad()
def ensemble_score(score_fn, y: Tensor) -> Tensor:
    """Mean of the score over the eight rotations and mirrorings of ``y``, each mapped
    back. The score of images whose statistics do not change under these symmetries
    transforms with the image, so every term estimates the same score and averaging
    lowers the network's error (8x the work)."""
    total = torch.zeros_like(y, dtype=torch.float32)
    for turns, mirror in DIHEDRAL:
        view = torch.rot90(y, turns, (2, 3))
        view = view.flip(3) if mirror else view
        out = score_fn(view)
        out = out.flip(3) if mirror else out
        total += torch.rot90(out, -turns, (2, 3))
    return total / len(DIHEDRAL)


def _tile_groups(h: int, w: int, tile: int, overlap: int) -> Iterator[list]:
    """Tiles grouped by shape, so each batch stacks tiles of one size."""
    groups: dict[tuple[int, int], list] = defaultdict(list)
    for rows in tile_spans(h, tile, overlap):
        for cols in tile_spans(w, tile, overlap):
            groups[(rows[1] - rows[0], cols[1] - cols[0])].append((rows, cols))
    yield from groups.values()
