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


def test_only_regular_files_are_replaced(tmp_path):
    import os

    import pytest

    from satmae.io import atomic_path

    real = tmp_path / "precious.txt"
    real.write_text("keep me")
    link = tmp_path / "out.json"
    link.symlink_to(real)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    folder.mkdir()
    for target in (link, fifo, folder):
        with (
            pytest.raises(FileExistsError, match="replaces only regular files"),
            atomic_path(target) as staging,
        ):
            staging.write_text("new")
    assert real.read_text() == "keep me" and link.is_symlink() and folder.is_dir()


def test_outputs_follow_the_umask(tmp_path):
    import os

    from satmae.io import atomic_path

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "out.txt") as staging:
            staging.write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644
