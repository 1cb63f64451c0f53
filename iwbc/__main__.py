"""``python -m iwbc`` and the ``iwbc`` console script.

The CLI module imports JAX, Flax and MuJoCo, which takes seconds; a Ctrl-C landing then would
otherwise print a traceback through those imports. Importing it here turns that into the same
one line and exit status 130 as an interrupt later on.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

STARTING = "iwbc: interrupted while starting; nothing was run"


def main() -> int:
    """Import the CLI and run it; an interrupt while importing exits 130 in one line."""
    caught: list[int] = []
    previous_hook = sys.unraisablehook

    def ignored(unraisable: Any) -> None:
        # Raised inside a garbage-collector callback (JAX registers one while it imports),
        # KeyboardInterrupt is printed as "Exception ignored" and the command would run on.
        if issubclass(unraisable.exc_type, KeyboardInterrupt):
            caught.append(signal.SIGINT)
        else:
            previous_hook(unraisable)

    ours = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
    try:
        if ours:
            sys.unraisablehook = ignored
        try:
            from iwbc.cli import main as cli_main
        finally:
            sys.unraisablehook = previous_hook
    except KeyboardInterrupt:
        caught.append(signal.SIGINT)
    if caught:
        print(STARTING, file=sys.stderr)
        return 130
    status = cli_main()
    if status == 130:
        _exit_now(status)
    return status


def _exit_now(status: int) -> None:
    """Exit at once after an interrupt, without the interpreter's teardown: a Ctrl-C landing
    while XLA compiles leaves its threads running, and tearing the interpreter down under them
    crashed the process (SIGSEGV) after the interrupt's line was printed. Everything worth
    keeping is already on disk (records and checkpoints are written atomically); a local Ray
    cluster this process started is shut down first, as its exit handler would."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
