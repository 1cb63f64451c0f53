"""Dataset writes are all or nothing: a full disk, a crash of the HDF5 writer or Ctrl-C leaves
no staging directory and no dataset, and the CLI says what failed in one line."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import minari
import numpy as np
import pytest
from minari.data_collector import EpisodeBuffer

from iwbc.cli import main
from iwbc.data import DatasetError, load_dataset, scripted
from iwbc.data.minari_write import write_dataset
from iwbc.errors import WriteError

REPO = Path(__file__).resolve().parents[1]
DATASET = scripted.DEFAULT_DATASET_ID


def _episodes(count: int, length: int = 50) -> list[EpisodeBuffer]:
    """InvertedDoublePendulum-shaped episodes (9-wide observations, 1-wide actions)."""
    rng = np.random.default_rng(0)
    return [
        EpisodeBuffer(
            observations=rng.normal(size=(length + 1, 9)),
            actions=rng.uniform(-1, 1, size=(length, 1)).astype(np.float32),
            rewards=[1.0] * length,
            terminations=[False] * (length - 1) + [True],
            truncations=[False] * length,
        )
        for _ in range(count)
    ]


@pytest.fixture
def quick_scripted(monkeypatch: pytest.MonkeyPatch) -> None:
    """``iwbc data scripted`` without its minutes of rollouts."""
    monkeypatch.setattr(scripted, "reference_scores", lambda: (0.0, 100.0))
    monkeypatch.setattr(scripted, "rollout_mixture", lambda num, seed: _episodes(num))


def _half_write_then(fail: object) -> object:
    """A stand-in for Minari's writer that leaves a partial file in the staging root first."""

    def create(**kwargs: object) -> None:
        target = Path(os.environ["MINARI_DATASETS_PATH"]) / str(kwargs["dataset_id"]) / "data"
        target.mkdir(parents=True)
        (target / "main_data.hdf5").write_bytes(b"\0" * 4096)
        fail()

    return create


def _disk_full() -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _left_behind(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_full_disk_is_one_line_and_leaves_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    quick_scripted: None,
) -> None:
    monkeypatch.setattr(minari, "create_dataset_from_buffers", _half_write_then(_disk_full))
    root = tmp_path / "minari"
    assert main(["data", "scripted", "--episodes", "3", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"iwbc: error: no space left on device while writing {root / DATASET}; nothing was "
        f"written: free space or fix permissions under {root} and run again\n"
    )
    assert _left_behind(root) == []


def test_a_crashed_writer_is_reported_and_cleaned_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quick_scripted: None
) -> None:
    def crash() -> None:
        os.kill(os.getpid(), signal.SIGSEGV)

    monkeypatch.setattr(minari, "create_dataset_from_buffers", _half_write_then(crash))
    root = tmp_path / "minari"
    with pytest.raises(WriteError, match=r"HDF5 writer of .* ended with signal SIGSEGV"):
        scripted.generate_mixed_dataset(num_episodes=3, root=root)
    assert _left_behind(root) == []


def test_ctrl_c_kills_the_writer_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quick_scripted: None
) -> None:
    def interrupt_parent() -> None:
        time.sleep(1)  # the parent is waiting for the child by then
        os.kill(os.getppid(), signal.SIGINT)
        time.sleep(20)

    monkeypatch.setattr(minari, "create_dataset_from_buffers", _half_write_then(interrupt_parent))
    root = tmp_path / "minari"
    # A shell starting the tests as a background job leaves SIGINT ignored; a terminal never does.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            scripted.generate_mixed_dataset(num_episodes=3, root=root)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - started < 10
    assert _left_behind(root) == []


def test_other_errors_of_the_writer_keep_their_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quick_scripted: None
) -> None:
    def bug() -> None:
        raise KeyError("no such key")

    monkeypatch.setattr(minari, "create_dataset_from_buffers", _half_write_then(bug))
    root = tmp_path / "minari"
    with pytest.raises(KeyError, match="no such key") as raised:
        scripted.generate_mixed_dataset(num_episodes=3, root=root)
    assert "in the dataset writer process" in "".join(raised.value.__notes__)
    assert _left_behind(root) == []


def test_a_real_hdf5_write_failure_exits_2_in_one_line(tmp_path: Path) -> None:
    """HDF5 itself failing mid-write (a file-size limit stands in for a full disk: both fail the
    write() call) used to print hundreds of tracebacks and crash the interpreter."""
    root = tmp_path / "minari"
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        import numpy as np
        from minari.data_collector import EpisodeBuffer
        from iwbc.cli import main
        from iwbc.data import scripted

        def episodes(num, seed):
            rng = np.random.default_rng(seed)
            return [
                EpisodeBuffer(
                    observations=rng.normal(size=(201, 9)),
                    actions=rng.uniform(-1, 1, size=(200, 1)).astype(np.float32),
                    rewards=[1.0] * 200,
                    terminations=[False] * 199 + [True],
                    truncations=[False] * 200,
                )
                for _ in range(num)
            ]

        scripted.reference_scores = lambda: (0.0, 100.0)
        scripted.rollout_mixture = episodes
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.RLIM_INFINITY))
        sys.exit(main(["data", "scripted", "--episodes", "100", "--root", {str(root)!r}]))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.splitlines() == [
        f"iwbc: error: file too large while writing {root / DATASET}; nothing was written: "
        f"free space or fix permissions under {root} and run again"
    ]
    assert _left_behind(root) == []


def test_written_dataset_loads(tmp_path: Path) -> None:
    path = write_dataset(
        "iwbc/test/written-v0",
        _episodes(3, length=5),
        env_id=scripted.ENV_ID,
        ref_min_score=0.0,
        ref_max_score=1.0,
        description="test",
        algorithm_name="test",
        root=tmp_path,
    )
    assert path == tmp_path / "iwbc/test/written-v0"
    assert load_dataset("iwbc/test/written-v0", root=tmp_path).num_steps == 15
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_an_episode_without_steps_is_refused_before_writing(tmp_path: Path) -> None:
    episodes = _episodes(3)
    episodes[1] = EpisodeBuffer(observations=np.zeros((1, 9)))
    with pytest.raises(DatasetError, match=r"^episode 1 of 3 to write as .* has no steps"):
        write_dataset(
            "iwbc/test/empty-v0",
            episodes,
            env_id=scripted.ENV_ID,
            ref_min_score=0.0,
            ref_max_score=1.0,
            description="test",
            algorithm_name="test",
            root=tmp_path,
        )
    assert _left_behind(tmp_path) == []
