"""Write local Minari datasets all at once or not at all.

``minari.create_dataset_from_buffers`` writes straight into the datasets root, so a crash or a
full disk halfway leaves a dataset that lists but cannot be loaded. Here it writes into a
hidden staging directory of the same root (Minari's listing skips hidden directories) and the
finished dataset is moved into place with one rename.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import uuid
from pathlib import Path

import minari
from gymnasium.envs.registration import EnvSpec
from minari.data_collector import EpisodeBuffer
from minari.storage import get_dataset_path

from iwbc.data.errors import one_line
from iwbc.data.minari_io import minari_root


def dataset_exists(dataset_id: str, root: str | Path | None = None) -> bool:
    """Whether ``dataset_id`` is a directory of the local Minari root."""
    with minari_root(root):
        return get_dataset_path(dataset_id).exists()


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
    one is complete. On any failure nothing new is left visible under the root.
    """
    if not episodes:
        raise ValueError(f"no episodes to write for {dataset_id}")
    with minari_root(root):
        final = get_dataset_path(dataset_id)
        base = get_dataset_path()
    if final.exists() and not overwrite:
        raise FileExistsError(
            f"Minari dataset {dataset_id!r} already exists at {final}; "
            "pass --overwrite (overwrite=True) to replace it"
        )
    staging = base / f".staging-{uuid.uuid4().hex}"
    try:
        with minari_root(staging), contextlib.redirect_stdout(io.StringIO()):
            minari.create_dataset_from_buffers(
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
        final.parent.mkdir(parents=True, exist_ok=True)
        retired = base / f".retired-{uuid.uuid4().hex}"
        if final.exists():
            final.rename(retired)
        (staging / dataset_id).rename(final)
        shutil.rmtree(retired, ignore_errors=True)
    except OSError as err:
        raise OSError(
            f"writing Minari dataset {dataset_id!r} under {base} failed ({one_line(err)}); "
            "nothing was written: free space or fix permissions and run again"
        ) from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
