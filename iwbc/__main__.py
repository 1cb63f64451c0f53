"""``python -m iwbc`` and the ``iwbc`` console script.

The CLI module imports JAX, Flax and MuJoCo, which takes seconds; a Ctrl-C landing then would
otherwise print a traceback through those imports. Importing it here turns that into the same
one line and exit status 130 as an interrupt later on.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
from types import FrameType

STARTING = "iwbc: interrupted while starting; nothing was run"


def main() -> int:
    """Import the CLI and run it; an interrupt while importing exits 130 in one line."""
    caught: list[int] = []

    def interrupt(signum: int, frame: FrameType | None) -> None:
        # Raised inside a garbage-collector callback (JAX registers one while it imports),
        # KeyboardInterrupt is printed as "Exception ignored" and the command would run on.
        if _in_gc_callback(frame):
            caught.append(signum)
        else:
            raise KeyboardInterrupt

    ours = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
    try:
        if ours:
            signal.signal(signal.SIGINT, interrupt)
        try:
            from iwbc.cli import main as cli_main
        finally:
            if ours:
                signal.signal(signal.SIGINT, signal.default_int_handler)
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


def _in_gc_callback(frame: FrameType | None) -> bool:
    codes = {getattr(callback, "__code__", None) for callback in gc.callbacks}
    while frame is not None:
        if frame.f_code in codes:
            return True
        frame = frame.f_back
    return False


if __name__ == "__main__":
    sys.exit(main())
