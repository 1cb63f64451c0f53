"""`iwbc data minari-tiers`: reference scores and medium-expert for Minari-shaped MuJoCo datasets
(local fixtures laid out like `mujoco/hopper/{simple,medium,expert}-v0`, served by a local remote).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import minari
import numpy as np
import pytest

import iwbc.datagen.generate as generate
from iwbc.bench.runner import prepare_datasets
from iwbc.cli import main
from iwbc.data import DatasetError, dataset_normalized_score, list_datasets, load_dataset
from iwbc.data.minari_io import minari_root as minari_root_env
from iwbc.data.minari_tiers import (
    REFERENCE_SEED_BASE,
    prepare_namespace,
    resolve_namespace,
    uniform_random_return,
)
from iwbc.data.reference_cache import CACHE_FILE
from iwbc.datagen.sac import SACConfig

ENV = "Hopper-v5"
# Like Minari's sets: no reference scores in the metadata; the expert's episodes are long
# enough that its mean return clears a random Hopper's (about 17).
TIERS = {
    "simple": dict(lengths=(6, 9), terminated=(True, True), seed=1),
    "medium": dict(lengths=(12, 30, 7), terminated=(True, False, True), seed=2),
    "expert": dict(lengths=(80, 100, 90), terminated=(False, False, True), seed=3),
}


@pytest.fixture
def minari_mujoco(make_minari_dataset, local_minari_remote):
    """mujoco/hopper/{simple,medium,expert}-v0 on the (local) remote; their episode buffers."""
    return {
        tier: make_minari_dataset(
            f"mujoco/hopper/{tier}-v0",
            env=ENV,
            ref_min_score=None,
            ref_max_score=None,
            root=local_minari_remote,
            **options,
        )
        for tier, options in TIERS.items()
    }


def _return(buffer) -> float:
    return float(np.sum(np.asarray(buffer.rewards, np.float64)))


def test_random_reference_is_the_generators(monkeypatch):
    """Same reset seeds and action stream as iwbc.datagen.generate.reference_scores."""
    assert REFERENCE_SEED_BASE == generate.REFERENCE_SEED_BASE
    monkeypatch.setattr(
        generate, "mean_actions", lambda params, obs, dim, hidden: np.zeros((obs.shape[0], dim))
    )
    ref_min, _ = generate.reference_scores(ENV, None, SACConfig(), 6, 2)
    assert uniform_random_return(ENV, 6, seed=2) == ref_min
    assert uniform_random_return(ENV, 6, seed=3) != ref_min


def test_namespace_names():
    assert resolve_namespace("hopper") == "mujoco/hopper"
    assert resolve_namespace("mujoco/walker2d/") == "mujoco/walker2d"
    with pytest.raises(DatasetError, match="empty namespace"):
        resolve_namespace(" ")


def _local_tiers(make_minari_dataset, tiers=("medium", "expert")) -> None:
    """The Minari-shaped ``tiers`` in the local root, without scores as Minari ships them."""
    for tier in tiers:
        make_minari_dataset(
            f"mujoco/hopper/{tier}-v0",
            env=ENV,
            ref_min_score=None,
            ref_max_score=None,
            **TIERS[tier],
        )


def test_scores_cached_and_medium_expert_written(minari_mujoco, minari_root, capsys):
    args = ["data", "minari-tiers", "hopper", "--root", str(minari_root), "--download"]
    assert main([*args, "--episodes", "10"]) == 0
    out = capsys.readouterr().out.splitlines()[-2:]  # after Minari's download messages
    ref_min = uniform_random_return(ENV, 10, seed=0)
    expert = minari_mujoco["expert"]
    ref_max = float(np.mean([_return(b) for b in expert]))
    assert out[0].startswith(f"mujoco/hopper ({ENV}): ref_min_score {ref_min:.2f}")
    assert f"ref_max_score {ref_max:.2f}" in out[0]
    assert "mean return of the 3 episodes of mujoco/hopper/expert-v0" in out[0]
    assert out[1] == "  medium-expert: mujoco/hopper/medium-expert-v0"

    # The scores are cached beside the root, with their rules; Minari's listing ignores them.
    cache = json.loads((minari_root / CACHE_FILE).read_text())["mujoco/hopper"]
    assert (cache["ref_min_score"], cache["ref_max_score"]) == (ref_min, ref_max)
    assert cache["ref_min_rule"].endswith("action seed 0, iwbc batch engine")
    assert sorted(list_datasets(minari_root)) == [
        "mujoco/hopper/expert-v0",
        "mujoco/hopper/medium-expert-v0",
        "mujoco/hopper/medium-v0",
    ]

    # Every dataset of the namespace now loads with them, even ones downloaded later.
    for tier in ("medium", "expert", "simple"):
        ds = load_dataset(f"mujoco/hopper/{tier}-v0", root=minari_root, download=True)
        assert (ds.ref_min_score, ds.ref_max_score) == (ref_min, ref_max)
        returns = np.array([_return(b) for b in minari_mujoco[tier]])
        np.testing.assert_allclose(
            dataset_normalized_score(ds, ds.returns),
            100 * (returns - ref_min) / (ref_max - ref_min),
            rtol=1e-12,
        )

    # medium-expert: medium's episodes then expert's, as stored, with the scores in metadata.
    joined = load_dataset("mujoco/hopper/medium-expert-v0", root=minari_root)
    buffers = minari_mujoco["medium"] + minari_mujoco["expert"]
    assert joined.env_id == ENV
    assert (joined.ref_min_score, joined.ref_max_score) == (ref_min, ref_max)
    np.testing.assert_array_equal(joined.episodes.lengths, [len(b.rewards) for b in buffers])
    np.testing.assert_array_equal(joined.returns, [_return(b) for b in buffers])
    for i, buffer in enumerate(buffers):
        start = joined.episodes.starts[i]
        steps = slice(start, start + len(buffer.rewards))
        np.testing.assert_array_equal(
            joined.episodes.observations[steps], np.asarray(buffer.observations[:-1], np.float32)
        )
        np.testing.assert_array_equal(joined.episodes.terminations[steps], buffer.terminations)
        np.testing.assert_array_equal(joined.episodes.truncations[steps], buffer.truncations)
    # Each episode keeps the reset seed it was recorded with.
    with minari_root_env(minari_root):
        stored = minari.load_dataset("mujoco/hopper/medium-expert-v0")
        seeds = [m["seed"] for m in stored.storage.get_episode_metadata(stored.episode_indices)]
    assert seeds == [b.seed for b in buffers] and len(set(seeds)) == len(buffers)


def test_scores_the_expert_publishes_serve_the_whole_namespace(
    make_minari_dataset, local_minari_remote, minari_root
):
    """An expert tier with reference scores of its own (Minari's, from its expert policy) sets
    them for every tier, so medium and medium-expert are not normalized otherwise."""
    for tier, options in TIERS.items():
        published = {"ref_min_score": -20.0, "ref_max_score": 3000.0} if tier == "expert" else {}
        make_minari_dataset(
            f"mujoco/hopper/{tier}-v0",
            env=ENV,
            **{"ref_min_score": None, "ref_max_score": None, **published},
            root=local_minari_remote,
            **options,
        )
    result = prepare_namespace("hopper", root=minari_root, download=True, episodes=5)
    assert (result.ref_min_score, result.ref_max_score) == (-20.0, 3000.0)
    assert result.reference["ref_max_rule"] == "mujoco/hopper/expert-v0's own metadata"
    for tier in ("medium", "expert", "medium-expert", "simple"):
        ds = load_dataset(f"mujoco/hopper/{tier}-v0", root=minari_root, download=True)
        assert (ds.ref_min_score, ds.ref_max_score) == (-20.0, 3000.0), tier


def test_task_without_batch_engine_says_gymnasium_ran_it(make_minari_dataset, minari_root):
    """A task iwbc's batch engine lacks gets its random episodes from Gymnasium, and its
    recorded rule says so."""
    for tier in ("medium", "expert"):
        make_minari_dataset(
            f"mujoco/pendulum/{tier}-v0",
            env="Pendulum-v1",  # classic control: no MuJoCo spec
            ref_min_score=None,
            ref_max_score=None,
            lengths=(80, 100, 90),
            terminated=(False, False, False),
        )
    result = prepare_namespace("pendulum", root=minari_root, episodes=4)
    assert result.ref_min_score == uniform_random_return("Pendulum-v1", 4)
    assert result.reference["ref_min_rule"].endswith("action seed 0, Gymnasium engine")


def test_second_call_keeps_and_overwrite_recomputes(minari_mujoco, minari_root, monkeypatch):
    first = prepare_namespace("mujoco/hopper", root=minari_root, download=True, episodes=4)
    assert first.medium_expert == "mujoco/hopper/medium-expert-v0"

    calls = []
    import iwbc.data.minari_tiers as tiers

    real = tiers.uniform_random_return
    monkeypatch.setattr(
        tiers, "uniform_random_return", lambda *a, **k: calls.append(a) or real(*a, **k)
    )
    again = prepare_namespace("mujoco/hopper", root=minari_root, episodes=4)
    assert (again.medium_expert, calls) == (None, [])
    assert again.reference == first.reference

    changed = prepare_namespace("mujoco/hopper", root=minari_root, episodes=5)
    assert len(calls) == 1 and changed.reference["episodes"] == 5
    assert changed.ref_min_score == uniform_random_return(ENV, 5)
    # medium-expert's own scores would outrank the cache: it follows the new ones.
    assert changed.medium_expert == "mujoco/hopper/medium-expert-v0"
    for tier in ("medium", "expert", "medium-expert"):
        ds = load_dataset(f"mujoco/hopper/{tier}-v0", root=minari_root)
        assert (ds.ref_min_score, ds.ref_max_score) == (
            changed.ref_min_score,
            changed.ref_max_score,
        ), tier

    rewritten = prepare_namespace("mujoco/hopper", root=minari_root, episodes=5, overwrite=True)
    assert rewritten.medium_expert == "mujoco/hopper/medium-expert-v0" and len(calls) == 2


def test_a_replaced_expert_tier_remakes_the_scores_and_medium_expert(
    make_minari_dataset, minari_root: Path
):
    """Scores and medium-expert made from an expert-v0 since replaced are stale: loading with
    them is a one-line error naming the change, and the next minari-tiers remakes both."""
    _local_tiers(make_minari_dataset)
    first = prepare_namespace("mujoco/hopper", root=minari_root, episodes=4)
    assert first.medium_expert == "mujoco/hopper/medium-expert-v0"
    shutil.rmtree(minari_root / "mujoco" / "hopper" / "expert-v0")
    make_minari_dataset(
        "mujoco/hopper/expert-v0",
        env=ENV,
        ref_min_score=None,
        ref_max_score=None,
        lengths=(120, 110),
        terminated=(False, False),
        seed=7,
    )
    with pytest.raises(
        DatasetError,
        match=(
            r"^the reference scores cached for mujoco/hopper are stale: mujoco/hopper/expert-v0 "
            r"now holds 2 episodes \(230 steps\), not the 3 \(270 steps\) they were made from; "
            r"rerun `iwbc data minari-tiers mujoco/hopper` to remake them$"
        ),
    ):
        load_dataset("mujoco/hopper/medium-v0", root=minari_root)
    again = prepare_namespace("mujoco/hopper", root=minari_root, episodes=4)
    expert = load_dataset("mujoco/hopper/expert-v0", root=minari_root)
    assert again.ref_max_score == pytest.approx(float(expert.returns.mean()))
    assert again.ref_max_score != first.ref_max_score
    assert again.medium_expert == "mujoco/hopper/medium-expert-v0"
    joined = load_dataset("mujoco/hopper/medium-expert-v0", root=minari_root)
    assert joined.num_episodes == 3 + 2 and joined.ref_max_score == again.ref_max_score


def test_a_medium_expert_with_damaged_scores_is_rewritten(minari_mujoco, minari_root: Path):
    first = prepare_namespace("mujoco/hopper", root=minari_root, download=True, episodes=4)
    metadata_file = minari_root / "mujoco/hopper/medium-expert-v0/data/metadata.json"
    metadata = json.loads(metadata_file.read_text())
    metadata["ref_max_score"] = "broken"
    metadata_file.write_text(json.dumps(metadata))
    again = prepare_namespace("mujoco/hopper", root=minari_root, episodes=4)
    assert again.medium_expert == "mujoco/hopper/medium-expert-v0"
    ds = load_dataset("mujoco/hopper/medium-expert-v0", root=minari_root)
    assert (ds.ref_min_score, ds.ref_max_score) == (first.ref_min_score, first.ref_max_score)


def test_missing_tier_is_a_one_line_error(make_minari_dataset, minari_root, capsys):
    make_minari_dataset("mujoco/hopper/medium-v0", env=ENV, ref_min_score=None, ref_max_score=None)
    assert main(["data", "minari-tiers", "mujoco/hopper", "--root", str(minari_root)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err == (
        "iwbc: error: mujoco/hopper's reference scores come from its expert tier, "
        "mujoco/hopper/expert-v0, which is not in the local root: rerun with --download to fetch "
        "it, or give the scores yourself (iwbc run --ref-min/--ref-max, a suite's "
        '[reference_scores."<id>"])'
    )
    assert not (minari_root / CACHE_FILE).exists()
    assert list_datasets(minari_root) == ["mujoco/hopper/medium-v0"]


def test_a_dataset_left_without_data_is_one_line_before_its_scores(
    minari_root: Path, tmp_path: Path, capsys
):
    """An interrupted write or download leaves a dataset directory with an empty data folder:
    `iwbc run` (which looks for the dataset's scores first) and `data info` name it and the
    fix, in one line, instead of Minari's traceback."""
    empty = minari_root / "mujoco" / "hopper" / "medium-v0" / "data"
    empty.mkdir(parents=True)
    root = ["--root", str(minari_root)]
    run = ["--methods", "bc", "--work-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "o")]
    for argv in (
        ["run", "mujoco/hopper/medium-v0", *root, *run],
        ["data", "info", "mujoco/hopper/medium-v0", *root],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(
            "iwbc: error: dataset 'mujoco/hopper/medium-v0' at "
        ), err
        assert f"cannot be opened (No data found in data path {empty})" in err
        assert "delete " in err and "re-download it with --download" in err


def test_data_list_names_a_dataset_it_cannot_open_in_one_line(
    make_minari_dataset, minari_root: Path, capsys
):
    """Minari leaves such a dataset out with a warning and its source line; iwbc's is one line
    naming the folder and the fix, and the usable datasets are listed."""
    make_minari_dataset("mujoco/hopper/expert-v0", env=ENV)
    empty = minari_root / "mujoco" / "hopper" / "medium-v0"
    (empty / "data").mkdir(parents=True)
    assert main(["data", "list", "--root", str(minari_root)]) == 0
    out, err = capsys.readouterr()
    assert out == "mujoco/hopper/expert-v0\n"
    assert err == (
        f"iwbc: warning: dataset 'mujoco/hopper/medium-v0' at {empty} cannot be opened (No data "
        f"found in data path {empty / 'data'}), so it is not listed: delete {empty} and "
        "regenerate or re-download it\n"
    )


def test_data_list_names_a_copied_dataset_and_the_id_to_set(
    make_minari_dataset, minari_root: Path, capsys
):
    """A folder copied under a new id opens (by path) but Minari does not list it: the warning
    says why and what to change, not to delete usable data."""
    make_minari_dataset("mujoco/hopper/expert-v0", env=ENV)
    copy = minari_root / "mujoco" / "hopper" / "mine-v0"
    shutil.copytree(minari_root / "mujoco" / "hopper" / "expert-v0", copy)
    assert main(["data", "list", "--root", str(minari_root)]) == 0
    out, err = capsys.readouterr()
    assert out == "mujoco/hopper/expert-v0\n"
    assert err == (
        f"iwbc: warning: dataset 'mujoco/hopper/mine-v0' at {copy} is not listed: its "
        "data/metadata.json names it 'mujoco/hopper/expert-v0'; set dataset_id there to "
        "'mujoco/hopper/mine-v0' (or move the folder to that id's) for Minari to list it\n"
    )
    metadata = copy / "data" / "metadata.json"
    metadata.write_text(
        json.dumps({**json.loads(metadata.read_text()), "dataset_id": "mujoco/hopper/mine-v0"})
    )
    assert main(["data", "list", "--root", str(minari_root)]) == 0
    assert capsys.readouterr() == ("mujoco/hopper/expert-v0\nmujoco/hopper/mine-v0\n", "")


def test_data_info_without_scores_says_where_they_come_from(
    make_minari_dataset, minari_root: Path, capsys
):
    make_minari_dataset("mujoco/hopper/medium-v0", env=ENV, ref_min_score=None, ref_max_score=None)
    assert main(["data", "info", "mujoco/hopper/medium-v0", "--root", str(minari_root)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "  ref_min_score None, ref_max_score None (none recorded; where mujoco/hopper/expert-v0 "
        "is local, `iwbc run` makes them from it, as `iwbc data minari-tiers mujoco/hopper` "
        "does; else pass --ref-min and --ref-max to iwbc run)"
    )


def test_scores_need_only_the_expert_tier(make_minari_dataset, minari_root, capsys):
    """Without medium-v0 (and no --download) the scores are made and the command succeeds,
    saying why no medium-expert was; every tier then loads with them."""
    _local_tiers(make_minari_dataset, ("simple", "expert"))
    args = ["data", "minari-tiers", "hopper", "--root", str(minari_root), "--episodes", "4"]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == (
        "  medium-expert: not made: mujoco/hopper/medium-v0 is not in the local root; rerun "
        "with --download (or download it) to make it"
    )
    assert sorted(list_datasets(minari_root)) == [
        "mujoco/hopper/expert-v0",
        "mujoco/hopper/simple-v0",
    ]
    simple = load_dataset("mujoco/hopper/simple-v0", root=minari_root)
    assert simple.ref_min_score == uniform_random_return(ENV, 4, seed=0)


def test_a_namespaces_scores_serve_only_datasets_of_its_env(make_minari_dataset, minari_root):
    """A dataset of another task filed under a namespace with stored scores is not normalized
    by that task's returns: it loads as one without scores."""
    _local_tiers(make_minari_dataset, ("simple", "expert"))
    args = ["data", "minari-tiers", "hopper", "--root", str(minari_root), "--episodes", "4"]
    assert main(args) == 0
    make_minari_dataset("mujoco/hopper/pendulum-v0", ref_min_score=None, ref_max_score=None)
    other = load_dataset("mujoco/hopper/pendulum-v0", root=minari_root)
    assert (other.ref_min_score, other.ref_max_score, other.ref_source) == (None, None, None)
    assert load_dataset("mujoco/hopper/simple-v0", root=minari_root).ref_min_score is not None


def test_data_list_skips_a_folder_whose_path_is_no_id(
    make_minari_dataset, minari_root: Path, capsys
):
    """Minari's listing fails as a whole on a backup copy named ``old`` (no version in its
    path); iwbc lists the rest and names the folder in one line."""
    make_minari_dataset("mujoco/hopper/expert-v0", env=ENV)
    shutil.copytree(minari_root / "mujoco" / "hopper" / "expert-v0", minari_root / "old")
    assert main(["data", "list", "--root", str(minari_root)]) == 0
    out, err = capsys.readouterr()
    assert out == "mujoco/hopper/expert-v0\n"
    assert err == (
        f"iwbc: warning: {minari_root / 'old'} holds a dataset but its path under the root is "
        "no Minari id (namespace/name-vN), so it is not listed: move it to its id's folder, or "
        "out of the root\n"
    )


def test_data_list_names_the_root_a_dataset_is_listed_under(
    make_minari_dataset, minari_root: Path, capsys
):
    """A root given inside the namespace (``.../datasets/mujoco``), at the dataset's own
    folder, or one folder above the real root: the warning names the root to pass, not an id
    to write into the metadata."""
    make_minari_dataset("mujoco/hopper/expert-v0", env=ENV)
    folder = minari_root / "mujoco" / "hopper" / "expert-v0"
    for inside, listed in ((minari_root / "mujoco", "hopper/expert-v0"), (folder, None)):
        assert main(["data", "list", "--root", str(inside)]) == 0
        out, err = capsys.readouterr()
        assert out == "no local Minari datasets (try `iwbc data scripted`)\n"
        if listed is None:
            assert err == (
                f"iwbc: warning: {folder} holds a dataset but its path under the root is no "
                f"Minari id (namespace/name-vN), so it is not listed: pass --root {minari_root}, "
                "the folder that holds its id's path\n"
            )
        else:
            assert err == (
                f"iwbc: warning: dataset 'mujoco/hopper/expert-v0' at {folder} is not listed: "
                f"under the root {inside} its path reads '{listed}'; pass --root {minari_root} "
                "(MINARI_DATASETS_PATH from Python), the folder that holds its id's path\n"
            )
    above = minari_root.parent
    assert main(["data", "list", "--root", str(above)]) == 0
    _, err = capsys.readouterr()
    assert f"under the root {above} its path reads '{minari_root.name}/mujoco/" in err
    assert err.endswith(
        f"pass --root {minari_root} (MINARI_DATASETS_PATH from Python), the "
        "folder that holds its id's path\n"
    )


def test_run_makes_missing_scores_from_the_local_expert(
    make_minari_dataset, minari_root: Path, tmp_path: Path, capsys
):
    """`iwbc run` on a Minari tier without scores makes its namespace's, as minari-tiers does,
    says so, and trains; --ref-min/--ref-max instead leave the namespace as it was."""
    _local_tiers(make_minari_dataset)
    argv = ["run", "mujoco/hopper/medium-v0", "--root", str(minari_root), "--methods", "bc"]
    argv += ["--seeds", "1", "--bc-steps", "2", "--hidden", "16,16", "--window", "1"]
    argv += ["--bc-batch-size", "4", "--eval-episodes", "1", "--quiet"]
    argv += ["--work-dir", str(tmp_path / "runs")]
    assert main([*argv, "--ref-min", "0", "--ref-max", "10", "--out", str(tmp_path / "a")]) == 0
    assert not (minari_root / CACHE_FILE).exists()
    assert "iwbc: note: mujoco/hopper/medium-v0 has no" not in capsys.readouterr().err

    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    ref_min = uniform_random_return(ENV, 100, seed=0)
    assert (
        "iwbc: note: mujoco/hopper/medium-v0 has no reference scores: made mujoco/hopper's as "
        f"`iwbc data minari-tiers mujoco/hopper` does, ref_min_score {ref_min:.2f}"
    ) in err
    scores = json.loads((tmp_path / "b" / "scores.json").read_text())
    assert json.dumps(ref_min) in json.dumps(scores)
    ds = load_dataset("mujoco/hopper/medium-v0", root=minari_root)
    assert ds.ref_min_score == ref_min


def test_run_download_fetches_the_expert_tier_for_missing_scores(
    minari_mujoco, minari_root: Path, tmp_path: Path, capsys
):
    """`iwbc run --download` on a Minari tier missing locally downloads it and, as it has no
    scores, its namespace's expert-v0 to make them, then trains on them."""
    argv = ["run", "mujoco/hopper/medium-v0", "--root", str(minari_root), "--download"]
    argv += ["--methods", "bc", "--seeds", "1", "--bc-steps", "2", "--hidden", "16,16"]
    argv += ["--window", "1", "--bc-batch-size", "4", "--eval-episodes", "1", "--quiet"]
    argv += ["--work-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert (
        "iwbc: note: mujoco/hopper/medium-v0 has no reference scores: downloaded "
        "mujoco/hopper/expert-v0 to make them"
    ) in err
    ref_min = uniform_random_return(ENV, 100, seed=0)
    ref_max = float(np.mean([_return(b) for b in minari_mujoco["expert"]]))
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())["reference_scores"]
    assert (scores["ref_min"], scores["ref_max"]) == (ref_min, ref_max)
    assert sorted(list_datasets(minari_root)) == [
        "mujoco/hopper/expert-v0",
        "mujoco/hopper/medium-v0",
    ]


def test_suites_make_missing_scores_before_their_units(make_minari_dataset, minari_root: Path):
    """`iwbc bench` makes them once per namespace under its datasets lock, before any unit."""
    _local_tiers(make_minari_dataset, ("simple", "medium", "expert"))
    notes: list[str] = []
    suite = SimpleNamespace(scripted=(), given_scores=lambda dataset: None)
    datasets = ("mujoco/hopper/simple-v0", "mujoco/hopper/medium-v0")
    prepare_datasets(suite, datasets, str(minari_root), minari_root / "lock", notes.append)
    assert len(notes) == 1 and notes[0].startswith("mujoco/hopper/simple-v0 has no reference")
    prepare_datasets(suite, datasets, str(minari_root), minari_root / "lock", notes.append)
    assert len(notes) == 1  # cached
    for dataset in datasets:
        assert load_dataset(dataset, root=minari_root).ref_source is not None


def test_expert_below_random_is_refused(make_minari_dataset, minari_root: Path):
    for tier in ("medium", "expert"):
        make_minari_dataset(
            f"mujoco/hopper/{tier}-v0", env=ENV, ref_min_score=None, ref_max_score=None
        )
    with pytest.raises(DatasetError, match="not above the random policy"):
        prepare_namespace("hopper", root=minari_root, episodes=4)
    assert not (minari_root / CACHE_FILE).exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"mujoco/walker2d": {"ref_min_score": 1', "cannot read the reference-score cache"),
        ("[1, 2]", "is not a JSON object"),
        ('{"mujoco/hopper": {"ref_min_score": 1}}', "no finite ref_min_score and ref_max_score"),
        ('{"mujoco/hopper": {"ref_min_score": "x", "ref_max_score": 2}}', "no finite ref_min"),
        (
            '{"mujoco/hopper": {"ref_min_score": 100, "ref_max_score": 50}}',
            "has ref_max_score 50 not above ref_min_score 100 for mujoco/hopper",
        ),
        ('{"mujoco/hopper": {"ref_min_score": 5, "ref_max_score": 5}}', "not above"),
    ],
)
def test_a_damaged_score_cache_is_a_one_line_error_and_kept(
    make_minari_dataset, minari_root: Path, capsys, content: str, message: str
):
    """Neither read as 'no scores' nor overwritten: rewriting it would drop other entries."""
    make_minari_dataset("mujoco/hopper/medium-v0", env=ENV, ref_min_score=None, ref_max_score=None)
    path = minari_root / CACHE_FILE
    path.parent.mkdir()
    path.write_text(content)
    assert main(["data", "info", "mujoco/hopper/medium-v0", "--root", str(minari_root)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err and "delete it and rerun" in err
    make_minari_dataset("mujoco/hopper/expert-v0", env=ENV, ref_min_score=None, ref_max_score=None)
    with pytest.raises(DatasetError, match=message):
        prepare_namespace("hopper", root=minari_root, episodes=4)
    assert path.read_text() == content
