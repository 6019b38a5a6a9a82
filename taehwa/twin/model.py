"""The plant model: assets in a hierarchy (site → area → line → equipment → component), each of a type, with
attribute values, sensor roles bound to historian tags, and relationships beside the hierarchy.

A model is always validated as a whole (`validate`): a plant file, or a model with one API change applied, either
passes every check or is refused with every problem listed and nothing applied.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from taehwa.core.errors import InvalidInput, Location, ValidationFailed
from taehwa.core.names import check_tag
from taehwa.core.yamlio import line_of
from taehwa.twin.records import AssetRecord, PlantDocument, RelationRecord
from taehwa.twin.types import LEVELS, LIMIT_KEYS, AssetType, Limits, Problems, Where, _parse_limits, resolve_types

SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
RELATION_KINDS = {
    "feeds": True,  # kind: must the relation be free of cycles?
    "backs_up": True,
    "powers": True,
    "controls": False,
    "recycles_to": False,  # recycle streams close loops by design
}


@dataclass(frozen=True)
class Asset:
    """One asset. Its path (ids joined by '/') is its identity within a tenant."""

    path: str
    type: str
    name: str
    attributes: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)  # signal name → historian tag
    limits: dict[str, Limits] = field(default_factory=dict)  # per-asset overrides of the type's limits
    description: str | None = None
    where: Where | None = field(default=None, compare=False)  # where it was declared (file, line), for errors

    @property
    def parent(self) -> str | None:
        """The parent's path (None for a site)."""
        return self.path.rsplit("/", 1)[0] if "/" in self.path else None

    @property
    def id(self) -> str:
        """The last segment of the path."""
        return self.path.rsplit("/", 1)[-1]

    def record(self) -> AssetRecord:
        """A flat, JSON-ready form (what the API returns and the store keeps)."""
        out: AssetRecord = {
            "path": self.path,
            "parent": self.parent,
            "id": self.id,
            "type": self.type,
            "name": self.name,
            "attributes": _json_values(self.attributes),
            "tags": dict(self.tags),
        }
        if self.limits:
            out["limits"] = {k: v.to_dict() for k, v in self.limits.items()}
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True)
class Relation:
    """A relationship beside the hierarchy, e.g. pump `feeds` column, standby pump `backs_up` duty pump."""

    source: str
    kind: str
    target: str
    where: Where | None = field(default=None, compare=False)

    def record(self) -> RelationRecord:
        """The YAML and JSON form."""
        return {"from": self.source, "kind": self.kind, "to": self.target}


@dataclass
class Plant:
    """A tenant's whole twin: resolved types, assets by path (parents before children), relations."""

    types: dict[str, AssetType]
    assets: dict[str, Asset]
    relations: list[Relation]

    def children(self, path: str | None) -> list[Asset]:
        """Direct children of an asset (the sites for None)."""
        return [a for a in self.assets.values() if a.parent == path]

    def subtree(self, path: str) -> list[Asset]:
        """An asset and everything under it."""
        prefix = path + "/"
        return [a for p, a in self.assets.items() if p == path or p.startswith(prefix)]

    def signal_tags(self, asset: Asset) -> dict[str, str]:
        """Every signal of an asset bound to a tag: explicit bindings, and derived signals at `<path>/<signal>`."""
        t = self.types.get(asset.type)
        out = dict(asset.tags)
        if t is not None:
            for name, sig in t.signals.items():
                if sig.derived and name not in out:
                    out[name] = f"{asset.path}/{name}"
        return out

    def limits_of(self, asset: Asset, signal: str) -> Limits:
        """The limits in force for one signal of an asset: the type's, overridden by the asset's own."""
        t = self.types.get(asset.type)
        base = t.signals[signal].limits if t is not None and signal in t.signals else Limits()
        return base.merged(asset.limits[signal]) if signal in asset.limits else base

    def document(self) -> PlantDocument:
        """The plant as a YAML-ready document (types, nested assets, relations), for export."""
        from taehwa.twin.types import export_types

        def node(a: Asset) -> dict[str, Any]:
            out: dict[str, Any] = {"id": a.id, "type": a.type}
            if a.name != a.id:
                out["name"] = a.name
            if a.description:
                out["description"] = a.description
            if a.attributes:
                out["attributes"] = _json_values(a.attributes)
            if a.tags:
                out["tags"] = dict(a.tags)
            if a.limits:
                out["limits"] = {k: v.to_dict() for k, v in a.limits.items()}
            kids = kids_of.get(a.path, [])
            if kids:
                out["children"] = [node(k) for k in kids]
            return out

        kids_of: dict[str | None, list[Asset]] = {}
        for a in self.assets.values():
            kids_of.setdefault(a.parent, []).append(a)
        doc: PlantDocument = {"types": export_types(self.types), "assets": [node(a) for a in kids_of.get(None, [])]}
        if self.relations:
            doc["relations"] = [r.record() for r in self.relations]
        return doc


def _json_values(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in values.items()}


def _where(source: str, node: Any, key: str | None = None) -> Location:
    """The file and line a node (or its key) was read from; the file alone for a value built in code (JSON)."""
    return Location(source or None, line=line_of(node, key) or None)


def parse_asset_fields(raw: dict[str, Any], path: str, where: Where, problems: Problems) -> Asset:
    """The fields of one asset from a mapping (YAML node or API body); children are handled by the caller."""
    known = {"id", "type", "name", "description", "attributes", "tags", "limits", "children"}
    for key in raw:
        if key not in known:
            problems.append((where, f"asset {path!r}: unknown key {key!r}; use {', '.join(sorted(known))}"))
    attributes = raw.get("attributes") or {}
    if not isinstance(attributes, dict):
        problems.append((where, f"asset {path!r}: attributes must be a mapping"))
        attributes = {}
    tags = raw.get("tags") or {}
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        problems.append((where, f"asset {path!r}: tags must map signal names to tag names"))
        tags = {}
    limits: dict[str, Limits] = {}
    raw_limits = raw.get("limits") or {}
    if not isinstance(raw_limits, dict):
        problems.append((where, f"asset {path!r}: limits must map signal names to limits"))
    else:
        for sig, lim in raw_limits.items():
            limits[str(sig)] = _parse_limits(lim, where, problems)
    type_name = raw.get("type")
    if not isinstance(type_name, str):
        problems.append((where, f"asset {path!r} needs a type"))
        type_name = ""
    name = raw.get("name")
    description = raw.get("description")
    return Asset(
        path,
        type_name,
        str(name) if name is not None else path.rsplit("/", 1)[-1],
        {str(k): v for k, v in attributes.items()},
        {str(k): str(v) for k, v in tags.items()},
        limits,
        str(description) if description is not None else None,
        where,
    )


def parse_document(doc: Any, *, source: str, base_types: dict[str, Any] | None = None) -> Plant:
    """A plant from a YAML document with `types`, `assets` (nested by `children`) and `relations`; validated."""
    problems: Problems = []
    if not isinstance(doc, dict):
        raise ValidationFailed([(source, "a plant file is a mapping with types, assets and relations")])
    for key in doc:
        if key not in ("types", "assets", "relations"):
            problems.append((_where(source, doc, key), f"unknown section {key!r}; use types, assets, relations"))
    declared = doc.get("types") or {}
    if not isinstance(declared, dict):
        problems.append((_where(source, doc, "types"), "types must be a mapping of type name to definition"))
        declared = {}
    types, type_problems = resolve_types({**(base_types or {}), **declared}, source=source)
    problems += type_problems
    assets: dict[str, Asset] = {}

    def walk(nodes: Any, parent: str | None, where_list: Where) -> None:
        if not isinstance(nodes, list):
            problems.append((where_list, "assets and children must be lists"))
            return
        for raw in nodes:
            where = _where(source, raw)
            if not isinstance(raw, dict):
                problems.append((where_list, f"an asset must be a mapping with id and type, got {raw!r}"))
                continue
            seg = raw.get("id")
            if not isinstance(seg, str) or not SEGMENT_RE.match(seg):
                problems.append((where, f"asset id {seg!r} must be 1–63 letters, digits, '_', '.' or '-'"))
                continue
            path = f"{parent}/{seg}" if parent else seg
            if path in assets:
                problems.append((where, f"asset {path!r} is declared twice (also at {assets[path].where})"))
                continue
            assets[path] = parse_asset_fields(raw, path, where, problems)
            if "children" in raw:
                walk(raw["children"], path, _where(source, raw, "children"))

    walk(doc.get("assets") or [], None, _where(source, doc, "assets"))
    relations: list[Relation] = []
    raw_rel = doc.get("relations") or []
    if not isinstance(raw_rel, list):
        problems.append((_where(source, doc, "relations"), "relations must be a list of {from, kind, to}"))
        raw_rel = []
    for r in raw_rel:
        where = _where(source, r)
        if not isinstance(r, dict) or not all(isinstance(r.get(k), str) for k in ("from", "kind", "to")):
            problems.append((where, "a relation needs from, kind and to, each a text"))
            continue
        relations.append(Relation(r["from"], r["kind"], r["to"], where))
    plant = Plant(types, assets, relations)
    problems += validate(plant)
    if problems:
        raise ValidationFailed(problems)
    return plant


def validate(plant: Plant) -> Problems:
    """Every problem of a model as a whole: types, levels, allowed children, attributes, bindings, relations."""
    problems: Problems = []
    bound: dict[str, tuple[str, str, Where | None]] = {}  # tag → (asset, signal, where)
    for asset in plant.assets.values():
        where = asset.where or f"asset {asset.path}"
        t = plant.types.get(asset.type)
        if t is None:
            problems.append((where, f"asset {asset.path!r}: unknown type {asset.type!r}"))
            continue
        parent = plant.assets.get(asset.parent) if asset.parent else None
        if asset.parent and parent is None:
            problems.append((where, f"asset {asset.path!r}: parent {asset.parent!r} does not exist"))
        elif parent is not None and (pt := plant.types.get(parent.type)) is not None:
            if LEVELS.index(t.level) <= LEVELS.index(pt.level):
                problems.append(
                    (
                        where,
                        f"asset {asset.path!r} ({t.name}, a {t.level}) cannot be under "
                        f"{parent.path!r} ({pt.name}, a {pt.level}); levels run "
                        f"{' → '.join(LEVELS)}",
                    )
                )
            elif pt.children is not None and not any(t.is_a(c) for c in pt.children):
                problems.append(
                    (
                        where,
                        f"asset {asset.path!r}: a {pt.name} may only contain "
                        f"{', '.join(pt.children) or 'nothing'}, not {t.name}",
                    )
                )
        for name, attr in t.attributes.items():
            if name in asset.attributes:
                if (msg := attr.check(asset.attributes[name])) is not None:
                    problems.append((where, f"asset {asset.path!r}: {msg}"))
            elif attr.required and attr.default is None:
                problems.append((where, f"asset {asset.path!r}: required attribute {name!r} of {t.name} is missing"))
        for name in asset.attributes:
            if name not in t.attributes:
                problems.append((where, f"asset {asset.path!r}: {t.name} has no attribute {name!r}"))
        for bound_name in list(asset.tags) + list(asset.limits):
            if bound_name not in t.signals:
                problems.append(
                    (
                        where,
                        f"asset {asset.path!r}: {t.name} has no signal {bound_name!r}; it has "
                        f"{', '.join(t.signals) or 'none'}",
                    )
                )
        for sig_name, spec in t.signals.items():
            if spec.required and not spec.derived and sig_name not in asset.tags:
                problems.append((where, f"asset {asset.path!r}: required sensor {sig_name!r} is not bound to a tag"))
        for sig, tag in plant.signal_tags(asset).items():
            try:
                check_tag(tag)
            except InvalidInput as exc:
                problems.append((where, f"asset {asset.path!r}, signal {sig!r}: {exc.message}"))
                continue
            if tag in bound:
                other, other_sig, other_where = bound[tag]
                problems.append(
                    (
                        where,
                        f"tag {tag!r} is bound twice: to {asset.path!r} ({sig}) and to {other!r} "
                        f"({other_sig}{f', {other_where}' if other_where else ''})",
                    )
                )
            else:
                bound[tag] = (asset.path, sig, asset.where)
    problems += _validate_relations(plant)
    return problems


def _validate_relations(plant: Plant) -> Problems:
    problems: Problems = []
    edges: dict[str, dict[str, list[Relation]]] = {}
    seen: set[tuple[str, str, str]] = set()
    for r in plant.relations:
        where = r.where or f"relation {r.source} {r.kind} {r.target}"
        if r.kind not in RELATION_KINDS:
            problems.append((where, f"unknown relation kind {r.kind!r}; use {', '.join(RELATION_KINDS)}"))
            continue
        missing = [p for p in (r.source, r.target) if p not in plant.assets]
        if missing:
            problems.append((where, f"relation {r.kind}: no asset {missing[0]!r}"))
            continue
        if r.source == r.target:
            problems.append((where, f"relation {r.kind}: {r.source!r} cannot relate to itself"))
            continue
        key = (r.source, r.kind, r.target)
        if key in seen:
            problems.append((where, f"relation {r.source!r} {r.kind} {r.target!r} is given twice"))
            continue
        seen.add(key)
        edges.setdefault(r.kind, {}).setdefault(r.source, []).append(r)
    for kind, graph in edges.items():
        if RELATION_KINDS[kind] and (cycle := _find_cycle(graph)):
            last = cycle[-1]
            path = " → ".join([r.source for r in cycle] + [last.target])
            problems.append(
                (
                    last.where or f"relation {last.source} {kind} {last.target}",
                    f"relations {kind!r} form a cycle: {path}",
                )
            )
    return problems


def _find_cycle(graph: dict[str, list[Relation]]) -> list[Relation] | None:
    """One cycle of a directed graph, as its edges, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    for start in graph:
        if start in state:
            continue
        state[start] = 1
        stack: list[tuple[str, Iterator[Relation]]] = [(start, iter(graph.get(start, [])))]
        via: list[Relation] = []  # via[k] leads from stack[k] to stack[k + 1]
        while stack:
            node, edges = stack[-1]
            edge = next(edges, None)
            if edge is None:
                state[node] = 2
                stack.pop()
                if via:
                    via.pop()
                continue
            seen = state.get(edge.target)
            if seen == 1:
                at = next(k for k, (n, _) in enumerate(stack) if n == edge.target)
                return [*via[at:], edge]
            if seen is None:
                state[edge.target] = 1
                via.append(edge)
                stack.append((edge.target, iter(graph.get(edge.target, []))))
    return None


def with_asset(plant: Plant, asset: Asset) -> Plant:
    """A copy of the model with one asset added or replaced (parents stay before children)."""
    assets = dict(plant.assets)
    assets[asset.path] = asset
    return Plant(plant.types, assets, list(plant.relations))


def moved(plant: Plant, path: str, new_parent: str | None, new_id: str | None = None) -> tuple[Plant, dict[str, str]]:
    """A copy of the model with a subtree moved under another parent; returns the old → new paths."""
    seg = new_id or path.rsplit("/", 1)[-1]
    new_path = f"{new_parent}/{seg}" if new_parent else seg
    renames: dict[str, str] = {}
    assets: dict[str, Asset] = {}
    prefix = path + "/"
    for p in plant.assets:
        if p == path or p.startswith(prefix):
            renames[p] = new_path + p[len(path) :]
    for p, a in plant.assets.items():
        if p in renames:
            continue
        assets[p] = a
    for p, np_ in renames.items():
        assets[np_] = replace(plant.assets[p], path=np_)
    relations = [
        replace(r, source=renames.get(r.source, r.source), target=renames.get(r.target, r.target))
        for r in plant.relations
    ]
    return Plant(plant.types, _parents_first(assets), relations), renames


def _parents_first(assets: dict[str, Asset]) -> dict[str, Asset]:
    return dict(sorted(assets.items(), key=lambda kv: kv[0].count("/")))


__all__ = [
    "LIMIT_KEYS",
    "RELATION_KINDS",
    "Asset",
    "Plant",
    "Relation",
    "moved",
    "parse_document",
    "validate",
    "with_asset",
]
