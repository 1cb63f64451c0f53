"""What a measured figure depends on: CPU model, vector extensions, cores, load, versions and
the source commit.

Written beside every result and benchmark, so a number in ``results/`` says where it came from.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


# The x86 vector extensions, widest first. A seeded run (SAC in `iwbc data generate`, a
# training run) repeats bit for bit on one CPU, and has on CPUs of two vendors with the same
# widest extension (AVX-512), not across extensions; capping XLA:CPU's ISA alike does not make
# two such CPUs agree (benchmarks/cpu_isa_determinism.py), so a record names both.
VECTOR_EXTENSIONS = ("avx512f", "avx2", "avx", "sse4_2")


def cpu_vector_extension(cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """The widest of :data:`VECTOR_EXTENSIONS` in ``cpuinfo``'s flags; None where there are no
    such flags (not Linux, not x86)."""
    try:
        with open(cpuinfo) as f:
            flags = next(line.split(":", 1)[1].split() for line in f if line.startswith("flags"))
    except (OSError, StopIteration):
        return None
    return next((ext for ext in VECTOR_EXTENSIONS if ext in flags), None)


def cpu_identity() -> dict[str, str | None]:
    """The CPU as records and generated datasets state it: its model and widest vector
    extension (with which its rounding has changed so far)."""
    return {"cpu": cpu_model(), "cpu_vector_extension": cpu_vector_extension()}


def available_memory(meminfo: str = "/proc/meminfo") -> int | None:
    """Bytes of memory new allocations can take without swapping (the kernel's MemAvailable);
    None where there is no such file (not Linux)."""
    try:
        with open(meminfo) as f:
            line = next(line for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) * 1024


def source_commit(package: str | Path = PACKAGE_DIR) -> str | None:
    """The git commit of the checkout holding ``package`` (iwbc's source), with ``+dirty`` when
    a tracked file under ``package`` differs from it (results being written elsewhere in the
    checkout do not count); None outside a git checkout (an installed wheel) or without git.
    The version number alone does not say which code made a result."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(package), *args], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    try:
        head = git("rev-parse", "HEAD")
        changes = git("status", "--porcelain", "--untracked-files=no", ".")
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if changes else "")


@functools.cache
def running_commit() -> str | None:
    """:func:`source_commit` of this process's iwbc, looked up once: the code a process runs is
    what it loaded, and a sweep writes many records."""
    return source_commit()


def package_version(name: str) -> str | None:
    """The installed version of ``name``; None if it is not installed (e.g. iwbc itself, run
    from a source checkout on PYTHONPATH, as on the GPU machine)."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def machine_record(packages: Sequence[str]) -> dict[str, object]:
    """CPU and its widest vector extension, cores (all and usable by this process), load
    average, Python, the versions of ``packages`` (None for one not installed) and the source
    commit."""
    record: dict[str, object] = {
        **cpu_identity(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
    }
    record.update({name: package_version(name) for name in packages})
    record["iwbc_commit"] = running_commit()
    return record
