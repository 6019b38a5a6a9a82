"""The manifest: the list of a tenant's Parquet files that make up its store, replaced atomically.

A file exists for readers only once the manifest names it, so a crash mid-write leaves no half-written store.
Files replaced by compaction or dropped by retention stay on disk for a grace period, so a reader that planned
a query on the old list can finish it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class DataFile:
    """One sorted, duplicate-free Parquet file of one day partition."""

    path: str  # relative to the tenant folder
    day: str  # YYYY-MM-DD (UTC)
    rows: int
    min_time: int  # microseconds since the epoch
    max_time: int
    min_tag: int
    max_tag: int
    max_seq: int
    added: int  # manifest version that added it
    bytes: int = 0
    scale: int = -1  # the value column: DECIMAL(18, scale) when 0 or more (exact decimals), else DOUBLE

    def overlaps(self, start_us: int | None, end_us: int | None, tag_ids: list[int] | None) -> bool:
        """Whether the file may hold points of these tags in [start, end)."""
        if start_us is not None and self.max_time < start_us:
            return False
        if end_us is not None and self.min_time >= end_us:
            return False
        return not (tag_ids is not None and not any(self.min_tag <= t <= self.max_tag for t in tag_ids))


@dataclass
class Manifest:
    """A tenant's current files and the ones waiting for deletion."""

    version: int = 0
    files: list[DataFile] = field(default_factory=list)
    obsolete: list[tuple[str, float]] = field(default_factory=list)

    @classmethod
    def from_bytes(cls, data: bytes | None) -> Manifest:
        """Parse a manifest; None (no file) is an empty store."""
        if data is None:
            return cls()
        raw: dict[str, Any] = json.loads(data)
        return cls(
            version=int(raw["version"]),
            files=[DataFile(**f) for f in raw["files"]],
            obsolete=[(str(p), float(t)) for p, t in raw.get("obsolete", [])],
        )

    def to_bytes(self) -> bytes:
        """The manifest as stored: compact JSON."""
        body = {"version": self.version, "files": [asdict(f) for f in self.files], "obsolete": self.obsolete}
        return json.dumps(body, separators=(",", ":")).encode()

    def replaced(self, add: list[DataFile], remove: set[str]) -> Manifest:
        """A new version with files added and removed (the removed ones become obsolete)."""
        now = time.time()
        return Manifest(
            version=self.version + 1,
            files=[f for f in self.files if f.path not in remove] + add,
            obsolete=self.obsolete + [(p, now) for p in sorted(remove)],
        )
