"""MuJoCo's warnings as Python warnings, while the ``iwbc`` command runs.

MuJoCo prints each warning on stderr (cutting through the progress bar) and appends it to a
``MUJOCO_LOG.TXT`` it creates in the working directory. Gymnasium 1.4's ``half_cheetah.xml``
and ``humanoid.xml`` set ``settotalmass``, which MuJoCo 3.17 deprecates but still applies (the
compiled cheetah weighs 14, as the XML asks), so every HalfCheetah or Humanoid env made that
way warned and littered the user's folder. Under :func:`mujoco_warnings_as_python` they are
:class:`MujocoWarning`\\ s: that one is ignored, any other goes through Python's warning
filters (by default shown once per message and place; warnings from MuJoCo's thread pool, once
per thread).

Only the command installs the handler (MuJoCo's is process-wide), and a Ray task around its
unit (:func:`iwbc.bench.executors.execute_in_worker`): a program importing iwbc keeps MuJoCo's
own behaviour.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator

import mujoco

KNOWN_DEPRECATION = "compiler attribute 'settotalmass' is deprecated"
"""The start of the warning every Gymnasium HalfCheetah model's compilation gives."""


class MujocoWarning(UserWarning):
    """A warning MuJoCo's C library raised."""


def forward_warning(message: str) -> None:
    """MuJoCo's warning handler inside :func:`mujoco_warnings_as_python`."""
    # A Python exception must not cross MuJoCo's C frames, where it aborts the process (as a
    # warning made an error by ``-W error`` would): the message is printed instead.
    try:
        warnings.warn(message, MujocoWarning, stacklevel=2)
    except Exception:
        print(f"MuJoCo warning: {message}", file=sys.stderr)


@contextlib.contextmanager
def mujoco_warnings_as_python() -> Iterator[None]:
    """Route MuJoCo's warnings to :mod:`warnings` (the settotalmass one ignored) inside the
    block, restoring MuJoCo's handler and the warning filters after it."""
    previous = mujoco.get_mju_user_warning()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=KNOWN_DEPRECATION, category=MujocoWarning)
        mujoco.set_mju_user_warning(forward_warning)
        try:
            yield
        finally:
            mujoco.set_mju_user_warning(previous)
