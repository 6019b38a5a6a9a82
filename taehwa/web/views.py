"""What the pages show, built from the services' answers: signals with their units and limits, the plant tree with
fleets folded into one tile, the tag browser's tree, model outputs explained, alerts with their history. Pure
shaping: every figure comes from the twin, historian, live and lab services the API and CLI use too."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from taehwa.core.errors import TaehwaError
from taehwa.live.deployments import OUTPUTS
from taehwa.live.records import AlertRecord, DeploymentView
from taehwa.server.platform import Platform
from taehwa.twin.records import StateNode
from taehwa.web.directions import direction

OUTPUT_SIGNALS = {o for outs in OUTPUTS.values() for o in outs}  # what deployed models write on an asset
STATE_ORDER = ("alarm", "warning", "stale", "unknown", "normal")  # worst first
FLEET_MIN = 12  # a parent with at least this many children of one type is shown as a fleet tile
TREE_VALUES = 4  # live values shown beside an asset in the tree


_MADE: dict[tuple[str, str], tuple[tuple[Any, ...], Any]] = {}  # (what, tenant) → (what it was made from, it)


def _made_from(what: str, tenant: str, sources: tuple[Any, ...], make: Any) -> Any:
    """What `make` gives, kept while `sources` stay the same (the catalog's listing version, the plant model)."""
    got = _MADE.get((what, tenant))
    if got is not None and len(got[0]) == len(sources):
        kept = zip(got[0], sources, strict=True)
        if all(a is b or (type(a) is int and a == b) for a, b in kept):  # objects by identity, numbers by value
            return got[1]
    made = make()
    _MADE[(what, tenant)] = (sources, made)
    return made


def _listing(platform: Platform, tenant: str) -> tuple[list[Any], tuple[Any, int]]:
    """The tenant's tags and what they were read as: the catalog (held, so its id is never another's) and the
    version of its listing."""
    tags = platform.historian.tags(tenant, None, 100_000)
    catalog = platform.historian.catalog
    return tags, (catalog, catalog.listing_version(tenant))


def tag_units(platform: Platform, tenant: str) -> dict[str, str]:
    """Each tag's unit from the historian's tag metadata (where one is set)."""
    tags, version = _listing(platform, tenant)
    units: dict[str, str] = _made_from("units", tenant, version, lambda: {t.name: t.unit for t in tags if t.unit})
    return dict(units)


def signal_rows(
    platform: Platform, tenant: str, path: str, units: dict[str, str] | None = None, known: set[str] | None = None
) -> list[dict[str, Any]]:
    """An asset's signals with live value, unit (the type's, else the tag's), limits in force and whether the
    historian holds its tag at all (a model output not yet written has no tag)."""
    plant = platform.twin.plant(tenant)
    asset = plant.assets[path]
    spec = plant.types.get(asset.type)
    state = platform.twin.state(tenant, path)
    units = tag_units(platform, tenant) if units is None else units
    known = set(platform.historian.catalog.ids(tenant, refresh=True)) if known is None else known
    rows = []
    for name, s in state["signals"].items():
        sig = spec.signals.get(name) if spec else None
        limits = plant.limits_of(asset, name).to_dict()
        rows.append(
            {
                "name": name,
                **s,
                "unit": (sig.unit if sig and sig.unit else None) or units.get(s["tag"]),
                "description": sig.description if sig else None,
                "limits": limits,
                "written": s["tag"] in known,
                "output": name in OUTPUT_SIGNALS,
            }
        )
    return rows


def explain_outputs(
    platform: Platform, tenant: str, path: str, rows: list[dict[str, Any]], deployments: list[DeploymentView]
) -> list[dict[str, Any]]:
    """The model outputs on an asset, each with the limit it is judged against (an alert rule on that signal, else
    the signal's alarm limit), where the value stands against it, and which model and version writes it."""
    plant = platform.twin.plant(tenant)
    asset = plant.assets[path]
    t = plant.types.get(asset.type)
    lineage = set(t.ancestry if t else ()) | {asset.type}
    rules = [r.spec for r in platform.live.rules.list(tenant)]
    out = []
    for row in rows:
        if not row["output"]:
            continue
        rule = next(
            (
                r
                for r in rules
                if r.signal == row["name"]
                and r.kind in ("threshold", "score")
                and (r.asset == path or r.asset_type in lineage)
            ),
            None,
        )
        if rule is not None:
            limit, op = (rule.value if rule.value is not None else 1.0), rule.op
        else:
            limit, op = row["limits"].get("high_alarm"), ">"
        model = next(
            (
                d["status"]["model"]
                for d in deployments
                if (d.get("status") or {}).get("model") and row["name"] in (d["status"].get("outputs") or {})
            ),
            None,
        )
        value = row.get("value")
        over = None
        if value is not None and limit is not None:
            over = value > limit if op in (">", ">=") else value < limit
        out.append(
            {
                **row,
                "limit": limit,
                "op": op,
                "rule": rule.name if rule else None,
                "model": model,
                "ratio": (value / limit) if value is not None and limit else None,
                "over": over,
            }
        )
    return out


def _node(n: StateNode, values: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """A tree node with its live values and, for a parent of many like children, a fleet summary."""
    kids = n["children"]
    types = Counter(k["type"] for k in kids)
    fleet = None
    if len(kids) >= FLEET_MIN and types.most_common(1)[0][1] == len(kids):
        counts = Counter(k["state"] for k in kids)
        worst = sorted(
            (k for k in kids if k["state"] in ("alarm", "warning")), key=lambda k: STATE_ORDER.index(k["state"])
        )[:6]
        fleet = {
            "type": kids[0]["type"],
            "size": len(kids),
            "counts": [(s, counts[s]) for s in STATE_ORDER if counts.get(s)],
            "worst": worst,
            "members": [{"path": k["path"], "name": k["name"], "state": k["state"]} for k in kids],
        }
        children: list[dict[str, Any]] = []
    else:
        children = [_node(k, values) for k in kids]
    return {**n, "children": children, "fleet": fleet, "values": values.get(n["path"], [])}


def plant_tree(platform: Platform, tenant: str) -> list[dict[str, Any]]:
    """The state tree with fleets folded and up to four live values (with units) beside each asset."""
    tree = platform.twin.state_tree(tenant)
    plant = platform.twin.plant(tenant)
    units = tag_units(platform, tenant)
    known = set(platform.historian.catalog.ids(tenant, refresh=True))
    in_fleets: set[str] = set()

    def mark(nodes: list[StateNode]) -> None:
        for n in nodes:
            kids = n["children"]
            if len(kids) >= FLEET_MIN and len({k["type"] for k in kids}) == 1:
                in_fleets.update(p.path for k in kids for p in plant.subtree(k["path"]))
            else:
                mark(kids)

    mark(tree)
    values: dict[str, list[dict[str, Any]]] = {}
    for path in plant.assets:
        if path in in_fleets:
            continue
        rows = [r for r in signal_rows(platform, tenant, path, units, known) if r["written"]]
        if rows:
            values[path] = rows[:TREE_VALUES]
    return [_node(n, values) for n in tree]


def tag_tree(platform: Platform, tenant: str) -> dict[str, Any]:
    """The tag browser: tags by asset (the plant's bindings) and every tag by name in a folder tree (made again
    when the catalog's listing or the plant model changes)."""
    tags, version = _listing(platform, tenant)
    plant = platform.twin.plant(tenant)
    tree: dict[str, Any] = _made_from("tree", tenant, (*version, plant), lambda: _tree(tags, plant))
    return tree


def _tree(tags: list[Any], plant: Any) -> dict[str, Any]:
    known = {t.name for t in tags}
    by_asset = []
    for a in sorted(plant.assets.values(), key=lambda a: a.path):
        bound = sorted((s, tag) for s, tag in plant.signal_tags(a).items() if tag in known)
        if bound:
            by_asset.append({"path": a.path, "name": a.name, "signals": bound})
    folders: dict[str, Any] = {}
    for t in tags:
        parts = t.name.split("/")
        here = folders
        for p in parts[:-1]:
            here = here.setdefault(p + "/", {})
        here[parts[-1]] = {"tag": t.name, "unit": t.unit}
    return {"by_asset": by_asset, "by_name": folders, "count": len(tags)}


def alert_details(platform: Platform, tenant: str, rows: list[AlertRecord]) -> list[dict[str, Any]]:
    """Alerts with their history (who did what, when, with which note), the event frames each belongs to and the
    unit of the value."""
    units = tag_units(platform, tenant)
    out = []
    for a in rows:
        try:
            got = platform.live.alerts.get(tenant, a["id"])
            history, events = got["history"], got.get("events", [])
        except TaehwaError:
            history, events = [], []
        chain = a.get("chain") or {}
        rule = chain.get("rule") or {}
        window = chain.get("window") or {}  # the data's own time (a replay's history is not the wall clock)
        first = datetime.fromisoformat(window.get("start") or a["raised_at"])
        last = datetime.fromisoformat(window.get("end") or a.get("resolved_at") or a.get("last_at") or a["raised_at"])
        pad = max(timedelta(minutes=15), (last - first) / 2)
        out.append(
            {
                **a,
                "history": history,
                "events": events,  # the event frames it belongs to
                "unit": units.get(a.get("tag") or ""),
                "rule_doc": rule,
                "model": chain.get("model"),
                "limit": rule.get("value"),
                "op": rule.get("op"),
                "trend_start": _utc(first - pad),
                "trend_end": _utc(last + pad),
            }
        )
    return out


def _utc(d: datetime) -> str:
    """A time as the trends page takes it: UTC with a Z, to the second."""
    d = d.astimezone(UTC) if d.tzinfo else d.replace(tzinfo=UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def bindable_signals(platform: Platform, tenant: str) -> list[dict[str, Any]]:
    """Every asset's sensor signals (its type's and its own bindings) with the tags bound now, for binding a
    connector's items to asset signals (derived signals are a model's, not a connector's)."""
    plant = platform.twin.plant(tenant)
    out = []
    for a in sorted(plant.assets.values(), key=lambda a: a.path):
        spec = plant.types.get(a.type)
        sensors = {n for n, sig in spec.signals.items() if not sig.derived} if spec else set()
        names = sorted(sensors | set(a.tags))
        if names:
            out.append({"path": a.path, "signals": names, "tags": dict(a.tags)})
    return out


def compare_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Two runs' figures side by side: every metric either has, the baseline's, and which is better (by the
    metric's direction; none for counts of data)."""
    names: list[str] = []
    for r in runs:
        names += [m for m in (r.get("metrics") or {}) if m not in names]
    rows = []
    for m in names:
        values = [(r.get("metrics") or {}).get(m) for r in runs]
        way = direction(m, next((v for v in values if v is not None), 0.0))
        better = None
        nums = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if way != "none" and len(nums) == 2 and nums[0] != nums[1]:
            better = 0 if (nums[0] < nums[1]) == (way == "lower") else 1
        base = [((r.get("baseline") or {}).get("metrics") or {}).get(m) for r in runs]
        rows.append({"metric": m, "values": values, "baseline": base, "direction": way, "better": better})
    return rows


def tag_limits(platform: Platform, tenant: str, names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The limits to draw on a trend for each tag an asset's signal is bound to: the signal's warning and alarm
    limits (its type's, or the asset's own) and the threshold rules watching that signal or tag."""
    plant = platform.twin.plant(tenant)
    wanted = set(names)
    rules = [r.spec for r in platform.live.rules.list(tenant) if r.spec.kind in ("threshold", "score")]
    out: dict[str, list[dict[str, Any]]] = {}
    for a in plant.assets.values():
        t = plant.types.get(a.type)
        lineage = set(t.ancestry if t else ()) | {a.type}
        for signal, tag in plant.signal_tags(a).items():
            if tag not in wanted:
                continue
            found = out.setdefault(tag, [])
            for kind, value in plant.limits_of(a, signal).to_dict().items():
                if value is not None and not any(x["value"] == value for x in found):
                    found.append({"kind": kind, "value": value, "source": f"{a.path} · {signal}"})
            for r in rules:
                if (
                    r.value is not None
                    and ((r.signal == signal and (r.asset == a.path or r.asset_type in lineage)) or r.tag == tag)
                    and not any(x["value"] == r.value for x in found)
                ):
                    found.append({"kind": r.severity, "value": r.value, "source": r.name, "op": r.op})
    return {k: v for k, v in out.items() if v}


def bound_units(platform: Platform, tenant: str, names: list[str]) -> dict[str, str]:
    """The unit of each tag an asset's signal is bound to, from the asset type's signal (for tags whose metadata
    names none)."""
    plant = platform.twin.plant(tenant)
    wanted, out = set(names), {}
    for a in plant.assets.values():
        spec = plant.types.get(a.type)
        if spec is None:
            continue
        for signal, tag in plant.signal_tags(a).items():
            sig = spec.signals.get(signal)
            if tag in wanted and sig is not None and sig.unit and tag not in out:
                out[tag] = sig.unit
    return out


def _last_days(days: int) -> list[str]:
    """The last `days` UTC days, oldest first, as YYYY-MM-DD."""
    today = datetime.now(UTC).date()
    return [(today - timedelta(days=k)).isoformat() for k in range(days - 1, -1, -1)]


def points_per_day(platform: Platform, tenants: list[str], days: int = 14) -> dict[str, list[tuple[str, int]]]:
    """Points the historian holds per UTC day over the last `days` days, per company and for the cluster ("*"):
    the data volume over days beside the data rate now (counts from the store's manifest; no point is read)."""
    span = _last_days(days)
    out: dict[str, list[tuple[str, int]]] = {}
    total: Counter[str] = Counter()
    for tenant in tenants:
        try:
            counts = platform.historian.points_per_day(tenant, span)
        except TaehwaError:
            continue
        out[tenant] = [(d, counts[d]) for d in span]
        total.update(counts)
    out["*"] = [(d, total.get(d, 0)) for d in span]
    return out


def alerts_per_day(platform: Platform, tenants: list[str], days: int = 14) -> dict[str, list[tuple[str, int]]]:
    """Alerts raised per UTC day over the last `days` days, per company and for the cluster ("*"): the control
    tower's figure over days (counts only; no alert's text, asset or tag leaves its company here)."""
    span = _last_days(days)
    since = f"{span[0]}T00:00:00+00:00"
    out: dict[str, list[tuple[str, int]]] = {}
    total: Counter[str] = Counter()
    for tenant in tenants:
        try:
            rows = platform.live.alerts.list(tenant, since=since, limit=100_000)
        except TaehwaError:
            continue
        counts = Counter(str(a["raised_at"])[:10] for a in rows)
        out[tenant] = [(d, counts.get(d, 0)) for d in span]
        total.update(counts)
    out["*"] = [(d, total.get(d, 0)) for d in span]
    return out
