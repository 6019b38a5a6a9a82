"""`taehwa` commands. Each opens the services, calls them, prints the answer; errors exit with their code."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from taehwa.cli.academy_cmds import academy_app
from taehwa.cli.admin_cmds import admin_app, audit_app
from taehwa.cli.analytics_cmds import analytics_app, events_app
from taehwa.cli.city_cmds import city_app
from taehwa.cli.common import (
    JsonOpt,
    TenantOpt,
    emit_text,
    err,
    fail,
    local_or_server,
    out,
    print_json,
    print_table,
    server_request,
    services,
    write_call,
)
from taehwa.cli.connector_cmds import connectors_app
from taehwa.cli.db_cmds import db_app
from taehwa.cli.lab_cmds import lab_app
from taehwa.cli.live_cmds import live_app
from taehwa.cli.replay_cmd import replay
from taehwa.cli.twin_cmds import twin_app
from taehwa.core.errors import InvalidInput, NotFound, TaehwaError, ValidationFailed
from taehwa.core.settings import Settings, load_settings

if TYPE_CHECKING:  # a command imports the platform and Arrow when it needs them: `taehwa --help` starts at once
    import pyarrow as pa

    from taehwa.server.platform import Platform

app = typer.Typer(
    help="Taehwa (태화): sovereign industrial AI platform.", no_args_is_help=True, pretty_exceptions_enable=False
)
tags_app = typer.Typer(help="Tags (센서 태그): list, show, set metadata, latest values.", no_args_is_help=False)
tenants_app = typer.Typer(help="Tenants (기업): create, list, set retention.", no_args_is_help=True)
demo_app = typer.Typer(help="Demo data from ../shared/data.", no_args_is_help=True)
app.add_typer(tags_app, name="tags")
app.add_typer(tenants_app, name="tenants")
app.add_typer(demo_app, name="demo")
app.add_typer(twin_app, name="twin")
app.add_typer(admin_app, name="admin")
app.add_typer(audit_app, name="audit")
app.add_typer(lab_app, name="lab")
app.add_typer(connectors_app, name="connectors")
app.add_typer(live_app, name="live")
app.add_typer(academy_app, name="academy")
app.add_typer(city_app, name="city")
app.add_typer(db_app, name="db")
app.add_typer(analytics_app, name="analytics")
app.add_typer(events_app, name="events")
app.command("replay")(replay)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (TAEHWA_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (TAEHWA_PORT).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="API processes behind the port (TAEHWA_WORKERS): the first owns the store's "
            "writer, the connectors and live scoring; the others answer reads of points and tags themselves "
            "and pass everything else to it.",
        ),
    ] = None,
    follow: Annotated[
        str | None,
        typer.Option(
            "--follow",
            metavar="URL",
            help="Run as a reader node of the primary at URL (TAEHWA_FOLLOW_URL), on "
            "another machine sharing its historian storage (TAEHWA_HISTORIAN_URL) and metadata database: "
            "reads of points and tags are answered here, everything else is passed to the primary.",
        ),
    ] = None,
    demo: Annotated[
        bool,
        typer.Option(
            help="Load the demo plant into tenant 'demo' and replay its data "
            "sets as live data over a loopback OPC UA server (speed:"
            " TAEHWA_DEMO_SPEED, port: TAEHWA_DEMO_OPCUA_PORT)."
        ),
    ] = False,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log",
            help="Log every HTTP request (off by default: the terminal shows what the platform does, not each call).",
        ),
    ] = False,
    sql_port: Annotated[
        int | None,
        typer.Option(
            "--sql-port",
            min=0,
            max=65535,
            help="Also serve SQL over the PostgreSQL wire protocol on this port "
            "(off by default): database = tenant, password = an API token or your password.",
        ),
    ] = None,
    flight_port: Annotated[
        int | None,
        typer.Option(
            "--flight-port",
            min=0,
            max=65535,
            help="Also serve Arrow Flight on this port (off by default): bulk "
            "reads and writes from notebooks, with an API token (taehwa.client).",
        ),
    ] = None,
) -> None:
    """Start the platform: HTTP API with OpenAPI at /docs, on embedded defaults.

    On several machines: TAEHWA_HISTORIAN_URL puts the historian on shared (object) storage,
    TAEHWA_WRITER_TENANTS makes this node the writer of those tenants (requests about other tenants go to their
    writers, at the TAEHWA_PUBLIC_URL in their leases), and --follow makes a reader node. See the README.
    """
    from taehwa.api.serving import serve_node

    try:
        settings = load_settings(**({"follow_url": follow} if follow else {}))
        serve_node(
            settings,
            host=host or settings.host,
            port=port or settings.port,
            workers=workers or settings.workers,
            demo=demo,
            access_log=access_log,
            sql_port=sql_port,
            flight_port=flight_port,
            say=out.print,
        )
    except TaehwaError as exc:
        fail(exc)


def _send_to_server(settings: Settings, tenant: str, path: Path, layout: str) -> dict[str, Any]:
    """The running server holds the store: send the file to it as one Arrow stream."""
    import pyarrow as pa

    from taehwa.historian.readers import ARROW_STREAM, iter_file_tables

    tables = [t for t, _, _ in iter_file_tables(path)]
    table = pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    try:
        body: dict[str, Any] = server_request(
            settings,
            "POST",
            f"/api/v1/{tenant}/points",
            params={"layout": layout},
            content=sink.getvalue().to_pybytes(),
            headers={"Content-Type": ARROW_STREAM},
            body_name=path.name,  # a location in the body is said of the file (its rows are the file's)
        )
    except ValidationFailed:
        raise
    except TaehwaError as exc:  # an error without a location in the body, said of the file
        if exc.location is not None:
            raise
        raise type(exc)(exc.message, where=f"{path.name}: {exc.where or ''}") from None
    return body


@app.command()
def ingest(
    files: Annotated[list[Path], typer.Argument(help="CSV or Parquet files.")],
    tenant: TenantOpt,
    layout: Annotated[
        str, typer.Option(help="auto, long (tag,time,value[,quality]) or wide (time + a column per tag).")
    ] = "auto",
) -> None:
    """Load CSV or Parquet files into the historian; each file is all-or-nothing."""
    for path in files:

        def local(platform: Platform, path: Path = path) -> str:
            with _progress() as bar:
                task = bar.add_task(f"ingest {path.name}", total=None)

                def tick(done: int, total: int, task: Any = task, bar: Progress = bar) -> None:
                    bar.update(task, completed=done, total=total)

                result = platform.historian.ingest_file(tenant, path, layout=layout, progress=tick)
            return f"{path.name}: stored {result.points} points in {result.tags} tags"

        def remote(settings: Settings, path: Path = path) -> str:
            body = _send_to_server(settings, tenant, path, layout)
            return f"{path.name}: stored {body['stored']} points in {body['tags']} tags (via the server)"

        out.print(local_or_server(local, remote))


def _write_table(table: pa.Table, output: Path | None, *, as_json: bool = False) -> None:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if output is None:
        _print_table(table, max_rows=table.num_rows if as_json else 200, as_json=as_json)
    elif output.suffix.lower() == ".parquet":
        pq.write_table(table, output)
        err.print(f"wrote {table.num_rows} rows to {output}")
    elif output.suffix.lower() == ".csv":
        pacsv.write_csv(table, output)
        err.print(f"wrote {table.num_rows} rows to {output}")
    else:
        raise InvalidInput("output must end in .csv or .parquet", where=str(output))


def _print_table(table: pa.Table, max_rows: int = 200, *, as_json: bool = False) -> None:
    if as_json:
        rows = [{k: _quality(v) if k == "quality" else v for k, v in r.items()} for r in table.to_pylist()]
        print_json(rows)
        return
    view = Table(show_lines=False)
    for name in table.column_names:
        view.add_column(name, justify="right" if name not in ("tag", "time") else "left")
    for row in table.slice(0, max_rows).to_pylist():
        view.add_row(*[_quality(v) if k == "quality" else _cell(v) for k, v in row.items()])
    print_table(view)
    if table.num_rows > max_rows:
        err.print(f"… {table.num_rows - max_rows} more rows (use --output to write them all)")


def _quality(value: Any) -> str:
    """A stored quality code by its name (good, uncertain, bad), as the README and the UI say it."""
    from taehwa.historian.schema import Quality

    return Quality(value).name.lower() if isinstance(value, int) and 0 <= value <= 2 else _cell(value)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@app.command()
def query(
    tags: Annotated[list[str], typer.Argument(help="Tag names.")],
    tenant: TenantOpt,
    start: Annotated[str, typer.Option(help="ISO 8601 start (UTC if no offset).")],
    end: Annotated[str, typer.Option(help="ISO 8601 end (exclusive).")],
    every: Annotated[str | None, typer.Option(help="Downsample into buckets, e.g. 1m.")] = None,
    agg: Annotated[str, typer.Option(help="avg,min,max,sum,count,first,last,stddev,twa")] = "avg",
    step: Annotated[str | None, typer.Option(help="Interpolate onto a grid, e.g. 1s.")] = None,
    method: Annotated[str, typer.Option(help="previous or linear.")] = "previous",
    align: Annotated[bool, typer.Option(help="With --step: one column per tag.")] = False,
    limit: Annotated[int | None, typer.Option(help="At most this many raw points.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write .csv or .parquet.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Read points: raw, downsampled (--every/--agg) or interpolated (--step/--method, --align)."""
    with services(readonly=True) as platform:
        table = platform.historian.query(
            tenant, tags, start, end, every=every, agg=agg, step=step, method=method, align=align, limit=limit
        )
        _write_table(table, output, as_json=as_json)


@tags_app.callback(invoke_without_command=True)
def tags_list(
    ctx: typer.Context,
    tenant: TenantOpt = "demo",
    prefix: Annotated[str | None, typer.Option(help="Only tags under this path.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List tags with their metadata (the default `taehwa tags`)."""
    if ctx.invoked_subcommand is not None:
        return
    with services(readonly=True) as platform:
        items = platform.historian.tags(tenant, prefix)
        view = Table("tag", "unit", "interval_s", "range", "description")
        for t in items:
            rng = f"{t.eng_low}…{t.eng_high}" if t.eng_low is not None or t.eng_high is not None else ""
            view.add_row(t.name, t.unit or "", _cell(t.interval_s), rng, t.description or "")
        print_table(view, as_json=as_json, data=[t.to_dict() for t in items])
        err.print(f"{len(items)} tags")


@tags_app.command("show")
def tags_show(tag: str, tenant: TenantOpt) -> None:
    """One tag's metadata as JSON."""
    with services(readonly=True) as platform:
        out.print_json(json.dumps(platform.historian.tag(tenant, tag).to_dict()))


@tags_app.command("set")
def tags_set(
    tag: str,
    tenant: TenantOpt,
    unit: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    eng_low: Annotated[float | None, typer.Option(help="Engineering range low.")] = None,
    eng_high: Annotated[float | None, typer.Option(help="Engineering range high.")] = None,
    interval: Annotated[float | None, typer.Option(help="Expected sampling interval, seconds.")] = None,
    attr: Annotated[list[str] | None, typer.Option(help="Free attribute KEY=VALUE (repeatable).")] = None,
) -> None:
    """Set or change a tag's metadata."""
    changes: dict[str, Any] = {
        k: v
        for k, v in {
            "unit": unit,
            "description": description,
            "eng_low": eng_low,
            "eng_high": eng_high,
            "interval_s": interval,
        }.items()
        if v is not None
    }
    added: dict[str, str] = {}
    for item in attr or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(InvalidInput(f"attribute {item!r} is not KEY=VALUE", where="--attr"))
        added[key] = value
    if added:  # merged with the attributes the tag has (reads never wait for the running server)
        with services(readonly=True) as platform:
            try:
                known = dict(platform.historian.tag(tenant, tag).attributes)
            except NotFound:
                known = {}
        changes["attributes"] = {**known, **added}
    # the historian's set_tag checks the write right and writes the audit record (tag.set), here or in the server
    info = write_call(
        lambda p: p.historian.set_tag(tenant, tag, changes).to_dict(),
        "PATCH",
        f"/api/v1/{tenant}/tags/{quote(tag)}",
        json=changes,
    )
    out.print_json(json.dumps(info))


@tags_app.command("latest")
def tags_latest(
    tenant: TenantOpt, tags: Annotated[list[str] | None, typer.Argument()] = None, as_json: JsonOpt = False
) -> None:
    """Newest value of each tag, from the last-value cache."""
    with services(readonly=True) as platform:
        _print_table(platform.historian.latest(tenant, tags or None), max_rows=10_000, as_json=as_json)


@tenants_app.command("create")
def tenants_create(
    tenant_id: str,
    name: Annotated[str | None, typer.Option()] = None,
    retention_days: Annotated[int | None, typer.Option(help="Keep points this many days.")] = None,
) -> None:
    """Add a tenant (a company or research group)."""

    def local(platform: Platform) -> dict[str, Any]:
        t = platform.tenants.create(tenant_id, name, retention_days)
        return {"id": t.id, "name": t.name}

    doc = write_call(
        local, "POST", "/api/v1/tenants", json={"id": tenant_id, "name": name, "retention_days": retention_days}
    )
    out.print(f"created tenant {doc['id']} ({doc['name']})")


@tenants_app.command("rename")
def tenants_rename(tenant_id: str, name: Annotated[str, typer.Argument(help="The new display name.")]) -> None:
    """Give a tenant a new display name (its id stays); through the server when it runs."""
    doc = write_call(
        lambda p: vars(p.tenants.rename(tenant_id, name)), "PATCH", f"/api/v1/tenants/{tenant_id}", json={"name": name}
    )
    out.print(f"renamed tenant {doc['id']} to {doc['name']}")


@tenants_app.command("list")
def tenants_list(as_json: JsonOpt = False) -> None:
    """List tenants."""
    with services(readonly=True) as platform:
        view = Table("id", "name", "retention_days", "created_at")
        for t in platform.tenants.list():
            view.add_row(t.id, t.name, _cell(t.retention_days), t.created_at.isoformat())
        print_table(view, as_json=as_json)


@tenants_app.command("retention")
def tenants_retention(tenant_id: str, days: Annotated[int, typer.Argument(help="Days to keep; 0 for ever.")]) -> None:
    """Set how long a tenant's points are kept."""
    with services(readonly=False) as platform:
        t = platform.tenants.set_retention(tenant_id, days or None)
        out.print(f"{t.id}: retention {t.retention_days or 'for ever'}")


@app.command()
def compact(tenant: Annotated[str | None, typer.Option("--tenant", "-t")] = None) -> None:
    """Flush buffered points and merge each day's files into one sorted file now."""
    with services(readonly=False) as platform:
        platform.historian.flush()
        merged = platform.historian.compact(tenant)
        out.print(f"merged {merged} day partitions")


@app.command()
def stats(tenant: TenantOpt) -> None:
    """Files, rows and bytes of a tenant's store."""
    with services(readonly=True) as platform:
        platform.tenants.require(tenant)
        out.print_json(json.dumps(platform.historian.stats(tenant)))


@app.command()
def doctor() -> None:
    """The security posture as a checklist (bootstrap token, bind address, TLS, file modes, outbound connections,
    token expiry, audit log); exits 8 when something fails."""
    from taehwa.server.doctor import diagnose

    with services(readonly=True) as platform:
        checks = diagnose(platform)
    marks = {"ok": "[green]✓[/green]", "warn": "[yellow]![/yellow]", "fail": "[red]✗[/red]"}
    for c in checks:
        out.print(f"{marks[c.status]} {c.topic}: ", end="")
        out.print(c.detail, markup=False, highlight=False)
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(8)


@demo_app.command("plant")
def demo_plant(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the plant file here.")] = None,
) -> None:
    """Print (or write) the demo plant as a plant file: TEP reaction unit, SKAB pump station, C-MAPSS fleet."""
    from taehwa.core.settings import default_shared_data
    from taehwa.core.yamlio import dump_yaml
    from taehwa.demo.plant import build_demo_plant

    try:
        doc, _ = build_demo_plant(default_shared_data())
    except TaehwaError as exc:
        fail(exc)
        return
    emit_text(dump_yaml(doc), output)


@demo_app.command("load")
def demo_load(force: Annotated[bool, typer.Option(help="Load the SKAB runs again even if present.")] = False) -> None:
    """Load the demo data from ../shared/data into tenant 'demo' (once): the SKAB pump test-bed runs with their
    anomaly labels, and the demo plant's labelled history (refinery TEP runs with fault labels, engine-shop FD001
    lives with failure labels) that the ready lab specs train on; the pump's, refinery's and engines' models,
    trained, promoted through the gate and deployed; and the
    academy's ready challenges (SKAB, C-MAPSS, Tennessee Eastman) with their baselines."""
    from taehwa.core.settings import default_shared_data
    from taehwa.demo.load import load_demo

    with services(readonly=False) as platform:
        load_demo(platform, default_shared_data(), force=force, feedback=_DemoFeedback())


class _DemoFeedback:
    """The demo sequence's progress as rich progress bars (counted steps) and status lines (long steps)."""

    def say(self, line: str) -> None:
        out.print(line)

    @contextmanager
    def counting(self, title: str) -> Iterator[Callable[[int, int], None]]:
        with _progress() as bar:
            task = bar.add_task(title, total=None)
            yield lambda done, total: bar.update(task, completed=done, total=total)

    @contextmanager
    def status(self, text: str) -> Iterator[Callable[[str], None]]:
        with err.status(text) as st:
            yield lambda now: st.update(now)


def main() -> None:
    """Entry point for `python -m taehwa`."""
    app()


if __name__ == "__main__":
    main()
