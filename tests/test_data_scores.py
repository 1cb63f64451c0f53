"""Normalised scores, including agreement with minari.get_normalized_score."""

from __future__ import annotations

from collections.abc import Callable

import minari
import numpy as np
import pytest
from minari.data_collector import EpisodeBuffer

from iwbc.data import DatasetError, dataset_normalized_score, load_dataset, normalized_score


def test_normalized_score_scale() -> None:
    np.testing.assert_allclose(normalized_score([-10.0, 20.0, 50.0], -10.0, 50.0), [0, 50, 100])
    assert float(normalized_score(80.0, -10.0, 50.0)) == pytest.approx(150.0)
    for ref_max in (3.0, 2.0, np.nan):  # equal, backwards (Minari would score -100), NaN
        with pytest.raises(ValueError, match="must be finite with ref_min < ref_max"):
            normalized_score(1.0, 3.0, ref_max)


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ((10.0, 5.0), r"reference_scores has ref_max_score 5 <= ref_min_score 10"),
        ((np.nan, 100.0), r"reference_scores' ref_min = nan, not a finite number"),
        (("0", {}), r"reference_scores' ref_max = \{\}, not a finite number"),
        (
            (0.0, 1.0, 2.0),
            r"reference_scores = \(0.0, 1.0, 2.0\) is not a \(ref_min, ref_max\) pair",
        ),
    ],
)
def test_reference_scores_given_from_python_are_checked_on_loading(
    pendulum_dataset: tuple[str, list[EpisodeBuffer]], scores: tuple, message: str
) -> None:
    """As the metadata's and the command line's: checked where given, not at the first score."""
    dataset_id, _ = pendulum_dataset
    with pytest.raises(DatasetError, match=message):
        load_dataset(dataset_id, reference_scores=scores)
    assert load_dataset(dataset_id, reference_scores=("0", 10)).ref_max_score == 10.0


@pytest.mark.parametrize(
    ("ref_min", "ref_max", "message"),
    [
        (-1e308, 1e308, r"ref_min=-1e\+308 and ref_max=1e\+308 \(a return of 1 scores nan\)"),
        (0.0, 1e-306, r"ref_min=0 and ref_max=1e-306 \(a return of 5 scores inf\)"),
    ],
)
def test_references_whose_scores_overflow_are_refused(
    ref_min: float, ref_max: float, message: str
) -> None:
    """Finite, distinct references can still give inf/NaN scores, which no record can hold."""
    with pytest.raises(ValueError, match="normalized scores overflow with " + message):
        normalized_score([1.0, 5.0], ref_min, ref_max)
    np.testing.assert_array_equal(normalized_score([np.nan], 0.0, 10.0), [np.nan])


def test_agrees_with_minari(pendulum_dataset: tuple[str, list[EpisodeBuffer]]) -> None:
    dataset_id, _ = pendulum_dataset
    ds = load_dataset(dataset_id)
    returns = np.array([-3.0, 0.0, 12.5, 49.0, 70.0])
    expected = 100.0 * minari.get_normalized_score(minari.load_dataset(dataset_id), returns)
    np.testing.assert_allclose(dataset_normalized_score(ds, returns), expected)
    np.testing.assert_allclose(
        dataset_normalized_score(ds, ds.returns),
        100.0 * minari.get_normalized_score(minari.load_dataset(dataset_id), ds.returns),
    )


def test_overrides_and_missing_refs(make_minari_dataset: Callable[..., list]) -> None:
    make_minari_dataset("iwbc-test/pendulum/norefs-v0", ref_min_score=None, ref_max_score=None)
    ds = load_dataset("iwbc-test/pendulum/norefs-v0")
    assert ds.ref_min_score is None and ds.ref_max_score is None
    with pytest.raises(DatasetError) as info:
        dataset_normalized_score(ds, [1.0])
    assert str(info.value) == (
        "dataset iwbc-test/pendulum/norefs-v0 has no ref_min_score/ref_max_score in its "
        "metadata; pass --ref-min and --ref-max to `iwbc run` (ref_min = and ref_max = under "
        '[reference_scores."iwbc-test/pendulum/norefs-v0"] in a suite for `iwbc bench`; '
        "ref_min=/ref_max= from Python), or for Minari's mujoco/<task> datasets with an "
        "expert-v0 tier run `iwbc data minari-tiers mujoco/<task>` once"
    )
    np.testing.assert_allclose(
        dataset_normalized_score(ds, [5.0], ref_min=0.0, ref_max=10.0), [50.0]
    )
