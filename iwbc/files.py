"""Files written all at once or not at all.

Checkpoints, records, manifests and cached evaluations are rewritten while a run may be killed
or a second worker may be writing the same path: each goes to a unique temporary file in the
same directory and replaces the target with one rename.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` so that a reader (or a kill) sees the old file or the new one.

    The temporary file is unique, so two writers racing on one path never mix their bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` as JSON with :func:`write_atomic`."""
    return write_atomic(path, json.dumps(payload, indent=1).encode())
