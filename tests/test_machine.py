"""iwbc.machine: what a measured figure depends on."""

from __future__ import annotations

import subprocess
from pathlib import Path

from iwbc.machine import (
    VECTOR_EXTENSIONS,
    available_memory,
    cpu_vector_extension,
    machine_record,
    source_commit,
)


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


def test_available_memory_is_the_kernel_s_memavailable(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  24000000 kB\nMemFree:  1000 kB\nMemAvailable:  2048 kB\n")
    assert available_memory(str(meminfo)) == 2048 * 1024  # not MemFree: the cache is reusable
    meminfo.write_text("MemTotal:  24000000 kB\n")  # a kernel before 3.14
    assert available_memory(str(meminfo)) is None
    assert available_memory(str(tmp_path / "absent")) is None  # not Linux


def test_the_source_commit_says_which_code_ran(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    assert source_commit(package) is None  # not a checkout: an installed wheel
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (package / "a.py").write_text("x = 1\n")
    (tmp_path / "record.json").write_text("{}\n")
    subprocess.run([*git, "add", "pkg/a.py", "record.json"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "a"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert source_commit(package) == head
    (package / "new.py").write_text("")  # untracked files do not change what ran
    (tmp_path / "record.json").write_text('{"rerun": 1}\n')  # nor results written beside it
    assert source_commit(package) == head
    (package / "a.py").write_text("x = 2\n")
    assert source_commit(package) == f"{head}+dirty"
