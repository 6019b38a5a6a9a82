"""HTTP routes of the model lab: labels, train/evaluate from a spec, runs and their reports, the registry with its
gate, model cards. Thin: every decision (access, validation, the gate) is the lab service's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, Depends, FastAPI, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from taehwa.api.responses import BoundedRoute
from taehwa.core.errors import InvalidInput, UnsupportedMediaType
from taehwa.lab.records import (
    ModelCard,
    ModelHistory,
    ModelVersion,
    Promotion,
    RegisteredVersion,
    Rollback,
    RunSummary,
)
from taehwa.server.platform import Platform


class LabelIn(BaseModel):
    """A label on an asset: an interval (start, end) or a point (start only), optionally with a value."""

    model_config = ConfigDict(extra="forbid")
    asset: str
    kind: str
    start: str
    end: str | None = None
    value: float | None = None
    note: str | None = None


class RegisterIn(BaseModel):
    """Register a training run's model as a new candidate version."""

    model_config = ConfigDict(extra="forbid")
    run_id: str = Field(min_length=1, max_length=32)
    asset_type: str | None = None


class PromoteIn(BaseModel):
    """Why the version goes to production (recorded); `force` passes the gate (tenant admins only)."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)
    force: bool = False


class ReasonIn(BaseModel):
    """Why (recorded)."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


class SweepIn(BaseModel):
    """A spec and a grid of its model's parameters (name → list of values)."""

    model_config = ConfigDict(extra="forbid")
    spec: dict[str, Any]
    grid: dict[str, list[Any]]
    backend: str | None = Field(None, pattern="^(serial|pool|ray)$")


LABEL_ID = Path(ge=1, le=2**62, description="the label's id")
VERSION = Path(ge=1, le=10**9, description="the model version")
SPEC_BODY = Body(..., description="A lab spec (the same document as `taehwa lab train SPEC.yaml` reads), as JSON")


def add_lab_routes(app: FastAPI, platform: Platform, auth: Callable[[], None]) -> None:
    """Add the lab and registry routes."""
    lab, labels = platform.lab, platform.labels
    router = APIRouter(dependencies=[Depends(auth)], route_class=BoundedRoute, tags=["lab"])

    @router.get("/api/v1/{tenant}/labels")
    def list_labels(
        tenant: str,
        asset: str | None = None,
        kind: str | None = None,
        start: str | None = None,
        end: str | None = None,
        limit: int = Query(10_000, ge=1, le=100_000),
    ) -> list[dict[str, Any]]:
        """Labels, optionally under an asset, of a kind, overlapping [start, end)."""
        return [
            lb.to_dict() for lb in labels.list_labels(tenant, asset=asset, kind=kind, start=start, end=end, limit=limit)
        ]

    @router.post(
        "/api/v1/{tenant}/labels",
        status_code=201,
        openapi_extra={
            "requestBody": {
                "content": {
                    "application/json": {"schema": {"type": "array", "items": LabelIn.model_json_schema()}},
                    "text/csv": {"schema": {"type": "string"}},
                },
                "required": True,
            }
        },
    )
    async def add_labels(tenant: str, request: Request) -> dict[str, Any]:
        """Add labels: a JSON list of {asset, kind, start, end?, value?, note?}, or CSV with that header. All or
        nothing: one bad label refuses the lot, each problem named."""
        ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
        raw = await request.body()
        if ctype == "text/csv":
            try:
                text = raw.decode()
            except UnicodeDecodeError:
                raise InvalidInput("the CSV is not UTF-8", where="body") from None
            return {"added": labels.import_csv(tenant, text, source="body")}
        if ctype != "application/json":
            raise UnsupportedMediaType(f"send application/json or text/csv, not {ctype}", where="Content-Type")
        import orjson

        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"the body is not JSON: {exc}", where="body") from None
        rows = doc if isinstance(doc, list) else [doc]
        return {"added": labels.add(tenant, rows, source="body")}

    @router.delete("/api/v1/{tenant}/labels/{label_id}", status_code=204)
    def delete_label(tenant: str, label_id: int = LABEL_ID) -> None:
        """Remove a label."""
        labels.delete(tenant, label_id)

    @router.post("/api/v1/{tenant}/lab/train")
    def train(tenant: str, spec: dict[str, Any] = SPEC_BODY) -> dict[str, Any]:
        """Backtest the spec's model and baseline time-ordered, fit it on all the data, keep it (and register it
        when the spec says so). Answers when done, with the run's figures."""
        return lab.run(tenant, spec, mode="train")

    @router.post("/api/v1/{tenant}/lab/evaluate")
    def evaluate(tenant: str, spec: dict[str, Any] = SPEC_BODY) -> dict[str, Any]:
        """Backtest the spec's model and baseline time-ordered; keep the report only."""
        return lab.run(tenant, spec, mode="evaluate")

    @router.post("/api/v1/{tenant}/lab/sweep")
    def sweep(tenant: str, body: SweepIn) -> dict[str, Any]:
        """Backtest every combination of a grid of the spec's model parameters on one dataset, over the local
        process pool or Ray (backend), best first. Answers when done."""
        return lab.sweep(tenant, body.spec, body.grid, backend=body.backend)

    @router.get("/api/v1/{tenant}/lab/runs")
    def runs(tenant: str, name: str | None = None, limit: int = Query(100, ge=1, le=1000)) -> list[RunSummary]:
        """Runs, newest first, with their primary figure and the baseline's."""
        return lab.runs(tenant, name, limit)

    @router.get("/api/v1/{tenant}/lab/runs/{run_id}")
    def run(tenant: str, run_id: str) -> dict[str, Any]:
        """One run's document: spec, lineage, figures, baseline, production comparison, folds."""
        return lab.get_run(tenant, run_id)

    @router.get("/api/v1/{tenant}/lab/runs/{run_id}/report", response_class=HTMLResponse)
    def report(tenant: str, run_id: str) -> HTMLResponse:
        """The validation report as a self-contained HTML page."""
        return HTMLResponse(lab.report_html(tenant, run_id))

    @router.get(
        "/api/v1/{tenant}/lab/runs/{run_id}/rows",
        responses={200: {"content": {"application/vnd.apache.parquet": {}, "application/json": {}}}},
    )
    def run_rows(
        tenant: str,
        run_id: str,
        format: str = Query("parquet", pattern="^(parquet|json)$"),
        limit: int = Query(10_000, ge=1, le=1_000_000),
    ) -> Response:
        """The run's out-of-sample rows (time, unit, target, decision `pred`, `score`, fold) of every backtest fold:
        the Parquet file kept in the run folder, or the first `limit` rows as JSON records."""
        path = lab.rows_path(tenant, run_id)
        if format == "parquet":
            return Response(
                path.read_bytes(),
                media_type="application/vnd.apache.parquet",
                headers={"Content-Disposition": f'attachment; filename="{run_id}-rows.parquet"'},
            )
        import pyarrow.parquet as pq

        from taehwa.lab.metrics import json_safe

        table = pq.read_table(path).slice(0, limit)
        frame = table.to_pandas()
        if "time" in frame.columns:
            frame["time"] = frame["time"].map(lambda t: t.isoformat())
        return JSONResponse(json_safe(frame.to_dict(orient="records")))

    @router.get("/api/v1/{tenant}/models")
    def models(tenant: str) -> list[ModelVersion]:
        """Every registered model version and its stage."""
        return lab.versions(tenant)

    @router.get("/api/v1/{tenant}/models/{name}")
    def model(tenant: str, name: str) -> ModelHistory:
        """A model's versions and its history (registrations, promotions, refusals, rollbacks)."""
        return {"versions": lab.versions(tenant, name), "history": lab.history(tenant, name)}

    @router.post("/api/v1/{tenant}/models/{name}/versions", status_code=201)
    def register(tenant: str, name: str, body: RegisterIn) -> RegisteredVersion:
        """Register a training run's model as a new candidate version."""
        return lab.register(tenant, body.run_id, name, body.asset_type)

    @router.post("/api/v1/{tenant}/models/{name}/versions/{version}/promote")
    def promote(tenant: str, name: str, body: PromoteIn, version: int = VERSION) -> Promotion:
        """Promote to production through the gate (beat the baseline and production on the same data)."""
        return lab.promote(tenant, name, version, body.reason, force=body.force)

    @router.post("/api/v1/{tenant}/models/{name}/rollback")
    def rollback(tenant: str, name: str, body: ReasonIn) -> Rollback:
        """Put back the previous production version."""
        return lab.rollback(tenant, name, body.reason)

    @router.get("/api/v1/{tenant}/models/{name}/versions/{version}/card")
    def card(tenant: str, name: str, version: int = VERSION) -> ModelCard:
        """The model card of a version."""
        return lab.card(tenant, name, version)

    app.include_router(router)
