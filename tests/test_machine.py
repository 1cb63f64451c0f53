"""iwbc.machine: what a measured figure depends on."""

from __future__ import annotations

from pathlib import Path

from iwbc.machine import VECTOR_EXTENSIONS, cpu_vector_extension, machine_record


def test_machine_record_gives_none_for_a_package_not_installed() -> None:
    # iwbc run from a source checkout (PYTHONPATH, no pip install) has no metadata: records
    # written there must not fail on it
    record = machine_record(("numpy", "surely-not-an-installed-package"))
    assert isinstance(record["numpy"], str)
    assert record["surely-not-an-installed-package"] is None
    assert record["logical_cores"] and record["python"]


def test_the_widest_vector_extension_is_recorded(tmp_path: Path) -> None:
    """XLA:CPU's float rounding follows it, so records say which one a run had."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC\n"
        "flags\t\t: fpu sse sse2 sse4_1 sse4_2 avx avx2 fma avx_vnni\n"
    )
    assert cpu_vector_extension(str(cpuinfo)) == "avx2"
    cpuinfo.write_text("flags\t: fpu sse4_2 avx avx2 avx512f avx512bw\n")
    assert cpu_vector_extension(str(cpuinfo)) == "avx512f"
    cpuinfo.write_text("Features\t: fp asimd\n")  # aarch64: no flags line
    assert cpu_vector_extension(str(cpuinfo)) is None
    assert cpu_vector_extension(str(tmp_path / "absent")) is None
    assert machine_record(())["cpu_vector_extension"] in (*VECTOR_EXTENSIONS, None)
