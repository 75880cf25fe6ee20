"""Training data: folders of noisy images (plus optional clean ones for val/psnr).

The default is noisy-only: ``NoisyPatches`` reads one folder and returns noisy crops.
The synthetic mode (for level-agnostic "blind" weights, as in the paper) reads clean
images and makes each crop noisy at a level drawn uniformly from a range; the loss
still sees only noisy crops. Validation pairs noisy images with clean ones by file
stem when a clean folder is given; with several noisy folders (copies of one set at
several levels, for blind weights) each image is scored at its folder's recorded level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import kornia.augmentation as K
import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from noise2score.image_io import NO_IMAGES, ImageError, gray_stored_as_colour, list_images, read_pages
from noise2score.noise import make_noise
from noise2score.noisy_copy import RECORD_NAME, as_list, read_record
from noise2score.white import unit_range


def load_folder(
    folder: str | Path, channels: int | None = None, white: float | None = None, black: float = 0.0
) -> list[tuple[str, Tensor]]:
    """(stem, (C, H, W) float tensor) for every image in ``folder``; each page of a
    TIFF stack is an image of its own, named ``STEM-PAGE`` (from 1). ``white`` and
    ``black`` (file units) map to 1 and 0, as ``denoise --white --black``."""
    images = load_images(list_images(folder), channels, white, black)
    if not images:
        raise ImageError(f"{folder}: {NO_IMAGES}")
    return images


def load_images(
    paths: list[Path], channels: int | None = None, white: float | None = None, black: float = 0.0
) -> list[tuple[str, Tensor]]:
    """As :func:`load_folder`, for the image files ``paths``."""
    images = []
    for path in paths:
        pages = list(read_pages(path))
        for index, page in enumerate(pages):
            offset, scale = unit_range(page.pixels, page.source_dtype, white, black)
            pixels = torch.from_numpy((page.pixels - offset) / scale).float().permute(2, 0, 1).contiguous()
            if gray_stored_as_colour(page.pixels):  # one noise draw in three channels
                if channels == 3:
                    raise ImageError(
                        f"{path}: a gray image stored as RGB (three equal channels); its noise is one "
                        "draw, not three: train gray weights on it (channels 1), not colour ones"
                    )
                pixels = pixels[:1]
            if channels is not None and pixels.shape[0] != channels:
                raise ImageError(f"{path}: {pixels.shape[0]} channels, the model takes {channels}")
            images.append((f"{path.stem}-{index + 1}" if len(pages) > 1 else path.stem, pixels))
    return images


class DihedralAugment(torch.nn.Module):
    """Random crop, then random flips and transpose (the 8 symmetries of a square).

    ``channel_shuffle`` > 0 also permutes the colour channels of that share of crops at
    random. The noise of every family here acts on each channel alike and independently,
    so a permuted noisy crop is a noisy crop of a permuted clean one: the data stay
    noisy-only, and the network sees colours (a dark blue channel beside a bright red
    one) that 432 training images rarely show.
    """

    def __init__(self, patch_size: int, channel_shuffle: float = 0.0) -> None:
        super().__init__()
        self.crop = K.RandomCrop((patch_size, patch_size), pad_if_needed=True, padding_mode="reflect")
        flips = [K.RandomHorizontalFlip(), K.RandomVerticalFlip()]
        if channel_shuffle > 0:
            flips.append(K.RandomChannelShuffle(p=channel_shuffle))
        self.flips = K.AugmentationSequential(*flips)

    def forward(self, image: Tensor) -> Tensor:
        patch = self.flips(self.crop(image[None]))[0]
        if torch.rand(()) < 0.5:
            patch = patch.transpose(-1, -2)
        return patch


class RandomLevelNoise:
    """Noise of one family at a level drawn from [low, high] per call: uniformly
    (``spacing="uniform"``) or uniformly in log(level) (``"log"``: as many crops in
    [0.005, 0.01] as in [0.05, 0.1])."""

    def __init__(self, family: str, low: float, high: float, spacing: str = "uniform") -> None:
        if not 0 < low <= high:
            raise ValueError(f"synthetic_levels must satisfy 0 < low <= high, got {low}, {high}")
        if spacing not in ("uniform", "log"):
            raise ValueError(f"synthetic_spacing must be 'uniform' or 'log', got {spacing!r}")
        for level in (low, high):
            make_noise(family, level)  # an unknown family or level fails here, not mid-run
        self.family, self.low, self.high, self.spacing = family, float(low), float(high), spacing

    def __call__(self, patch: Tensor) -> dict:
        """{"y": noisy patch, "level": the level drawn}."""
        t = torch.rand(()).item()
        if self.spacing == "log":
            level = self.low * (self.high / self.low) ** t
        else:
            level = self.low + (self.high - self.low) * t
        return {"y": make_noise(self.family, level).sample(patch[None])[0], "level": torch.tensor(level)}


class NoisyPatches(Dataset):
    """Random augmented crops; ``samples_per_epoch`` defines an epoch.

    ``corrupt`` (synthetic mode) makes each crop noisy and returns it with its level
    as a dict; without it the images must already be noisy and crops are returned.
    """

    def __init__(
        self,
        images: list[Tensor],
        patch_size: int,
        samples_per_epoch: int,
        corrupt: RandomLevelNoise | None = None,
        channel_shuffle: float = 0.0,
    ) -> None:
        self.images = images
        self.samples_per_epoch = samples_per_epoch
        self.augment = DihedralAugment(patch_size, channel_shuffle)
        self.corrupt = corrupt

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int) -> Tensor | dict:
        patch = self.augment(self.images[index % len(self.images)])
        return self.corrupt(patch) if self.corrupt is not None else patch


class PairedImages(Dataset):
    """Whole noisy images for validation, with their clean twin when one exists."""

    def __init__(
        self,
        noisy: list[tuple[str, Tensor]],
        clean: dict[str, Tensor] | None,
        levels: list[float | None] | None = None,
    ) -> None:
        self.noisy = noisy
        self.clean = clean or {}
        self.levels = levels or [None] * len(noisy)  # per image; None: the model's level

    def __len__(self) -> int:
        return len(self.noisy)

    def __getitem__(self, index: int) -> dict:
        name, y = self.noisy[index]
        item = {"name": name, "y": y}
        if name in self.clean:
            item["x"] = self.clean[name]
        if self.levels[index] is not None:
            item["level"] = torch.tensor(self.levels[index], dtype=torch.float64)
        return item


def recorded_level(folder: str | Path) -> float | None:
    """The noise level ``make-noisy`` recorded for a noisy folder; None without a record."""
    record = read_record(folder)
    return None if record is None else float(record["level"])


class NoisyFolderDataModule(L.LightningDataModule):
    """Noisy-only training folder; optional validation folders (noisy, and clean).

    With ``synthetic_noise`` and ``synthetic_levels`` set, ``train_dir`` holds clean
    images instead and every crop gets fresh noise of that family at a level drawn
    from the range (level-agnostic training, as the paper's blind models), uniformly or,
    with ``synthetic_spacing="log"``, uniformly in log(level).
    """

    def __init__(
        self,
        train_dir: str | list[str],  # several noisy-only folders: their images together
        val_dir: str | list[str] | None = None,  # several noisy copies of one set: several levels
        val_clean_dir: str | None = None,
        channels: int = 1,
        patch_size: int = 64,  # 64x64 trains ~2x more steps/s than 128 on CPU, same PSNR per hour
        batch_size: int = 16,
        samples_per_epoch: int = 8000,
        val_limit: int | None = None,  # validate on the first N images only
        num_workers: int = 0,  # >0 costs cores that the training step needs on a small CPU
        synthetic_noise: str | None = None,
        synthetic_levels: tuple[float, float] | None = None,
        synthetic_spacing: Literal["uniform", "log"] = "uniform",
        channel_shuffle: float = 0.0,  # share of crops whose colour channels are permuted
        white: float | None = None,  # file value taken as 1 (dim data: counts, 12-bit in 16-bit)
        black: float = 0.0,  # file value taken as 0 (a camera's offset)
    ) -> None:
        super().__init__()
        if not (black >= 0 and (white is None or isinstance(white, int | float) and white > black)):
            raise ValueError(
                f"data.white must be a number above data.black >= 0 (one level for every image), "
                f"got white {white!r}, black {black!r}"
            )
        if not 0.0 <= channel_shuffle <= 1.0:
            raise ValueError(f"channel_shuffle is a probability in [0, 1], got {channel_shuffle}")
        if (synthetic_noise is None) != (synthetic_levels is None):
            raise ValueError("synthetic_noise and synthetic_levels go together: set both or neither")
        self.save_hyperparameters()

    def setup(self, stage: str) -> None:
        hp = self.hparams
        if stage == "fit" and not hasattr(self, "train_set"):
            images = [t for folder in self.train_dirs for _, t in self._load(folder)]
            corrupt = None
            if hp.synthetic_noise:
                corrupt = RandomLevelNoise(hp.synthetic_noise, *hp.synthetic_levels, hp.synthetic_spacing)
            self.train_set = NoisyPatches(
                images, hp.patch_size, hp.samples_per_epoch, corrupt, hp.channel_shuffle
            )
        if hp.val_dir and not hasattr(self, "val_set"):
            noisy, levels = [], []
            several = len(self.val_dirs) > 1
            for folder in self.val_dirs:  # several: each is scored at the level it records
                images = self._load(folder)[: hp.val_limit]
                noisy += images
                level = recorded_level(folder) if several else None
                if several and level is None:
                    raise ValueError(f"{folder}: no {RECORD_NAME}; several val_dir must each record a level")
                levels += [level] * len(images)
            clean = dict(self._load(hp.val_clean_dir)) if hp.val_clean_dir else None
            self.val_set = PairedImages(noisy, clean, levels)

    def _load(self, folder: str | Path) -> list[tuple[str, Tensor]]:
        return load_folder(folder, self.hparams.channels, self.hparams.white, self.hparams.black)

    @property
    def train_dirs(self) -> list[str]:
        return as_list(self.hparams.train_dir)

    @property
    def val_dirs(self) -> list[str]:
        return as_list(self.hparams.val_dir)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_set,
            batch_size=self.hparams.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader | list:
        if not self.hparams.val_dir:
            return []
        return DataLoader(self.val_set, batch_size=1, num_workers=0)

    test_dataloader = val_dataloader
