"""The exception types that separate a user's mistake from a bug.

The CLI prints a :class:`UserError` as one line and exits 2; anything else is a bug and keeps
its traceback. Both subclass ValueError so callers that already catch bad input keep working.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input the user can fix; the message is one line naming the problem and the fix."""


def one_line(text: object) -> str:
    """Collapse text (e.g. a wrapped library error) to one line, without a final period, so it
    can be embedded mid-sentence in an error message."""
    return " ".join(str(text).split()).rstrip(".")


class TrainingDiverged(UserError):
    """Training (or the policy it made) produced a NaN or infinity: the run stops there and is
    recorded as failed, never evaluated or scored. Usually a learning rate too high."""
