"""Atomic writes: files get the modes ``open`` would give them under the umask, JSON that
other tools can read (no NaN token), a failed write names its file, and the staging directory
of a killed writer is removed by the next writer, never a live writer's."""

from __future__ import annotations

import errno
import math
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from minari.data_collector import EpisodeBuffer

from iwbc.bench.experiment import write_file_set
from iwbc.data.minari_write import write_dataset
from iwbc.files import staging_directory, write_atomic, write_json_atomic


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


def _writer_holding_staging(parent: Path) -> tuple[subprocess.Popen[str], Path]:
    """Another process inside ``staging_directory(parent)``, a file written there, sleeping."""
    code = (
        "import sys, time; from pathlib import Path; from iwbc.files import staging_directory\n"
        "with staging_directory(Path(sys.argv[1])) as path:\n"
        "    (path / 'part.bin').write_bytes(bytes(1024))\n"
        "    print(path, flush=True); time.sleep(600)\n"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", code, str(parent)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    return writer, Path(writer.stdout.readline().strip())


def test_a_killed_writers_staging_is_removed_by_the_next_and_a_live_ones_kept(
    tmp_path: Path,
) -> None:
    """SIGKILL leaves a writer no chance to remove its staging directory (a whole dataset, for
    ``iwbc data``); the next write in that directory removes it, but not one whose writer lives."""
    live, kept = _writer_holding_staging(tmp_path)
    try:
        killed, abandoned = _writer_holding_staging(tmp_path)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert abandoned.is_dir() and kept.is_dir()
        with staging_directory(tmp_path) as mine:
            assert mine.is_dir()
        assert not abandoned.exists()
        assert not mine.exists()
        assert (kept / "part.bin").is_file()
    finally:
        live.kill()
        live.wait()
    write_file_set(tmp_path, {"table.md": lambda path: path.write_text("x")})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]


def test_a_dataset_write_removes_a_killed_writers_staging(tmp_path: Path) -> None:
    killed, abandoned = _writer_holding_staging(tmp_path)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    episode = EpisodeBuffer(
        observations=np.zeros((3, 9)),
        actions=np.zeros((2, 1), dtype=np.float32),
        rewards=[1.0, 1.0],
        terminations=[False, True],
        truncations=[False, False],
    )
    write_dataset(
        "iwbc/stale/test-v0",
        [episode],
        env_id="InvertedDoublePendulum-v5",
        ref_min_score=0.0,
        ref_max_score=1.0,
        description="test",
        algorithm_name="test",
        root=tmp_path,
    )
    assert not abandoned.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iwbc"]
