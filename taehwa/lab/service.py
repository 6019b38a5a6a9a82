"""The lab service: run a spec (train or evaluate), keep the run, its report and its model, and the registry of
model versions with its promotion gate. The CLI, the HTTP API and Python all call this, nothing else."""

from __future__ import annotations

import json
import pickle
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Connection, insert, select, update

from taehwa.core.errors import Conflict, InvalidInput, NotFound
from taehwa.db import lab_runs, model_events, model_versions
from taehwa.lab import metrics as M
from taehwa.lab.datasets import Dataset, EventRows, build_dataset
from taehwa.lab.models import BASELINES
from taehwa.lab.records import (
    GateReport,
    ModelCard,
    ModelEvent,
    ModelVersion,
    Promotion,
    RegisteredVersion,
    Rollback,
    RunSummary,
)
from taehwa.lab.report import render_html
from taehwa.lab.spec import Spec, parse_spec
from taehwa.lab.tracking import Tracker
from taehwa.lab.validation import Pipeline, Progress, backtest, blind_baselines, informative, training_part
from taehwa.tenancy.access import current

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import Engine

    from taehwa.core.settings import Settings
    from taehwa.historian.store import Historian
    from taehwa.lab.labels import LabelService
    from taehwa.tenancy.audit import AuditLog
    from taehwa.tenancy.files import FileRoots
    from taehwa.tenancy.tenants import TenantService
    from taehwa.twin.service import TwinService


class LabService:
    """Runs, reports, models and the registry of one platform."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine,
        historian: Historian,
        tenants: TenantService,
        audit: AuditLog,
        twin: TwinService,
        labels: LabelService,
        files: FileRoots,
        quota: Callable[[str, str], None] | None = None,
        events: EventRows | None = None,
    ) -> None:
        """Each collaborator named: the metadata database (runs, registry), the historian, the twin, labels and
        tenant files (what datasets are read from: this service is their `datasets.Sources`), tenancy and audit;
        `quota(tenant, kind)` raises when the city's compute quota leaves no room for a run or sweep; `events`
        reads closed event frames as labels (`labels.events` of a spec)."""
        self._quota = quota
        self._events = events  # closed event frames as label rows (the analytics' event store), when there are any
        self.historian, self.twin, self.labels, self.files = historian, twin, labels, files
        self.tenants, self.audit = tenants, audit
        self.settings = settings
        self.root = settings.data_dir / "lab"
        self.tracker = Tracker(self.root / "mlflow")
        self._engine = engine
        self.registry_generation = 0  # bumped by every registry change here, so caches of it know to look again

    # --- runs ---------------------------------------------------------------------------------------------------
    def run_dir(self, tenant: str, run_id: str) -> Path:
        return self.root / "runs" / tenant / run_id

    def run(
        self,
        tenant: str,
        spec: Spec | dict[str, Any],
        *,
        mode: str = "train",
        progress: Progress | None = None,
        track: bool = True,
        backend: str | None = None,
    ) -> dict[str, Any]:
        """Build the dataset, backtest the model and the baseline (and the production version, if any) on it, and
        for `train` fit the model on all of it and keep it. Returns the run's document. The model's backtest folds
        run in this process, or fan out (`backend` pool or ray; ray by default when TAEHWA_RAY_ADDRESS is set)."""
        from taehwa.lab.fanout import choose_backend

        backend = choose_backend(backend, settings=self.settings, small=True)
        if mode not in ("train", "evaluate"):
            raise InvalidInput("mode is train or evaluate", where="mode")
        self.tenants.require(tenant, "write")
        if self._quota is not None:
            self._quota(tenant, "lab")
        spec = spec if isinstance(spec, Spec) else parse_spec(spec)
        started = time.perf_counter()
        data = self.dataset(spec, tenant)
        result = backtest(spec, data, spec.model.kind, spec.model.params, progress=progress, backend=backend)
        base_spec = spec.baseline or None
        base_kind = base_spec.kind if base_spec else BASELINES[spec.task]
        base = backtest(spec, data, base_kind, base_spec.params if base_spec else {})
        production = self._production_on(tenant, spec, data)
        run_id = secrets.token_hex(8)
        primary = M.PRIMARY[spec.task]
        doc: dict[str, Any] = {
            "run_id": run_id,
            "tenant": tenant,
            "name": spec.name,
            "mode": mode,
            "task": spec.task,
            "model": {"kind": spec.model.kind, "params": spec.model.params},
            "split": spec.split.model_dump(),
            "primary_metric": primary,
            "metrics": M.json_safe(result.metrics),
            "folds": result.folds,
            "backend": backend,
            "baseline": {"kind": base_kind, "metrics": M.json_safe(base.metrics)},
            "production": production,
            "lineage": M.json_safe(data.lineage),
            "created_by": current().user,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "spec": spec.model_dump(mode="json"),
        }
        if spec.task == "anomaly":
            blind = M.json_safe(blind_baselines(spec, result))
            doc.update(
                {"label_free": result.label_free, "blind": blind, "informative": informative(doc["metrics"], blind)}
            )
        doc["gate"] = self._judge(doc)
        doc["beats_baseline"] = (
            self._beats(doc["gate"]["metric"], doc["metrics"], doc["baseline"]["metrics"])
            if not doc.get("label_free")
            else doc["gate"]["passed"]
        )
        doc["verdict"] = self._verdict(doc)
        folder = self.run_dir(tenant, run_id)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_rows(folder / "rows.parquet", result.rows)
        doc["rows"] = {
            "file": "rows.parquet",
            "count": len(result.rows),
            "url": f"/api/v1/{tenant}/lab/runs/{run_id}/rows",
        }
        if mode == "train":
            pipe = Pipeline(spec.task, spec.features, spec.model.kind, spec.model.params, data.signals, spec.alarm)
            frame = data.frame
            rows = None
            if spec.split.fit_on == "train":
                rows = training_part(spec, frame)
            if spec.task == "anomaly" and spec.split.normal_only and "target" in frame.columns:
                normal = frame["target"].to_numpy().astype(float) == 0
                rows = normal if rows is None else rows & normal
            pipe.fit(frame, rows)
            doc["fitted_on"] = {"part": spec.split.fit_on, "rows": int(len(frame) if rows is None else rows.sum())}
            if pipe.alarm is not None:
                doc["alarm"] = M.json_safe(pipe.alarm.to_dict())
            (folder / "model.pkl").write_bytes(pickle.dumps(pipe))
        doc["seconds"] = round(time.perf_counter() - started, 3)
        (folder / "report.json").write_text(json.dumps(doc, indent=1))
        (folder / "report.html").write_text(render_html(doc, result.rows))
        if track:
            numeric = {k: v for k, v in doc["metrics"].items() if isinstance(v, int | float) and v is not None}
            numeric.update(
                {
                    f"baseline_{k}": v
                    for k, v in doc["baseline"]["metrics"].items()
                    if isinstance(v, int | float) and v is not None
                }
            )
            doc["mlflow_run"] = self.tracker.log_run(
                tenant,
                spec.name,
                params={"spec": doc["spec"]},
                metrics=numeric,
                tags={
                    "taehwa.run": run_id,
                    "taehwa.mode": mode,
                    "taehwa.content_hash": str(data.lineage.get("content_hash")),
                    "taehwa.tags": ",".join(data.lineage.get("tags", []))[:4000],
                },
                artifacts=[
                    p for p in (folder / "report.json", folder / "report.html", folder / "model.pkl") if p.exists()
                ],
            )
            (folder / "report.json").write_text(json.dumps(doc, indent=1))
        with self._engine.begin() as c:
            c.execute(
                insert(lab_runs).values(
                    id=run_id,
                    tenant=tenant,
                    name=spec.name,
                    mode=mode,
                    task=spec.task,
                    model_kind=spec.model.kind,
                    spec=doc["spec"],
                    lineage=doc["lineage"],
                    metrics=doc["metrics"],
                    baseline=doc["baseline"],
                    production=production,
                    mlflow_run=doc.get("mlflow_run"),
                    created_by=doc["created_by"],
                    created_at=datetime.now(UTC),
                    seconds=doc["seconds"],
                )
            )
        self.audit.append(
            f"lab.{mode}",
            tenant=tenant,
            target=f"{spec.name} run {run_id}",
            after={primary: doc["metrics"].get(primary), "content_hash": data.lineage.get("content_hash")},
        )
        if mode == "train" and spec.register_as is not None:
            doc["registered"] = self.register(tenant, run_id, spec.register_as.name, spec.register_as.asset_type)
        return doc

    def sweep(
        self,
        tenant: str,
        spec: Spec | dict[str, Any],
        grid: dict[str, Any],
        *,
        backend: str | None = None,
        workers: int | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Backtest every combination of `grid` (the spec's model parameters) on one dataset, fanned out over the
        local process pool or Ray (`backend`: serial, pool, ray; default pool, or ray when TAEHWA_RAY_ADDRESS is
        set). Kept as a report; the best combination can then be trained as a normal run."""
        from taehwa.lab import fanout
        from taehwa.lab import sweep as sw

        self.tenants.require(tenant, "write")
        if self._quota is not None:
            self._quota(tenant, "sweep")
        spec = spec if isinstance(spec, Spec) else parse_spec(spec)
        combos = sw.combinations(spec, grid)
        chosen = fanout.choose_backend(backend, settings=self.settings)
        started = time.perf_counter()
        data = self.dataset(spec, tenant)
        figures = fanout.run_all(
            sw.job,
            combos,
            (spec, data),
            backend=chosen,
            workers=workers,
            progress=progress,
        )
        primary = M.PRIMARY[spec.task]
        results = [{"params": p, "metrics": M.json_safe(f)} for p, f in zip(combos, figures, strict=True)]
        lower = primary in M.LOWER_IS_BETTER
        ranked = sorted(
            results,
            key=lambda r: (
                r["metrics"].get(primary) is None,
                (1 if lower else -1) * (r["metrics"].get(primary) or 0.0),
            ),
        )
        sweep_id = secrets.token_hex(8)
        doc = {
            "sweep_id": sweep_id,
            "tenant": tenant,
            "name": spec.name,
            "task": spec.task,
            "model": spec.model.kind,
            "primary_metric": primary,
            "backend": chosen,
            "combinations": len(combos),
            "seconds": round(time.perf_counter() - started, 3),
            "best": ranked[0] if ranked else None,
            "results": ranked,
            "lineage": M.json_safe(data.lineage),
            "created_by": current().user,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        folder = self.root / "sweeps" / tenant
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        (folder / f"{sweep_id}.json").write_text(json.dumps(doc, indent=1))
        self.audit.append(
            "lab.sweep",
            tenant=tenant,
            target=f"{spec.name} sweep {sweep_id}",
            after={
                "combinations": len(combos),
                "backend": chosen,
                primary: (doc["best"] or {}).get("metrics", {}).get(primary),
            },
        )
        return doc

    def event_spans(self, tenant: str, templates: list[str], start_us: int | None, end_us: int | None) -> list[Any]:
        """Closed event frames of these templates as label rows (what `labels.events` of a spec names)."""
        if self._events is None:
            raise InvalidInput("event frames are not available to this lab", where="labels.events")
        return self._events.spans(tenant, templates, start_us, end_us)

    def event_frames(self, tenant: str, template: str, start_us: int, end_us: int) -> list[dict[str, Any]]:
        """Closed event frames of a template with their statistics (a spec whose `data.source` is events)."""
        if self._events is None:
            raise InvalidInput("event frames are not available to this lab", where="data.source")
        return self._events.closed_frames(tenant, template, start_us, end_us)

    def dataset(self, spec: Spec, tenant: str) -> Dataset:
        """The dataset a spec names (a file's rows cut to data.start/end there, with the lineage of the rows kept)."""
        return build_dataset(spec, self, tenant)

    @staticmethod
    def _beats(metric: str, a: dict[str, Any], b: dict[str, Any]) -> bool:
        x, y = a.get(metric), b.get(metric)
        return x is not None and (y is None or M.better(metric, float(x), float(y)))

    def _judge(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The gate's criterion for a run, from its document alone: a label-free anomaly run by its false alarms on
        held-out normal running against the spec's target (and the data-blind detectors must fail that target, or
        it says nothing); a labelled anomaly run by its primary figure, or, where a data-blind detector matches or
        beats the model on it ("not informative here"), by the first informative one of event F1, NAB and balanced
        accuracy; every other task by its primary figure. The model must beat the baseline on that figure."""
        m = doc["primary_metric"]
        metrics, base = doc["metrics"], doc["baseline"]["metrics"]
        if doc["task"] == "anomaly" and doc.get("label_free"):
            return _judge_label_free(doc)
        notes: list[str] = []
        if doc["task"] == "anomaly" and "informative" in doc:
            info = doc["informative"]
            order = [m, *[x for x in ("event_f1", "nab_standard", "balanced_accuracy") if x != m]]
            chosen = next((x for x in order if info.get(x, {}).get("informative")), None)
            for x in order[: order.index(chosen) if chosen else len(order)]:
                if x in info:
                    notes.append(
                        f"{x} not informative here ({_blind_name(info[x]['beaten_by'])} scores "
                        f"{info[x]['value']:.4g} against the model's {_fmt(metrics.get(x))})"
                    )
            if chosen is None:
                return {
                    "criterion": "labelled anomalies",
                    "metric": m,
                    "passed": False,
                    "notes": notes,
                    "reasons": ["no figure tells the model from a data-blind detector: " + "; ".join(notes)],
                    "text": "labelled anomalies: no informative figure",
                }
            m = chosen
        ours, theirs = metrics.get(m), base.get(m)
        passed = self._beats(m, metrics, base)
        label = "labelled anomalies: " if doc["task"] == "anomaly" else ""
        text = f"{label}{m} {_fmt(ours)} against the baseline's {_fmt(theirs)} ({doc['baseline']['kind']})"
        return {
            "criterion": "labelled anomalies" if doc["task"] == "anomaly" else m,
            "metric": m,
            "passed": passed,
            "notes": notes,
            "text": text,
            "reasons": [] if passed else [f"{m} {_fmt(ours)} does not beat the baseline's {_fmt(theirs)}"],
        }

    def _verdict(self, doc: dict[str, Any]) -> str:
        g = doc["gate"]
        m = g["metric"]
        text = str(g["text"]) + ("" if not g.get("notes") else " — " + "; ".join(g["notes"]))
        prod = doc.get("production") or {}
        if prod.get("metrics"):
            p = prod["metrics"].get(m)
            text += f"; production v{prod['version']}'s {m} {_fmt(p)} on the same data"
        return text

    def _production_on(self, tenant: str, spec: Spec, data: Dataset) -> dict[str, Any] | None:
        """The current production version of this spec's registered name, backtested on the same data."""
        if spec.register_as is None:
            return None
        prod = self._production(tenant, spec.register_as.name)
        if prod is None:
            return None
        run = self.get_run(tenant, prod.run_id)
        pspec = parse_spec(run["spec"])
        try:
            figures = backtest(
                spec.model_copy(update={"features": pspec.features}), data, pspec.model.kind, pspec.model.params
            ).metrics
        except InvalidInput as exc:
            return {"version": prod.version, "run_id": prod.run_id, "error": str(exc)}
        return {"version": prod.version, "run_id": prod.run_id, "metrics": M.json_safe(figures)}

    def runs(self, tenant: str, name: str | None = None, limit: int = 100) -> list[RunSummary]:
        self.tenants.require(tenant)
        q = select(lab_runs).where(lab_runs.c.tenant == tenant)
        if name:
            q = q.where(lab_runs.c.name == name)
        with self._engine.connect() as c:
            rows = c.execute(q.order_by(lab_runs.c.created_at.desc()).limit(max(1, min(limit, 1000)))).all()
        return [
            {
                "run_id": r.id,
                "name": r.name,
                "mode": r.mode,
                "task": r.task,
                "model": r.model_kind,
                "primary": (r.metrics or {}).get(M.PRIMARY[r.task]),
                "baseline": ((r.baseline or {}).get("metrics") or {}).get(M.PRIMARY[r.task]),
                "created_by": r.created_by,
                "created_at": r.created_at.isoformat(),
                "seconds": r.seconds,
            }
            for r in rows
        ]

    def get_run(self, tenant: str, run_id: str) -> dict[str, Any]:
        self.tenants.require(tenant)
        path = self.run_dir(tenant, _safe_id(run_id)) / "report.json"
        if not path.exists():
            raise NotFound(f"no run {run_id!r} in tenant {tenant!r}", where="run")
        doc: dict[str, Any] = json.loads(path.read_text())
        return doc

    def rows_path(self, tenant: str, run_id: str) -> Path:
        """The Parquet file of a run's out-of-sample rows (time, unit, target, pred, score, fold)."""
        self.get_run(tenant, run_id)
        path = self.run_dir(tenant, _safe_id(run_id)) / "rows.parquet"
        if not path.exists():
            raise NotFound(f"run {run_id!r} kept no per-row output (it predates it)", where="run")
        return path

    def report_html(self, tenant: str, run_id: str) -> str:
        self.get_run(tenant, run_id)
        return (self.run_dir(tenant, _safe_id(run_id)) / "report.html").read_text()

    def load_model(self, tenant: str, run_id: str) -> Pipeline:
        self.get_run(tenant, run_id)
        path = self.run_dir(tenant, _safe_id(run_id)) / "model.pkl"
        if not path.exists():
            raise NotFound(f"run {run_id!r} was an evaluation: it kept no model", where="run")
        pipe: Pipeline = pickle.loads(path.read_bytes())
        return pipe

    # --- registry -------------------------------------------------------------------------------------------------
    def _production(self, tenant: str, name: str) -> Any:
        with self._engine.connect() as c:
            return c.execute(
                select(model_versions).where(
                    (model_versions.c.tenant == tenant)
                    & (model_versions.c.name == name)
                    & (model_versions.c.stage == "production")
                )
            ).first()

    def _event(
        self, c: Any, tenant: str, name: str, version: int, action: str, reason: str | None, detail: dict[str, Any]
    ) -> None:
        c.execute(
            insert(model_events).values(
                tenant=tenant,
                name=name,
                version=version,
                action=action,
                actor=current().user,
                reason=reason,
                detail=M.json_safe(detail),
                at=datetime.now(UTC),
            )
        )

    def register(self, tenant: str, run_id: str, name: str, asset_type: str | None = None) -> RegisteredVersion:
        """A new candidate version of model `name` from a training run."""
        self.tenants.require(tenant, "write")
        run = self.get_run(tenant, run_id)
        if run["mode"] != "train":
            raise InvalidInput("only a training run has a model to register", where="run")
        if asset_type is not None:
            types = self.twin.plant(tenant).types
            if asset_type not in types:
                raise NotFound(f"unknown asset type {asset_type!r}", where="asset_type")
        with self._engine.begin() as c:
            last = c.execute(
                select(model_versions.c.version)
                .where((model_versions.c.tenant == tenant) & (model_versions.c.name == name))
                .order_by(model_versions.c.version.desc())
                .limit(1)
            ).scalar()
            version = (last or 0) + 1
            c.execute(
                insert(model_versions).values(
                    tenant=tenant,
                    name=name,
                    version=version,
                    asset_type=asset_type,
                    run_id=run_id,
                    stage="candidate",
                    created_by=current().user,
                    created_at=datetime.now(UTC),
                )
            )
            self._event(c, tenant, name, version, "register", None, {"run_id": run_id})
        self.registry_generation += 1
        self.audit.append(
            "model.register",
            tenant=tenant,
            target=f"{name} v{version}",
            after={"run_id": run_id, "asset_type": asset_type},
        )
        return {"name": name, "version": version, "stage": "candidate", "run_id": run_id}

    def versions(self, tenant: str, name: str | None = None) -> list[ModelVersion]:
        self.tenants.require(tenant)
        q = select(model_versions).where(model_versions.c.tenant == tenant)
        if name:
            q = q.where(model_versions.c.name == name)
        with self._engine.connect() as c:
            rows = c.execute(q.order_by(model_versions.c.name, model_versions.c.version)).all()
        if name and not rows:
            raise NotFound(f"no model {name!r} in tenant {tenant!r}", where="model")
        return [
            {
                "name": r.name,
                "version": r.version,
                "stage": r.stage,
                "asset_type": r.asset_type,
                "run_id": r.run_id,
                "created_by": r.created_by,
                "created_at": r.created_at.isoformat(),
            }
            for r in rows
        ]

    def history(self, tenant: str, name: str) -> list[ModelEvent]:
        self.tenants.require(tenant)
        with self._engine.connect() as c:
            rows = c.execute(
                select(model_events)
                .where((model_events.c.tenant == tenant) & (model_events.c.name == name))
                .order_by(model_events.c.id)
            ).all()
        return [
            {
                "version": r.version,
                "action": r.action,
                "actor": r.actor,
                "reason": r.reason,
                "detail": r.detail,
                "at": r.at.isoformat(),
            }
            for r in rows
        ]

    def _version(self, tenant: str, name: str, version: int) -> Any:
        with self._engine.connect() as c:
            row = c.execute(
                select(model_versions).where(
                    (model_versions.c.tenant == tenant)
                    & (model_versions.c.name == name)
                    & (model_versions.c.version == version)
                )
            ).first()
        if row is None:
            raise NotFound(f"no version {version} of model {name!r}", where="version")
        return row

    def gate(self, tenant: str, name: str, version: int) -> tuple[bool, list[str]]:
        """Whether a version may go to production, and why not (see `gate_report`)."""
        report = self.gate_report(tenant, name, version)
        return report["passed"], report["reasons"]

    def gate_report(self, tenant: str, name: str, version: int) -> GateReport:
        """Whether a version may go to production and by which criterion (`_judge`): it must pass its criterion
        and beat the current production version on the same validation data (its own training run's backtest,
        where production was re-run); a label-free one must not alarm more often than production does."""
        row = self._version(tenant, name, version)
        run = self.get_run(tenant, row.run_id)
        judged = run.get("gate") or self._judge(run)
        m = judged["metric"]
        ours = run["metrics"].get(m)
        reasons = list(judged["reasons"])
        prod = self._production(tenant, name)
        if prod is not None and prod.version != version:
            rec = run.get("production") or {}
            if rec.get("version") != prod.version or "metrics" not in rec:
                reasons.append(
                    f"it was not validated against the current production version v{prod.version} "
                    f"on the same data; train it again so both are backtested together"
                )
            elif run.get("label_free"):
                theirs = rec["metrics"].get(m)
                if ours is None or (theirs is not None and float(ours) > float(theirs)):
                    reasons.append(
                        f"{m} {_fmt(ours)} is more than production v{prod.version}'s {_fmt(theirs)} on the same data"
                    )
            elif not self._beats(m, run["metrics"], rec["metrics"]):
                reasons.append(
                    f"{m} {_fmt(ours)} does not beat production v{prod.version}'s "
                    f"{_fmt(rec['metrics'].get(m))} on the same data"
                )
        return {
            "passed": not reasons,
            "criterion": judged["criterion"],
            "metric": m,
            "text": judged["text"],
            "notes": judged.get("notes", []),
            "reasons": reasons,
        }

    def promote(self, tenant: str, name: str, version: int, reason: str, *, force: bool = False) -> Promotion:
        """Make a version the production one, through the gate; the previous one is archived."""
        self.tenants.require(tenant, "admin" if force else "write")
        if not reason or not reason.strip():
            raise InvalidInput("say why (a reason is recorded with every promotion)", where="reason")
        row = self._version(tenant, name, version)
        if row.stage == "production":
            raise Conflict(f"{name} v{version} is already in production", where="version")
        report = self.gate_report(tenant, name, version)
        ok, why = report["passed"], report["reasons"]
        if not ok and not force:
            with self._engine.begin() as c:
                self._event(c, tenant, name, version, "refused", reason, {"why": why, "criterion": report["criterion"]})
            raise Conflict(
                f"the gate refuses {name} v{version} ({report['criterion']}): " + "; ".join(why), where="gate"
            )
        prev = self._production(tenant, name)
        with self._engine.begin() as c:
            _set_stage(c, tenant, name, model_versions.c.stage == "production", "archived")
            _set_stage(c, tenant, name, model_versions.c.version == version, "production")
            self._event(
                c,
                tenant,
                name,
                version,
                "promote",
                reason,
                {
                    "previous": prev.version if prev else None,
                    "gate": why or "passed",
                    "forced": force,
                    "criterion": report["criterion"],
                    "judged": report["text"],
                },
            )
        self.registry_generation += 1
        self.audit.append(
            "model.promote",
            tenant=tenant,
            target=f"{name} v{version}",
            before={"production": prev.version if prev else None},
            after={"production": version, "reason": reason, "forced": force},
        )
        return {
            "name": name,
            "version": version,
            "stage": "production",
            "previous": prev.version if prev else None,
            "gate": {
                "passed": ok,
                "forced": force and not ok,
                "criterion": report["criterion"],
                "judged": report["text"],
                "notes": report["notes"],
                "reasons": why,
            },
        }

    def rollback(self, tenant: str, name: str, reason: str) -> Rollback:
        """Put back the version that was in production before the current one."""
        self.tenants.require(tenant, "write")
        if not reason or not reason.strip():
            raise InvalidInput("say why (a reason is recorded with every rollback)", where="reason")
        prod = self._production(tenant, name)
        if prod is None:
            raise Conflict(f"model {name!r} has no production version to roll back", where="model")
        history = self.history(tenant, name)  # read once, before the write transaction
        previous = [e for e in history if e["action"] in ("promote", "rollback") and e["version"] == prod.version]
        back_to = previous[-1]["detail"].get("previous") if previous else None
        if back_to is None:
            raise Conflict(
                f"{name} v{prod.version} was the first in production: nothing to roll back to", where="model"
            )
        # the version rolled back to remembers what was before it, so rollbacks chain
        before = [e for e in history if e["action"] in ("promote", "rollback") and e["version"] == back_to]
        with self._engine.begin() as c:
            _set_stage(c, tenant, name, model_versions.c.version == prod.version, "archived")
            _set_stage(c, tenant, name, model_versions.c.version == back_to, "production")
            self._event(
                c,
                tenant,
                name,
                back_to,
                "rollback",
                reason,
                {"from": prod.version, "previous": before[-1]["detail"].get("previous") if before else None},
            )
        self.registry_generation += 1
        self.audit.append(
            "model.rollback",
            tenant=tenant,
            target=name,
            before={"production": prod.version},
            after={"production": back_to, "reason": reason},
        )
        return {"name": name, "version": back_to, "stage": "production", "from": prod.version}

    def card(self, tenant: str, name: str, version: int) -> ModelCard:
        """The model card: what it is for, what it learnt from, how well it did against what, and its history."""
        self.tenants.require(tenant)
        row = self._version(tenant, name, version)
        run = self.get_run(tenant, row.run_id)
        m = run["primary_metric"]
        return {
            "model": name,
            "version": version,
            "stage": row.stage,
            "asset_type": row.asset_type,
            "task": run["task"],
            "description": run["spec"].get("description"),
            "kind": run["model"]["kind"],
            "parameters": run["model"]["params"],
            "features": run["spec"]["features"],
            "trained_by": run["created_by"],
            "trained_at": run["created_at"],
            "data": run["lineage"],
            "validation": {
                "split": run["split"],
                "folds": run["folds"],
                "primary_metric": m,
                "metrics": run["metrics"],
                "baseline": run["baseline"],
                "production": run["production"],
            },
            "limitations": _limitations(run),
            "history": [e for e in self.history(tenant, name) if e["version"] == version],
            "report": f"/api/v1/{tenant}/lab/runs/{row.run_id}/report",
        }


def _fmt(v: Any) -> str:
    """A figure as the gate's sentences show it."""
    return "none" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def _blind_name(kind: str) -> str:
    """A data-blind detector's name in words."""
    return {"always_on": "always-on", "never_on": "never-on", "clock": "a periodic clock"}.get(kind, kind)


def _judge_label_free(doc: dict[str, Any]) -> dict[str, Any]:
    """The label-free criterion (see LabService._judge)."""
    m = doc["metrics"]
    gate = doc["spec"].get("gate") or {}
    target, share = float(gate.get("false_alarms_per_day", 1.0)), float(gate.get("max_alarm_share", 0.01))
    fa, hours = m.get("false_alarms_per_day"), float(m.get("normal_hours") or 0.0)
    text = (
        f"label-free: false alarms on {hours:.3g} h of held-out normal running: {m.get('alarm_episodes')} "
        f"episode(s), {_fmt(fa)}/day (95 % upper bound {_fmt(m.get('false_alarms_per_day_upper95'))}/day), "
        f"{100 * float(m.get('flagged_share') or 0):.3g} % of the time in alarm, against a target of at most "
        f"{target:g}/day and {100 * share:g} %"
    )
    reasons = []
    if fa is None or float(fa) > target:
        reasons.append(f"{_fmt(fa)} false alarms a day on held-out normal running is over the target of {target:g}")
    if float(m.get("flagged_share") or 0.0) > share:
        reasons.append(
            f"{100 * float(m.get('flagged_share') or 0):.3g} % of held-out normal running in alarm is "
            f"over the target of {100 * share:g} %"
        )

    def meets(figures: dict[str, Any]) -> bool:
        return (
            float(figures.get("false_alarms_per_day") or 0.0) <= target
            and float(figures.get("flagged_share") or 0.0) <= share
        )

    blind = doc.get("blind") or {}
    loose = [_blind_name(k) for k in ("always_on", "clock") if meets(blind.get(k) or {})]
    if loose:
        reasons.append(
            f"{' and '.join(loose)} meet(s) that target too: {hours:.3g} h of held-out normal running "
            "cannot tell a detector from one that ignores the data"
        )
    rates = ", ".join(
        f"{_blind_name(k)} {_fmt((blind.get(k) or {}).get('false_alarms_per_day'))}/day and "
        f"{100 * float((blind.get(k) or {}).get('flagged_share') or 0):.3g} % in alarm"
        for k in ("always_on", "clock")
        if k in blind
    )
    notes = [
        f"data-blind detectors: {rates}" if rates else "no data-blind detectors recorded",
        "never-on meets any false-alarm target: without labelled anomalies the detection rate is unknown",
    ]
    return {
        "criterion": "false alarms on held-out normal running (label-free)",
        "metric": "false_alarms_per_day",
        "passed": not reasons,
        "reasons": reasons,
        "notes": notes,
        "text": text,
    }


def _write_rows(path: Path, rows: Any) -> None:
    """The out-of-sample rows as Parquet (decisions of fault models as text)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = rows.copy()
    if "pred" in frame.columns and frame["pred"].dtype == object:
        frame["pred"] = frame["pred"].astype(str)
    if "target" in frame.columns and frame["target"].dtype == object:
        frame["target"] = frame["target"].astype(str)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def _limitations(run: dict[str, Any]) -> list[str]:
    out = [
        f"validated on {run['lineage'].get('rows')} rows of {run['lineage'].get('units')} unit(s) from "
        f"{run['lineage'].get('source')} data only; behaviour outside that range of operation is unknown"
    ]
    if not run.get("beats_baseline"):
        out.append("it does not beat the trivial baseline on its validation data")
    if run["task"] == "anomaly" and "f1" not in run["metrics"]:
        out.append(
            "no anomaly labels were available: precision and recall are unknown; it was judged by its false "
            "alarms on held-out normal running only"
        )
    return out


def _safe_id(run_id: str) -> str:
    if not run_id.isalnum() or len(run_id) > 32:
        raise NotFound(f"no run {run_id!r}", where="run")
    return run_id


def _set_stage(c: Connection, tenant: str, name: str, which: ColumnElement[bool], stage: str) -> None:
    """Move the versions of one model that `which` picks to `stage` (inside the caller's transaction)."""
    c.execute(
        update(model_versions)
        .where((model_versions.c.tenant == tenant) & (model_versions.c.name == name) & which)
        .values(stage=stage)
    )
