"""`taehwa twin …`: load and export the plant model, and read, search and change assets from the shell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table

from taehwa.cli.common import JsonOpt, TenantOpt, emit_text, err, fail, out, print_table, services, write_call
from taehwa.core.errors import InvalidInput, TaehwaError
from taehwa.core.yamlio import dump_yaml, load_yaml, plain
from taehwa.twin.records import AssetListing

twin_app = typer.Typer(help="Digital twin (디지털 트윈): plant model, assets, live state.", no_args_is_help=True)

AttrOpt = Annotated[list[str] | None, typer.Option("--attr", help="Attribute NAME=VALUE (repeatable).")]
TagOpt = Annotated[list[str] | None, typer.Option("--tag", help="Bind a signal: SIGNAL=TAG (repeatable).")]
AtOpt = Annotated[str | None, typer.Option(help="As it stood at this time (ISO 8601).")]


def _pairs(items: list[str] | None, option: str, *, typed: bool) -> dict[str, Any]:
    """NAME=VALUE options as a mapping; typed values are read as YAML scalars (250 → number, true → boolean)."""
    out_: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{item!r} is not NAME=VALUE", where=option)
        out_[key] = plain(load_yaml(value, source=option, max_bytes=4096)) if typed and value else value
    return out_


def _print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


def _assets_table(items: list[AssetListing], as_json: bool = False) -> None:
    view = Table("path", "type", "name", "state")
    for a in items:
        view.add_row(a["path"], a["type"], a["name"], a.get("state", ""))
    print_table(view, as_json=as_json, data=items)


@twin_app.command("load")
def load(
    file: Annotated[Path, typer.Argument(help="Plant YAML: types, assets, relations.")], tenant: TenantOpt
) -> None:
    """Replace the plant model with a plant file; validated as a whole, nothing applied on error."""
    try:
        text = file.read_bytes()
    except OSError as exc:
        fail(InvalidInput(f"cannot read file: {exc.strerror}", where=str(file)))
        return
    result = write_call(
        lambda p: p.twin.load(tenant, text, source=file.name).to_dict(),
        "PUT",
        f"/api/v1/{tenant}/twin",
        content=text,
        headers={"Content-Type": "application/yaml"},
        body_name=file.name,
    )
    out.print(
        f"{file.name}: version {result['version']}: {result['assets']} assets, {result['added']} added, "
        f"{result['changed']} changed, {result['removed']} removed"
    )


@twin_app.command("export")
def export(
    tenant: TenantOpt,
    at: AtOpt = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file.")] = None,
) -> None:
    """Write the plant model back as a plant file."""
    with services(readonly=True) as platform:
        emit_text(dump_yaml(platform.twin.export(tenant, at)), output)


@twin_app.command("versions")
def versions(
    tenant: TenantOpt, limit: Annotated[int, typer.Option(help="How many.")] = 20, as_json: JsonOpt = False
) -> None:
    """The model's change history, newest first."""
    with services(readonly=True) as platform:
        view = Table("version", "at", "actor", "summary")
        docs = [v.to_dict() for v in platform.twin.versions(tenant, limit)]
        for d in docs:
            view.add_row(str(d["version"]), d["at"], d["actor"] or "", d["summary"])
        print_table(view, as_json=as_json, data=docs)


@twin_app.command("types")
def types(tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """Asset types with their inherited signals."""
    with services(readonly=True) as platform:
        view = Table("type", "extends", "level", "sensors", "derived")
        found = platform.twin.types(tenant)
        for t in found:
            view.add_row(t["name"], t["extends"] or "", t["level"], ", ".join(t["sensors"]), ", ".join(t["derived"]))
        print_table(view, as_json=as_json, data=found)


@twin_app.command("show")
def show(path: str, tenant: TenantOpt, at: AtOpt = None) -> None:
    """One asset: fields, children, relations, signals and live state, as JSON."""
    with services(readonly=True) as platform:
        _print_json(platform.twin.get(tenant, path, at))


@twin_app.command("children")
def children(
    tenant: TenantOpt,
    path: Annotated[str | None, typer.Argument(help="Parent (the sites if none).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Direct children of an asset."""
    with services(readonly=True) as platform:
        _assets_table(platform.twin.children(tenant, path), as_json)


@twin_app.command("search")
def search(
    tenant: TenantOpt,
    type_: Annotated[str | None, typer.Option("--type", help="Asset type (subtypes match).")] = None,
    under: Annotated[str | None, typer.Option(help="Path prefix.")] = None,
    state: Annotated[str | None, typer.Option(help="unknown, normal, stale, warning or alarm.")] = None,
    attr: AttrOpt = None,
    text: Annotated[str | None, typer.Option(help="Text in path or name.")] = None,
    limit: Annotated[int, typer.Option()] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Find assets by type, subtree, state, attribute values and text."""
    with services(readonly=True) as platform:
        found = platform.twin.search(
            tenant,
            type=type_,
            under=under,
            state=state,
            attributes=_pairs(attr, "--attr", typed=False),
            text=text,
            limit=limit,
        )
        _assets_table(found["items"], as_json)
        err.print(f"{found['total']} assets")


@twin_app.command("state")
def state(path: str, tenant: TenantOpt, at: AtOpt = None, as_json: JsonOpt = False) -> None:
    """An asset's state (now, or rebuilt from the historian at a past time)."""
    with services(readonly=True) as platform:
        st = platform.twin.state(tenant, path, at)
    view = Table("signal", "tag", "value", "quality", "time", "state")
    for name, s in st["signals"].items():
        view.add_row(
            name,
            s["tag"],
            "—" if s["value"] is None else f"{s['value']:.6g}",
            s["quality"],
            s["time"] or "—",
            s["state"],
        )
    if as_json:
        print_table(view, as_json=True, data=st)
        return
    out.print(f"[bold]{path}[/bold]: {st['state']} (own: {st['own_state']})")
    print_table(view)


@twin_app.command("create")
def create(
    asset_id: Annotated[str, typer.Argument(help="The new asset's id (last path segment).")],
    tenant: TenantOpt,
    type_: Annotated[str, typer.Option("--type", help="Asset type.")],
    parent: Annotated[str | None, typer.Option(help="Parent path (none: a site).")] = None,
    name: Annotated[str | None, typer.Option()] = None,
    attr: AttrOpt = None,
    tag: TagOpt = None,
) -> None:
    """Add one asset."""
    try:
        body: dict[str, Any] = {
            "id": asset_id,
            "type": type_,
            "attributes": _pairs(attr, "--attr", typed=True),
            "tags": _pairs(tag, "--tag", typed=False),
        }
    except TaehwaError as exc:
        fail(exc)
        return
    if name:
        body["name"] = name
    result = write_call(
        lambda p: p.twin.create(tenant, body, parent=parent),
        "POST",
        f"/api/v1/{tenant}/assets",
        json={**body, "parent": parent},
    )
    out.print(f"created {result['path']}")


@twin_app.command("set")
def set_(
    path: str,
    tenant: TenantOpt,
    name: Annotated[str | None, typer.Option()] = None,
    type_: Annotated[str | None, typer.Option("--type")] = None,
    attr: AttrOpt = None,
    tag: TagOpt = None,
) -> None:
    """Change an asset's name, type, attributes or tag bindings (given attributes and tags are merged in)."""
    try:
        with services(readonly=True) as platform:
            current = platform.twin.get(tenant, path)
        patch: dict[str, Any] = {}
        if name is not None:
            patch["name"] = name
        if type_ is not None:
            patch["type"] = type_
        if attr:
            patch["attributes"] = {**current["attributes"], **_pairs(attr, "--attr", typed=True)}
        if tag:
            patch["tags"] = {**current["tags"], **_pairs(tag, "--tag", typed=False)}
    except TaehwaError as exc:
        fail(exc)
        return
    write_call(
        lambda p: p.twin.update(tenant, path, patch), "PATCH", f"/api/v1/{tenant}/assets/{quote(path)}", json=patch
    )
    out.print(f"updated {path}")


@twin_app.command("delete")
def delete(
    path: str,
    tenant: TenantOpt,
    recursive: Annotated[bool, typer.Option(help="Also delete everything under it.")] = False,
) -> None:
    """Remove an asset."""
    n = write_call(
        lambda p: p.twin.delete(tenant, path, recursive=recursive),
        "DELETE",
        f"/api/v1/{tenant}/assets/{quote(path)}",
        params={"recursive": recursive},
    )
    out.print(f"deleted {n if isinstance(n, int) else n['deleted']} assets")


@twin_app.command("move")
def move(
    path: str,
    tenant: TenantOpt,
    to: Annotated[str, typer.Option("--to", help="New parent path ('' to make it a site).")],
    new_id: Annotated[str | None, typer.Option("--id", help="Also rename it.")] = None,
) -> None:
    """Move a subtree under another parent."""
    parent = to.strip("/") or None
    result = write_call(
        lambda p: p.twin.move(tenant, path, parent, new_id=new_id),
        "POST",
        f"/api/v1/{tenant}/assets/{quote(path)}/move",
        json={"parent": parent, "id": new_id},
    )
    out.print(f"moved {path} to {result['path']}")


@twin_app.command("relate")
def relate(
    source: str,
    kind: str,
    target: str,
    tenant: TenantOpt,
    remove: Annotated[bool, typer.Option(help="Remove the relation instead.")] = False,
) -> None:
    """Add a relation beside the hierarchy: SOURCE feeds|backs_up|powers|controls|recycles_to TARGET."""
    if remove:
        write_call(
            lambda p: p.twin.relate(tenant, source, kind, target, remove=True),
            "DELETE",
            f"/api/v1/{tenant}/relations",
            params={"from": source, "kind": kind, "to": target},
        )
    else:
        write_call(
            lambda p: p.twin.relate(tenant, source, kind, target),
            "POST",
            f"/api/v1/{tenant}/relations",
            json={"from": source, "kind": kind, "to": target},
        )
    out.print(f"{'removed' if remove else 'added'}: {source} {kind} {target}")
