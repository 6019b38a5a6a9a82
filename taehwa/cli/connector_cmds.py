"""`taehwa connectors …`: define, list, inspect and remove connectors (커넥터), and browse an OPC UA server for a
mapping. Definitions live in the metadata database, so these work beside a running server, which picks up
changes within seconds."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from taehwa.cli.common import JsonOpt, TenantOpt, fail, out, print_table, services
from taehwa.core.errors import TaehwaError

connectors_app = typer.Typer(
    help="Connectors (커넥터): OPC UA, MQTT, Modbus TCP and drop folders into the historian.", no_args_is_help=True
)


@connectors_app.command("add")
def add(
    file: Annotated[Path, typer.Argument(help="YAML/JSON: one connector, a list, or {connectors: [...]}.")],
    replace: Annotated[bool, typer.Option(help="Replace connectors of the same name.")] = False,
    tenant: TenantOpt = "demo",
) -> None:
    """Add connectors from a file; every one is checked before any is stored."""
    from taehwa.core.yamlio import load_yaml_file

    with services(readonly=True) as platform:
        try:
            names = platform.connectors.add(tenant, load_yaml_file(file), replace=replace, source=file.name)
        except TaehwaError as exc:
            fail(exc)
            return
    out.print(f"added {', '.join(names)} (a running server starts them within seconds)")


@connectors_app.command("list")
def list_(tenant: TenantOpt = "demo", as_json: JsonOpt = False) -> None:
    """Every connector with its state, rate, backlog and last error."""
    with services(readonly=True) as platform:
        rows = platform.connectors.list(tenant)
    if as_json:
        print(json.dumps(rows, indent=1, ensure_ascii=False))
        return
    view = Table("name", "protocol", "items", "state", "points/s", "backlog", "last value", "last error")
    for r in rows:
        s = r["status"]
        view.add_row(
            r["name"],
            r["protocol"],
            str(r["items"]),
            str(s.get("state")),
            str(s.get("points_s", "–")),
            str(s.get("backlog", 0)),
            str(s.get("last_value_time") or "–"),
            f"{s.get('last_error_time')}: {s.get('last_error')}" if s.get("last_error") else "–",
        )
    print_table(view)


@connectors_app.command("status")
def status(name: str, tenant: TenantOpt = "demo") -> None:
    """One connector's definition (passwords left out) and status, as JSON."""
    with services(readonly=True) as platform:
        print(json.dumps(platform.connectors.get(tenant, name), indent=1, ensure_ascii=False))


@connectors_app.command("remove")
def remove(
    name: str,
    force: Annotated[bool, typer.Option(help="Remove even with points still queued (lost).")] = False,
    tenant: TenantOpt = "demo",
) -> None:
    """Stop and remove a connector (refused while its queue still holds points, unless --force)."""
    with services(readonly=True) as platform:
        platform.connectors.remove(tenant, name, force=force)
    out.print(f"removed {name}")


@connectors_app.command("browse")
def browse(
    endpoint: Annotated[str, typer.Argument(help="opc.tcp://host:port/path")],
    name: Annotated[str, typer.Option(help="Name of the proposed connector.")] = "opcua-1",
    depth: Annotated[int, typer.Option(help="How deep to walk below Objects.")] = 6,
    username: Annotated[str | None, typer.Option()] = None,
    password: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Walk an OPC UA server's address space and print a connector definition mapping every numeric variable."""
    from taehwa.connectors.opcua import browse as walk

    try:
        items = asyncio.run(walk(endpoint, depth=depth, username=username, password=password))
    except (OSError, TimeoutError) as exc:
        fail(TaehwaError(f"cannot browse {endpoint}: {exc}", where="endpoint"))
        return
    doc = {
        "name": name,
        "protocol": "opcua",
        "endpoint": endpoint,
        "items": [{**i, "sampling_ms": 1000} for i in items],
    }
    print(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), end="")
