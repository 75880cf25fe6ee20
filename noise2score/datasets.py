"""Benchmark data registry: file lists, SHA-256 checksums, origins; fetch and list.

The registry (``datasets.tsv``) records, for each image of BSD68, Set12, CBSD68,
Kodak24, Train400 and CBSD432, its size, checksum and public download address.
A data directory is looked up as: ``--data-dir``, then ``$NOISE2SCORE_DATA``, then
``./data``; dataset NAME lives in ``<data dir>/NAME/``.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import urllib.request
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REGISTRY = Path(__file__).with_name("datasets.tsv")
ENV_VAR = "NOISE2SCORE_DATA"

ORIGINS = {
    "bsd68": ("test", 1, "BSD68 (Roth & Black 68-image split of BSDS300), gray, via cszn/DnCNN"),
    "set12": ("test", 1, "Set12 (DnCNN), gray, via cszn/DnCNN"),
    "cbsd68": ("test", 3, "CBSD68, colour BSDS300 test images, via cszn/FFDNet"),
    "kodak24": ("test", 3, "Kodak PhotoCD PCD0992, full 768x512, via cszn/IRCNN"),
    "train400": ("train", 1, "Train400 (Chen & Pock), 180x180 gray BSDS crops, via cszn/DnCNN"),
    "cbsd432": ("train", 3, "CBSD432, BSDS500 minus CBSD68, via Magauiya/Extended_SURE"),
}


class DataError(ValueError):
    """A dataset is missing, incomplete or corrupt; the message names the file."""


@dataclass(frozen=True)
class DataFile:
    name: str
    size: int
    sha256: str
    url: str


@dataclass(frozen=True)
class Dataset:
    name: str
    split: str
    channels: int
    description: str
    files: tuple[DataFile, ...]


@cache
def registry() -> dict[str, Dataset]:
    rows: dict[str, list[DataFile]] = {}
    with REGISTRY.open() as f:
        for row in csv.DictReader(f, delimiter="\t"):
            rows.setdefault(row["dataset"], []).append(
                DataFile(row["file"], int(row["bytes"]), row["sha256"], row["url"])
            )
    return {name: Dataset(name, *ORIGINS[name], tuple(files)) for name, files in rows.items()}


def get_dataset(name: str) -> Dataset:
    if name not in registry():
        raise DataError(f"unknown dataset {name!r}; choose from {sorted(registry())}")
    return registry()[name]


def data_dir(override: str | Path | None = None) -> Path:
    return Path(override or os.environ.get(ENV_VAR) or "data")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(folder: Path, dataset: Dataset, *, checksums: bool = True) -> None:
    """Raise :class:`DataError` naming the first missing or mismatching file."""
    for item in dataset.files:
        path = folder / item.name
        if not path.is_file():
            raise DataError(f"{dataset.name}: missing {path}")
        if path.stat().st_size != item.size or (checksums and sha256_file(path) != item.sha256):
            raise DataError(f"{dataset.name}: checksum mismatch for {path}")


def dataset_files(name: str, override: str | Path | None = None) -> list[Path]:
    """Paths of a present dataset's images (sizes checked; ``data fetch`` checks hashes)."""
    dataset = get_dataset(name)
    folder = data_dir(override) / name
    if not folder.is_dir():
        raise DataError(
            f"{name} not found in {folder.parent}: run `noise2score data fetch {name}` "
            f"or pass --data-dir / set {ENV_VAR}"
        )
    verify(folder, dataset, checksums=False)
    return [folder / f.name for f in dataset.files]


def fetch(name: str, *, source: str | Path | None = None, target: str | Path | None = None) -> Path:
    """Fill ``<target>/<name>/`` by copy from ``source`` (a folder) or by download.

    Every file is checked against its SHA-256 before the folder appears; on any error
    nothing half-copied is left behind.
    """
    dataset = get_dataset(name)
    final = data_dir(target) / name
    if final.exists():
        verify(final, dataset)
        return final
    partial = final.with_name(f".{name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        for item in dataset.files:
            out = partial / item.name
            if source is not None:
                origin = Path(source) / item.name
                if not origin.is_file():
                    raise DataError(f"{name}: {origin} is missing")
                shutil.copyfile(origin, out)
            else:
                _download(item.url, out)
            if sha256_file(out) != item.sha256:
                raise DataError(f"{name}: checksum mismatch for {item.name} (from {source or item.url})")
        partial.rename(final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return final


def _download(url: str, out: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response, out.open("wb") as f:
            shutil.copyfileobj(response, f)
    except OSError as err:
        raise DataError(f"could not download {url}: {err}; use --from DIR with a local copy") from None


def status(override: str | Path | None = None) -> list[tuple[str, str, int, str]]:
    """(name, split, images, state) rows for ``data list``."""
    rows = []
    for name, dataset in registry().items():
        folder = data_dir(override) / name
        present = sum((folder / f.name).is_file() for f in dataset.files) if folder.is_dir() else 0
        state = "ok" if present == len(dataset.files) else f"{present}/{len(dataset.files)} present"
        rows.append((name, dataset.split, len(dataset.files), state))
    return rows
