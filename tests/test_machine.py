"""iwbc.machine: what a measured figure depends on."""

from __future__ import annotations

from iwbc.machine import machine_record


def test_machine_record_gives_none_for_a_package_not_installed() -> None:
    # iwbc run from a source checkout (PYTHONPATH, no pip install) has no metadata: records
    # written there must not fail on it
    record = machine_record(("numpy", "surely-not-an-installed-package"))
    assert isinstance(record["numpy"], str)
    assert record["surely-not-an-installed-package"] is None
    assert record["logical_cores"] and record["python"]
