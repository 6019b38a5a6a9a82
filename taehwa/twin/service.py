"""The twin service: one entry for the API, the CLI and the web UI to read and change a tenant's plant model, search
it, read its live state (now or at a past time) and follow its changes.

Every change is applied to a copy of the model, validated as a whole, stored as a new version, and only then made
current and announced as a `structure` event; a refused change leaves nothing behind.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa
from sqlalchemy import Engine

from taehwa.core.errors import Conflict, InvalidInput, NotFound, ValidationFailed
from taehwa.core.settings import Settings
from taehwa.core.timeutil import from_us, to_us
from taehwa.core.yamlio import load_yaml
from taehwa.historian.store import Historian
from taehwa.tenancy.access import SYSTEM, acting_as, current
from taehwa.tenancy.audit import AuditLog
from taehwa.tenancy.tenants import TenantService
from taehwa.twin.events import EventHub
from taehwa.twin.live import STATES, LiveState, signal_states, worst
from taehwa.twin.model import (
    SEGMENT_RE,
    Asset,
    Plant,
    Relation,
    moved,
    parse_asset_fields,
    parse_document,
    validate,
    with_asset,
)
from taehwa.twin.records import (
    AssetListing,
    AssetState,
    AssetTypeView,
    AssetView,
    PlantDocument,
    SearchResult,
    SignalCounts,
    StateNode,
)
from taehwa.twin.store import TwinStore, Version
from taehwa.twin.targets import Target
from taehwa.twin.types import Problems, Where, resolve_types

log = logging.getLogger(__name__)


@dataclass
class _Index:
    """What search needs, rebuilt on each structural change: sorted paths and the paths of each type."""

    paths: list[str]
    by_type: dict[str, list[str]]  # a type name → assets of that type or of a type extending it


def _index(plant: Plant) -> _Index:
    by_type: dict[str, list[str]] = {}
    for path, asset in plant.assets.items():
        t = plant.types.get(asset.type)
        for name in t.ancestry if t else (asset.type,):
            by_type.setdefault(name, []).append(path)
    return _Index(sorted(plant.assets), {k: sorted(v) for k, v in by_type.items()})


@dataclass(frozen=True)
class LoadSummary:
    """What loading a whole plant document did: the version now current, what the model holds and what changed."""

    version: int
    assets: int
    types: int
    added: int
    changed: int
    removed: int
    relations: int

    def to_dict(self) -> dict[str, int]:
        """The summary as the API and the CLI's JSON give it (the fields, in this order)."""
        return asdict(self)


class TwinService:
    """Plant models per tenant, their live state and their change events."""

    def __init__(
        self,
        settings: Settings,
        historian: Historian,
        *,
        engine: Engine,
        tenants: TenantService,
        audit: AuditLog,
        hub: EventHub | None = None,
        checks: Sequence[Callable[[Plant], Sequence[tuple[Where, str]]]] = (),
    ) -> None:
        """Each collaborator named: the historian (points, tags, the state at a past time), the metadata database
        the model's versions are kept in, tenancy and audit; `checks`: more checks every new model must pass
        besides `validate` (e.g. the analytics expressions)."""
        self.settings = settings
        self.checks = tuple(checks)
        self.historian = historian
        self.tenants = tenants
        self.audit = audit
        self.store = TwinStore(engine)
        self.hub = hub or EventHub(settings.event_buffer)
        self.live = LiveState(settings.stale_after_intervals)
        self._plants: dict[str, Plant] = {}
        self._indexes: dict[str, _Index] = {}
        self._lock = threading.RLock()
        historian.add_listener(self._on_points)
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # -- background: staleness ------------------------------------------------------------------------------
    def start(self, every_s: float = 1.0) -> None:
        """Check staleness every second in a background thread (the server calls this)."""
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick_loop, args=(every_s,), name="twin-staleness", daemon=True)
            self._ticker.start()

    def _tick_loop(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                self.tick()
            except Exception:
                log.exception("twin staleness check failed")

    def tick(self, now_us: int | None = None) -> None:
        """Mark stale signals and announce the state changes."""
        self.live.check_stale(now_us or time.time_ns() // 1000, self.hub.publish)

    def preload(self) -> None:
        """Load every tenant's model, so live state follows their points from the start."""
        with acting_as(SYSTEM):
            for tenant in self.tenants.list():
                self.plant(tenant.id)

    def close(self) -> None:
        """Stop the background thread."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)

    # -- the model --------------------------------------------------------------------------------------------
    def _on_points(self, tenant: str, points: pa.Table) -> None:
        if tenant not in self._plants:
            return
        self.live.apply(tenant, points, self.hub.publish)

    def plant(self, tenant: str) -> Plant:
        """The current model (empty when none has been loaded)."""
        self.tenants.require(tenant)
        with self._lock:
            plant = self._plants.get(tenant)
            if plant is None:
                plant, _ = self.store.read(tenant)
                self._install(tenant, plant)
            return plant

    def _install(self, tenant: str, plant: Plant) -> None:
        known = self.historian.catalog.ids(tenant)
        bound = [tag for a in plant.assets.values() for tag in plant.signal_tags(a).values() if tag in known]
        latest = self.historian.latest(tenant, bound) if bound else None
        self._plants[tenant] = plant
        self._indexes[tenant] = _index(plant)
        self.live.set_plant(tenant, plant, latest)

    def _writable(self, tenant: str) -> Plant:
        """The current model, after checking the caller may change it."""
        self.tenants.require(tenant, "write")
        return self.plant(tenant)

    def _commit(
        self, tenant: str, new: Plant, *, actor: str | None, summary: str, action: str, paths: list[str]
    ) -> int:
        self.tenants.require(tenant, "write")
        actor = actor or current().user
        problems = validate(new)
        for check in self.checks:
            problems += check(new)
        if problems:
            raise ValidationFailed(problems)
        with self._lock:
            old = self.plant(tenant)
            version = self.store.commit(tenant, old, new, actor=actor, summary=summary)
            self._install(tenant, new)
        touched = paths[:50]
        self.audit.append(
            f"twin.{action}",
            tenant=tenant,
            target=summary,
            before={p: old.assets[p].record() for p in touched if p in old.assets} or None,
            after={"version": version, "assets": {p: new.assets[p].record() for p in touched if p in new.assets}},
        )
        self.hub.publish(
            tenant,
            [("structure", tuple(paths), {"action": action, "paths": paths, "version": version, "summary": summary})],
        )
        return version

    def load(
        self, tenant: str, text: str | bytes, *, source: str = "plant.yaml", actor: str | None = None
    ) -> LoadSummary:
        """Replace the tenant's model with a whole plant file; validated as a whole, all or nothing."""
        self.tenants.require(tenant, "write")
        new = parse_document(load_yaml(text, source=source), source=source)
        with self._lock:
            old = self.plant(tenant)
            added = [p for p in new.assets if p not in old.assets]
            removed = [p for p in old.assets if p not in new.assets]
            changed = [p for p in new.assets if p in old.assets and new.assets[p].record() != old.assets[p].record()]
            if (
                not (added or removed or changed)
                and new.relations == old.relations
                and new.document()["types"] == old.document()["types"]
                and list(new.assets) == list(old.assets)
                and old.assets
            ):
                version = self.store.current_version(tenant)  # nothing to change: no new version
                return LoadSummary(version, len(new.assets), len(new.types), 0, 0, 0, len(new.relations))
            version = self._commit(
                tenant,
                new,
                actor=actor,
                action="loaded",
                paths=[],
                summary=f"loaded {source}: {len(added)} added, {len(changed)} changed, {len(removed)} removed",
            )
        return LoadSummary(
            version, len(new.assets), len(new.types), len(added), len(changed), len(removed), len(new.relations)
        )

    def export(self, tenant: str, at: Any = None) -> PlantDocument:
        """The model as a plant document (now, or as it stood at a past time)."""
        return self._plant_at(tenant, at).document()

    def _plant_at(self, tenant: str, at: Any) -> Plant:
        if at is None:
            return self.plant(tenant)
        self.tenants.require(tenant)
        version = self.store.version_at(tenant, to_us(at))
        plant, _ = self.store.read(tenant, version)
        return plant

    def versions(self, tenant: str, limit: int = 100) -> list[Version]:
        """The model's change history, newest first."""
        self.tenants.require(tenant)
        return self.store.versions(tenant, limit)

    def types(self, tenant: str) -> list[AssetTypeView]:
        """Every asset type with its inherited members merged in."""
        plant = self.plant(tenant)
        out: list[AssetTypeView] = []
        for t in plant.types.values():
            out.append(
                {
                    "name": t.name,
                    "extends": t.extends,
                    "level": t.level,
                    "description": t.description,
                    "ancestry": list(t.ancestry),
                    "children": list(t.children) if t.children is not None else None,
                    "attributes": {k: a.to_dict() for k, a in t.attributes.items()},
                    "sensors": {k: s.to_dict() for k, s in t.signals.items() if not s.derived},
                    "derived": {k: s.to_dict() for k, s in t.signals.items() if s.derived},
                }
            )
        return out

    def put_type(self, tenant: str, name: str, definition: dict[str, Any], *, actor: str | None = None) -> int:
        """Add or replace one asset type; every asset of it (and of types extending it) is re-validated."""
        plant = self._writable(tenant)
        declared = {
            n: t.source for n, t in plant.types.items() if n not in ("Site", "Area", "Line", "Equipment", "Component")
        }
        declared[name] = definition
        types, problems = resolve_types(declared, source=f"type {name}")
        if problems:
            raise ValidationFailed(problems)
        new = Plant(types, dict(plant.assets), list(plant.relations))
        return self._commit(tenant, new, actor=actor, action="type", paths=[], summary=f"type {name} set")

    # -- assets -------------------------------------------------------------------------------------------------
    def _require(self, plant: Plant, path: str) -> Asset:
        asset = plant.assets.get(path)
        if asset is None:
            raise NotFound(f"no asset {path!r}", where="path")
        return asset

    def get(self, tenant: str, path: str, at: Any = None) -> AssetView:
        """One asset with its children's paths, relations and (for now) live state."""
        plant = self._plant_at(tenant, at)
        asset = self._require(plant, path)
        live = self.live.get(tenant) if at is None else None
        out: AssetView = {
            **asset.record(),
            "children": [c.path for c in plant.children(path)],
            "relations": [r.record() for r in plant.relations if path in (r.source, r.target)],
            "signals": plant.signal_tags(asset),
            "live": live.asset_state(path) if live else None,
        }
        if at is not None:
            del out["live"]  # a past time has no live state
        return out

    def children(self, tenant: str, path: str | None) -> list[AssetListing]:
        """Direct children of an asset (the sites for None), with their rolled-up state."""
        plant = self.plant(tenant)
        if path is not None:
            self._require(plant, path)
        live = self.live.get(tenant)
        return [
            {**a.record(), "state": live.rolled.get(a.path, "unknown") if live else "unknown"}
            for a in plant.children(path)
        ]

    def create(self, tenant: str, body: dict[str, Any], *, parent: str | None, actor: str | None = None) -> AssetView:
        """Add one asset under a parent (a site when there is none)."""
        plant = self._writable(tenant)
        seg = body.get("id")
        if not isinstance(seg, str) or not SEGMENT_RE.match(seg):
            raise InvalidInput(f"asset id {seg!r} must be 1–63 letters, digits, '_', '.' or '-'", where="id")
        if parent is not None:
            self._require(plant, parent)
        path = f"{parent}/{seg}" if parent else seg
        if path in plant.assets:
            raise Conflict(f"asset {path!r} already exists", where="id")
        if "children" in body:
            raise InvalidInput("create children one by one, or load a plant file", where="children")
        return self._put_asset(tenant, plant, path, body, actor=actor, action="created", summary=f"created {path}")

    def update(self, tenant: str, path: str, patch: dict[str, Any], *, actor: str | None = None) -> AssetView:
        """Change an asset's fields (type, name, description, attributes, tags, limits); others stay."""
        plant = self._writable(tenant)
        current = self._require(plant, path)
        for key in ("id", "path", "children", "parent"):
            if key in patch:
                raise InvalidInput(f"{key} cannot be patched; use move", where=key)
        merged = {**current.record(), **patch}
        merged.pop("path", None)
        merged.pop("parent", None)
        return self._put_asset(
            tenant,
            plant,
            path,
            merged,
            actor=actor,
            action="updated",
            summary=f"updated {path}: {', '.join(sorted(patch))}",
        )

    def _put_asset(
        self,
        tenant: str,
        plant: Plant,
        path: str,
        fields: dict[str, Any],
        *,
        actor: str | None,
        action: str,
        summary: str,
    ) -> AssetView:
        """Parse an asset's fields, validate the model with it in place, commit, and answer the stored asset."""
        problems: Problems = []
        asset = parse_asset_fields(fields, path, "body", problems)
        if problems:
            raise ValidationFailed(problems)
        self._commit(tenant, with_asset(plant, asset), actor=actor, action=action, paths=[path], summary=summary)
        return self.get(tenant, path)

    def delete(self, tenant: str, path: str, *, recursive: bool = False, actor: str | None = None) -> int:
        """Remove an asset (and, with recursive, everything under it); relations to them go too."""
        plant = self._writable(tenant)
        self._require(plant, path)
        doomed = {a.path for a in plant.subtree(path)}
        if len(doomed) > 1 and not recursive:
            raise Conflict(
                f"asset {path!r} has {len(doomed) - 1} assets under it; delete them too with recursive",
                where="recursive",
            )
        assets = {p: a for p, a in plant.assets.items() if p not in doomed}
        relations = [r for r in plant.relations if r.source not in doomed and r.target not in doomed]
        self._commit(
            tenant,
            Plant(plant.types, assets, relations),
            actor=actor,
            action="deleted",
            paths=sorted(doomed),
            summary=f"deleted {path}" + (f" and {len(doomed) - 1} under it" if len(doomed) > 1 else ""),
        )
        return len(doomed)

    def move(
        self, tenant: str, path: str, new_parent: str | None, *, new_id: str | None = None, actor: str | None = None
    ) -> AssetView:
        """Move a subtree under another parent (or rename it); its tags stay bound."""
        plant = self._writable(tenant)
        self._require(plant, path)
        if new_parent is not None:
            self._require(plant, new_parent)
            if new_parent == path or new_parent.startswith(path + "/"):
                raise InvalidInput(f"cannot move {path!r} under itself", where="parent")
        if new_id is not None and not SEGMENT_RE.match(new_id):
            raise InvalidInput(f"asset id {new_id!r} must be 1–63 letters, digits, '_', '.' or '-'", where="id")
        new, renames = moved(plant, path, new_parent, new_id)
        target = renames[path]
        if target != path and target in plant.assets:
            raise Conflict(f"asset {target!r} already exists", where="parent")
        self._commit(
            tenant,
            new,
            actor=actor,
            action="moved",
            paths=sorted({*renames, *renames.values()}),
            summary=f"moved {path} to {target}",
        )
        return self.get(tenant, target)

    def relate(
        self, tenant: str, source: str, kind: str, target: str, *, remove: bool = False, actor: str | None = None
    ) -> int:
        """Add (or remove) a relation such as `feeds` or `backs_up`."""
        plant = self._writable(tenant)
        rel = Relation(source, kind, target)
        existing = [r for r in plant.relations if (r.source, r.kind, r.target) == (source, kind, target)]
        if remove:
            if not existing:
                raise NotFound(f"no relation {source!r} {kind} {target!r}", where="relation")
            relations = [r for r in plant.relations if r not in existing]
        else:
            if existing:
                raise Conflict(f"relation {source!r} {kind} {target!r} exists", where="relation")
            relations = [*plant.relations, rel]
        return self._commit(
            tenant,
            Plant(plant.types, dict(plant.assets), relations),
            actor=actor,
            action="related",
            paths=[source, target],
            summary=f"{'removed' if remove else 'added'} {source} {kind} {target}",
        )

    # -- search and state ---------------------------------------------------------------------------------------
    def search(
        self,
        tenant: str,
        *,
        type: str | None = None,
        under: str | None = None,
        state: str | None = None,
        attributes: dict[str, str] | None = None,
        text: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> SearchResult:
        """Assets matching every filter given: type (or a subtype), path prefix, rolled-up state, attribute values
        (compared as text), and a word in the path or name."""
        if state is not None and state not in STATES:
            raise InvalidInput(f"state must be one of {', '.join(STATES)}", where="state")
        if limit < 1 or limit > 10_000 or offset < 0:
            raise InvalidInput("limit must be 1–10000 and offset ≥ 0", where="limit")
        plant = self.plant(tenant)
        with self._lock:
            index = self._indexes[tenant]
        if type is not None and type not in plant.types:
            raise NotFound(f"unknown asset type {type!r}", where="type")
        candidates = index.by_type.get(type, []) if type is not None else index.paths
        if under is not None:
            under = under.strip("/")
            lo = bisect.bisect_left(candidates, under)
            hi = bisect.bisect_left(candidates, under + "0")  # '0' follows '/' in ASCII: the end of the subtree
            candidates = [p for p in candidates[lo:hi] if p == under or p.startswith(under + "/")]
        live = self.live.get(tenant)
        if state is not None:
            rolled = live.rolled if live else {}
            candidates = [p for p in candidates if rolled.get(p, "unknown") == state]
        if attributes:

            def fits(p: str) -> bool:
                asset = plant.assets[p]
                t = plant.types.get(asset.type)
                for k, v in attributes.items():
                    value = asset.attributes.get(k)
                    if value is None and t is not None and k in t.attributes:
                        value = t.attributes[k].default  # an attribute left out has its type's default
                    if value is None or str(value) != v:
                        return False
                return True

            candidates = [p for p in candidates if fits(p)]
        if text:
            needle = text.lower()
            candidates = [p for p in candidates if needle in p.lower() or needle in plant.assets[p].name.lower()]
        page = candidates[offset : offset + limit]
        items: list[AssetListing] = [
            {**plant.assets[p].record(), "state": live.rolled.get(p, "unknown") if live else "unknown"} for p in page
        ]
        return {"total": len(candidates), "items": items}

    def _live_states(self, tenant: str) -> tuple[Any, dict[str, tuple[str, str]]]:
        """The plant, and each asset's (rolled-up, own) live state, read under one lock."""
        plant = self.plant(tenant)
        live = self.live.get(tenant)
        if live is None:
            return plant, {p: ("unknown", "unknown") for p in plant.assets}
        with self.live.lock:
            return plant, {p: (live.rolled.get(p, "unknown"), live.own.get(p, "unknown")) for p in plant.assets}

    def state_tree(self, tenant: str) -> list[StateNode]:
        """The asset hierarchy from the sites down, each asset with its name, type and rolled-up live state."""
        plant, states = self._live_states(tenant)
        kids: dict[str | None, list[Any]] = {}
        for a in plant.assets.values():
            kids.setdefault(a.parent, []).append(a)

        def node(a: Asset) -> StateNode:
            return {
                "path": a.path,
                "name": a.name,
                "type": a.type,
                "state": states[a.path][0],
                "children": [node(c) for c in kids.get(a.path, [])],
            }

        return [node(a) for a in kids.get(None, [])]

    def signal_counts(self, tenant: str) -> SignalCounts:
        """The tenant's measured signals by the state of their newest point (good and fresh, stale, bad,
        uncertain, none yet): the control tower's data-quality counts."""
        live = self.live.get(tenant)
        if live is None:
            n = sum(1 for a in self.plant(tenant).assets.values() for _ in a.tags)
            return {"measured": n, "good": 0, "stale": 0, "bad": 0, "uncertain": 0, "no_data": n, "good_pct": None}
        with self.live.lock:
            return live.signal_counts()

    def state_counts(self, tenant: str) -> dict[str, int]:
        """How many assets are in each state of their own (normal, warning, alarm, stale, unknown)."""
        _, states = self._live_states(tenant)
        counts = dict.fromkeys(STATES, 0)
        for _, own in states.values():
            counts[own] = counts.get(own, 0) + 1
        return counts

    def targets(
        self, tenant: str, *, asset: str | None = None, asset_type: str | None = None, under: str | None = None
    ) -> list[str]:
        """Paths of every asset a deployment's or rule's target takes in now (exactly one of asset, asset_type or
        under), sorted by path, with no page size: all of them. A name the plant does not hold is refused
        (NotFound, where `target.<field>`)."""
        return Target(asset=asset, asset_type=asset_type, under=under).paths(self.plant(tenant))

    def assets_with_tags(self, tenant: str, tags: list[str]) -> list[str]:
        """Paths of the assets with a signal bound to any of these tags."""
        plant = self.plant(tenant)
        wanted = set(tags)
        return sorted(a.path for a in plant.assets.values() if wanted & set(plant.signal_tags(a).values()))

    def state(self, tenant: str, path: str, at: Any = None) -> AssetState:
        """An asset's state: live now, or rebuilt from the historian at a past time (rolled up over its subtree)."""
        if at is None:
            plant = self.plant(tenant)
            self._require(plant, path)
            live = self.live.get(tenant)
            if live is None:
                return {"path": path, "state": "unknown", "own_state": "unknown", "signals": {}}
            with self.live.lock:
                return live.asset_state(path)
        at_us = to_us(at)
        plant = self._plant_at(tenant, at)
        self._require(plant, path)
        subtree = plant.subtree(path)
        known = self.historian.catalog.ids(tenant)
        tags = [tag for a in subtree for tag in plant.signal_tags(a).values() if tag in known]
        rows: dict[str, tuple[int, float, int]] = {}
        if tags:
            table = self.historian.value_at(tenant, tags, from_us(at_us))
            for tag, t, v, q in zip(
                table.column("tag").to_pylist(),
                table.column("time").cast(pa.int64()).to_pylist(),
                table.column("value").to_pylist(),
                table.column("quality").to_pylist(),
                strict=True,
            ):
                rows[tag] = (t, v, q)
        states: dict[str, AssetState] = {}
        for asset in reversed(subtree):  # children after parents in the subtree list: fold bottom-up
            signals = signal_states(plant, asset)
            for st in signals.values():
                if st.tag in rows:
                    st.time_us, st.value, st.quality = rows[st.tag]
                    st.limit = st.limits.state(st.value) if st.value is not None else "unknown"
                    if st.interval_s is not None:
                        st.stale = at_us - st.time_us > self.settings.stale_after_intervals * st.interval_s * 1e6
            own = worst([s.state for s in signals.values()])
            kids = [states[c.path]["state"] for c in plant.children(asset.path) if c.path in states]
            states[asset.path] = {
                "path": asset.path,
                "state": worst([own, *kids]),
                "own_state": own,
                "signals": {k: s.to_dict() for k, s in signals.items()},
            }
        out = states[path]
        out["at"] = from_us(at_us).isoformat()
        return out


__all__ = ["TwinService"]
