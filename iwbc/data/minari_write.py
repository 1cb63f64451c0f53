"""Write local Minari datasets all at once or not at all.

``minari.create_dataset_from_buffers`` writes straight into the datasets root, so a crash or a
full disk halfway leaves a dataset that lists but cannot be loaded. Here it writes into a
hidden staging directory of the same root (Minari's listing skips hidden directories) and the
finished dataset is moved into place with one rename; on any failure, Ctrl-C included, the
staging directory is removed, and one a killed writer left is removed by the next write.

The HDF5 writing runs in a forked child process. HDF5 cannot close a file whose write failed
(a full disk): every close fails again, h5py prints a traceback for each of the file's objects,
and the library later crashes the process, at the failed close or in its exit handler (h5py
issues #914 and #1775). In the child only the child is lost; this process removes the staging
directory and reports one line.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import os
import pickle
import shutil
import signal
import sys
import traceback
import uuid
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import minari
from gymnasium.envs.registration import EnvSpec
from minari.data_collector import EpisodeBuffer
from minari.storage import get_dataset_path

from iwbc.data.errors import DatasetError, one_line
from iwbc.data.minari_io import datasets_root, minari_root
from iwbc.errors import WriteError, hdf5_errno, io_errno, write_error
from iwbc.files import staging_directory


def dataset_exists(dataset_id: str, root: str | Path | None = None) -> bool:
    """Whether ``dataset_id`` is a directory of the local Minari root (looked up without
    Minari's ``get_dataset_path``, which creates the root: a failed command left it behind)."""
    return (datasets_root(root) / dataset_id).exists()


def write_dataset(
    dataset_id: str,
    episodes: list[EpisodeBuffer],
    *,
    env_id: str | EnvSpec,
    ref_min_score: float,
    ref_max_score: float,
    description: str,
    algorithm_name: str,
    root: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``episodes`` as dataset ``dataset_id`` with its metadata; returns its directory.

    ``env_id`` may be a full EnvSpec, to keep a source dataset's env arguments.

    An existing dataset is refused unless ``overwrite``; then it is replaced only once the new
    one is complete. On any failure nothing new is left under the root; a failed write (a full
    disk, no permission) raises a one-line :class:`~iwbc.errors.WriteError` naming the path.
    """
    if not episodes:
        raise ValueError(f"no episodes to write for {dataset_id}")
    empty = [i for i, episode in enumerate(episodes) if len(episode.rewards) == 0]
    if empty:
        raise DatasetError(
            f"episode {empty[0]} of {len(episodes)} to write as {dataset_id!r} has no steps; "
            "a dataset episode needs at least one"
        )
    with minari_root(root):
        final = get_dataset_path(dataset_id)
        base = get_dataset_path()
    if final.exists() and not overwrite:
        raise FileExistsError(
            f"Minari dataset {dataset_id!r} already exists at {final}; "
            "pass --overwrite (overwrite=True) to replace it"
        )
    create = partial(
        minari.create_dataset_from_buffers,
        dataset_id=dataset_id,
        buffer=episodes,
        env=env_id,
        eval_env=env_id,
        algorithm_name=algorithm_name,
        author="iwbc",
        description=description,
        ref_min_score=ref_min_score,
        ref_max_score=ref_max_score,
    )
    consequence = f"nothing was written: free space or fix permissions under {base} and run again"
    try:
        with staging_directory(base) as staging:
            with minari_root(staging):
                _in_child_process(create, final, consequence)
            final.parent.mkdir(parents=True, exist_ok=True)
            retired = base / f".retired-{uuid.uuid4().hex}"
            if final.exists():
                final.rename(retired)
            (staging / dataset_id).rename(final)
            shutil.rmtree(retired, ignore_errors=True)
    except Exception as err:
        code = io_errno(err)
        if code is None:
            raise
        raise write_error(final, code, consequence) from err
    return final


def _in_child_process(write: Callable[[], object], path: Path, consequence: str) -> None:
    """Run ``write`` in a forked child and raise its exception here (see the module docstring).

    The child's output is discarded: Minari prints and warns while writing, and a failed HDF5
    write prints a traceback per object. Ctrl-C reaches both processes; the child is killed
    before the interrupt goes on.
    """
    reader, writer = os.pipe()
    with warnings.catch_warnings():
        # JAX (and Python from 3.12) warn that a fork of a threaded process may deadlock the
        # child; the child runs only Minari and h5py and never touches JAX's threads or locks.
        warnings.filterwarnings("ignore", r"os\.fork\(\)", RuntimeWarning)
        warnings.filterwarnings("ignore", r".*use of fork\(\)", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(reader)
            code = _child(write, writer)
        finally:
            os._exit(code)  # never return into the caller's code, nor run its exit handlers
    with os.fdopen(reader, "rb") as pipe:
        try:
            os.close(writer)
            report = pipe.read()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            raise
        finally:
            _, status = os.waitpid(pid, 0)
    if report:
        raise pickle.loads(report)
    if status:
        crash = os.waitstatus_to_exitcode(status)
        cause = f"signal {signal.Signals(-crash).name}" if crash < 0 else f"status {crash}"
        raise WriteError(
            f"the HDF5 writer of {path} ended with {cause} (HDF5 crashes when a write fails, "
            f"e.g. on a full disk); {consequence}"
        )


def _child(write: Callable[[], object], pipe: int) -> int:
    """The forked child: run ``write``, send any exception back pickled; the exit status."""
    faulthandler.disable()  # a crash here is expected and reported by the parent
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    sys.stdout = io.StringIO()
    sys.stderr = _FirstIOError(pipe)
    try:
        write()
        return 0
    except BaseException as err:
        err.add_note(f"in the dataset writer process:\n{traceback.format_exc()}")
        _send(err, pipe)
        return 1


class _FirstIOError(io.TextIOBase):
    """The child's stderr. After a failed write h5py prints a traceback for each object it fails
    to close, and HDF5 may crash before the error reaches Python code: the first traceback that
    names an errno ends the child at once, sending that error."""

    def __init__(self, pipe: int) -> None:
        self._pipe = pipe

    def write(self, text: str) -> int:
        code = hdf5_errno(text)
        if code is not None:
            _send(OSError(code, os.strerror(code)), self._pipe)
            os._exit(1)
        return len(text)


def _send(err: BaseException, pipe: int) -> None:
    try:
        report = pickle.dumps(err)
    except Exception:
        report = pickle.dumps(RuntimeError(f"{type(err).__name__}: {one_line(err)}"))
    with os.fdopen(pipe, "wb") as out:
        out.write(report)
