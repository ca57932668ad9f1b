"""Where steer keeps what it computes once: dequantized models, residual norms, directions."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def cache_dir(*parts: str) -> Path:
    """`$STEER_CACHE_DIR` (default `~/.cache/steer`) joined with `parts`, created on demand."""
    root = Path(os.environ.get("STEER_CACHE_DIR") or Path.home() / ".cache" / "steer")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a reader never sees half a file (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def publish_dir(tmp_dir: Path, final: Path) -> None:
    """Move a fully written directory into place; if another process won the race, keep theirs."""
    try:
        os.replace(tmp_dir, final)
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(tmp_dir, ignore_errors=True)
