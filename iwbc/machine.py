"""What a measured figure depends on: CPU model, cores, load and library versions.

Written beside every result and benchmark, so a number in ``results/`` says where it came from.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def package_version(name: str) -> str | None:
    """The installed version of ``name``; None if it is not installed (e.g. iwbc itself, run
    from a source checkout on PYTHONPATH, as on the GPU machine)."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def machine_record(packages: Sequence[str]) -> dict[str, object]:
    """CPU, cores (all and usable by this process), load average, Python and the versions of
    ``packages`` (None for one not installed)."""
    record: dict[str, object] = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
    }
    record.update({name: package_version(name) for name in packages})
    return record
