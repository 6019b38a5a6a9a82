"""The tag catalog: each tag gets a stable integer id on its first write, and metadata set later.

Files store the id beside the tag name: sorting and pruning on an integer is several times faster than on text.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from taehwa.core.errors import InvalidInput, NotFound
from taehwa.core.names import check_tag
from taehwa.core.tagbatch import TagIndex
from taehwa.db import tags

_META_FIELDS = {"unit", "description", "eng_low", "eng_high", "interval_s", "attributes"}


@dataclass
class TagInfo:
    """A tag and its metadata."""

    id: int
    tenant: str
    name: str
    unit: str | None = None
    description: str | None = None
    eng_low: float | None = None
    eng_high: float | None = None
    interval_s: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the API and CLI."""
        return {
            "name": self.name,
            "unit": self.unit,
            "description": self.description,
            "eng_low": self.eng_low,
            "eng_high": self.eng_high,
            "interval_s": self.interval_s,
            "attributes": self.attributes,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }


def _aware(dt: datetime | None) -> datetime | None:
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


class TagCatalog:
    """Maps (tenant, tag name) to ids and holds tag metadata; ids are cached in memory once seen."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._ids: dict[str, dict[str, int]] = {}
        self._names: dict[str, dict[int, str]] = {}
        self._index: dict[str, TagIndex] = {}  # tenant → the names seen, by position (`ensure_column`)
        self._id_at: dict[str, np.ndarray] = {}  # tenant → the id at each position of its index (-1: none)
        self._lock = threading.Lock()
        # each tenant's whole listing (the pages' tag browser and units ask for it on every view): kept until this
        # process changes a tag or LISTING_TTL_S passes (another process's change shows by then); its version
        # counts the listings read, so what is made from one can be kept until the next
        self._listed: dict[str, tuple[float, int, list[TagInfo]]] = {}
        self._listing_version: dict[str, int] = {}

    LISTING_TTL_S = 10.0

    def _forget_listing(self, tenant: str) -> None:
        self._listed.pop(tenant, None)

    def listing_version(self, tenant: str) -> int:
        """A number that changes whenever the tenant's whole listing is read afresh."""
        return self._listing_version.get(tenant, 0)

    def _load(self, tenant: str) -> dict[str, int]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(tags.c.name, tags.c.id).where(tags.c.tenant == tenant)).all()
        ids = {r.name: int(r.id) for r in rows}
        self._ids[tenant] = ids
        self._names[tenant] = {v: k for k, v in ids.items()}
        index = self._index.get(tenant)
        if index is not None:  # keep positions (and the index's recent answers) where names stay
            index.add(n for n in ids if n not in index.pos)
            self._id_at[tenant] = np.fromiter((ids.get(n, -1) for n in index.pos), np.int64, len(index))
        return ids

    def _load_new(self, tenant: str, names: list[str]) -> dict[str, int]:
        """After creating tags: read the ids of these alone when they are few beside the tenant's tags (a full
        reload reads every tag; for many new ones at once it is the quicker)."""
        if tenant not in self._ids or len(names) * 4 >= len(self._ids[tenant]):
            return self._load(tenant)
        found: dict[str, int] = {}
        with self._engine.connect() as conn:
            for k in range(0, len(names), 5_000):
                query = select(tags.c.name, tags.c.id).where(
                    tags.c.tenant == tenant, tags.c.name.in_(names[k : k + 5_000])
                )
                found.update((r.name, int(r.id)) for r in conn.execute(query).all())
        if len(found) < len(set(names)):
            return self._load(tenant)
        self._ids[tenant].update(found)
        self._names[tenant].update((v, k) for k, v in found.items())
        index = self._index.get(tenant)
        if index is not None:
            pos = np.asarray(index.add(list(found)), np.int64)
            at = self._id_at[tenant]
            if len(at) < len(index):
                at = np.concatenate([at, np.full(len(index) - len(at), -1, np.int64)])
            at[pos] = np.fromiter(found.values(), np.int64, len(found))
            self._id_at[tenant] = at
        return self._ids[tenant]

    def ensure_column(self, tenant: str, column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, int]:
        """The id of each row's tag (int64), creating tags never seen before, and how many distinct tags there
        are: C work per row and a dict lookup per distinct tag (`TagIndex`), not a Python step per row."""
        with self._lock:
            if tenant not in self._ids:
                self._load(tenant)
            index = self._index.get(tenant)
            if index is None:
                index = self._index[tenant] = TagIndex(self._ids[tenant])
                self._id_at[tenant] = np.fromiter(self._ids[tenant].values(), np.int64, len(index))
            ids = self._ids_of(tenant, index, column)
            unknown = ids < 0
            if unknown.any():
                missing = pc.unique(pc.filter(column, pa.array(unknown))).to_pylist()
                self._create(tenant, missing)
                self._load_new(tenant, missing)
                ids = self._ids_of(tenant, index, column)
                if (ids < 0).any():
                    raise KeyError(f"tags not created in tenant {tenant!r}")
            return ids, index.distinct

    def _ids_of(self, tenant: str, index: TagIndex, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
        codes = index.codes(column)
        at = self._id_at[tenant]
        if not len(at):
            return np.full(len(codes), -1, np.int64)
        ids: np.ndarray = at[codes]
        ids[codes < 0] = -1
        return ids

    def _create(self, tenant: str, missing: list[str]) -> None:
        """Insert new tags (the caller holds the lock and reloads after)."""
        self._forget_listing(tenant)
        for i, name in enumerate(missing):
            check_tag(name, where=f"tag #{i + 1} of the new tags")
        now = datetime.now(UTC)
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    insert(tags),
                    [
                        {"tenant": tenant, "name": n, "attributes": {}, "created_at": now, "updated_at": now}
                        for n in missing
                    ],
                )
        except IntegrityError:
            pass  # another process created some of them; the reload picks up their ids

    def ids(self, tenant: str, *, refresh: bool = False) -> dict[str, int]:
        """Name to id for every tag of the tenant."""
        with self._lock:
            if refresh or tenant not in self._ids:
                return dict(self._load(tenant))
            return dict(self._ids[tenant])

    def ensure(self, tenant: str, names: list[str]) -> dict[str, int]:
        """Ids for these tags, creating the ones never seen before (the first write creates a tag)."""
        with self._lock:
            known = self._ids.get(tenant)
            if known is None:
                known = self._load(tenant)
            missing = [n for n in names if n not in known]
            if missing:
                self._create(tenant, missing)
                known = self._load_new(tenant, missing)
            return {n: known[n] for n in names}

    def resolve(self, tenant: str, names: list[str]) -> dict[str, int]:
        """Ids of existing tags; an unknown tag is NotFound (a query never creates tags)."""
        ids = self.ids(tenant)
        unknown = [n for n in names if n not in ids]
        if unknown:
            ids = self.ids(tenant, refresh=True)
            unknown = [n for n in names if n not in ids]
        if unknown:
            raise NotFound(
                f"unknown tag {unknown[0]!r}" + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""),
                where="tags",
            )
        return {n: ids[n] for n in names}

    def name(self, tenant: str, tag_id: int) -> str:
        """The name of a tag id."""
        with self._lock:
            names = self._names.get(tenant)
            if names is None or tag_id not in names:
                self._load(tenant)
                names = self._names[tenant]
        return names[tag_id]

    def get(self, tenant: str, name: str) -> TagInfo:
        """A tag's metadata, or NotFound."""
        with self._engine.connect() as conn:
            row = conn.execute(select(tags).where(tags.c.tenant == tenant, tags.c.name == name)).first()
        if row is None:
            raise NotFound(f"unknown tag {name!r}", where="tag")
        return self._info(row)

    def list(self, tenant: str, prefix: str | None = None, limit: int = 10_000) -> list[TagInfo]:
        """Tags of the tenant, by name, optionally under a path prefix."""
        if not prefix:
            got = self._listed.get(tenant)
            if got is not None and got[1] == limit and time.monotonic() - got[0] < self.LISTING_TTL_S:
                return list(got[2])
        query = select(tags).where(tags.c.tenant == tenant)
        if prefix:
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(tags.c.name.like(escaped + "%", escape="\\"))
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(tags.c.name).limit(limit)).all()
        out = [self._info(r) for r in rows]
        if not prefix:
            with self._lock:
                self._listed[tenant] = (time.monotonic(), limit, out)
                self._listing_version[tenant] = self._listing_version.get(tenant, 0) + 1
            return list(out)
        return out

    def set_metadata(self, tenant: str, name: str, changes: dict[str, Any], *, create: bool = True) -> TagInfo:
        """Set or change unit, description, engineering range, expected interval or free attributes."""
        unknown = set(changes) - _META_FIELDS
        if unknown:
            raise InvalidInput(
                f"unknown tag field(s) {sorted(unknown)}; allowed: {sorted(_META_FIELDS)}", where="tag metadata"
            )
        clean = _check_metadata(changes)
        if create:
            self.ensure(tenant, [check_tag(name)])
        current = self.get(tenant, name)
        low = clean.get("eng_low", current.eng_low)
        high = clean.get("eng_high", current.eng_high)
        if low is not None and high is not None and low >= high:
            raise InvalidInput(f"engineering range low ({low}) must be below high ({high})", where="eng_low")
        clean["updated_at"] = datetime.now(UTC)
        with self._engine.begin() as conn:
            conn.execute(update(tags).where(tags.c.tenant == tenant, tags.c.name == name).values(**clean))
        with self._lock:
            self._forget_listing(tenant)
        return self.get(tenant, name)

    @staticmethod
    def _info(row: Any) -> TagInfo:
        return TagInfo(
            id=int(row.id),
            tenant=row.tenant,
            name=row.name,
            unit=row.unit,
            description=row.description,
            eng_low=row.eng_low,
            eng_high=row.eng_high,
            interval_s=row.interval_s,
            attributes=dict(row.attributes or {}),
            created_at=_aware(row.created_at),
            updated_at=_aware(row.updated_at),
        )


def _check_metadata(changes: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in changes.items():
        if key in ("unit", "description"):
            if value is not None and not isinstance(value, str):
                raise InvalidInput(f"must be text, got {value!r}", where=key)
            if key == "unit" and value is not None and len(value) > 64:
                raise InvalidInput("unit is longer than 64 characters", where=key)
            clean[key] = value
        elif key in ("eng_low", "eng_high", "interval_s"):
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                    raise InvalidInput(f"must be a finite number, got {value!r}", where=key)
                if key == "interval_s" and value <= 0:
                    raise InvalidInput(f"expected interval must be positive, got {value!r}", where=key)
                value = float(value)
            clean[key] = value
        elif key == "attributes":
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise InvalidInput("attributes must be an object with text keys", where=key)
            clean[key] = value
    return clean
