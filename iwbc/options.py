"""Command-line option checks, so that a bad value stops the command before anything runs.

The ``type=`` functions make argparse refuse a value while parsing; their messages start with
"must", so the parser's one-line error reads ``--flag must be ..., got VALUE``. The folder
checks run once the cheap checks passed and before any training, since an unwritable output
folder would otherwise surface only when the results are written.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from iwbc.data.minari_io import dataset_id_problem
from iwbc.errors import UserError, one_line

# Every command's --root: where Minari datasets are read and written.
ROOT_HELP = "local Minari root (default: Minari's)"


def _integer(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ {low}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ {low}, got {text}")
    return value


def positive_int(text: str) -> int:
    """An integer ≥ 1 (counts, sizes, steps)."""
    return _integer(text, 1)


def nonnegative_int(text: str) -> int:
    """An integer ≥ 0 (seeds, warm-up steps)."""
    return _integer(text, 0)


# JAX keys hold a seed's low 32 bits: seeds beyond would repeat others' random streams.
SEED_LIMIT = 2**32


def jax_seed(text: str) -> int:
    """A seed that makes a JAX key: an integer in [0, 2³²)."""
    value = _integer(text, 0)
    if value >= SEED_LIMIT:
        raise argparse.ArgumentTypeError(
            f"must be below 2**32 = {SEED_LIMIT} (JAX keys keep 32 bits), got {text}"
        )
    return value


def _number(text: str, requirement: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {requirement}, got {text!r}") from None


def finite_float(text: str) -> float:
    """Any finite number (reference scores)."""
    value = _number(text, "a finite number")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates, temperatures)."""
    value = _number(text, "a finite number > 0")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def decay(text: str) -> float:
    """A number in [0, 1) (an EMA decay; at 1 nothing would move)."""
    value = _number(text, "a number in [0, 1)")
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text}")
    return value


def layer_widths(text: str) -> tuple[int, ...]:
    """Comma-separated positive layer widths, e.g. ``256,256``."""
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated positive integers, e.g. 256,256; got {text!r}"
        )
    return widths


def name_list(text: str) -> tuple[str, ...]:
    """Comma-separated names, at least one, none twice."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"must be comma-separated names, got {text!r}")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise argparse.ArgumentTypeError(
            f"must list each name once; got {', '.join(twice)} twice in {text!r}"
        )
    return names


def dataset_id(text: str) -> str:
    """A Minari dataset id (``namespace/name-v0``), checked before a dataset is made under it."""
    problem = dataset_id_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(
            f"must be a Minari dataset id like 'namespace/name-v0', got {text!r} ({problem})"
        )
    return text


def check_directory(path: str | Path | None, flag: str) -> None:
    """Refuse a ``--root``-like option that names a file, before a library trips over it."""
    if path is not None and Path(path).expanduser().is_file():
        raise UserError(f"{flag} {path} is a file; it must be a directory")


def check_writable(path: str | Path, flag: str) -> None:
    """Make ``path`` (a folder the command writes into) if missing and test-write a file in it,
    so that a read-only or full folder stops the command before hours of training."""
    check_directory(path, flag)
    folder = Path(path).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".iwbc-write-check-"):
            pass
    except OSError as error:
        reason = one_line(error.strerror or error).lower()
        raise UserError(
            f"{flag} {path} is not writable ({reason}); pick a folder you can write to"
        ) from error
