"""The results store: append-only JSONL, one record per episode with a unique `episode_key`.

Records are flushed and fsynced chunk by chunk, so a killed sweep keeps every finished chunk;
a torn last line (killed mid-write) is ignored on read and fenced off on the next append.
Several jobs may share one store: each writes its own `records-<writer>.jsonl`.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import DataError, SteerError


class ResultsStore:
    def __init__(self, root: str | os.PathLike, writer: str = "main") -> None:
        self.root = Path(root)
        self.writer = writer
        if self.root.exists() and not self.root.is_dir():
            raise DataError(f"results store {str(self.root)!r} is a file, not a folder")
        if not writer or "/" in writer or writer.startswith("."):
            raise SteerError(f"store writer {writer!r} must be a plain file-name part")
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / f"records-{writer}.jsonl"
        self.errors_path = self.root / f"errors-{writer}.jsonl"
        self._keys: set[str] | None = None      # keys known to be stored (this writer adds to it)

    def files(self) -> list[Path]:
        return sorted(self.root.glob("records-*.jsonl"))

    def records(self) -> list[dict[str, Any]]:
        """Every complete record in the store, first occurrence of each key only."""
        seen: set[str] = set()
        out = []
        for path in self.files():
            for line in path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue                   # a torn line from a killed writer
                key = rec.get("episode_key")
                if key and key not in seen:
                    seen.add(key)
                    out.append(rec)
        return out

    def keys(self) -> set[str]:
        """Stored episode keys (re-read from disk: other jobs may share the store)."""
        self._keys = {r["episode_key"] for r in self.records()}
        return set(self._keys)

    def _append(self, path: Path, rows: Iterable[dict[str, Any]]) -> int:
        lines = [json.dumps(r, default=str) for r in rows]
        if not lines:
            return 0
        with open(path, "a+b") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")             # fence off a torn line left by a kill
            f.write(("\n".join(lines) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())
        return len(lines)

    def append(self, records: Iterable[dict[str, Any]]) -> int:
        """Append records that carry an `episode_key` not yet in the store; returns how many."""
        if self._keys is None:
            self.keys()
        have = self._keys
        assert have is not None
        fresh = []
        for r in records:
            key = r.get("episode_key")
            if not isinstance(r, dict) or not key:
                raise SteerError(f"every record needs an episode_key, got {str(r)[:80]!r}")
            if key not in have:
                have.add(key)
                fresh.append(r)
        return self._append(self.path, fresh)

    def error(self, record: dict[str, Any]) -> None:
        """Record a failing cell (not an episode: it is retried on the next run)."""
        self._append(self.errors_path, [record])

    def errors(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.root.glob("errors-*.jsonl")):
            for line in path.read_text().splitlines():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def write_parquet(self) -> Path | None:
        """records.parquet beside the JSONL (flattened scalars only); None without pyarrow."""
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            return None
        rows = []
        for r in self.records():
            rows.append({k: (json.dumps(v, default=str) if isinstance(v, (dict, list)) else v) for k, v in r.items()})
        if not rows:
            return None
        path = self.root / "records.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
        return path
