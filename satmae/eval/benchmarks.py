"""Classification benchmarks read through torchgeo's dataset classes, as samples in our contract.

Each split is a :class:`BenchmarkSplit`: a ``torch.utils.data.Dataset`` whose items follow the
sample contract (DESIGN §3) with the bands named in the order the dataset stores them (EuroSAT
keeps B8A *last*). Models map bands by name in ``encoder.prepare``, never by position.

Validity: an image pixel is valid where every band is finite. Zero is *not* treated as nodata:
EuroSAT and BigEarthNet have no nodata value, and 0 is a legal (if rare) reflectance, so
masking it would drop real dark water pixels.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from satmae.bands import DATASET_BAND_ORDERS, canonical_bands
from satmae.data.sample import to_epoch_seconds

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""The splits every classification benchmark has (torchgeo's names)."""

EUROSAT_IMAGES = "ds/images/remote_sensing/otherDatasets/sentinel_2/tif"
"""Where EuroSAT's class folders sit below the root (torchgeo's layout)."""


@dataclass(frozen=True)
class BenchmarkInfo:
    """What a benchmark is and where its files must be.

    Attributes:
        name: the ``--benchmark`` name.
        title: the name in prose (``"EuroSAT"``).
        task: ``"classification"``, ``"multilabel"`` or ``"change"``.
        primary: the metric the verdict compares.
        bands: canonical band names in the dataset's stored order.
        layout: the files expected below the root, for error messages.
    """

    name: str
    title: str
    task: str
    primary: str
    bands: tuple[str, ...]
    layout: str


def _eurosat_bands() -> tuple[str, ...]:
    from torchgeo.datasets import EuroSAT

    return canonical_bands(EuroSAT.all_band_names)


def _bigearthnet_bands() -> tuple[str, ...]:
    # torchgeo's BigEarthNet names no S2 bands in a class attribute; its loader sorts the band
    # files B01..B08, B8A, B09, B11, B12 (the Level-2A order).
    return DATASET_BAND_ORDERS["bigearthnet"]


def _eurosat_layout(prefix: str) -> str:
    return (
        f"<root>/{prefix}-train.txt, <root>/{prefix}-val.txt, <root>/{prefix}-test.txt (one "
        f"<Class>_<n>.jpg name a line) and <root>/{EUROSAT_IMAGES}/<Class>/<Class>_<n>.tif "
        "(13-band uint16 GeoTIFFs, 64x64), or <root>/EuroSATallBands.zip holding that tree"
    )


_BIGEARTHNET_LAYOUT = (
    "<root>/bigearthnet-train.csv, <root>/bigearthnet-val.csv, <root>/bigearthnet-test.csv (no "
    "header; S2 patch name, S1 patch name), "
    "<root>/BigEarthNet-v1.0/<S2 patch>/<S2 patch>_<band>.tif for B01..B12 and B8A plus "
    "<root>/BigEarthNet-v1.0/<S2 patch>/<S2 patch>_labels_metadata.json, "
    "or <root>/BigEarthNet-S2-v1.0.tar.gz"
)
_BIGEARTHNET_V2_LAYOUT = (
    "<root>/metadata.parquet (patch_id, s1_name, split, labels) and "
    "<root>/BigEarthNet-S2/<tile>/<patch_id>/<patch_id>_<band>.tif"
)
_OSCD_LAYOUT = (
    "<root>/Onera Satellite Change Detection dataset - Images/<city>/imgs_{1,2}_rect/B01.tif ... "
    "and <root>/Onera Satellite Change Detection dataset - {Train,Test} Labels/<city>/cm/cm.png"
)


def _bigearthnet_v2_problem() -> str | None:
    """Why BigEarthNet v2 cannot be read here, or ``None`` when it can."""
    import torchgeo.datasets

    if not hasattr(torchgeo.datasets, "BigEarthNetV2"):
        return "BigEarthNet v2 needs torchgeo >= 0.7 (pip install -U torchgeo)"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return "BigEarthNet v2 reads metadata.parquet, which needs pyarrow (pip install pyarrow)"
    return None


def _registry() -> dict[str, BenchmarkInfo]:
    benchmarks = {
        "eurosat": BenchmarkInfo(
            "eurosat",
            "EuroSAT",
            "classification",
            "top1",
            _eurosat_bands(),
            _eurosat_layout("eurosat"),
        ),
        "eurosat-spatial": BenchmarkInfo(
            "eurosat-spatial",
            "EuroSAT-spatial",
            "classification",
            "top1",
            _eurosat_bands(),
            _eurosat_layout("eurosat-spatial"),
        ),
        "bigearthnet": BenchmarkInfo(
            "bigearthnet",
            "BigEarthNet",
            "multilabel",
            "map_micro",
            _bigearthnet_bands(),
            _BIGEARTHNET_LAYOUT,
        ),
    }
    if _bigearthnet_v2_problem() is None:
        benchmarks["bigearthnet-v2"] = BenchmarkInfo(
            "bigearthnet-v2",
            "BigEarthNet v2",
            "multilabel",
            "map_micro",
            _bigearthnet_bands(),
            _BIGEARTHNET_V2_LAYOUT,
        )
    benchmarks["oscd"] = BenchmarkInfo(
        "oscd", "OSCD", "change", "change_f1", DATASET_BAND_ORDERS["oscd"], _OSCD_LAYOUT
    )
    return benchmarks


def benchmark_names() -> tuple[str, ...]:
    """The benchmarks this installation can run (``bigearthnet-v2`` only with its dependencies)."""
    return tuple(_registry())


def benchmark_info(name: str) -> BenchmarkInfo:
    """The description of a benchmark.

    Raises:
        ValueError: for an unknown name, listing the known ones (and, for ``bigearthnet-v2``
            without its dependencies, what to install).
    """
    registry = _registry()
    if name in registry:
        return registry[name]
    if name == "bigearthnet-v2" and (problem := _bigearthnet_v2_problem()) is not None:
        raise ValueError(f"benchmark 'bigearthnet-v2' is not available: {problem}")
    raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(registry)}")


class BenchmarkSplit(Dataset[dict[str, Any]]):
    """One split of a classification benchmark; items follow the sample contract.

    Each item holds ``image`` float32 ``(1, C, H, W)`` (reflectance x 10000 as stored),
    ``bands`` (C canonical names, dataset order), ``valid`` bool ``(1, H, W)`` (all bands
    finite), ``label`` (long ``()`` or multi-hot float ``(K,)``), ``location`` (the sample id)
    and, with a nominal date, ``times`` int64 ``(1,)``.

    Attributes:
        name: benchmark name.
        root: the data folder.
        split: ``"train"``, ``"val"`` or ``"test"``.
        classes: class names, in label order.
        multilabel: whether labels are multi-hot.
        bands: canonical band names in the images' channel order.
        date: the nominal ISO date given to every item, or ``None``.
    """

    def __init__(
        self,
        name: str,
        root: Path,
        split: str,
        dataset: Any,
        *,
        classes: tuple[str, ...],
        multilabel: bool,
        bands: tuple[str, ...],
        ids: tuple[str, ...],
        label_text: Callable[[], list[str]],
        date: str | None = None,
    ) -> None:
        self.name = name
        self.root = root
        self.split = split
        self.dataset = dataset
        self.classes = classes
        self.multilabel = multilabel
        self.bands = bands
        self.ids = ids
        self.date = date
        self._label_text = label_text
        self._time = None if date is None else to_epoch_seconds(date)
        if len(ids) != len(dataset):
            raise ValueError(
                f"{name} {split}: found {len(ids)} sample ids for {len(dataset)} samples; the "
                "split files and the image tree disagree"
            )

    def __len__(self) -> int:
        """Number of samples in the split."""
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """The sample at ``index`` in the contract (see the class docstring)."""
        item = self.dataset[index]
        image = item["image"].float()
        if tuple(image.shape[:1]) != (len(self.bands),):
            raise ValueError(
                f"{self.name} returned {image.shape[0]} channels but {len(self.bands)} bands "
                f"{self.bands} were expected; is the data in torchgeo's layout?"
            )
        finite = torch.isfinite(image)
        image = torch.where(finite, image, torch.zeros((), dtype=image.dtype))[None]  # (1,C,H,W)
        label: Tensor = item["label"]
        sample: dict[str, Any] = {
            "image": image,
            "bands": self.bands,
            "valid": finite.all(dim=0)[None],  # (1, H, W)
            "label": label.float() if self.multilabel else label.long().reshape(()),
            "location": self.ids[index],
        }
        if self._time is not None:
            sample["times"] = torch.tensor([self._time], dtype=torch.int64)
        return sample

    @cached_property
    def labels_text(self) -> list[str]:
        """One label per sample as text (class name or sorted names), without pixel reads."""
        return self._label_text()


def split_checksum(dataset: BenchmarkSplit) -> str:
    """SHA-256 (first 16 hex) of a split's sample ids and labels, sorted by id.

    Reads no pixels (ids come from the split files, labels from the folder names or label
    files). The nominal date, when set, is part of the checksum because it changes what a
    temporal encoder sees.
    """
    digest = hashlib.sha256()
    digest.update(f"{dataset.name}/{dataset.split}/{dataset.date}\n".encode())
    for sample_id, label in sorted(zip(dataset.ids, dataset.labels_text, strict=True)):
        digest.update(f"{sample_id}\t{label}\n".encode())
    return digest.hexdigest()[:16]


def open_split(
    name: str,
    root: str | os.PathLike[str],
    split: str,
    download: bool = False,
    date: str | None = None,
) -> BenchmarkSplit:
    """Open one split of a classification benchmark through torchgeo.

    Args:
        name: ``"eurosat"``, ``"eurosat-spatial"``, ``"bigearthnet"`` or ``"bigearthnet-v2"``.
        root: the folder holding the data in torchgeo's layout.
        split: ``"train"``, ``"val"`` or ``"test"``.
        download: let torchgeo fetch missing files into ``root``.
        date: an ISO date (``"2018-06-15"``) given to every item as its acquisition time, for
            temporal encoders (these benchmarks carry no dates).

    Returns:
        the split as a dataset of samples.

    Raises:
        ValueError: for an unknown benchmark or split, a change benchmark, or a bad date.
        FileNotFoundError: when the data is missing, listing the files expected where.
    """
    info = benchmark_info(name)
    if info.task == "change":
        raise ValueError(
            f"{name} is a change-detection benchmark; open it with satmae.eval.change, not "
            "open_split"
        )
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} for {name}; use one of {', '.join(SPLITS)}")
    if date is not None:
        to_epoch_seconds(date)  # fail on a bad date before reading anything
    folder = Path(root)
    if not folder.is_dir() and not download:
        raise FileNotFoundError(_missing(info, folder, "does not exist (no such folder)"))
    try:
        if name.startswith("eurosat"):
            return _open_eurosat(info, folder, split, download, date)
        if name == "bigearthnet":
            return _open_bigearthnet(info, folder, split, download, date)
        return _open_bigearthnet_v2(info, folder, split, download, date)
    except FileNotFoundError:
        absent = [str(path) for path in _required_paths(info.name, folder) if not path.exists()]
        reason = f"is missing {', '.join(absent)}" if absent else "could not be read"
        raise FileNotFoundError(_missing(info, folder, reason)) from None


def _required_paths(name: str, root: Path) -> list[Path]:
    """The files and folders torchgeo checks for before reading a benchmark."""
    if name.startswith("eurosat"):
        return [*(root / f"{name}-{split}.txt" for split in SPLITS), root / EUROSAT_IMAGES]
    if name == "bigearthnet":
        return [*(root / f"bigearthnet-{split}.csv" for split in SPLITS), root / "BigEarthNet-v1.0"]
    return [root / "metadata.parquet", root / "BigEarthNet-S2"]


def _missing(info: BenchmarkInfo, root: Path, reason: str) -> str:
    return (
        f"{info.title} data under {root} {reason}. Expected {info.layout}; pass --download to "
        "fetch it"
    )


def _open_eurosat(
    info: BenchmarkInfo, root: Path, split: str, download: bool, date: str | None
) -> BenchmarkSplit:
    from torchgeo.datasets import EuroSAT, EuroSATSpatial

    cls = EuroSATSpatial if info.name == "eurosat-spatial" else EuroSAT
    dataset = cls(root=str(root), split=split, download=download)
    # ImageFolder's public ``samples``: (path, class index) in item order.
    files: list[tuple[str, int]] = list(dataset.samples)
    classes = tuple(dataset.classes)
    ids = tuple(Path(path).stem for path, _ in files)

    def label_text() -> list[str]:
        return [classes[index] for _, index in files]

    return BenchmarkSplit(
        info.name,
        root,
        split,
        dataset,
        classes=classes,
        multilabel=False,
        bands=info.bands,
        ids=ids,
        label_text=label_text,
        date=date,
    )


def _open_bigearthnet(
    info: BenchmarkInfo, root: Path, split: str, download: bool, date: str | None
) -> BenchmarkSplit:
    from torchgeo.datasets import BigEarthNet

    dataset = BigEarthNet(
        root=str(root), split=split, bands="s2", num_classes=19, download=download
    )
    csv = root / f"bigearthnet-{split}.csv"
    lines = csv.read_text().strip().splitlines()
    # The CSV rows are the item order: S2 patch name first.
    ids = tuple(line.split(",")[0].strip() for line in lines if line.strip())
    classes = tuple(BigEarthNet.class_sets[19])

    def label_text() -> list[str]:
        texts = []
        for patch in ids:
            path = root / "BigEarthNet-v1.0" / patch / f"{patch}_labels_metadata.json"
            labels = json.loads(path.read_text())["labels"]
            texts.append("|".join(sorted(labels)))
        return texts

    return BenchmarkSplit(
        info.name,
        root,
        split,
        dataset,
        classes=classes,
        multilabel=True,
        bands=info.bands,
        ids=ids,
        label_text=label_text,
        date=date,
    )


def _open_bigearthnet_v2(
    info: BenchmarkInfo, root: Path, split: str, download: bool, date: str | None
) -> BenchmarkSplit:  # pragma: no cover - needs pyarrow, absent from the test environment
    import pyarrow.parquet as pq
    from torchgeo.datasets import BigEarthNetV2

    dataset = BigEarthNetV2(root=str(root), split=split, bands="s2", download=download)
    table = pq.read_table(root / "metadata.parquet", columns=["patch_id", "split", "labels"])
    wanted = {"train": "train", "val": "validation", "test": "test"}[split]
    rows = [row for row in table.to_pylist() if row["split"] == wanted]
    ids = tuple(str(row["patch_id"]) for row in rows)
    classes = tuple(BigEarthNetV2.class_set)

    def label_text() -> list[str]:
        return ["|".join(sorted(row["labels"])) for row in rows]

    return BenchmarkSplit(
        info.name,
        root,
        split,
        dataset,
        classes=classes,
        multilabel=True,
        bands=info.bands,
        ids=ids,
        label_text=label_text,
        date=date,
    )
