"""The exception types that separate a user's mistake from a bug.

The CLI prints a :class:`UserError` as one line and exits 2; anything else is a bug and keeps
its traceback. Both subclass ValueError so callers that already catch bad input keep working.
"""

from __future__ import annotations

import os
import re
from pathlib import Path


class UserError(ValueError):
    """Bad input the user can fix; the message is one line naming the problem and the fix."""


def one_line(text: object) -> str:
    """Collapse text (e.g. a wrapped library error) to one line, without a final period, so it
    can be embedded mid-sentence in an error message."""
    return " ".join(str(text).split()).rstrip(".")


class WriteError(UserError):
    """Files could not be written (a full disk, no permission) and what was half-written has
    been removed; ``errno`` keeps the cause for callers that tell causes apart."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


# HDF5 reports a failed write as text inside the error h5py raises (a ValueError or a
# RuntimeError): "file write failed: ..., errno = 28, error message = 'no space left on device'".
_HDF5_ERRNO = re.compile(r"\berrno = (\d+)")


def io_errno(error: BaseException) -> int | None:
    """The operating system's errno behind ``error``: an OSError's own, or the one in the text
    of an HDF5 error; None when the error is no failed I/O."""
    if isinstance(error, OSError) and error.errno is not None:
        return error.errno
    return hdf5_errno(str(error))


def hdf5_errno(text: str) -> int | None:
    """The errno of the first failed HDF5 read or write that ``text`` reports, if any."""
    match = _HDF5_ERRNO.search(text)
    return int(match[1]) if match else None


def write_error(path: str | Path, errno: int, consequence: str) -> WriteError:
    """E.g. "no space left on device while writing <path>; <consequence>"."""
    reason = os.strerror(errno)
    return WriteError(
        f"{reason[:1].lower()}{reason[1:]} while writing {path}; {consequence}", errno
    )


class TrainingDiverged(UserError):
    """Training (or the policy it made) produced a NaN or infinity: the run stops there and is
    recorded as failed, never evaluated or scored. Usually a learning rate too high."""
