"""Files written all at once or not at all.

Checkpoints, records, manifests and cached evaluations are rewritten while a run may be killed
or a second worker may be writing the same path: each goes to a unique temporary file in the
same directory and replaces the target with one rename. The temporary file is created with mode
0666 less the umask, as ``open`` would, so a record is as readable as any other output.
:func:`file_lock` keeps two processes from doing the same work at once, and
:func:`staging_directory` gathers a set of files (or a whole dataset) before they move into place.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any


def _create_unique(directory: Path, name: str) -> tuple[int, Path]:
    """A new file ``.<name>.<random>.tmp`` in ``directory``, opened for writing.

    Not ``tempfile.mkstemp``, which makes the file 0600 whatever the umask; ``os.open`` with
    0666 lets the kernel apply the umask.
    """
    while True:
        tmp = directory / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` so that a reader (or a kill) sees the old file or the new one.

    The temporary file is unique, so two writers racing on one path never mix their bytes. A
    failed write (a full disk) raises an OSError naming ``path``, which a write to an open file
    would not.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_unique(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        if error.errno is None or error.filename is not None:
            raise
        raise OSError(error.errno, error.strerror, str(path)) from error
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def json_text(payload: Any, where: str | Path, **options: Any) -> str:
    """``payload`` as strict JSON for the file ``where``: a NaN or infinity (which ``json``
    would write as a token no other JSON reader accepts) is an error, never a broken file."""
    try:
        return json.dumps(payload, allow_nan=False, **options)
    except ValueError as error:
        raise ValueError(
            f"refusing to write {where}: it holds a NaN or infinite number, which JSON cannot "
            "represent (a diverged result must be reported as a failure, not a score)"
        ) from error


def write_json_atomic(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` as strict JSON (:func:`json_text`) with :func:`write_atomic`."""
    return write_atomic(path, json_text(payload, path, indent=1).encode())


@contextlib.contextmanager
def file_lock(path: str | Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block.

    The kernel drops the lock when its holder exits, however it dies, so a killed run never
    leaves a stale lock behind. With ``wait=False`` it does not block: it yields False, holding
    nothing, when another process (or another open of the file) holds it; else True.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


_STAGING_PREFIX = ".staging-"
_STAGING_OWNER = ".owner"


@contextlib.contextmanager
def staging_directory(parent: Path) -> Iterator[Path]:
    """A new hidden directory ``.staging-<random>`` in ``parent`` for the block, then removed.

    A writer killed outright (SIGKILL, the OOM killer) cannot remove its staging directory, and
    one may hold a whole dataset. So the writer holds a ``flock`` on the directory's ``.owner``
    file while it lives (the kernel drops it when the writer dies, however it dies), and each new
    staging directory first removes the others in ``parent`` whose owner lock is free: those of
    dead writers, never a live one's, on this host or another sharing the filesystem.
    """
    parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(parent)
    path = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=parent))
    try:
        # Locked under another name and then renamed, so no other process ever sees an owner
        # file that is not yet locked.
        fd = os.open(path / f"{_STAGING_OWNER}.new", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(path / f"{_STAGING_OWNER}.new", path / _STAGING_OWNER)
            yield path
        finally:
            os.close(fd)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _remove_abandoned_staging(parent: Path) -> None:
    """Remove the staging directories in ``parent`` whose owner lock no process holds; one with
    no owner file (its writer is between creating and locking it) is left alone."""
    for path in parent.glob(f"{_STAGING_PREFIX}*"):
        owner = path / _STAGING_OWNER
        if not owner.is_file():
            continue
        try:
            with file_lock(owner, wait=False) as free:
                if free:
                    shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue
