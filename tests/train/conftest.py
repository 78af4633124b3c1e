"""The chip store the pretraining tests read: 16 two-date chips of 12 bands."""

from __future__ import annotations

from pathlib import Path

import pytest

from satmae.data.store.chipwriter import ChipStoreWriter
from tests.train.test_pretrain import BANDS, chip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("chips")
    with ChipStoreWriter(root, "part", bands=BANDS, frames=2, height=32, width=32) as writer:
        for seed in range(16):
            writer.add(chip(seed))
    return root
