"""Weights on disk: bundled safetensors with model cards, and Lightning checkpoints.

Only safe loaders are used: ``safetensors`` and ``torch.load(weights_only=True)``.
A safetensors file carries its own description in its metadata (network, channels,
noise family and level), so a path is enough to rebuild the denoiser.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save

from noise2score.datasets import sha256_file
from noise2score.networks import build_network

BUNDLED_DIR = Path(__file__).parent / "weights"
DEFAULT_WEIGHTS = "gaussian25-gray"


@dataclass
class WeightsInfo:
    """What a set of weights is: enough to rebuild the network and the noise model."""

    network: str
    channels: int  # of the images it denoises
    family: str
    level: float  # blind weights: the level they were validated at
    name: str = ""
    levels: tuple[float, float] | None = None  # training range of blind weights
    card: dict = field(default_factory=dict)
    sha256: str = ""
    per_channel: bool = False  # a one-channel network run on each colour channel alone
    context: bool = False  # per channel, the network also sees the other channels
    level_input: bool = False  # the network is told the noise level (an input channel)
    level_output: bool = False  # told weights: the score is the output over the noise scale

    def __post_init__(self) -> None:
        name = f" {self.name}" if self.name else ""
        if self.context and not self.per_channel:
            raise ValueError(f"weights{name}: channel_context needs per_channel")
        if self.level_output and not self.level_input:
            raise ValueError(f"weights{name}: level_output needs level_input")

    def metadata(self) -> dict[str, str]:
        return {
            "network": self.network,
            "channels": str(self.channels),
            "family": self.family,
            "level": repr(self.level),
            "name": self.name,
            **({"levels": f"{self.levels[0]!r},{self.levels[1]!r}"} if self.levels else {}),
            **({"per_channel": "true"} if self.per_channel else {}),
            **({"channel_context": "true"} if self.context else {}),
            **({"level_input": "true"} if self.level_input else {}),
            **({"level_output": "true"} if self.level_output else {}),
        }

    @property
    def network_channels(self) -> int:
        """Input channels of the network itself: 1 for per-channel weights alone, one
        more for the level map of level-conditioned weights."""
        return (1 if self.per_channel and not self.context else self.channels) + self.level_input

    @property
    def network_out_channels(self) -> int:
        """Output channels of the network itself: 1 for per-channel weights."""
        return 1 if self.per_channel else self.channels

    @property
    def blind(self) -> bool:
        """Level-agnostic weights: trained across a range of levels."""
        return self.levels is not None


def bundled_names() -> list[str]:
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.safetensors"))


def resolve(name_or_path: str | Path) -> Path:
    """A bundled weight name or a file path, as a path that exists."""
    text = str(name_or_path)
    if text in bundled_names():
        return BUNDLED_DIR / f"{text}.safetensors"
    path = Path(text).expanduser()
    if path.is_file():
        return path
    known = ", ".join(bundled_names()) or "none bundled"
    raise FileNotFoundError(f"no weights named {text!r} and no such file (bundled: {known})")


def load_weights(name_or_path: str | Path, *, source: str = "ema") -> tuple[torch.nn.Module, WeightsInfo]:
    """Rebuild the score network from bundled weights, .safetensors or a .ckpt file
    (``source`` picks a checkpoint's EMA copy or its trained network)."""
    path = resolve(name_or_path)
    if path.suffix == ".ckpt":
        state, info = _read_checkpoint(path, source)
    elif path.suffix == ".safetensors":
        state, info = _read_safetensors(path)
    else:
        raise ValueError(f"{path}: expected a .safetensors or .ckpt file")
    info.sha256 = sha256_file(path)
    card_path = path.with_suffix(".json")
    if card_path.is_file():
        info.card = json.loads(card_path.read_text())
    network = build_network(info.network, info.network_channels, info.network_out_channels)
    try:
        network.load_state_dict(state)
    except RuntimeError as err:  # tensors of another shape or name than the metadata says
        raise ValueError(
            f"{path}: its tensors do not fit the {info.network} network its metadata names "
            f"({info.network_channels} in, {info.network_out_channels} out)"
        ) from err
    return network.eval(), info


def _read_safetensors(path: Path) -> tuple[dict, WeightsInfo]:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    missing = {"network", "channels", "family", "level"} - meta.keys()
    if missing:
        raise ValueError(f"{path}: metadata lacks {sorted(missing)}; export it with `noise2score export`")
    info = WeightsInfo(
        meta["network"],
        int(meta["channels"]),
        meta["family"],
        float(meta["level"]),
        name=meta.get("name") or path.stem,
        levels=tuple(float(v) for v in meta["levels"].split(",")) if meta.get("levels") else None,
        per_channel=meta.get("per_channel") == "true",
        context=meta.get("channel_context") == "true",
        level_input=meta.get("level_input") == "true",
        level_output=meta.get("level_output") == "true",
    )
    return load_file(str(path)), info


def load_checkpoint(path: str | Path) -> dict:
    """A training checkpoint, loaded safely (``weights_only``); a one-line error for a
    file that is not one (truncated, another format, another program's)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # pickle's, zip's and torch's errors all mean "not a checkpoint"
        raise ValueError(f"{path}: not a readable checkpoint ({type(err).__name__})") from None
    if not isinstance(checkpoint, dict) or not {"state_dict", "hyper_parameters"} <= checkpoint.keys():
        raise ValueError(f"{path}: not a noise2score training checkpoint (no state_dict, hyper_parameters)")
    return checkpoint


def _read_checkpoint(path: Path, source: str = "ema") -> tuple[dict, WeightsInfo]:
    """Network weights of a Lightning checkpoint: the EMA copy (what validation scored)
    when there is one and ``source`` is "ema", else the trained network itself."""
    path = Path(path)
    checkpoint = load_checkpoint(path)
    hp = checkpoint["hyper_parameters"]
    state = checkpoint["state_dict"]
    has_ema = any(k.startswith("ema.module.") for k in state)
    prefix = "ema.module." if has_ema and source == "ema" else "network."
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    levels = tuple(float(v) for v in hp["levels"]) if hp.get("levels") else None
    info = WeightsInfo(
        hp["network"],
        int(hp["channels"]),
        hp["noise"],
        float(hp["level"]),
        name=path.stem,
        levels=levels,
        per_channel=bool(hp.get("per_channel", False)),
        context=bool(hp.get("channel_context", False)),
        level_input=bool(hp.get("level_input", False)),
        level_output=bool(hp.get("level_output", False)),
    )
    return weights, info


def export_weights(
    checkpoint: str | Path, out: str | Path, *, name: str = "", source: str = "ema", replace: bool = False
) -> Path:
    """Write a checkpoint's network (``source``: "ema" or "network") as self-describing
    .safetensors; an existing ``out`` is replaced only with ``replace``."""
    if source not in ("ema", "network"):
        raise ValueError(f"source must be 'ema' or 'network', got {source!r}")
    refuse_existing(out, replace)
    state, info = _read_checkpoint(Path(checkpoint), source)
    info.name = name or Path(out).stem
    out = Path(out)
    tensors = {k: v.contiguous() for k, v in state.items()}
    partial = out.with_name(out.name + ".partial")  # the old file stays whole until the new one is
    partial.write_bytes(_sorted_header(save(tensors, metadata=info.metadata())))
    partial.replace(out)
    return out


def refuse_existing(out: str | Path, replace: bool) -> None:
    """Exported weights are replaced only when asked (``--replace``)."""
    if Path(out).exists() and not replace:
        raise FileExistsError(f"{out} exists; remove it first, or pass --replace")


def _sorted_header(blob: bytes) -> bytes:
    """A .safetensors file with its JSON header's keys sorted. safetensors writes the
    metadata in hash order, which varies between processes, so the same tensors would
    get another sha256 at every export; the tensor offsets count from the header's end."""
    size = int.from_bytes(blob[:8], "little")
    header = json.dumps(json.loads(blob[8 : 8 + size]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the format keeps the data 8-byte aligned
    return len(header).to_bytes(8, "little") + header + blob[8 + size :]
