"""The one exception type the data layer raises for bad datasets."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset cannot be used as asked; the message is one line naming the problem and the fix.

    It subclasses ValueError so callers that already catch bad-input errors keep working.
    """


def one_line(text: object) -> str:
    """Collapse text (e.g. a wrapped library error) to one line, without a final period, so it
    can be embedded mid-sentence in an error message."""
    return " ".join(str(text).split()).rstrip(".")
