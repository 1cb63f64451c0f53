"""The one exception type the data layer raises for bad datasets."""

from __future__ import annotations

from iwbc.errors import UserError, one_line

__all__ = ["DatasetError", "DatasetWarning", "one_line"]


class DatasetError(UserError):
    """A dataset cannot be used as asked; the message is one line naming the problem and the fix."""


class DatasetWarning(UserWarning):
    """A dataset is usable but was changed on loading; the message is one line saying how."""
