"""Where work units run: one after another in this process, or as Ray tasks.

Both yield each unit's outcome as it finishes. Units catch their own exceptions and record them
(:func:`iwbc.bench.units.execute_unit`); a Ray task that dies without returning (a worker
crash) is recorded by the driver instead, so every unit ends with its records either way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from iwbc.bench.units import UnitContext, UnitOutcome, WorkUnit, execute_unit, record_failure
from iwbc.envs.mujoco_warnings import mujoco_warnings_as_python
from iwbc.errors import UserError
from iwbc.machine import running_commit

EXECUTORS = ("local", "ray")


def run_local(
    units: Iterable[WorkUnit],
    context: UnitContext,
    report: Callable[[str], None] | None = None,
) -> Iterator[UnitOutcome]:
    """Units in order, in this process; ``report`` hears each unit's evaluation steps."""
    for unit in units:
        yield execute_unit(unit, context, report)


def execute_in_worker(unit: WorkUnit, context: UnitContext) -> UnitOutcome:
    """A Ray task's body: the unit, with MuJoCo's warnings routed as ``iwbc`` routes them in its
    own process (a worker is another process, where the command's handler is not installed).
    The worker's source commit is looked up first, as the driver's is when the sweep starts:
    its records name the code it ran, not the checkout when the unit ended."""
    running_commit()
    with mujoco_warnings_as_python():
        return execute_unit(unit, context)


def run_ray(
    units: Sequence[WorkUnit],
    context: UnitContext,
    *,
    num_cpus: int | None = None,
    address: str | None = None,
) -> Iterator[UnitOutcome]:
    """Each unit a Ray task (one CPU each), outcomes in order of completion.

    Connects to the cluster at ``address``, else starts a local Ray instance with ``num_cpus``
    (default: all cores) and no dashboard, and shuts down what it started.
    """
    try:
        import ray
    except ImportError as error:
        raise UserError(
            "the ray executor needs Ray: pip install 'iwbc[ray]' (or use --executor local)"
        ) from error
    started_here = not ray.is_initialized()
    if started_here:
        if address is not None:
            ray.init(address=address, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING)
    try:
        task = ray.remote(num_cpus=1)(execute_in_worker)
        started = time.perf_counter()
        futures = {task.remote(unit, context): unit for unit in units}
        waiting = list(futures)
        while waiting:
            (done,), waiting = ray.wait(waiting, num_returns=1)
            try:
                yield ray.get(done)
            except ray.exceptions.RayError as error:
                message = f"Ray task lost: {type(error).__name__}"
                unit = futures[done]
                yield record_failure(unit, context, message, time.perf_counter() - started)
    finally:
        if started_here:
            ray.shutdown()
