"""Trajectory selection rules against hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from iwbc.data import quality_scores, stratified_top, top_fraction


def test_top_fraction_orders_by_return() -> None:
    returns = np.array([3.0, 9.0, 1.0, 7.0, 5.0])
    np.testing.assert_array_equal(top_fraction(returns, 0.4), [1, 3])
    np.testing.assert_array_equal(top_fraction(returns, 1.0), [1, 3, 4, 0, 2])


def test_top_fraction_keeps_at_least_one_and_floors() -> None:
    returns = np.arange(10.0)
    np.testing.assert_array_equal(top_fraction(returns, 0.01), [9])
    assert top_fraction(returns, 0.25).size == 2  # int(2.5), as in CORL
    assert top_fraction(np.arange(100.0), 0.1).tolist() == list(range(99, 89, -1))


def test_top_fraction_ties_prefer_lower_index() -> None:
    returns = [1.0, 5.0, 5.0, 0.0, 5.0]
    np.testing.assert_array_equal(top_fraction(returns, 0.4), [1, 2])
    np.testing.assert_array_equal(top_fraction(returns, 0.6), [1, 2, 4])


def test_stratified_top_on_0_to_99() -> None:
    picked = stratified_top(np.arange(100.0))
    assert picked.size == 10 + 5 + 2
    counts = np.bincount(picked, minlength=100)
    assert counts[98] == counts[99] == 3
    assert (counts[95:98] == 2).all() and (counts[90:95] == 1).all() and counts[:90].sum() == 0
    np.testing.assert_array_equal(picked[:10], np.arange(90, 100))


def test_stratified_top_matches_definition_with_ties() -> None:
    returns = np.array([4.0, 1.0, 4.0, 2.0, 4.0, 0.0])
    expected = np.concatenate(
        [np.flatnonzero(returns >= np.percentile(returns, p)) for p in (50, 90)]
    )
    np.testing.assert_array_equal(stratified_top(returns, (50, 90)), expected)
    np.testing.assert_array_equal(stratified_top(returns, (50, 90)), [0, 2, 4, 0, 2, 4])


def authors_filter(returns: np.ndarray, percentiles: tuple[float, ...]) -> np.ndarray:
    """The authors' filter_data_func: cut-offs from the whole buffer, then one buffer filtered
    in place by each in turn (EpisodicReplayBuffer.filter_dataset keeps R >= cut-off)."""
    cut_offs = [np.percentile(returns, p) for p in percentiles]
    kept, copies = np.arange(returns.size), []
    for cut in cut_offs:
        kept = kept[returns[kept] >= cut]
        copies.append(kept)
    return np.concatenate(copies)


@pytest.mark.parametrize("percentiles", [(90, 95, 98), (98, 95, 90), (95, 50, 99), (80,)])
def test_stratified_top_matches_the_authors_filter_in_any_order(percentiles) -> None:
    returns = np.random.default_rng(4).normal(size=150).round(1)  # ties included
    np.testing.assert_array_equal(
        stratified_top(returns, percentiles), authors_filter(returns, percentiles)
    )


def test_quality_scores() -> None:
    np.testing.assert_allclose(quality_scores([2.0, 4.0, 3.0]), [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(quality_scores([7.0, 7.0]), [1.0, 1.0])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: top_fraction([1.0, 2.0], 0.0), r"fraction must be in \(0, 1\]"),
        (lambda: top_fraction([1.0, 2.0], 1.5), r"fraction must be in \(0, 1\]"),
        (lambda: top_fraction([1.0, 2.0], float("nan")), r"fraction must be in \(0, 1\]"),
        (lambda: top_fraction([], 0.5), "returns is empty"),
        (lambda: stratified_top([1.0, np.nan]), "NaN/inf at episode"),
        (lambda: stratified_top([1.0, 2.0], (50, 101)), r"percentiles must lie in \[0, 100\]"),
        (lambda: stratified_top([1.0, 2.0], ()), "percentiles must be a non-empty"),
        (lambda: quality_scores([[1.0, 2.0]]), "returns must be a 1-D array"),
        (lambda: quality_scores([1.0, np.inf]), "NaN/inf"),
    ],
)
def test_bad_inputs_raise_one_line(call, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert "\n" not in str(info.value)
