"""`taehwa lab …`: train and validate models from a spec, read runs and reports, label the plant's past, keep the
registry (모델 저장소), and run the real benchmarks.

These commands read the historian read-only and write only the metadata database and the lab folder, so they work
beside a running server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from taehwa.cli.common import JsonOpt, TenantOpt, err, fail, out, print_table, services
from taehwa.core.errors import InvalidInput, TaehwaError

lab_app = typer.Typer(
    help="The model lab (모델 / 실행 / 실험): train, validate (검증), registry, benchmarks.", no_args_is_help=True
)
labels_app = typer.Typer(
    help="Labels on assets: faults, maintenance, anomalies, lab values, failures.", no_args_is_help=True
)
models_app = typer.Typer(
    help="The registry (모델 저장소): versions, promote (운영 승격), roll back (롤백), cards.", no_args_is_help=True
)
lab_app.add_typer(labels_app, name="labels")
lab_app.add_typer(models_app, name="models")

SpecArg = Annotated[Path, typer.Argument(help="A lab spec (YAML or JSON), or a ready spec's name.")]


def _bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def _fmt(v: Any) -> str:
    return "–" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def _print_run(doc: dict[str, Any]) -> None:
    view = Table(title=f"{doc['name']} · {doc['task']} · {doc['model']['kind']} · run {doc['run_id']}")
    prod = (doc.get("production") or {}).get("metrics")
    view.add_column("metric")
    view.add_column("model", justify="right")
    view.add_column(f"baseline ({doc['baseline']['kind']})", justify="right")
    if prod:
        view.add_column(f"production v{doc['production']['version']}", justify="right")
    for k, v in doc["metrics"].items():
        if isinstance(v, int | float) or v is None:
            row = [k + (" *" if k == doc["primary_metric"] else ""), _fmt(v), _fmt(doc["baseline"]["metrics"].get(k))]
            if prod:
                row.append(_fmt(prod.get(k)))
            view.add_row(*row)
    print_table(view)
    out.print(doc["verdict"])
    out.print(
        f"data: {doc['lineage'].get('rows')} rows, {doc['lineage'].get('units')} unit(s), content hash "
        f"{str(doc['lineage'].get('content_hash'))[:16]}…"
    )
    if doc.get("registered"):
        r = doc["registered"]
        out.print(f"registered as {r['name']} v{r['version']} (candidate)")


FanOpt = Annotated[
    str | None,
    typer.Option(
        "--fan-out",
        help="Run the backtest's folds over the local process pool "
        "(pool) or Ray (ray); default in this process, or Ray when "
        "TAEHWA_RAY_ADDRESS is set.",
    ),
]


def _run(spec_path: Path, tenant: str, mode: str, as_json: bool, fan_out: str | None = None) -> None:
    from taehwa.lab.spec import load_spec

    if fan_out not in (None, "serial", "pool", "ray"):
        fail(InvalidInput("--fan-out is serial, pool or ray", where="--fan-out"))

    try:
        spec = load_spec(spec_path)
    except TaehwaError as exc:
        fail(exc)
    with services(readonly=True) as platform, _bar() as bar:
        task = bar.add_task(f"{mode} {spec.name}: backtest", total=None)
        doc = platform.lab.run(
            tenant, spec, mode=mode, backend=fan_out, progress=lambda d, n: bar.update(task, completed=d, total=n)
        )
    if as_json:
        print(json.dumps(doc, indent=1, ensure_ascii=False))
    else:
        _print_run(doc)
        out.print(f"report: {platform.lab.run_dir(tenant, doc['run_id']) / 'report.html'}")


@lab_app.command("specs")
def specs(tenant: TenantOpt = "demo") -> None:
    """The ready specs that ship with Taehwa (train one by name: `taehwa lab train pump-station-anomaly`); they
    are the same for every tenant (`-t` is accepted like on every other command)."""
    from taehwa.lab.spec import READY, ready_specs

    for name in ready_specs():
        first = (READY / f"{name}.yaml").read_text().splitlines()[0].lstrip("# ")
        out.print(f"[bold]{name}[/bold]  {first}")


@lab_app.command("train")
def train(spec: SpecArg, tenant: TenantOpt = "demo", as_json: JsonOpt = False, fan_out: FanOpt = None) -> None:
    """Backtest the spec's model and its baseline time-ordered, then fit it on all the data and keep it (and
    register it, when the spec says `register_as:`)."""
    _run(spec, tenant, "train", as_json, fan_out)


@lab_app.command("evaluate")
def evaluate(spec: SpecArg, tenant: TenantOpt = "demo", as_json: JsonOpt = False, fan_out: FanOpt = None) -> None:
    """Backtest the spec's model and its baseline time-ordered; keep the report, not a model."""
    _run(spec, tenant, "evaluate", as_json, fan_out)


@lab_app.command("sweep")
def sweep(
    spec: SpecArg,
    grid: Annotated[Path, typer.Option("--grid", help="YAML/JSON: model parameter → list of values.")],
    tenant: TenantOpt = "demo",
    ray: Annotated[
        bool, typer.Option("--ray", help="Fan out over Ray (a local instance, or the cluster at TAEHWA_RAY_ADDRESS).")
    ] = False,
    serial: Annotated[bool, typer.Option("--serial", help="One after another, in this process.")] = False,
    workers: Annotated[int | None, typer.Option(help="Process-pool size (default: one per core).")] = None,
    top: Annotated[int, typer.Option(help="How many of the best combinations to show.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Hyperparameter sweep: backtest every combination of the grid on the spec's data, over the local process
    pool (default), Ray (--ray, or whenever TAEHWA_RAY_ADDRESS is set) or serially; the same figures either way."""
    from taehwa.core.yamlio import load_yaml, plain
    from taehwa.lab.spec import load_spec

    if ray and serial:
        fail(InvalidInput("choose --ray or --serial, not both", where="backend"))
    try:
        doc_grid = plain(load_yaml(grid.read_text(), source=grid.name)) if grid.is_file() else None
    except TaehwaError as exc:
        fail(exc)
        return
    if doc_grid is None:
        fail(InvalidInput(f"no grid file at {grid}", where=str(grid)))
        return
    backend = "ray" if ray else "serial" if serial else None
    with services(readonly=True) as platform, _bar() as bar:
        task = bar.add_task("sweep", total=None)
        doc = platform.lab.sweep(
            tenant,
            load_spec(spec),
            doc_grid,
            backend=backend,
            workers=workers,
            progress=lambda d, n: bar.update(task, completed=d, total=n),
        )
    if as_json:
        print(json.dumps(doc, indent=1, ensure_ascii=False))
        return
    m = doc["primary_metric"]
    view = Table(
        "rank",
        m,
        "parameters",
        title=f"{doc['name']} · {doc['combinations']} combinations · "
        f"{doc['backend']} · {doc['seconds']} s · sweep {doc['sweep_id']}",
    )
    for i, r in enumerate(doc["results"][:top]):
        changed = {k: v for k, v in r["params"].items() if k in doc_grid}
        view.add_row(str(i + 1), _fmt(r["metrics"].get(m)), ", ".join(f"{k}={v}" for k, v in changed.items()))
    print_table(view)


@lab_app.command("runs")
def runs(
    tenant: TenantOpt = "demo",
    name: Annotated[str | None, typer.Option(help="Only runs of this spec.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The tenant's runs, newest first, with their primary figure beside the baseline's."""
    with services(readonly=True) as platform:
        rows = platform.lab.runs(tenant, name)
    if as_json:
        print(json.dumps(rows, indent=1, ensure_ascii=False))
        return
    view = Table("run", "name", "mode", "task", "model", "figure", "baseline", "by", "at")
    for r in rows:
        view.add_row(
            r["run_id"],
            r["name"],
            r["mode"],
            r["task"],
            r["model"],
            _fmt(r["primary"]),
            _fmt(r["baseline"]),
            r["created_by"],
            r["created_at"][:19],
        )
    print_table(view)


@lab_app.command("show")
def show(
    run_id: str,
    tenant: TenantOpt = "demo",
    as_json: JsonOpt = False,
    html: Annotated[Path | None, typer.Option(help="Write the HTML report here.")] = None,
) -> None:
    """One run: its figures, baseline, lineage; optionally its HTML report."""
    with services(readonly=True) as platform:
        doc = platform.lab.get_run(tenant, run_id)
        if html is not None:
            html.write_text(platform.lab.report_html(tenant, run_id))
            err.print(f"wrote {html}")
    print(json.dumps(doc, indent=1, ensure_ascii=False)) if as_json else _print_run(doc)


@lab_app.command("benchmark")
def benchmark(name: Annotated[str, typer.Argument(help="skab, cmapss or tep.")], as_json: JsonOpt = False) -> None:
    """Run a real benchmark from ../shared/data by its published protocol; ours beside the published figures."""
    from taehwa.core.settings import default_shared_data
    from taehwa.lab import benchmarks

    try:
        with _bar() as bar:
            task = bar.add_task(f"benchmark {name}", total=None)
            result = benchmarks.run(
                name, default_shared_data(), lambda _n, d, total: bar.update(task, completed=d, total=total)
            )
    except TaehwaError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(result, indent=1, ensure_ascii=False))
        return
    view = Table("figure", "ours", title=f"{name}: {result['seconds']} s")
    for k, v in result["figures"].items():
        if not isinstance(v, dict):
            view.add_row(k, _fmt(v))
    print_table(view)
    out.print_json(json.dumps(result["published"]))


# --- labels ------------------------------------------------------------------------------------------------------
@labels_app.command("add")
def labels_add(
    asset: str,
    kind: str,
    start: str,
    end: Annotated[str | None, typer.Option(help="End of an interval (none: a point).")] = None,
    value: Annotated[float | None, typer.Option(help="A value (a lab measurement).")] = None,
    note: Annotated[str | None, typer.Option()] = None,
    tenant: TenantOpt = "demo",
) -> None:
    """Add one label on an asset: an interval (fault, maintenance, anomaly) or a point (failure, lab value)."""
    with services(readonly=True) as platform:
        n = platform.labels.add(
            tenant,
            [{"asset": asset, "kind": kind, "start": start, "end": end, "value": value, "note": note}],
            source="label",
        )
    out.print(f"added {n} label")


@labels_app.command("import")
def labels_import(path: Path, tenant: TenantOpt = "demo") -> None:
    """Import labels from CSV (header: asset,kind,start[,end,value,note]); a bad row refuses the whole file."""
    if not path.is_file():
        err.print(f"[red]error[/red]: no file at {path}")
        raise typer.Exit(2)
    with services(readonly=True) as platform:
        n = platform.labels.import_csv(tenant, path.read_text(), source=path.name)
    out.print(f"imported {n} labels from {path.name}")


@labels_app.command("list")
def labels_list(
    tenant: TenantOpt = "demo",
    asset: Annotated[str | None, typer.Option()] = None,
    kind: Annotated[str | None, typer.Option()] = None,
    as_json: JsonOpt = False,
) -> None:
    """Labels of the tenant (under an asset, of a kind)."""
    with services(readonly=True) as platform:
        rows = [lb.to_dict() for lb in platform.labels.list_labels(tenant, asset=asset, kind=kind)]
    if as_json:
        print(json.dumps(rows, indent=1, ensure_ascii=False))
        return
    view = Table("id", "asset", "kind", "start", "end", "value", "by")
    for r in rows:
        view.add_row(str(r["id"]), r["asset"], r["kind"], r["start"], r["end"] or "", _fmt(r["value"]), r["created_by"])
    print_table(view)


# --- registry ----------------------------------------------------------------------------------------------------
@models_app.command("list")
def models_list(
    tenant: TenantOpt = "demo", name: Annotated[str | None, typer.Option()] = None, as_json: JsonOpt = False
) -> None:
    """Model versions and their stage (candidate, production, archived)."""
    with services(readonly=True) as platform:
        rows = platform.lab.versions(tenant, name)
    if as_json:
        print(json.dumps(rows, indent=1, ensure_ascii=False))
        return
    view = Table("model", "version", "stage", "asset type", "run", "by", "at")
    for r in rows:
        view.add_row(
            r["name"],
            str(r["version"]),
            r["stage"],
            r["asset_type"] or "",
            r["run_id"],
            r["created_by"],
            r["created_at"][:19],
        )
    print_table(view)


@models_app.command("register")
def models_register(
    run_id: str,
    name: str,
    tenant: TenantOpt = "demo",
    asset_type: Annotated[str | None, typer.Option(help="The asset type it is for.")] = None,
) -> None:
    """Register a training run's model as a new candidate version."""
    with services(readonly=True) as platform:
        r = platform.lab.register(tenant, run_id, name, asset_type)
    out.print(f"registered {r['name']} v{r['version']} (candidate)")


@models_app.command("promote")
def models_promote(
    name: str,
    version: int,
    reason: Annotated[str, typer.Option(help="Why (recorded).")],
    tenant: TenantOpt = "demo",
    force: Annotated[bool, typer.Option(help="Past the gate (tenant admins; recorded).")] = False,
) -> None:
    """Promote a version to production (운영 승격) through the gate: it must beat the baseline and production."""
    with services(readonly=True) as platform:
        r = platform.lab.promote(tenant, name, version, reason, force=force)
    out.print(
        f"{r['name']} v{r['version']} is in production (was v{r['previous']})"
        if r["previous"]
        else f"{r['name']} v{r['version']} is in production"
    )


@models_app.command("rollback")
def models_rollback(
    name: str, reason: Annotated[str, typer.Option(help="Why (recorded).")], tenant: TenantOpt = "demo"
) -> None:
    """Put back the version that was in production before the current one (롤백)."""
    with services(readonly=True) as platform:
        r = platform.lab.rollback(tenant, name, reason)
    out.print(f"{r['name']} v{r['version']} is in production again (v{r['from']} archived)")


@models_app.command("card")
def models_card(name: str, version: int, tenant: TenantOpt = "demo") -> None:
    """The model card of a version: purpose, data, figures against baseline and production, history."""
    with services(readonly=True) as platform:
        card = platform.lab.card(tenant, name, version)
    print(json.dumps(card, indent=1, ensure_ascii=False))


@models_app.command("history")
def models_history(name: str, tenant: TenantOpt = "demo") -> None:
    """Every registration, promotion, refusal and rollback of a model, with who and why."""
    with services(readonly=True) as platform:
        print(json.dumps(platform.lab.history(tenant, name), indent=1, ensure_ascii=False))
