"""Property: whatever is at an output path, a write either succeeds whole or is refused cleanly.

For every kind of thing at the target (nothing, a file, an empty or full folder, ours or not, a
symbolic link, a FIFO), with or without ``overwrite``, for file and folder outputs: the write
succeeds exactly when the rule allows it, a refusal is a ``FileExistsError`` naming the target
and leaves everything as it was, and no temporary or lock file is left behind either way.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from satmae.io import atomic_folder, atomic_path

KINDS = ("absent", "file", "empty_folder", "our_folder", "foreign_folder", "symlink", "fifo")
_counter = itertools.count()


def make(target: Path, kind: str) -> None:
    if kind == "file":
        target.write_text("old")
    elif kind == "empty_folder":
        target.mkdir()
    elif kind in ("our_folder", "foreign_folder"):
        target.mkdir()
        (target / ("marker" if kind == "our_folder" else "notes.txt")).write_text("old")
    elif kind == "symlink":
        target.symlink_to(target.parent / "elsewhere")
    elif kind == "fifo":
        os.mkfifo(target)


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): p.read_text() if p.is_file() and not p.is_symlink() else "-"
        for p in sorted(folder.rglob("*"))
    }


def allowed(kind: str, overwrite: bool, folder: bool) -> bool:
    if kind == "absent":
        return True
    if folder:
        return kind == "empty_folder" or (kind == "our_folder" and overwrite)
    return kind == "file" and overwrite


@given(kind=st.sampled_from(KINDS), overwrite=st.booleans(), folder=st.booleans())
def test_a_write_is_whole_or_refused_without_trace(
    tmp_path: Path, kind: str, overwrite: bool, folder: bool
) -> None:
    root = tmp_path / f"case{next(_counter)}"
    root.mkdir()
    target = root / "out"
    make(target, kind)
    before = snapshot(root)
    try:
        if folder:
            with atomic_folder(
                target, overwrite=overwrite, is_ours=lambda f: (f / "marker").exists()
            ) as staging:
                (staging / "marker").write_text("new")
        else:
            with atomic_path(target, overwrite=overwrite) as staging:
                staging.write_text("new")
    except FileExistsError as error:
        assert not allowed(kind, overwrite, folder)
        assert str(target) in str(error)
        assert snapshot(root) == before
    else:
        assert allowed(kind, overwrite, folder)
        written = target / "marker" if folder else target
        assert written.read_text() == "new"
        assert sorted(p.name for p in root.iterdir()) == ["out"]
        if folder:
            assert [p.name for p in target.iterdir()] == ["marker"]


@pytest.mark.parametrize("folder", [False, True])
def test_a_failing_block_leaves_the_old_output(tmp_path: Path, folder: bool) -> None:
    target = tmp_path / "out"
    make(target, "our_folder" if folder else "file")
    before = snapshot(tmp_path)
    writer = (
        atomic_folder(target, overwrite=True, is_ours=lambda _: True)
        if folder
        else atomic_path(target)
    )
    with pytest.raises(RuntimeError, match="stopped"), writer:
        raise RuntimeError("stopped mid-write")
    assert snapshot(tmp_path) == before
