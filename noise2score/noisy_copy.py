"""``make-noisy``: turn a folder of clean images into a noisy-only training folder.

One fixed draw per image, seeded by (seed, file name), written as float32 TIFF
(unclipped), plus ``noisy.json`` recording noise, level, seed and source checksums.
With ``gray``, colour images are first made gray (ITU-R BT.601 luma, as MATLAB's
rgb2gray that made the gray benchmark sets): more gray training scenes from colour sets.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
from kornia.color import rgb_to_grayscale

from noise2score.datasets import sha256_file
from noise2score.image_io import NO_IMAGES, ImageError, list_images, make_folder, read_image, write_image
from noise2score.metrics import from_hwc, to_hwc
from noise2score.noise import NoiseModel, make_noise, seeded_generator

RECORD_NAME = "noisy.json"
# The folder names the configs use: data/noisy/<set>[-gray]-<family><level>, e.g.
# cbsd432-gaussian50, or cbsd432-gray-gaussian25 for gray copies of a colour set.
FOLDER_NAME = re.compile(
    r"(?P<set>[a-z0-9]+)(?P<gray>-gray)?-(?P<family>gaussian|poisson|gamma)(?P<level>\d+(?:\.\d+)?)"
)


def as_list(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """A config's one folder (or file) or several, as a list; None gives []."""
    return [value] if isinstance(value, str) else list(value or [])


def read_record(folder: str | Path) -> dict | None:
    """What ``make-noisy`` recorded for a noisy folder (noise, level, seed, ...); None
    where it has no record."""
    path = Path(folder) / RECORD_NAME
    return json.loads(path.read_text()) if path.is_file() else None


class NoisyFolder(NamedTuple):
    clean_set: str
    family: str
    level: float
    gray: bool = False


def parse_folder_name(path: str | Path) -> NoisyFolder | None:
    """What a noisy folder named as in configs/ holds, else None."""
    match = FOLDER_NAME.fullmatch(Path(path).name)
    if not match:
        return None
    return NoisyFolder(match["set"], match["family"], float(match["level"]), bool(match["gray"]))


def named_folders(configs: list[dict]) -> list[str]:
    """The noisy folders named as above that configs train or validate on, in order, once."""
    named = [(config.get("data") or {}).get(key) for config in configs for key in ("train_dir", "val_dir")]
    folders = [f for n in named for f in as_list(n) if parse_folder_name(f)]
    return list(dict.fromkeys(folders))


def make_named_folder(folder: str | Path, clean_root: str | Path, *, seed: int = 0) -> Path:
    """Make a noisy folder named as in configs/ from ``clean_root/<set>``: the same
    files ``make-noisy`` gives with its defaults on any machine."""
    parsed = parse_folder_name(folder)
    if parsed is None:
        raise ImageError(f"{folder}: not a noisy folder name (<set>[-gray]-<family><level>)")
    noise = make_noise(parsed.family, parsed.level)
    return make_noisy(Path(clean_root) / parsed.clean_set, folder, noise, seed=seed, gray=parsed.gray)


def make_noisy(
    clean_dir: str | Path,
    out_dir: str | Path,
    noise: NoiseModel,
    *,
    seed: int = 0,
    overwrite: bool = False,
    gray: bool = False,
) -> Path:
    """Write one noisy float32 TIFF per clean image (colour ones made gray first with
    ``gray``); returns the record's path."""
    clean_dir, out_dir = Path(clean_dir), Path(out_dir)
    sources = list_images(clean_dir)
    if not sources:
        raise ImageError(f"{clean_dir}: {NO_IMAGES}")
    make_folder(out_dir)
    if out_dir.resolve() == clean_dir.resolve():
        raise ImageError(f"{out_dir}: the output folder must differ from the clean folder")
    targets = [out_dir / f"{p.stem}.tif" for p in sources] + [out_dir / RECORD_NAME]
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise ImageError(f"{existing[0]} exists ({len(existing)} files would be replaced); pass --overwrite")
    record = {
        "noise": noise.family,
        "level": noise.level,
        "seed": seed,
        "source": str(clean_dir),
        "gray": gray,
        "files": {},
    }
    for path in sources:
        x = from_hwc(read_image(path).pixels)
        if gray and x.shape[1] == 3:
            x = rgb_to_grayscale(x)
        y = noise.sample(x, generator=seeded_generator(seed, path.name))
        write_image(out_dir / f"{path.stem}.tif", to_hwc(y).astype(np.float32), dtype=np.float32)
        record["files"][path.name] = sha256_file(path)
    (out_dir / RECORD_NAME).write_text(json.dumps(record, indent=1) + "\n")
    return out_dir / RECORD_NAME
