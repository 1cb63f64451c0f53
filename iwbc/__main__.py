"""``python -m iwbc`` and the ``iwbc`` console script.

The CLI module imports JAX, Flax and MuJoCo, which takes seconds; a Ctrl-C landing then would
otherwise print a traceback through those imports. Importing it here turns that into the same
one line and exit status 130 as an interrupt later on.
"""

from __future__ import annotations

import sys


def main() -> int:
    """Import the CLI and run it; an interrupt while importing exits 130 in one line."""
    try:
        from iwbc.cli import main as cli_main
    except KeyboardInterrupt:
        print("iwbc: interrupted while starting; nothing was run", file=sys.stderr)
        return 130
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
