"""Atomic writes: the target is the old file or the complete new one, never a torso."""

from __future__ import annotations

from pathlib import Path

import pytest

from satmae.io import atomic_path


def test_success_replaces_the_target(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.json"
    with atomic_path(target) as staging:
        assert staging.parent == target.parent and staging != target
        staging.write_text("new")
        assert not target.exists()  # nothing visible until the block succeeds
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_failure_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="killed"), atomic_path(target) as staging:
        staging.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
