"""Atomic writes: files get the modes ``open`` would give them under the umask, JSON that
other tools can read (no NaN token), and a failed write names its file."""

from __future__ import annotations

import errno
import math
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from iwbc.files import write_atomic, write_json_atomic


@pytest.fixture
def umask() -> Iterator[None]:
    """Restore the process's umask after a test that sets one."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_modes_follow_the_umask_like_open(tmp_path: Path, umask: None, mask: int) -> None:
    os.umask(mask)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    record = write_json_atomic(tmp_path / "records" / "seed-0.json", {"a": 1})
    checkpoint = write_atomic(tmp_path / "checkpoint.msgpack", b"\x00")
    expected = 0o666 & ~mask
    assert stat.S_IMODE(plain.stat().st_mode) == expected
    assert stat.S_IMODE(record.stat().st_mode) == expected
    assert stat.S_IMODE(checkpoint.stat().st_mode) == expected
    assert [p.name for p in tmp_path.rglob(".*.tmp")] == []


def test_rewriting_keeps_the_umask_mode_and_leaves_no_temporary(
    tmp_path: Path, umask: None
) -> None:
    os.umask(0o002)
    path = tmp_path / "record.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert stat.S_IMODE(path.stat().st_mode) == 0o664
    assert path.read_text() == '{\n "a": 2\n}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_non_finite_number_is_never_written_as_json(tmp_path: Path, value: float) -> None:
    path = tmp_path / "scores.json"
    with pytest.raises(ValueError, match=r"refusing to write .*scores\.json: .*NaN or infinite"):
        write_json_atomic(path, {"final": {"return": value}})
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_names_the_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk fails ``write`` on an open file, whose OSError names no file: the bench
    reported "OSError: [Errno 27] File too large" for a checkpoint without saying which."""

    def full(fd: int) -> None:
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))

    monkeypatch.setattr(os, "fsync", full)
    path = tmp_path / "runs" / "checkpoint.msgpack"
    with pytest.raises(OSError) as raised:
        write_atomic(path, b"\x00" * 10)
    assert (raised.value.errno, raised.value.filename) == (errno.EFBIG, str(path))
    assert str(raised.value) == f"[Errno 27] File too large: '{path}'"
    assert list((tmp_path / "runs").iterdir()) == []
