"""`taehwa live …`: deploy models on assets, score past ranges (backfill) and single rows (predict), and manage alert
rules, alerts (알림: 확인 / 보류 / 해제) and webhooks.

Definitions go straight to the metadata database; a running server picks them up within two seconds. Status and
drift come from the running server (where the scorer runs) when there is one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from taehwa.cli.common import JsonOpt, TenantOpt, fail, out, print_table, server_request, services, write_call
from taehwa.core.errors import InvalidInput, TaehwaError
from taehwa.core.paths import server_info_path
from taehwa.core.settings import load_settings

live_app = typer.Typer(
    help="Live scoring (deployments), backfills, alert rules, alerts (알림) and webhooks.", no_args_is_help=True
)
rules_app = typer.Typer(help="Alert rules: threshold, rate of change, stale data, model score.", no_args_is_help=True)
alerts_app = typer.Typer(
    help="Alerts: list, show, acknowledge (확인), shelve (보류), resolve (해제).", no_args_is_help=True
)
hooks_app = typer.Typer(
    help="Webhooks that receive alert notifications (retried until delivered).", no_args_is_help=True
)
live_app.add_typer(rules_app, name="rules")
live_app.add_typer(alerts_app, name="alerts")
live_app.add_typer(hooks_app, name="webhooks")

NoteOpt = Annotated[str | None, typer.Option("--note", help="A note recorded with the step.")]


def _from_server(path: str) -> Any | None:
    """The running server's answer (it runs the scorer), or None when no server runs."""
    settings = load_settings()
    if not server_info_path(settings).exists():
        return None
    try:
        return server_request(settings, "GET", path)
    except OSError:
        return None


def _docs(file: Path, key: str) -> list[dict[str, Any]]:
    from taehwa.core.yamlio import load_yaml_file

    doc = load_yaml_file(file)
    docs = doc.get(key, doc) if isinstance(doc, dict) and key in doc else doc
    return docs if isinstance(docs, list) else [docs]


@live_app.command("deploy")
def deploy(
    name: Annotated[str | None, typer.Argument(help="Deployment name (or give --file).")] = None,
    model: Annotated[str | None, typer.Option(help="Registered model name.")] = None,
    version: Annotated[int | None, typer.Option(help="Pin a version (default: production).")] = None,
    asset: Annotated[str | None, typer.Option(help="Score one asset.")] = None,
    asset_type: Annotated[str | None, typer.Option(help="Score every asset of a type.")] = None,
    under: Annotated[str | None, typer.Option(help="Score every fitting asset under a path.")] = None,
    every_s: Annotated[float | None, typer.Option(help="Score on a schedule (seconds).")] = None,
    file: Annotated[Path | None, typer.Option(help="YAML/JSON: one deployment or a list.")] = None,
    replace: Annotated[bool, typer.Option(help="Replace a deployment of the same name.")] = False,
    tenant: TenantOpt = "demo",
) -> None:
    """Deploy a registered model on assets: it scores them as data arrives and writes its outputs
    (anomaly_score, rul, fault_class, …) as their derived signals."""
    if file is not None:
        docs = _docs(file, "deployments")
    elif name and model:
        docs = [
            {
                k: v
                for k, v in {
                    "name": name,
                    "model": model,
                    "version": version,
                    "asset": asset,
                    "asset_type": asset_type,
                    "under": under,
                    "every_s": every_s,
                }.items()
                if v is not None
            }
        ]
    else:
        fail(
            InvalidInput(
                "give a name and --model with a target (--asset, --asset-type or --under), or --file", where="arguments"
            )
        )
        return
    with services(readonly=True) as platform:
        for doc in docs:
            d = platform.live.deploy(tenant, doc, replace=replace)
            out.print(
                f"deployed {d['name']}: {d['model']} "
                f"{'v' + str(d['version']) if d['version'] else '(production version)'} on {d['target']} "
                "(a running server starts scoring within seconds)"
            )


@live_app.command("list")
def list_(tenant: TenantOpt = "demo", as_json: JsonOpt = False) -> None:
    """Deployments with their status (from the running server)."""
    rows = _from_server(f"/api/v1/{tenant}/deployments")
    if rows is None:
        with services(readonly=True) as platform:
            rows = platform.live.list(tenant)
    if as_json:
        print(json.dumps(rows, indent=1, ensure_ascii=False))
        return
    view = Table("name", "model", "target", "running", "assets", "rows scored", "newest row", "last error")
    for r in rows:
        s = r["status"]
        model = s.get("model") or {}
        view.add_row(
            r["name"],
            f"{r['model']} v{model.get('version', r['version'] or '?')}",
            ", ".join(f"{k}={v}" for k, v in r["target"].items()),
            "yes" if s.get("running") else "no",
            str(s.get("assets", "–")),
            str(s.get("rows_scored", "–")),
            str(s.get("last_row") or "–"),
            str(s.get("last_error") or "–"),
        )
    print_table(view)


@live_app.command("show")
def show(name: str, tenant: TenantOpt = "demo") -> None:
    """One deployment and its status, as JSON."""
    doc = _from_server(f"/api/v1/{tenant}/deployments/{name}")
    if doc is None:
        with services(readonly=True) as platform:
            doc = platform.live.describe(tenant, name)
    print(json.dumps(doc, indent=1, ensure_ascii=False))


@live_app.command("drift")
def drift(name: str, tenant: TenantOpt = "demo", as_json: JsonOpt = False) -> None:
    """Drift (드리프트) of a running deployment: PSI and KS of its live inputs and score against its training
    data."""
    try:
        doc = _from_server(f"/api/v1/{tenant}/deployments/{name}/drift")
    except TaehwaError as exc:
        fail(exc)
        return
    if doc is None:
        fail(InvalidInput("drift is measured by the running server; start it with `taehwa serve`", where="server"))
        return
    view = Table(
        "series",
        "PSI",
        "KS",
        "p-value",
        "training mean",
        "live mean",
        "status",
        title=f"{name}: {doc['status']} ({doc['live_rows']} live rows)",
    )
    for x in [*doc["inputs"], *([doc["output"]] if doc.get("output") else [])]:
        view.add_row(
            x["name"],
            str(x["psi"]),
            str(x["ks"]),
            f"{x['p_value']:.3g}" if x["p_value"] is not None else "–",
            f"{x['reference_mean']:.4g}" if x["reference_mean"] is not None else "–",
            f"{x['live_mean']:.4g}" if x["live_mean"] is not None else "–",
            x["status"],
        )
    print_table(view, as_json=as_json, data=doc)


@live_app.command("pause")
def pause(name: str, tenant: TenantOpt = "demo") -> None:
    """Stop scoring (the outputs keep their history); `resume` scores what came meanwhile first."""
    with services(readonly=True) as platform:
        platform.live.deployments.set_enabled(tenant, name, False)
    out.print(f"paused {name}")


@live_app.command("resume")
def resume(name: str, tenant: TenantOpt = "demo") -> None:
    """Score again, catching up on what arrived while paused."""
    with services(readonly=True) as platform:
        platform.live.deployments.set_enabled(tenant, name, True)
    out.print(f"resumed {name}")


@live_app.command("remove")
def remove(name: str, tenant: TenantOpt = "demo") -> None:
    """Remove a deployment (its outputs stay in the historian)."""
    with services(readonly=True) as platform:
        platform.live.deployments.remove(tenant, name)
    out.print(f"removed {name}")


@live_app.command("backfill")
def backfill(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    start: Annotated[str, typer.Option(help="Start of the range (ISO 8601).")],
    end: Annotated[str, typer.Option(help="End of the range (ISO 8601).")],
    version: Annotated[int | None, typer.Option(help="A version (default: production).")] = None,
    asset: Annotated[str | None, typer.Option(help="Score one asset.")] = None,
    asset_type: Annotated[str | None, typer.Option(help="Score every asset of a type.")] = None,
    under: Annotated[str | None, typer.Option(help="Score every fitting asset under a path.")] = None,
    write: Annotated[
        str,
        typer.Option(
            help="shadow: <asset>/backfill/<model>/v<n>/<output> tags; outputs: "
            "the live output tags; none: only the summary."
        ),
    ] = "shadow",
    fan_out: Annotated[
        str | None,
        typer.Option(
            "--fan-out",
            help="serial: score here; pool: over the local process pool; ray: over Ray. Default: "
            "Ray when TAEHWA_RAY_ADDRESS is set, else the pool for a long backfill.",
        ),
    ] = None,
    tenant: TenantOpt = "demo",
) -> None:
    """Score a past range as live scoring would have, to see how a model would have behaved."""
    body = {
        "model": model,
        "version": version,
        "asset": asset,
        "asset_type": asset_type,
        "under": under,
        "start": start,
        "end": end,
        "write": write,
        "fan_out": fan_out,
    }

    def local(platform: Any) -> Any:
        return platform.live.backfill(tenant, **body)

    if write == "none":
        with services(readonly=True) as platform:
            doc = local(platform)
    else:
        doc = write_call(local, "POST", f"/api/v1/{tenant}/backfill", json=body)
    out.print(
        f"{doc['rows']} rows of {doc['assets']} asset(s) scored by {doc['model']['name']} "
        f"v{doc['model']['version']} in {doc['seconds']} s; {doc['written_points']} points written to "
        f"{doc['tags']}"
    )
    print(json.dumps(doc["summary"], indent=1, ensure_ascii=False))


@live_app.command("predict")
def predict(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    rows: Annotated[str, typer.Argument(help="JSON list of {input: value} rows, or @file.json.")],
    version: Annotated[int | None, typer.Option()] = None,
    tenant: TenantOpt = "demo",
) -> None:
    """Score rows with a model, as JSON."""
    text = Path(rows[1:]).read_text() if rows.startswith("@") else rows
    try:
        data = json.loads(text)
    except ValueError as exc:
        fail(InvalidInput(f"rows are not JSON: {exc}", where="rows"))
        return
    with services(readonly=True) as platform:
        print(json.dumps(platform.live.predict(tenant, model, data, version=version), indent=1, ensure_ascii=False))


@rules_app.command("add")
def add_rules(
    file: Annotated[Path, typer.Argument(help="YAML/JSON: one rule, a list, or {rules: [...]}.")],
    replace: Annotated[bool, typer.Option(help="Replace rules of the same name.")] = False,
    tenant: TenantOpt = "demo",
) -> None:
    """Add alert rules; each is checked against the plant before it is stored."""
    with services(readonly=True) as platform:
        for doc in _docs(file, "rules"):
            rule = platform.live.rules.put(tenant, doc, replace=replace)
            out.print(f"added rule {rule.name}: {rule.describe()}")


@rules_app.command("list")
def list_rules(tenant: TenantOpt = "demo", as_json: JsonOpt = False) -> None:
    """Every alert rule."""
    with services(readonly=True) as platform:
        rules = platform.live.rules.list(tenant)
    if as_json:
        print(json.dumps([r.to_dict() for r in rules], indent=1, ensure_ascii=False))
        return
    view = Table("name", "kind", "scope", "condition", "severity", "auto-resolve")
    for r in rules:
        s = r.spec
        view.add_row(
            r.name,
            s.kind,
            s.asset_type or s.asset or s.tag or "",
            r.describe(),
            s.severity,
            "yes" if s.auto_resolve else "no",
        )
    print_table(view)


@rules_app.command("remove")
def remove_rule(name: str, tenant: TenantOpt = "demo") -> None:
    """Remove an alert rule (its alerts and their history stay)."""
    with services(readonly=True) as platform:
        platform.live.rules.remove(tenant, name)
    out.print(f"removed rule {name}")


@alerts_app.command("list")
def list_alerts(
    state: Annotated[str | None, typer.Option(help="active, acknowledged, resolved or open.")] = "open",
    asset: Annotated[str | None, typer.Option(help="This asset and everything under it.")] = None,
    severity: Annotated[str | None, typer.Option(help="warning or alarm.")] = None,
    limit: int = 100,
    tenant: TenantOpt = "demo",
    as_json: JsonOpt = False,
    ids: Annotated[
        bool,
        typer.Option(
            "--ids", help="Only the ids, one a line (for scripts: ALERT=$(taehwa live alerts list --ids | head -1))."
        ),
    ] = False,
) -> None:
    """Alerts, newest first (open ones by default)."""
    with services(readonly=True) as platform:
        rows = platform.live.alerts.list(tenant, state=state, asset=asset, severity=severity, limit=limit)
    if as_json:
        print(json.dumps(rows, indent=1, ensure_ascii=False))
        return
    if ids:
        print("\n".join(str(a["id"]) for a in rows))
        return
    view = Table("id", "severity", "state", "asset", "message", "value", "count", "raised", "shelved until")
    for a in rows:
        view.add_row(
            str(a["id"]),
            a["severity"],
            a["state"],
            a["asset"] or a["tag"] or "",
            a["message"],
            f"{a['value']:.4g}" if a["value"] is not None else "–",
            str(a["count"]),
            a["raised_at"],
            a["shelved_until"] or "–",
        )
    print_table(view)


@alerts_app.command("show")
def show_alert(alert_id: int, tenant: TenantOpt = "demo") -> None:
    """One alert with the chain that raised it and its history, as JSON."""
    with services(readonly=True) as platform:
        print(json.dumps(platform.live.alerts.get(tenant, alert_id), indent=1, ensure_ascii=False))


@alerts_app.command("ack")
def ack(alert_id: int, note: NoteOpt = None, tenant: TenantOpt = "demo") -> None:
    """Acknowledge (확인) an alert."""
    with services(readonly=True) as platform:
        a = platform.live.alerts.acknowledge(tenant, alert_id, note)
    cleared = " (its condition had already cleared: it stays resolved)" if a["state"] == "resolved" else ""
    out.print(f"alert {a['id']} acknowledged{cleared}")


@alerts_app.command("resolve")
def resolve(alert_id: int, note: NoteOpt = None, tenant: TenantOpt = "demo") -> None:
    """Resolve (해제) an alert by hand."""
    with services(readonly=True) as platform:
        a = platform.live.alerts.resolve(tenant, alert_id, note)
    out.print(f"alert {a['id']} resolved")


@alerts_app.command("shelve")
def shelve(
    alert_id: int,
    seconds: Annotated[float, typer.Option("--for", help="Seconds (at most 7 days).")],
    note: NoteOpt = None,
    tenant: TenantOpt = "demo",
) -> None:
    """Shelve (보류) an alert: hidden and silent for a while."""
    with services(readonly=True) as platform:
        a = platform.live.alerts.shelve(tenant, alert_id, seconds, note)
    out.print(f"alert {a['id']} shelved until {a['shelved_until']}")


@hooks_app.command("add")
def add_hook(
    name: str,
    url: str,
    events: Annotated[
        str, typer.Option(help="Comma-separated: raised, folded, acknowledged, shelved, unshelved, resolved.")
    ] = "raised,acknowledged,resolved",
    secret: Annotated[str | None, typer.Option(help="Key for the HMAC-SHA256 signature header.")] = None,
    tenant: TenantOpt = "demo",
) -> None:
    """Send alert notifications to a URL."""
    with services(readonly=True) as platform:
        platform.live.notifier.add(tenant, {"name": name, "url": url, "events": events.split(","), "secret": secret})
    out.print(f"added webhook {name} → {url}")


@hooks_app.command("list")
def list_hooks(tenant: TenantOpt = "demo") -> None:
    """Webhooks with undelivered messages and the last delivery error."""
    with services(readonly=True) as platform:
        print(json.dumps(platform.live.notifier.list(tenant), indent=1, ensure_ascii=False))


@hooks_app.command("remove")
def remove_hook(name: str, tenant: TenantOpt = "demo") -> None:
    """Remove a webhook (notifications not yet delivered to it are dropped)."""
    with services(readonly=True) as platform:
        platform.live.notifier.remove(tenant, name)
    out.print(f"removed webhook {name}")
