"""The published D4RL numbers: parsed from literature.toml and mapped to our dataset ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iwbc.data.d4rl import infer_names
from iwbc.report.literature import LITERATURE_FILE, load_literature


def test_literature_file_maps_d4rl_names_to_our_rows() -> None:
    (corl,) = load_literature()
    assert corl.score("bc", "iwbc/hopper/medium-replay-v0") == 29.8
    assert corl.score("awac", "iwbc/walker2d/medium-expert-v0") == 111.4
    assert corl.score("top10_bc", "iwbc/halfcheetah/medium-replay-v0") == 23.6
    assert corl.labels["td3_bc"] == "TD3+BC"
    assert set(corl.recipes) == {"bc", "top10_bc", "awac", "iql", "cql"}  # not TD3+BC's
    assert np.isnan(corl.score("iw_bc", "iwbc/hopper/medium-v0"))  # not published
    # D4RL's own file, imported under its default id, has the same published number.
    assert corl.score("bc", "d4rl/hopper/medium-replay-v2") == 29.8
    assert np.isnan(corl.score("bc", "mujoco/hopper/medium-v0"))
    # The file's rows agree with CORL's own averages (to their rounding).
    for method, average in corl.averages.items():
        rows = list(corl.scores[method].values())
        assert len(rows) == 9
        assert abs(np.mean(rows) - average) < 0.06, method


def test_imported_ids_are_the_importers_defaults() -> None:
    (corl,) = load_literature()
    imported = {name: ours for ours, name in corl.ids.items() if ours in corl.imported}
    assert len(imported) == 9
    for name, ours in imported.items():
        assert infer_names(f"{name}.hdf5")[1] == ours


def test_header_says_which_rows_are_other_data_and_which_the_same_files() -> None:
    (corl,) = load_literature()
    generated, imported = "iwbc/hopper/medium-v0", "d4rl/hopper/medium-v2"
    assert corl.header([generated, "iwbc/x/y-v0"]) == "published (D4RL v2, other data)"
    assert corl.header([imported, "iwbc/x/y-v0"]) == "published (D4RL v2, same files)"
    assert corl.header([generated, imported]) == "published (D4RL v2)"


def test_bad_literature_file(tmp_path: Path) -> None:
    text = LITERATURE_FILE.read_text().replace("[42.4, 42.5,", "[42.5,")
    (tmp_path / "lit.toml").write_text(text)
    with pytest.raises(ValueError, match="'halfcheetah-medium-v2' has 6 scores, not 7"):
        load_literature(tmp_path / "lit.toml")
    text = LITERATURE_FILE.read_text().replace(
        '"hopper-medium-v2" = "d4rl/hopper/medium-v2"', '"hopper-v9" = "d4rl/hopper/medium-v2"'
    )
    (tmp_path / "lit.toml").write_text(text)
    with pytest.raises(ValueError, match="\\[imported\\] names 'hopper-v9', absent from"):
        load_literature(tmp_path / "lit.toml")
    text = LITERATURE_FILE.read_text().replace("\ntop10_bc = ", "\ntop_bc = ")
    (tmp_path / "lit.toml").write_text(text)
    with pytest.raises(ValueError, match="recipes name 'top_bc', absent from its methods"):
        load_literature(tmp_path / "lit.toml")
    (tmp_path / "lit.toml").write_text("[sources.x]\n")
    with pytest.raises(ValueError, match="lacks 'datasets'"):
        load_literature(tmp_path / "lit.toml")
