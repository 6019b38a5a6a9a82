"""Keeping the twin in the metadata database, versioned: every change is a new version that closes the rows it
replaces, so the model as it stood at any past version (or time) can be read back exactly."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, insert, or_, select, update

from taehwa.core.yamlio import plain
from taehwa.db import twin_assets, twin_relations, twin_types, twin_versions
from taehwa.twin.model import Asset, Plant, Relation
from taehwa.twin.types import Limits, resolve_types


@dataclass(frozen=True)
class Version:
    """One change of a tenant's twin."""

    version: int
    at_us: int
    actor: str | None
    summary: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        from taehwa.core.timeutil import from_us

        return {
            "version": self.version,
            "at": from_us(self.at_us).isoformat(),
            "actor": self.actor,
            "summary": self.summary,
        }


def asset_from_record(rec: dict[str, Any]) -> Asset:
    """An asset from its stored record."""
    limits = {k: Limits(**v) for k, v in (rec.get("limits") or {}).items()}
    return Asset(
        rec["path"],
        rec["type"],
        rec["name"],
        dict(rec.get("attributes") or {}),
        dict(rec.get("tags") or {}),
        limits,
        rec.get("description"),
    )


class TwinStore:
    """Versioned rows of types, assets and relations per tenant."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def current_version(self, tenant: str, conn: Connection | None = None) -> int:
        """The newest version number (0 when the tenant has no twin yet)."""
        q = select(func.max(twin_versions.c.version)).where(twin_versions.c.tenant == tenant)
        if conn is not None:
            return int(conn.execute(q).scalar() or 0)
        with self._engine.connect() as c:
            return int(c.execute(q).scalar() or 0)

    def version_at(self, tenant: str, at_us: int) -> int:
        """The version in force at a time; before the first version, the first (historian data often predates
        the model of the plant it came from)."""
        with self._engine.connect() as c:
            v = c.execute(
                select(func.max(twin_versions.c.version)).where(
                    twin_versions.c.tenant == tenant, twin_versions.c.at_us <= at_us
                )
            ).scalar()
            if v is None:
                v = c.execute(
                    select(func.min(twin_versions.c.version)).where(twin_versions.c.tenant == tenant)
                ).scalar()
        return int(v or 0)

    def versions(self, tenant: str, limit: int = 100) -> list[Version]:
        """The newest changes first."""
        with self._engine.connect() as c:
            rows = c.execute(
                select(twin_versions)
                .where(twin_versions.c.tenant == tenant)
                .order_by(twin_versions.c.version.desc())
                .limit(limit)
            ).all()
        return [Version(r.version, r.at_us, r.actor, r.summary) for r in rows]

    def read(self, tenant: str, version: int | None = None) -> tuple[Plant, int]:
        """The model at a version (the current one by default)."""
        with self._engine.connect() as c:
            v = self.current_version(tenant, c) if version is None else version

            def live(t: Any) -> Any:
                return and_(t.c.tenant == tenant, t.c.v_from <= v, or_(t.c.v_to.is_(None), t.c.v_to > v))

            type_rows = c.execute(select(twin_types.c.name, twin_types.c.definition).where(live(twin_types))).all()
            asset_rows = c.execute(select(twin_assets.c.record).where(live(twin_assets))).all()
            rel_rows = c.execute(
                select(twin_relations.c.source, twin_relations.c.kind, twin_relations.c.target).where(
                    live(twin_relations)
                )
            ).all()
        types, _ = resolve_types({r.name: r.definition for r in type_rows}, source="stored types")
        records = sorted((r.record for r in asset_rows), key=lambda rec: (rec["path"].count("/"), rec.get("_order", 0)))
        assets = {rec["path"]: asset_from_record(rec) for rec in records}
        relations = [Relation(r.source, r.kind, r.target) for r in rel_rows]
        return Plant(types, assets, relations), v

    def commit(self, tenant: str, old: Plant, new: Plant, *, actor: str | None, summary: str) -> int:
        """Store the difference between two models as a new version; returns its number."""
        with self._engine.begin() as c:
            v = self.current_version(tenant, c) + 1
            c.execute(
                insert(twin_versions).values(
                    tenant=tenant, version=v, at_us=time.time_ns() // 1000, actor=actor, summary=summary
                )
            )
            old_types = {n: t.source for n, t in old.types.items() if n in _declared(old)}
            new_types = {n: t.source for n, t in new.types.items() if n in _declared(new)}
            self._diff(
                c,
                twin_types,
                tenant,
                v,
                "name",
                {n: plain(d) for n, d in old_types.items()},
                {n: plain(d) for n, d in new_types.items()},
                lambda n, d: {"name": n, "definition": d},
            )
            old_assets = {p: _stored(a, i) for i, (p, a) in enumerate(old.assets.items())}
            new_assets = {p: _stored(a, i) for i, (p, a) in enumerate(new.assets.items())}
            self._diff(
                c, twin_assets, tenant, v, "path", old_assets, new_assets, lambda p, rec: {"path": p, "record": rec}
            )
            old_rel = {(r.source, r.kind, r.target): True for r in old.relations}
            new_rel = {(r.source, r.kind, r.target): True for r in new.relations}
            for key in old_rel.keys() - new_rel.keys():
                c.execute(
                    update(twin_relations)
                    .where(
                        twin_relations.c.tenant == tenant,
                        twin_relations.c.v_to.is_(None),
                        twin_relations.c.source == key[0],
                        twin_relations.c.kind == key[1],
                        twin_relations.c.target == key[2],
                    )
                    .values(v_to=v)
                )
            rows = [
                {"tenant": tenant, "source": k[0], "kind": k[1], "target": k[2], "v_from": v}
                for k in new_rel.keys() - old_rel.keys()
            ]
            if rows:
                c.execute(insert(twin_relations), rows)
        return v

    @staticmethod
    def _diff(
        c: Connection, table: Any, tenant: str, v: int, key: str, old: dict[str, Any], new: dict[str, Any], row: Any
    ) -> None:
        gone = [k for k in old if k not in new or _without_order(new[k]) != _without_order(old[k])]
        for i in range(0, len(gone), 500):
            c.execute(
                update(table)
                .where(table.c.tenant == tenant, table.c.v_to.is_(None), table.c[key].in_(gone[i : i + 500]))
                .values(v_to=v)
            )
        rows = [
            {"tenant": tenant, "v_from": v, **row(k, val)}
            for k, val in new.items()
            if k not in old or _without_order(old[k]) != _without_order(val)
        ]
        if rows:
            c.execute(insert(table), rows)


def _declared(plant: Plant) -> set[str]:
    from taehwa.twin.types import BUILTIN_TYPES

    return {n for n in plant.types if n not in BUILTIN_TYPES}


def _stored(asset: Asset, order: int) -> dict[str, Any]:
    """The record the store keeps: the asset's fields and its place among its siblings."""
    return {**asset.record(), "_order": order}


def _without_order(value: Any) -> Any:
    if isinstance(value, dict) and "_order" in value:
        return {k: v for k, v in value.items() if k != "_order"}
    return value
