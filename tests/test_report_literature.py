"""The published D4RL numbers: parsed from literature.toml and mapped to our dataset ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iwbc.report.literature import LITERATURE_FILE, load_literature


def test_literature_file_maps_d4rl_names_to_our_rows() -> None:
    (corl,) = load_literature()
    assert corl.score("bc", "iwbc/hopper/medium-replay-v0") == 29.8
    assert corl.score("awac", "iwbc/walker2d/medium-expert-v0") == 111.4
    assert corl.score("top10_bc", "iwbc/halfcheetah/medium-replay-v0") == 23.6
    assert corl.labels["td3_bc"] == "TD3+BC"
    assert np.isnan(corl.score("iw_bc", "iwbc/hopper/medium-v0"))  # not published
    # The file's rows agree with CORL's own averages (to their rounding).
    for method, average in corl.averages.items():
        rows = list(corl.scores[method].values())
        assert len(rows) == 9
        assert abs(np.mean(rows) - average) < 0.06, method


def test_bad_literature_file(tmp_path: Path) -> None:
    text = LITERATURE_FILE.read_text().replace("[42.4, 42.5,", "[42.5,")
    (tmp_path / "lit.toml").write_text(text)
    with pytest.raises(ValueError, match="'halfcheetah-medium-v2' has 6 scores, not 7"):
        load_literature(tmp_path / "lit.toml")
    (tmp_path / "lit.toml").write_text("[sources.x]\n")
    with pytest.raises(ValueError, match="lacks 'datasets'"):
        load_literature(tmp_path / "lit.toml")
