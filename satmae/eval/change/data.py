"""OSCD cities as whole-scene samples, split into training and test cities, and training windows.

A city is one two-date 13-band sample on its 10 m grid: ``image (2, 13, H, W)`` raw
reflectance x 10000, ``times (2,)`` from ``dates.txt``, ``valid (2, H, W)``, ``mask (1, H, W)``
int64 (1 = change), ``location`` = city name and geo keys. Two on-disk layouts are read:

- torchgeo's layout, with the bands resampled to 10 m in ``imgs_{1,2}_rect/Bxx.tif``: read
  through torchgeo's :class:`~torchgeo.datasets.OSCD` dataset class (image and mask), dates
  from ``dates.txt``;
- the native layout of the original release, ``imgs_{1,2}/*_Bxx.tif`` at 10/20/60 m: read by
  :func:`satmae.data.readers.layouts.read_oscd_city`, which resamples onto the 10 m grid.

Either way the bands are carried by name (:data:`OSCD_BANDS`). Cities come from
``train.txt``/``test.txt`` (or explicit lists); listed cities that are absent or have no change
mask are skipped and reported. The public copy used for development holds only the Train
Labels, so its test cities have no labels: the split then falls back to
:data:`HELD_OUT_CITIES` held out of the labelled training cities.
"""

from __future__ import annotations

import hashlib
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rasterio.errors import NotGeoreferencedWarning
from torch import Tensor

from satmae.bands import L1C_BANDS
from satmae.data.grid import PathLike, dataset_grid, open_raster
from satmae.data.readers.layouts import OSCD_IMAGES, read_oscd_city, read_oscd_dates
from satmae.data.sample import Sample
from satmae.data.validity import valid_mask

HELD_OUT_CITIES: tuple[str, ...] = ("bordeaux", "hongkong", "rennes")
"""Labelled cities held out for testing when the test cities have no labels (3 of the 14)."""

OSCD_BANDS: tuple[str, ...] = L1C_BANDS
"""Band order of every OSCD sample: the 13 L1C bands, B8A after B08 (torchgeo's order too)."""

LABEL_FOLDERS: dict[str, str] = {
    "train": "Onera Satellite Change Detection dataset - Train Labels",
    "test": "Onera Satellite Change Detection dataset - Test Labels",
}
"""Label folder of each official split (torchgeo's ``split`` argument)."""

EXPECTED_LAYOUT = (
    "expected the OSCD layout:\n"
    f"  <root>/{OSCD_IMAGES}/train.txt, test.txt (comma-separated city names)\n"
    f"  <root>/{OSCD_IMAGES}/<city>/dates.txt, imgs_1[_rect]/, imgs_2[_rect]/\n"
    f"  <root>/{LABEL_FOLDERS['train']}/<city>/cm/cm.png (or cm/<city>-cm.tif)\n"
    f"  <root>/{LABEL_FOLDERS['test']}/<city>/cm/cm.png (optional)"
)


@dataclass
class OSCDSplit:
    """OSCD cities split into training and test scenes.

    Attributes:
        train: training cities, whole scenes.
        test: test cities, whole scenes; never used to fit anything.
        bands: band names of every sample's C axis.
        skipped: one line per listed city that was not used, with the reason.
        note: how the split was chosen when it is not the listed one, else "".
    """

    train: list[Sample]
    test: list[Sample]
    bands: tuple[str, ...] = OSCD_BANDS
    skipped: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def train_cities(self) -> list[str]:
        """Names of the training cities."""
        return [str(sample.get("location", "")) for sample in self.train]

    @property
    def test_cities(self) -> list[str]:
        """Names of the test cities."""
        return [str(sample.get("location", "")) for sample in self.test]


def _read_city_list(images: Path, split: str) -> list[str] | None:
    """Cities of ``<split>.txt`` (comma separated, one line), or None where the file is absent."""
    path = images / f"{split}.txt"
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8").replace("\n", ",")
    return [name.strip() for name in text.split(",") if name.strip()]


def _mask_files(root: Path, city: str) -> tuple[str, Path] | None:
    """(split, path) of the change mask of ``city``: ``cm.png`` first, else ``<city>-cm.tif``."""
    for split, folder in LABEL_FOLDERS.items():
        for name in ("cm.png", f"{city}-cm.tif"):
            path = root / folder / city / "cm" / name
            if path.is_file():
                return split, path
    return None


def read_change_mask(path: PathLike) -> Tensor:
    """A change mask file as ``(1, H, W)`` int64, 1 = change.

    ``cm.png`` holds 0/255 (grey or RGBA); ``<city>-cm.tif`` holds 1 = no change, 2 = change
    (or 0/1 in other copies): a file without zeros is read as the 1/2 coding.
    """
    with Image.open(path) as picture:
        values = np.asarray(picture.convert("L") if picture.mode in ("RGB", "RGBA") else picture)
    values = values.astype(np.int64)
    change = values >= 2 if values.min() >= 1 else values > 0
    return torch.from_numpy(change.astype(np.int64))[None]


def _has_rect(images: Path, city: str) -> bool:
    return all((images / city / f"imgs_{date}_rect").is_dir() for date in (1, 2))


class _TorchgeoCities:
    """Cities of torchgeo's ``OSCD`` dataset, matched to city names by mask and B02 pixels.

    torchgeo's dataset exposes no city name through its public API, so each item is matched
    to the city whose ``cm.png`` and date-1 ``B02.tif`` equal the item's mask and B02 band.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.items: dict[str, list[dict[str, Tensor]]] = {}

    def _split_items(self, split: str) -> list[dict[str, Tensor]]:
        if split not in self.items:
            from torchgeo.datasets import OSCD

            dataset = OSCD(str(self.root), split=split, bands=OSCD_BANDS)
            self.items[split] = [dataset[index] for index in range(len(dataset))]
        return self.items[split]

    def load(self, city: str, split: str, mask_path: Path) -> dict[str, Tensor] | None:
        """The torchgeo item of ``city``: ``image (2, 13, H, W)``, ``mask (1, H, W)``; or None."""
        try:
            items = self._split_items(split)
        except Exception:  # a layout torchgeo cannot read: use our reader
            return None
        mask = read_change_mask(mask_path)
        b02_path = self.root / OSCD_IMAGES / city / "imgs_1_rect" / "B02.tif"
        with Image.open(b02_path) as picture:
            b02 = torch.from_numpy(np.asarray(picture).astype(np.float32))
        b02_index = OSCD_BANDS.index("B02")
        matches = [
            item
            for item in items
            if item["mask"].shape == mask.shape
            and torch.equal(item["mask"].long(), mask)
            and torch.equal(item["image"][0, b02_index].float(), b02)
        ]
        return matches[0] if len(matches) == 1 else None


def _rect_sample(images: Path, city: str, item: dict[str, Tensor]) -> Sample:
    """A sample in the contract from torchgeo's item, with dates and geo keys of the city."""
    image = item["image"].float()  # (2, 13, H, W)
    sample: Sample = {
        "image": image,
        "times": torch.tensor(read_oscd_dates(images / city / "dates.txt"), dtype=torch.int64),
        "bands": OSCD_BANDS,
        "valid": valid_mask(image),
        "location": city,
        "mask": item["mask"].long().reshape(1, *image.shape[-2:]),
        "harmonized": ({}, {}),
    }
    with warnings.catch_warnings():  # rect files may carry no georeference
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with open_raster(images / city / "imgs_1_rect" / "B02.tif") as dataset:
            grid = dataset_grid(dataset)
    if grid.crs is not None:
        grid.attach(sample)
    return sample


def _download(root: Path) -> None:
    """Fetch and extract OSCD (torchgeo's rect layout) into ``root`` with torchgeo."""
    from torchgeo.datasets import OSCD

    root.mkdir(parents=True, exist_ok=True)
    for split in LABEL_FOLDERS:
        OSCD(str(root), split=split, download=True)


def open_oscd(
    root: PathLike,
    *,
    train_cities: Sequence[str] | None = None,
    test_cities: Sequence[str] | None = None,
    download: bool = False,
    progress: bool = True,
) -> OSCDSplit:
    """Read the labelled OSCD cities of a root as training and test scenes.

    Args:
        root: the OSCD root holding the Images and Labels folders.
        train_cities: training cities (default: ``train.txt``, less the test cities).
        test_cities: test cities (default: ``test.txt``; where none of them has a change
            mask, :data:`HELD_OUT_CITIES` held out of the labelled training cities).
        download: fetch the dataset with torchgeo's ``OSCD(root, download=True)`` first.
        progress: print one line per city read to stderr.

    Returns:
        the split; each sample holds ``image (2, 13, H, W)``, ``times (2,)``, ``valid (2, H,
        W)``, ``mask (1, H, W)`` int64, ``location`` and geo keys.

    Raises:
        FileNotFoundError: if the root or its Images folder is missing (the message shows the
            expected layout).
        ValueError: if a split ends up empty or a city is in both splits.
    """
    root = Path(root)
    if download:
        _download(root)
    images = root / OSCD_IMAGES
    if not images.is_dir():
        raise FileNotFoundError(
            f"OSCD not found at {root}: no '{OSCD_IMAGES}' folder there. {EXPECTED_LAYOUT}\n"
            "Pass the folder that holds it, or download=True (--download) to fetch it."
        )
    listed_test = list(test_cities) if test_cities is not None else _read_city_list(images, "test")
    listed_train = (
        list(train_cities) if train_cities is not None else _read_city_list(images, "train")
    )
    if listed_train is None:  # no train.txt: every city folder that is not a test city
        listed_train = sorted(p.parent.name for p in images.glob("*/dates.txt"))
    listed_test = listed_test or []
    if overlap := sorted(set(listed_train) & set(listed_test)):
        if train_cities is not None and test_cities is not None:
            raise ValueError(f"cities {overlap} are in both the training and the test split")
        listed_train = [city for city in listed_train if city not in listed_test]

    skipped: list[str] = []
    masks: dict[str, tuple[str, Path]] = {}

    def usable(cities: list[str], split: str) -> list[str]:
        kept = []
        for city in cities:
            if not (images / city / "dates.txt").is_file():
                skipped.append(f"{city} ({split}): listed but absent from the Images folder")
            elif (found := _mask_files(root, city)) is None:
                skipped.append(f"{city} ({split}): no change mask (cm/cm.png or cm/{city}-cm.tif)")
            else:
                masks[city] = found
                kept.append(city)
        return kept

    train_names, test_names = usable(listed_train, "train"), usable(listed_test, "test")
    note = ""
    if not test_names:
        if test_cities is not None:
            raise ValueError(
                f"none of the test cities {list(test_cities)} can be used: {skipped}; "
                "give labelled cities (with cm/cm.png) as test cities"
            )
        held = [city for city in train_names if city in HELD_OUT_CITIES]
        if not held:
            raise ValueError(
                f"no labelled test city under {root} and none of the held-out cities "
                f"{HELD_OUT_CITIES} among the labelled training cities {train_names}; "
                "pass test_cities explicitly"
            )
        test_names = held
        train_names = [city for city in train_names if city not in held]
        note = (
            "the listed test cities have no change masks, so the labelled cities "
            f"{', '.join(held)} (HELD_OUT_CITIES) are held out for testing and the other "
            "labelled cities are used for training"
        )
    if not train_names:
        raise ValueError(f"no labelled training city under {root}; skipped: {skipped}")
    if skipped:
        warnings.warn(
            f"OSCD: {len(skipped)} listed cities skipped: " + "; ".join(skipped), stacklevel=2
        )

    torchgeo_cities = _TorchgeoCities(root)
    total = len(train_names) + len(test_names)

    def read(city: str, number: int) -> Sample:
        if progress:
            print(f"OSCD: reading {city} ({number}/{total})", file=sys.stderr, flush=True)
        split, mask_path = masks[city]
        if _has_rect(images, city) and mask_path.name == "cm.png":
            item = torchgeo_cities.load(city, split, mask_path)
            if item is not None:
                return _rect_sample(images, city, item)
        sample = read_oscd_city(root, city, OSCD_BANDS)
        if "mask" not in sample or mask_path.name != "cm.png":
            sample["mask"] = read_change_mask(mask_path)
        return sample

    names = train_names + test_names
    samples = [read(city, number) for number, city in enumerate(names, start=1)]
    return OSCDSplit(
        train=samples[: len(train_names)],
        test=samples[len(train_names) :],
        bands=OSCD_BANDS,
        skipped=skipped,
        note=note,
    )


def oscd_checksum(samples: Sequence[Sample]) -> str:
    """16 hex digits of SHA-256 over the city names and change-mask bytes, in name order."""
    digest = hashlib.sha256()
    for sample in sorted(samples, key=lambda s: str(s.get("location", ""))):
        digest.update(str(sample.get("location", "")).encode())
        mask = sample.get("mask")
        if mask is not None:
            digest.update(str(tuple(mask.shape)).encode())
            digest.update(mask.to(torch.uint8).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _crop(sample: Sample, row: int, col: int, size: int) -> Sample:
    """A ``size`` x ``size`` window of ``sample`` at (row, col), zero-padded past the edge."""
    height, width = sample["image"].shape[-2:]
    pad_h, pad_w = max(0, row + size - height), max(0, col + size - width)

    def cut(tensor: Tensor) -> Tensor:
        part = tensor[..., row : row + size, col : col + size]
        if pad_h or pad_w:
            part = torch.nn.functional.pad(part, (0, pad_w, 0, pad_h))
        return part.clone()

    window: Sample = {
        "image": cut(sample["image"]),
        "bands": sample["bands"],
        "valid": cut(sample["valid"]),
    }
    for key in ("times", "location", "crs"):
        if key in sample:
            window[key] = sample[key]  # type: ignore[literal-required]
    if "mask" in sample:
        window["mask"] = cut(sample["mask"])
    if "transform" in sample:
        a, b, c, d, e, f = sample["transform"][:6]
        window["transform"] = (a, b, c + a * col + b * row, d, e, f + d * col + e * row)
    return window


def window_starts(length: int, size: int, stride: int) -> list[int]:
    """Window starts covering ``length`` pixels; the last window ends at the edge."""
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts


def iter_windows(sample: Sample, size: int, stride: int) -> Iterator[Sample]:
    """Windows of ``size`` x ``size`` pixels every ``stride`` pixels covering a whole scene.

    The last row and column of windows end at the scene's edge; a scene smaller than ``size``
    is zero-padded (padding invalid). Windows without any valid pixel are left out.

    Args:
        sample: a whole scene, ``image (T, C, H, W)``, ``valid (T, H, W)``, optional ``mask
            (1, H, W)``.
        size: window side in pixels.
        stride: step between windows in pixels.

    Yields:
        samples with ``image (T, C, size, size)``, ``valid``, ``mask`` cropped alike, the
        scene's ``times``, ``bands``, ``location`` and a shifted ``transform``.

    Raises:
        ValueError: if ``size`` or ``stride`` is not positive.
    """
    if size <= 0 or stride <= 0:
        raise ValueError(f"window size and stride must be positive, got {size} and {stride}")
    height, width = sample["image"].shape[-2:]
    for row in window_starts(height, size, stride):
        for col in window_starts(width, size, stride):
            window = _crop(sample, row, col, size)
            if bool(window["valid"].any()):
                yield window
