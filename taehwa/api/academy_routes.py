"""HTTP routes of the academy (챌린지 / 리더보드 / 제출): challenges, their public data, submissions and boards. Thin:
access, limits and verdicts are the academy service's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from taehwa.academy.records import Board, Challenge, ChallengeListing, Submission
from taehwa.api.responses import BoundedRoute
from taehwa.core.errors import InvalidInput, PayloadTooLarge
from taehwa.server.platform import Platform


class CloseIn(BaseModel):
    """Why the challenge closes before its date (recorded)."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000)


def add_academy_routes(app: FastAPI, platform: Platform, auth: Callable[[], None]) -> None:
    """Add the academy's routes."""
    academy = platform.academy
    router = APIRouter(dependencies=[Depends(auth)], route_class=BoundedRoute, tags=["academy"])

    @router.get("/api/v1/academy/challenges")
    def challenges() -> list[ChallengeListing]:
        """The challenges the caller may take part in, newest first."""
        return academy.list_challenges()

    @router.post("/api/v1/academy/challenges", status_code=201)
    def create(
        owner: str = Query(..., description="the tenant that poses it (its admins may)"),
        definition: dict[str, Any] = Body(..., description="a challenge definition (as the YAML files)"),
    ) -> Challenge:
        """Pose a challenge on the owner's own historian data (pseudonymised through a sharing grant)."""
        return academy.create(owner, definition, baseline=False)

    @router.get("/api/v1/academy/challenges/{cid}")
    def challenge(cid: str) -> Challenge:
        """One challenge: task, metric, parts, limits, state."""
        return academy.get(cid)

    @router.post("/api/v1/academy/challenges/{cid}/close")
    def close(cid: str, body: CloseIn) -> Challenge:
        """End the challenge now; the board turns to the hidden scores."""
        return academy.close(cid, body.reason)

    @router.get("/api/v1/academy/challenges/{cid}/board")
    def board(cid: str) -> Board:
        """The leaderboard (public phase: validation scores; final phase: hidden test scores)."""
        return academy.board(cid)

    @router.get("/api/v1/academy/challenges/{cid}/data/{part}")
    def data(cid: str, part: str) -> FileResponse:
        """The training part (with labels) or the inputs to predict, as Parquet."""
        path = academy.public_file(cid, part)
        return FileResponse(path, media_type="application/vnd.apache.parquet", filename=f"{cid}-{part}.parquet")

    @router.post(
        "/api/v1/academy/challenges/{cid}/submissions",
        status_code=202,
        openapi_extra={
            "requestBody": {
                "content": {
                    "text/x-python": {"schema": {"type": "string"}},
                    "application/yaml": {"schema": {"type": "string"}},
                    "text/csv": {"schema": {"type": "string"}},
                    "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
                },
                "required": True,
            }
        },
    )
    async def submit(
        cid: str,
        request: Request,
        kind: str = Query(
            ...,
            pattern="^(predictions|spec|python)$",
            description="predictions (CSV/Parquet row,prediction), spec or python",
        ),
        label: str | None = Query(None, max_length=255),
        wait: bool = False,
    ) -> JSONResponse:
        """Submit: the body is the file. Checked at once; run and scored in the background (or before the answer
        with wait=true). Poll /api/v1/academy/submissions/{id} for the verdict."""
        body = await request.body()
        if not body:
            raise InvalidInput("empty body; send the file", where="body")
        if len(body) > platform.settings.max_body_bytes:
            raise PayloadTooLarge("the file is over the body limit", where="body")
        from starlette.concurrency import run_in_threadpool

        doc = await run_in_threadpool(academy.submit, cid, kind, body, label=label, wait=wait)
        return JSONResponse(doc, status_code=200 if doc["state"] == "done" else 202)

    @router.get("/api/v1/academy/challenges/{cid}/submissions")
    def mine(cid: str, everyone: bool = Query(False, alias="all")) -> list[Submission]:
        """The caller's submissions (all of them, with all=true, for the owner's admins)."""
        return academy.submissions(cid, everyone=everyone)

    @router.get("/api/v1/academy/submissions/{sid}")
    def submission(sid: str) -> Submission:
        """One submission with its verdict, scores (the hidden one once the challenge closed) and log."""
        return academy.submission(sid)

    app.include_router(router)
