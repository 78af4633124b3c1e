"""The one output rule: every file or folder satmae writes goes through this module.

An output is either the old one or the complete new one, and two runs never write it at once:

1. **Lock.** A run takes an advisory lock on the output (:func:`fcntl.flock` on a sibling
   ``.NAME.lock`` file) for as long as it writes it. Another process that asks for the same
   output gets an :class:`OutputBusyError` naming the output and the holder's process id. The
   lock is re-entrant within a process, so a command may claim its output early and write it
   later through the same helpers. The kernel drops the lock of a killed run.
2. **Claim.** Under the lock, :func:`check_output` refuses a symbolic link, a FIFO, a device or
   a folder where a file is expected (and a file where a folder is expected), an existing
   output unless ``overwrite``, and a non-empty folder that is not recognisably one satmae
   wrote, even with ``overwrite``.
3. **Stage.** The new content is written to a hidden temporary beside the target
   (``.NAME.XXXXXXXX.tmp``, same file system; a file is written as ``NAME`` inside such a
   folder) and moved onto the target only when the writing block succeeds; it is removed when
   the block fails. Temporaries left by a killed run of the
   same output are removed when the next run takes the lock. Folders are staged whole and
   swapped in, so a folder never mixes files of two runs.
4. **Permissions.** Results get the permissions the user's umask allows (temporaries are
   created private), and an operating-system error names the user's path, not the temporary.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import stat
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
"""errno values of a file system that does not support :func:`fcntl.flock`."""


class OutputBusyError(FileExistsError):
    """Another process is writing the same output (its lock is held)."""


class OutputLockWarning(UserWarning):
    """The output's file system cannot lock files; concurrent runs are not detected there."""


# ---------------------------------------------------------------------------------------------
# naming


def _absolute(target: str | os.PathLike[str]) -> Path:
    """``target`` made absolute and normalised, so that ``.`` or ``dir/..`` have a name."""
    return Path(os.path.abspath(target))


def lock_path(target: str | os.PathLike[str]) -> Path:
    """The lock file of ``target``: ``.NAME.lock`` in the same folder."""
    path = _absolute(target)
    return path.parent / f".{path.name}.lock"


def _temporary_pattern(target: Path) -> re.Pattern[str]:
    """Names of the temporaries of ``target`` (what :mod:`tempfile` makes with our prefix)."""
    return re.compile(rf"^\.{re.escape(target.name)}\.[a-z0-9_]{{8}}\.tmp$")


def stale_temporaries(target: str | os.PathLike[str]) -> list[Path]:
    """Temporaries of ``target`` in its folder (files or folders), e.g. left by a killed run."""
    path = _absolute(target)
    if not path.parent.is_dir():
        return []
    pattern = _temporary_pattern(path)
    return sorted(entry for entry in path.parent.iterdir() if pattern.match(entry.name))


def _remove_tree_or_file(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# the lock


@dataclass
class _Held:
    pid: int
    fd: int | None  # None where the file system cannot lock
    depth: int


_held: dict[Path, _Held] = {}
_held_guard = threading.Lock()


class OutputLock:
    """An advisory, process-re-entrant lock on one output path.

    Use it as a context manager, or call :meth:`acquire` and :meth:`release` for an output that
    stays open across calls (a streaming writer). Taking the lock first in a process also
    removes the temporaries a killed run of the same output left behind.

    Args:
        target: the output file or folder.

    Raises:
        OutputBusyError: from :meth:`acquire`, if another process holds the lock.
        OSError: from :meth:`acquire`, if the lock file cannot be created (e.g. the folder is
            not writable).
    """

    def __init__(self, target: str | os.PathLike[str]) -> None:
        self.target = Path(target)
        self.path = lock_path(self.target)
        # One entry per output whatever path spelling reaches it (links in the folder resolved).
        self._key = self.path.parent.resolve() / self.path.name
        self._acquired = False

    def acquire(self) -> None:
        """Take the lock (non-blocking); see the class for what is raised."""
        if self._acquired:
            return
        with _held_guard:
            held = _held.get(self._key)
            if held is not None and held.pid == os.getpid():
                held.depth += 1
                self._acquired = True
                return
            fd = _lock_file(self.path, self.target)
            _held[self._key] = _Held(os.getpid(), fd, 1)
            self._acquired = True
        if fd is not None:  # without a lock, a temporary may belong to a live concurrent run
            for stale in stale_temporaries(self.target):
                _remove_tree_or_file(stale)

    def release(self) -> None:
        """Give the lock back; the last release in the process removes the lock file."""
        if not self._acquired:
            return
        self._acquired = False
        with _held_guard:
            held = _held.get(self._key)
            if held is None or held.pid != os.getpid():
                return
            held.depth -= 1
            if held.depth:
                return
            del _held[self._key]
            if held.fd is not None:
                # Unlinked while still locked: a process that opened this file meanwhile finds
                # it unlinked after locking it and retries on a fresh one (see _lock_file).
                self.path.unlink(missing_ok=True)
                os.close(held.fd)

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def _lock_file(path: Path, target: Path) -> int | None:
    """Open and lock ``path``; return its descriptor (None where locks are not supported)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        except OSError as error:
            raise _os_error(
                error.errno,
                f"cannot write {target}: cannot create its lock file {path.name} "
                f"({error.strerror}); check that the folder exists and is writable",
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            busy = OutputBusyError(
                f"{target} is being written by another process{holder} (lock {path.name}); "
                "wait for it to finish or choose another output path"
            )
            busy.errno = errno.EBUSY  # no filename: the text stays exactly the message
            raise busy from None
        except OSError as error:
            os.close(fd)
            if error.errno not in _NO_FLOCK:
                raise _os_error(error.errno, f"cannot lock {target} ({error.strerror})") from None
            warnings.warn(
                f"the file system of {target} cannot lock files ({error.strerror}); writing "
                "without a lock, so a concurrent run of the same output is not detected",
                OutputLockWarning,
                stacklevel=4,
            )
            return None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
        except FileNotFoundError:
            same = False
        if same:
            # Fixed width, written in place: no truncation (on ext4 a truncate followed by a
            # write forces a flush to disk on close, which made each lock cost milliseconds).
            os.pwrite(fd, f"{os.getpid():>10}\n".encode(), 0)
            return fd
        os.close(fd)  # the holder removed this lock file as we locked it: take the new one


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""


@contextmanager
def output_lock(target: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the advisory lock of ``target`` for the block (see :class:`OutputLock`)."""
    with OutputLock(target):
        yield


# ---------------------------------------------------------------------------------------------
# the claim


def _kind(path: Path) -> str | None:
    """What is at ``path`` (not following a link): None when nothing is there."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def check_output(
    target: str | os.PathLike[str],
    *,
    overwrite: bool,
    folder: bool = False,
    is_ours: Callable[[Path], bool] | None = None,
) -> None:
    """Refuse ``target`` unless it is absent or satmae may replace it.

    Args:
        target: the output file or folder.
        overwrite: whether an existing output may be replaced.
        folder: the output is a folder (else a file).
        is_ours: for a folder, whether an existing non-empty folder is one satmae wrote (only
            such a folder is replaced, and only with ``overwrite``); None: none is.

    Raises:
        FileExistsError: naming ``target``, what is there and what to do.
    """
    path = Path(target)
    kind = _kind(path)
    if kind is None:
        return
    if kind != ("folder" if folder else "file"):
        shown = {"file": "a file", "folder": "a folder"}.get(kind, kind)
        expected = "a folder" if folder else "a regular file"
        raise FileExistsError(
            f"{path} exists and is {shown}, not {expected}; satmae replaces only regular files "
            "and folders it could have written: remove it or choose another output path"
        )
    if folder:
        entries = sorted(entry.name for entry in path.iterdir())
        if not entries:
            return
        if not overwrite:
            raise FileExistsError(
                f"{path} is not empty (holds {_listing(entries)}); pass --overwrite "
                "(overwrite=True) to replace it or choose another output path"
            )
        if is_ours is None or not is_ours(path):
            raise FileExistsError(
                f"{path} is not empty (holds {_listing(entries)}) and is not an output satmae "
                "wrote, so it is not replaced even with --overwrite: choose an empty or new "
                "folder"
            )
        return
    if not overwrite:
        raise FileExistsError(
            f"{path} exists; pass --overwrite (overwrite=True) to replace it or choose another "
            "output path"
        )


def _listing(names: list[str], shown: int = 4) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


@contextmanager
def claim_output(
    target: str | os.PathLike[str],
    *,
    overwrite: bool,
    folder: bool = False,
    is_ours: Callable[[Path], bool] | None = None,
) -> Iterator[Path]:
    """Lock ``target`` and check it (:func:`check_output`) for a command that writes it later.

    Claim early, before the heavy work, so that a busy or existing output fails at once; the
    writes inside the block (through :func:`atomic_path` or :func:`atomic_folder`) reuse the lock.

    Yields:
        ``target`` as a :class:`~pathlib.Path`.
    """
    path = Path(target)
    with OutputLock(path):
        check_output(path, overwrite=overwrite, folder=folder, is_ours=is_ours)
        yield path


# ---------------------------------------------------------------------------------------------
# staged writes


@contextmanager
def atomic_path(target: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path for ``target``; move it onto ``target`` when the block succeeds.

    The temporary ``.NAME.XXXXXXXX.tmp/NAME`` lives in the target's folder (same file system,
    so the final :func:`os.replace` is atomic) and is removed if the block raises. The output's
    lock is held throughout.

    Args:
        target: the file to write.
        overwrite: replace an existing regular file (the default for files a run keeps
            rewriting: checkpoints, caches); False refuses it.

    Raises:
        OutputBusyError: if another process is writing ``target``.
        FileExistsError: if ``target`` is not a regular file, or exists and ``overwrite`` is
            False.
        OSError: if the folder is not writable or the disk fills; the message names ``target``.
    """
    destination = Path(target)
    with OutputLock(destination):
        check_output(destination, overwrite=overwrite)
        # The file is staged under its own name inside a private hidden folder: libraries that
        # pick the format from the suffix see the real one, and side files they create (the
        # safetensors writer has its own temporary) stay inside the folder, which a killed
        # run's successor removes whole.
        folder = _make_temporary(destination, folder=True)
        staging = folder / destination.name
        with _staged(destination, folder):
            yield staging
            check_output(destination, overwrite=overwrite)
            os.chmod(staging, 0o666 & ~current_umask())
            os.replace(staging, destination)


@contextmanager
def atomic_folder(
    target: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    is_ours: Callable[[Path], bool] | None = None,
) -> Iterator[Path]:
    """Yield an empty hidden folder beside ``target``; swap it in whole when the block succeeds.

    The old folder (one satmae wrote, replaced only with ``overwrite``) is moved aside and
    removed after the new one is in place, so readers never see files of two runs mixed.

    Args:
        target: the folder to write.
        overwrite: replace an existing non-empty folder that ``is_ours`` recognises.
        is_ours: whether an existing folder is one satmae wrote (see :func:`check_output`).

    Raises:
        OutputBusyError: if another process is writing ``target``.
        FileExistsError: if ``target`` is not a folder, or is a non-empty folder that may not be
            replaced.
        OSError: if the parent folder is not writable; the message names ``target``.
    """
    destination = Path(target)
    with OutputLock(destination):
        check_output(destination, overwrite=overwrite, folder=True, is_ours=is_ours)
        staging = _make_temporary(destination, folder=True)
        with _staged(destination, staging):
            yield staging
            check_output(destination, overwrite=overwrite, folder=True, is_ours=is_ours)
            os.chmod(staging, 0o777 & ~current_umask())
            replace_folder(staging, destination)


def replace_folder(source: Path, destination: Path) -> None:
    """Move the folder ``source`` onto ``destination``, replacing a folder already there.

    Call it with ``destination``'s lock held. An existing folder is first renamed to a
    temporary of ``destination`` (removed afterwards, or by the next run if this one is killed
    in between), then ``source`` is renamed into place.
    """
    if _kind(destination) == "folder" and any(destination.iterdir()):
        aside = _make_temporary(destination, folder=True)
        os.replace(destination, aside)
        try:
            os.replace(source, destination)
        except OSError:
            os.replace(aside, destination)  # put the old folder back
            raise
        shutil.rmtree(aside, ignore_errors=True)
        return
    if _kind(destination) == "folder":
        destination.rmdir()
    os.replace(source, destination)


def _make_temporary(target: Path, *, folder: bool) -> Path:
    """A new private temporary of ``target`` in its folder (matched by stale_temporaries)."""
    path = _absolute(target)
    prefix = f".{path.name}."
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if folder:
            return Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=path.parent))
        handle, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise _os_error(
            error.errno,
            f"cannot write {target}: cannot create a file in {path.parent} "
            f"({error.strerror}); check that the folder is writable and has free space",
        ) from None
    os.close(handle)
    return Path(name)


@contextmanager
def _staged(target: Path, internal: Path) -> Iterator[None]:
    """Remove the temporary ``internal`` afterwards; its OS errors re-worded to name ``target``."""
    try:
        yield
    except OSError as error:
        reworded = _user_error(error, target, internal)
        if reworded is error:
            raise
        raise reworded from error
    finally:
        _remove_tree_or_file(internal)


def _user_error(error: OSError, target: Path, internal: Path) -> OSError:
    """``error`` re-worded to name ``target`` where it names a temporary or lock file.

    An error about anything else (an input read inside the writing block, our own refusals) is
    returned unchanged.
    """
    mentioned = [str(name) for name in (error.filename, error.filename2) if name is not None]
    if not any(str(internal) in text for text in [*mentioned, str(error)]):
        return error
    text = str(error).replace(f"{internal}/{target.name}", str(target))
    reason = error.strerror or text.replace(str(internal), str(target))
    return _os_error(
        error.errno,
        f"cannot write {target}: {reason}; check that its folder exists, is writable and has "
        "free space",
    )


def _os_error(code: int | None, message: str) -> OSError:
    """An OSError of the subclass for ``code`` whose text is exactly ``message``.

    Only ``errno`` is set: with ``filename`` set, :class:`OSError` would print its own format.
    """
    kind = type(OSError(code, "")) if code is not None else OSError
    error = kind(message)
    error.errno = code  # type: ignore[assignment]
    return error


def current_umask() -> int:
    """The process's file-creation mask.

    Read from ``/proc/self/status`` where the kernel reports it (no change to the process
    state, so safe with threads), else by setting and restoring it.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
