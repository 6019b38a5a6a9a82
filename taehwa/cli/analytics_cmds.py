"""`taehwa analytics …` (calculated signals, backfill, lineage, data quality) and `taehwa events …` (event frames:
search, show, open, close) from the shell. Thin: each command is one analytics service call; changes go through the
running server when one holds the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table

from taehwa.analytics.records import Calculation, EventFrame
from taehwa.cli.common import (
    JsonOpt,
    TenantOpt,
    fail,
    local_or_server,
    out,
    print_table,
    server_request,
    services,
    write_call,
)
from taehwa.core.errors import InvalidInput

analytics_app = typer.Typer(
    help="Analytics (분석): calculated signals, backfill, lineage, data quality.", no_args_is_help=True
)
events_app = typer.Typer(
    help="Event frames (이벤트 프레임): search, show, open and close events; reference profiles scored live.",
    no_args_is_help=True,
)
reference_app = typer.Typer(
    help="Reference profiles (기준 프로파일): a golden event or the median of chosen events, scored against running "
    "events live.",
    no_args_is_help=True,
)
events_app.add_typer(reference_app, name="reference")

StartOpt = Annotated[str, typer.Option("--start", help="Start of the range (ISO 8601, UTC).")]
EndOpt = Annotated[str, typer.Option("--end", help="End of the range (ISO 8601, UTC).")]
AssetOpt = Annotated[str | None, typer.Option("--asset", help="An asset path: it and everything under it.")]


def _json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str, ensure_ascii=False))


@analytics_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="Plant YAML to check (not loaded).")], as_json: JsonOpt = False
) -> None:
    """Check a plant file's calculated signals and event templates: each problem with file and line."""
    from rich.markup import escape

    from taehwa.analytics.program import build, check_plant
    from taehwa.cli.common import where_said
    from taehwa.core.errors import Problem, TaehwaError, ValidationFailed
    from taehwa.core.yamlio import load_yaml_file
    from taehwa.twin.model import parse_document

    try:
        plant = parse_document(load_yaml_file(file), source=file.name)
        problems = [Problem(w, p) for w, p in check_plant(plant)]
        prog = None if problems else build(plant)
    except ValidationFailed as exc:
        problems, prog = exc.details, None
    except TaehwaError as exc:
        fail(exc)
        return
    result = {
        "ok": not problems,
        "problems": [{"where": p.where, "problem": p.message} for p in problems],
        "calculated_signals": len(prog.outputs) if prog else 0,
        "templates": len(prog.templates) if prog else 0,
    }
    if as_json:
        _json(result)
    elif problems:
        for p in problems:
            out.print(f"[red]{escape(where_said(p.where, p.location))}[/red]: {escape(p.message)}", highlight=False)
    else:
        out.print(
            f"{file.name}: ok, {result['calculated_signals']} calculated tags, {result['templates']} event templates"
        )
    if problems:
        raise typer.Exit(2)


@analytics_app.command("list")
def list_(tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """The plant's calculated signals and event templates."""
    with services(readonly=True) as platform:
        items = platform.analytics.calculations(tenant)
        view = Table("kind", "type", "name", "expr / rule", "unit", "assets")
        for i in items:
            unit = (i["unit"] or "") if i["kind"] == "signal" else ""
            view.add_row(i["kind"], i["type"], i["name"], _rule(i), unit, str(i["assets"]))
        print_table(view, as_json=as_json, data=items)


def _rule(i: Calculation) -> str:
    """A listing row's rule: a signal's expression, or when an event opens and how long it may stay open (its
    reference and problem after it)."""
    if i["kind"] == "signal":
        return i["expr"]
    if "opened_by" in i:
        (opener, source), *_ = i["opened_by"].items()
        rule = f"opened by {opener} {source}, at most {i['max_duration_s']:g}s"
    else:
        rule = f"for {i['held_s']:g}s, at most {i['max_duration_s']:g}s"
    if "reference" in i:
        rule += f"; scored against a reference into {i['reference']['output']}"
    if problem := i.get("problem"):
        rule += f" (problem: {problem})"
    return rule


@analytics_app.command("eval")
def evaluate(
    asset: Annotated[str, typer.Argument(help="Asset path.")],
    expr: Annotated[str, typer.Argument(help="Expression or condition, e.g. 'flow / power'.")],
    tenant: TenantOpt,
    start: StartOpt,
    end: EndOpt,
    limit: Annotated[int, typer.Option(help="Rows to print.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Try an expression on one asset over a range; nothing is written."""
    with services(readonly=True) as platform:
        got = platform.analytics.evaluate(tenant, asset, expr, start, end)
        if as_json:
            _json(got)
            return
        view = Table("time", "value", "quality")
        for p in got["points"][:limit]:
            view.add_row(p["time"], "" if p["value"] is None else f"{p['value']:.6g}", str(p["quality"]))
        print_table(view)
        out.print(f"{len(got['points'])} points from {', '.join(got['inputs'])}")


@analytics_app.command("backfill")
def backfill(
    tenant: TenantOpt,
    start: StartOpt,
    end: EndOpt,
    asset: AssetOpt = None,
    signal: Annotated[
        list[str] | None, typer.Option("--signal", help="Only this calculated signal or template (repeatable).")
    ] = None,
    no_events: Annotated[bool, typer.Option("--no-events", help="Calculated signals only.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Recompute calculated signals and event frames for a range (after late inputs or a changed expression)."""
    body = {"start": start, "end": end, "asset": asset, "signals": signal, "events": not no_events}
    got = write_call(
        lambda p: p.analytics.backfill(tenant, start, end, asset=asset, signals=signal, events=not no_events),
        "POST",
        f"/api/v1/{tenant}/analytics/backfill",
        json=body,
    )
    if as_json:
        _json(got)
    else:
        out.print(
            f"{got['points']} points ({got['bad_points']} bad) and {got['events']} events in "
            f"{got['chunks']} day chunk(s), {got['seconds']} s"
        )


@analytics_app.command("lineage")
def lineage(tag: Annotated[str, typer.Argument(help="A calculated tag.")], tenant: TenantOpt) -> None:
    """Where a calculated tag's points come from: expression, version, inputs."""
    with services(readonly=True) as platform:
        _json(platform.analytics.lineage(tenant, tag))


@analytics_app.command("quality")
def quality(
    tenant: TenantOpt,
    start: StartOpt,
    end: EndOpt,
    asset: AssetOpt = None,
    write_events: Annotated[
        bool, typer.Option("--write-events", help="Store the findings as events quality.<check>.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Data-quality checks per tag (gaps, stuck, flat, out of range, spikes, bad points, clock): figures and
    findings."""
    if write_events:
        path = f"/api/v1/{tenant}/analytics/quality/events"
        got = write_call(
            lambda p: p.analytics.quality(tenant, start, end, asset=asset, write_events=True),
            "POST",
            path,
            params={"start": start, "end": end, **({"asset": asset} if asset else {})},
        )
    else:
        with services(readonly=True) as platform:
            got = platform.analytics.quality(tenant, start, end, asset=asset)
    if as_json:
        _json(got)
        return
    view = Table("asset", "signal", "tag", "quality %", "findings")
    for path, a in got["assets"].items():
        for sig, f in a["tags"].items():
            checks = sorted({x["check"] for x in f["findings"]})
            view.add_row(path, sig, f["tag"], f"{f['quality']:g}", ", ".join(checks))
    print_table(view)
    out.print(f"{got['findings']} findings; {got['events_written']} events written")


def _events_table(events: list[EventFrame], as_json: bool) -> None:
    view = Table("id", "asset", "template", "start", "end", "duration s", "reason")
    for e in events:
        view.add_row(
            e["id"],
            e["asset"],
            e["template"],
            e["start"],
            e["end"] or "(open)",
            "" if e["duration_s"] is None else f"{e['duration_s']:g}",
            e["close_reason"] or "",
        )
    print_table(view, as_json=as_json, data=events)


@events_app.command("search")
def search(
    tenant: TenantOpt,
    asset: AssetOpt = None,
    template: Annotated[str | None, typer.Option(help="Template name (quality.gap, …).")] = None,
    start: Annotated[str | None, typer.Option(help="Events overlapping from this time.")] = None,
    end: Annotated[str | None, typer.Option(help="… up to this time.")] = None,
    where: Annotated[
        list[str] | None,
        typer.Option("--where", help="A statistic filter: 'duration > 30m', 'max(flow) > 5' (repeatable)."),
    ] = None,
    state: Annotated[str | None, typer.Option(help="open or closed.")] = None,
    kind: Annotated[str | None, typer.Option(help="template, quality, manual, alert or label.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Event frames, newest first, by asset subtree, template, time and statistic."""
    with services(readonly=True) as platform:
        got = platform.analytics.search(
            tenant,
            asset=asset,
            template=template,
            start=start,
            end=end,
            where=where,
            state=state,
            kind=kind,
            limit=limit,
        )
        _events_table(got["events"], as_json)


@events_app.command("show")
def show(event_id: Annotated[str, typer.Argument(help="Event id.")], tenant: TenantOpt) -> None:
    """One event frame with its statistics."""
    with services(readonly=True) as platform:
        _json(platform.analytics.event(tenant, event_id))


@events_app.command("compare")
def compare(
    event_id: Annotated[str, typer.Argument(help="The event to compare.")],
    tenant: TenantOpt,
    to: Annotated[list[str], typer.Option("--to", help="A reference event (repeatable: their median).")],
    signal: Annotated[str, typer.Option(help="The signal compared.")],
    step: Annotated[str, typer.Option(help="Step of the common time axis.")] = "1s",
    band: Annotated[float, typer.Option(help="Band half-width in spreads (MAD between events).")] = 3.0,
    as_json: JsonOpt = False,
) -> None:
    """An event against a reference profile (a golden event, or the median of several) with a band."""
    with services(readonly=True) as platform:
        got = platform.analytics.compare_events(tenant, event_id, to, signal, step=step, band=band)
        if as_json:
            _json(got)
        else:
            out.print(
                f"{got['steps']} steps; {100 * (got['outside_share'] or 0):.1f} % outside the band; largest "
                f"deviation {got['max_abs_deviation']}"
            )


@events_app.command("open")
def open_(
    asset: Annotated[str, typer.Argument(help="Asset path.")],
    template: Annotated[str, typer.Argument(help="A template of the asset's type, or any name.")],
    tenant: TenantOpt,
    start: Annotated[str | None, typer.Option(help="Start (now when left out).")] = None,
    note: Annotated[str | None, typer.Option(help="A note kept with the event.")] = None,
) -> None:
    """Open an event by hand; close it with `taehwa events close ID`."""
    got = write_call(
        lambda p: p.analytics.open_event(tenant, asset, template, start=start, note=note),
        "POST",
        f"/api/v1/{tenant}/event-frames",
        json={"asset": asset, "template": template, "start": start, "note": note},
    )
    out.print(got["id"])


@events_app.command("close")
def close(
    event_id: Annotated[str, typer.Argument(help="Event id.")],
    tenant: TenantOpt,
    end: Annotated[str | None, typer.Option(help="End (now when left out).")] = None,
) -> None:
    """Close an open event (its template's statistics are computed then)."""
    if len(event_id) > 64:
        fail(InvalidInput("not an event id", where="id"))
    got = write_call(
        lambda p: p.analytics.close_event(tenant, event_id, end=end),
        "POST",
        f"/api/v1/{tenant}/event-frames/{quote(event_id, safe='')}/close",
        json={"end": end},
    )
    out.print(f"{got['id']}: {got['duration_s']:g} s")


TemplateArg = Annotated[
    str, typer.Argument(help="An event template as Type.template (e.g. CentrifugalPump.valve_closure).")
]


@reference_app.command("set")
def reference_set(
    template: TemplateArg,
    tenant: TenantOpt,
    event: Annotated[list[str], typer.Option("--event", help="A closed event of the template (repeatable: median).")],
) -> None:
    """Make a template's reference from chosen events; its running events are scored against it live."""
    if len(template) > 255 or any(len(e) > 64 for e in event):
        fail(InvalidInput("not a template or event id", where="template"))
    got = write_call(
        lambda p: p.analytics.set_reference(tenant, template, event),
        "PUT",
        f"/api/v1/{tenant}/event-references/{quote(template, safe='')}",
        json={"events": event},
    )
    out.print(
        f"{got['template']}: {got['signal']} over {len(got['events'])} events, {got['steps']} steps of "
        f"{got['step_s']:g} s, band ± {got['band']:g}; deviation written to {got['output']}"
    )


@reference_app.command("show")
def reference_show(template: TemplateArg, tenant: TenantOpt) -> None:
    """A template's reference: its events, profile and band, and the running events scored against it."""
    with services(readonly=True) as platform:
        _json(platform.analytics.reference(tenant, template))


@reference_app.command("list")
def reference_list(tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """Every template's reference."""
    with services(readonly=True) as platform:
        rows = platform.analytics.references_of(tenant)
    view = Table("template", "signal", "events", "step", "band")
    for r in rows:
        view.add_row(
            f"{r['type']}.{r['template']}", r["signal"], str(len(r["events"])), f"{r['step_s']:g} s", f"{r['band']:g}"
        )
    print_table(view, as_json=as_json, data=rows)


@reference_app.command("delete")
def reference_delete(template: TemplateArg, tenant: TenantOpt) -> None:
    """Remove a template's reference."""
    if len(template) > 255:
        fail(InvalidInput("not a template", where="template"))
    write_call(
        lambda p: p.analytics.delete_reference(tenant, template),
        "DELETE",
        f"/api/v1/{tenant}/event-references/{quote(template, safe='')}",
    )
    out.print(f"{template}: reference removed")


@events_app.command("scoring")
def scoring(tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """Running events scored live against their template's reference (the server's; none without one)."""
    got = local_or_server(
        lambda p: p.analytics.scoring(tenant),
        lambda settings: server_request(settings, "GET", f"/api/v1/{tenant}/analytics/scoring"),
    )
    view = Table("event", "asset", "template", "steps", "outside", "largest deviation")
    for w in got:
        share = "-" if w["outside_share"] is None else f"{100 * w['outside_share']:.1f} %"
        view.add_row(w["event"], w["asset"], w["template"], str(w["steps"]), share, str(w["max_abs_deviation"]))
    print_table(view, as_json=as_json, data=got)
