"""Atomic writes: the target is the old file or the complete new one, never a torso."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from satmae.io import (
    OutputBusyError,
    atomic_folder,
    atomic_path,
    check_output,
    claim_output,
    lock_path,
    output_lock,
    stale_temporaries,
)


def test_success_replaces_the_target(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.json"
    with atomic_path(target) as staging:
        assert staging.name == target.name and staging.parent.parent == target.parent
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


# ---------------------------------------------------------------------------------------------
# the output rule: lock, claim, stale temporaries, folders, errors naming the user's path


def run_python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        timeout=120,
    )


def test_another_process_gets_a_busy_error_naming_the_output(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    with output_lock(target):
        assert lock_path(target).is_file()
        result = run_python(
            """
            import sys
            from satmae.io import OutputBusyError, atomic_path
            try:
                with atomic_path(sys.argv[1]) as staging:
                    staging.write_text("second")
            except OutputBusyError as error:
                print(error)
                sys.exit(3)
            """,
            str(target),
        )
    assert result.returncode == 3, result.stderr
    assert f"{target} is being written by another process (pid {os.getpid()})" in result.stdout
    assert not target.exists() and not lock_path(target).exists()  # released: lock file gone


def test_the_lock_is_re_entrant_within_a_process(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    with claim_output(target, overwrite=False), atomic_path(target, overwrite=False) as staging:
        staging.write_text("once")
    assert target.read_text() == "once"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_existing_output_is_refused_without_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with (
        pytest.raises(FileExistsError, match=r"out\.json exists; pass --overwrite"),
        atomic_path(target, overwrite=False) as staging,
    ):
        staging.write_text("new")
    assert target.read_text() == "old"
    with atomic_path(target, overwrite=True) as staging:
        staging.write_text("new")
    assert target.read_text() == "new"


def test_a_killed_writer_leaves_the_old_file_and_the_rerun_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    target.write_text("old")
    result = run_python(
        """
        import os, sys
        from satmae.io import atomic_path
        with atomic_path(sys.argv[1]) as staging:
            staging.write_bytes(b"x" * 4096)
            os._exit(9)  # killed mid-write: no cleanup runs
        """,
        str(target),
    )
    assert result.returncode == 9, result.stderr
    assert target.read_text() == "old"
    leftovers = stale_temporaries(target)
    assert len(leftovers) == 1 and (leftovers[0] / target.name).stat().st_size == 4096
    with atomic_path(target) as staging:  # the next write of the same output removes it
        staging.write_text("new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_stale_temporaries_of_other_outputs_are_left_alone(tmp_path: Path) -> None:
    mine = tmp_path / ".out.json.abcd1234.tmp"
    other = tmp_path / ".out.json.x.abcd1234.tmp"  # a temporary of "out.json.x"
    for path in (mine, other):
        path.write_text("left by a killed run")
    with atomic_path(tmp_path / "out.json") as staging:
        staging.write_text("new")
    assert not mine.exists() and other.exists()


def test_os_errors_name_the_users_path_not_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    with (
        pytest.raises(OSError, match=r"cannot write .*report\.json: No space left") as caught,
        atomic_path(target) as staging,
    ):
        raise OSError(errno.ENOSPC, "No space left on device", str(staging))
    assert ".tmp" not in str(caught.value) and caught.value.errno == errno.ENOSPC
    # An error about something else (an input read in the block) is not re-worded.
    with pytest.raises(FileNotFoundError, match=r"input\.tif"), atomic_path(target):
        raise FileNotFoundError(errno.ENOENT, "No such file", "input.tif")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("mask", "file_mode", "folder_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)]
)
def test_files_and_folders_follow_the_umask(
    tmp_path: Path, mask: int, file_mode: int, folder_mode: int
) -> None:
    old = os.umask(mask)
    try:
        with atomic_path(tmp_path / "out.txt") as staging:
            staging.write_text("x")
        with atomic_folder(tmp_path / "out") as staging:
            (staging / "a.txt").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "out").stat().st_mode & 0o777 == folder_mode


def test_folder_outputs_are_swapped_in_whole(tmp_path: Path) -> None:
    target = tmp_path / "set"

    def ours(folder: Path) -> bool:
        return (folder / "marker").is_file()

    with atomic_folder(target, is_ours=ours) as staging:
        for name in ("marker", "a", "b", "c"):
            (staging / name).write_text("1")
    with (
        pytest.raises(FileExistsError, match="pass --overwrite"),
        atomic_folder(target, is_ours=ours),
    ):
        pass
    with atomic_folder(target, overwrite=True, is_ours=ours) as staging:
        for name in ("marker", "a"):
            (staging / name).write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["a", "marker"]  # b, c of run 1 gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_a_folder_that_is_not_ours_is_never_replaced(tmp_path: Path) -> None:
    target = tmp_path / "home"
    target.mkdir()
    (target / ".hidden").write_text("mine")
    with (
        pytest.raises(FileExistsError, match=r"holds \.hidden.*not an output satmae wrote"),
        atomic_folder(target, overwrite=True, is_ours=lambda _: False),
    ):
        pass
    assert (target / ".hidden").read_text() == "mine"


@pytest.mark.parametrize("kind", ["symlink", "fifo", "folder", "file"])
def test_check_output_refuses_the_wrong_kind(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "x"
    if kind == "symlink":
        target.symlink_to(tmp_path)
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
    else:
        target.write_text("x")
    folder = kind == "file"  # a file where a folder goes, or anything else where a file goes
    with pytest.raises(FileExistsError, match="satmae replaces only regular files and folders"):
        check_output(target, overwrite=True, folder=folder)


def test_a_busy_error_is_a_file_exists_error() -> None:
    assert issubclass(OutputBusyError, FileExistsError)


def test_without_flock_the_write_warns_and_still_happens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl

    from satmae.io import OutputLockWarning

    def no_flock(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    other_run = tmp_path / ".out.json.abcd1234.tmp"  # may belong to a live run: kept
    other_run.write_text("in progress")
    with (
        pytest.warns(OutputLockWarning, match=r"out\.json cannot lock files"),
        atomic_path(tmp_path / "out.json") as staging,
    ):
        staging.write_text("new")
    assert (tmp_path / "out.json").read_text() == "new" and other_run.exists()


def test_outputs_named_by_dot_or_dot_dot_get_a_real_lock_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    assert lock_path(".") == tmp_path / ".run.lock"
    assert lock_path("sub/../out.json") == tmp_path / "run" / ".out.json.lock"
