"""The academy (챌린지 / 리더보드 / 제출): challenges cut from real plant or benchmark data, submissions scored on
hidden labels (code runs in the sandbox, next to the data), and boards that show the validation score while a challenge
runs and the hidden test score once it closes. The CLI, the HTTP API and the web pages all call this."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from sqlalchemy import func, insert, select, update

from taehwa.academy import sandbox, sources
from taehwa.academy.challenge import Definition, closes_at, load_definition, parse_definition
from taehwa.academy.records import Board, BoardEntry, Challenge, ChallengeListing, PublishedFigure, Submission
from taehwa.academy.scoring import primary_metric, score
from taehwa.academy.submission import KINDS, check_predictions, check_python, parse_spec_submission, read_predictions
from taehwa.core.errors import Conflict, Forbidden, InvalidInput, NotFound, TaehwaError, TooManyRequests, Unauthorized
from taehwa.db import challenges, submissions
from taehwa.lab import metrics as M
from taehwa.lab.datasets import CHANGEPOINT, TARGET, TIME, UNIT
from taehwa.tenancy.access import SYSTEM, acting_as, check, current

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from taehwa.core.settings import Settings
    from taehwa.lab.datasets import Sources
    from taehwa.sharing.grants import SharingService
    from taehwa.tenancy.audit import AuditLog
    from taehwa.tenancy.identity import IdentityService
    from taehwa.tenancy.tenants import TenantService

ACADEMY_TENANT = "academy"  # owns the ready challenges; receives the sharing grants behind plant challenges
BASELINE_USER = "taehwa-baseline"
_META = {TIME, UNIT, TARGET, CHANGEPOINT, sources.PART, sources.SCORED}


def _now() -> datetime:
    return datetime.now(UTC)


def _utc(t: datetime) -> datetime:
    """SQLite hands times back without their zone; they were stored in UTC."""
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class AcademyService:
    """Challenges, submissions and boards of one platform."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: Engine,
        tenants: TenantService,
        audit: AuditLog,
        sharing: SharingService,
        identity: IdentityService,
        data: Sources,
    ) -> None:
        """Each collaborator named: the metadata database, tenancy, audit, sharing grants (behind plant
        challenges), identity (who submits), and where a plant challenge's rows are read from (the lab service)."""
        self.settings, self.tenants, self.audit = settings, tenants, audit
        self.sharing, self.identity, self.data = sharing, identity, data
        self.root = settings.data_dir / "academy"
        self._engine = engine
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    # --- challenges ---------------------------------------------------------------------------------------------
    def create(
        self,
        owner: str,
        definition: Definition | dict[str, Any],
        *,
        base_dir: Path | None = None,
        shared: Path | None = None,
        baseline: bool = True,
    ) -> Challenge:
        """Cut a challenge's data into its parts, keep them, and (when it has one) run the platform's baseline."""
        d = definition if isinstance(definition, Definition) else parse_definition(definition)
        check(owner, "admin")
        self.tenants.require(owner, "admin")
        with self._engine.connect() as c:
            if c.execute(select(challenges.c.id).where(challenges.c.id == d.id)).first() is not None:
                raise Conflict(f"challenge {d.id!r} exists already", where="id")
        info: dict[str, Any] = {}
        if d.source.builder == "historian":
            frame = self._from_historian(owner, d, info)
        else:
            from taehwa.core.settings import default_shared_data

            frame = sources.build(d, shared or default_shared_data(self.settings))
        info["leak_probe"] = frame.attrs.pop("leak_probe", None)  # sources ran the probe: a leaking cut stops there
        info.update(self._write_parts(d, frame))
        with self._engine.begin() as c:
            c.execute(
                insert(challenges).values(
                    id=d.id,
                    owner=owner,
                    definition=d.model_dump(mode="json"),
                    info=info,
                    closes_at=closes_at(d.closes),
                    created_by=current().user,
                    created_at=_now(),
                )
            )
        self.audit.append("academy.create", tenant=owner, target=d.id, after={"task": d.task, "rows": info["rows"]})
        if baseline and d.baseline:
            base = (base_dir or Path(".")).resolve()
            path = (base / d.baseline).resolve()
            if base not in path.parents:
                raise InvalidInput("the baseline lies outside the challenge's folder", where="baseline")
            if not path.is_file():
                raise InvalidInput(f"no baseline file at {path}", where="baseline")
            kind = "python" if path.suffix == ".py" else "spec"
            self.submit(
                d.id,
                kind,
                path.read_bytes(),
                filename=path.name,
                label="Taehwa baseline",
                user=BASELINE_USER,
                reference=True,
            )
        return self.get(d.id)

    def _from_historian(self, owner: str, d: Definition, info: dict[str, Any]) -> pd.DataFrame:
        """A plant's own data, through a pseudonymising sharing grant to the academy (recorded, revocable)."""
        assert d.source.data is not None and d.source.data.tags
        self._ensure_academy_tenant()
        grant = self.sharing.create(
            owner,
            ACADEMY_TENANT,
            list(d.source.data.tags),
            d.source.data.start,
            d.source.data.end,
            days=d.source.grant_days,
            pseudonymise=True,
            purpose=f"academy challenge {d.id}",
        )
        info["grant"] = grant.id
        try:
            return sources.historian(d, self.data, owner, grant)
        except TaehwaError:
            self.sharing.revoke(owner, grant.id)
            raise

    def _ensure_academy_tenant(self) -> None:
        with acting_as(SYSTEM):
            try:
                self.tenants.get(ACADEMY_TENANT)
            except NotFound:
                self.tenants.create(ACADEMY_TENANT, "Taehwa Academy (태화 아카데미)")

    def _write_parts(self, d: Definition, frame: pd.DataFrame) -> dict[str, Any]:
        """Write train / inputs / hidden labels into a new folder, whole or not at all."""
        signals = [c for c in frame.columns if c not in _META and c != "cycle"]
        parts = frame[sources.PART]
        for p in ("train", "validation", "test"):
            if not (parts == p).any():
                raise InvalidInput(f"the {p} part of challenge {d.id} is empty", where="source")
        frame = frame.sort_values(
            [sources.PART, UNIT, TIME],
            key=lambda s: s.map({"train": 0, "validation": 1, "test": 2}) if s.name == sources.PART else s,
            kind="stable",
        )
        train = frame[frame[sources.PART] == "train"][[TIME, UNIT, *signals, TARGET]].reset_index(drop=True)
        rest = frame[frame[sources.PART] != "train"].reset_index(drop=True)
        rest.insert(0, "row", np.arange(len(rest), dtype=np.int64))
        inputs = rest[["row", TIME, UNIT, *signals]]
        label_cols = ["row", sources.PART, sources.SCORED, TIME, UNIT, TARGET] + (
            [CHANGEPOINT] if CHANGEPOINT in rest.columns else []
        )
        labels = rest[label_cols]
        if d.task == "fault":
            train[TARGET] = train[TARGET].astype(str)
            labels = labels.assign(**{TARGET: labels[TARGET].astype(str)})
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.root, 0o700)  # a folder made before (or under a loose umask) is closed too
        final = self.root / d.id
        if final.exists():
            shutil.rmtree(final)  # left by a create that failed before its record was written
        tmp = Path(tempfile.mkdtemp(prefix=f".{d.id}-", dir=self.root))
        try:
            (tmp / "public").mkdir()
            (tmp / "hidden").mkdir(mode=0o700)
            os.chmod(tmp / "hidden", 0o700)  # the server's user only, whatever the umask: a sandbox run as its own
            train.to_parquet(tmp / "public" / "train.parquet", index=False)  # uid cannot even stat the labels
            inputs.to_parquet(tmp / "public" / "inputs.parquet", index=False)
            labels.to_parquet(tmp / "hidden" / "labels.parquet", index=False)
            os.chmod(tmp / "hidden" / "labels.parquet", 0o600)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        classes = sorted(set(train[TARGET]) | set(labels[TARGET])) if d.task == "fault" else None
        counts = labels.groupby(sources.PART).size().to_dict()
        return {
            "signals": signals,
            "classes": classes,
            "units": int(train[UNIT].nunique()),
            "rows": {
                "train": len(train),
                "validation": int(counts.get("validation", 0)),
                "test": int(counts.get("test", 0)),
            },
            "scored_rows": {
                p: int(labels[(labels[sources.PART] == p) & labels[sources.SCORED]].shape[0])
                for p in ("validation", "test")
            },
            "train_range": [train[TIME].min().isoformat(), train[TIME].max().isoformat()],
            "inputs_range": [inputs[TIME].min().isoformat(), inputs[TIME].max().isoformat()],
        }

    def install_ready(
        self, names: list[str] | None = None, *, baseline: bool = True, shared: Path | None = None
    ) -> list[Challenge]:
        """The ready challenges (SKAB, C-MAPSS, Tennessee Eastman), owned by the academy tenant; ones already there
        are left as they are."""
        from taehwa.academy.challenge import ready_names

        self._ensure_academy_tenant()
        made = []
        for name in names or ready_names():
            d, folder = load_definition(name)
            with self._engine.connect() as c:
                if c.execute(select(challenges.c.id).where(challenges.c.id == d.id)).first() is not None:
                    continue
            made.append(self.create(ACADEMY_TENANT, d, base_dir=folder, shared=shared, baseline=baseline))
        return made

    def _row(self, cid: str) -> Any:
        with self._engine.connect() as c:
            row = c.execute(select(challenges).where(challenges.c.id == cid)).first()
        if row is None:
            raise NotFound(f"no challenge {cid!r}", where="challenge")
        return row

    def _visible(self, row: Any) -> None:
        """Refuse unless the caller may see this challenge: its owner's members, its audience, platform admins."""
        p = current()
        if p.problem is not None:
            raise Unauthorized(p.problem, where="Authorization")
        audience = row.definition.get("audience")
        if p.platform_admin or row.owner in p.roles or audience is None or set(audience) & set(p.roles):
            return
        raise NotFound(f"no challenge {row.id!r}", where="challenge")  # not even its existence is shown

    def _doc(self, row: Any) -> Challenge:
        d = row.definition
        closed = self._closed(row)
        return {
            "id": row.id,
            "owner": row.owner,
            "title": d["title"],
            "summary": d.get("summary", {}),
            "task": d["task"],
            "metric": primary_metric(d["task"]),
            "lower_is_better": primary_metric(d["task"]) in M.LOWER_IS_BETTER,
            "state": "closed" if closed else "open",
            "closes_at": _utc(row.closes_at).isoformat(),
            "inputs_public": d["inputs_public"],
            "limits": d["limits"],
            "audience": d.get("audience"),
            "published": d.get("published", []),
            "published_note": d.get("published_note"),
            "signals": row.info["signals"],
            "classes": row.info.get("classes"),
            "units": row.info.get("units"),
            "rows": row.info["rows"],
            "scored_rows": row.info.get("scored_rows"),
            "train_range": row.info.get("train_range"),
            "inputs_range": row.info.get("inputs_range"),
            "submission_kinds": [k for k in KINDS if k != "predictions" or d["inputs_public"]],
        }

    @staticmethod
    def _closed(row: Any) -> bool:
        return row.closed_at is not None or _now() >= _utc(row.closes_at)

    def list_challenges(self) -> list[ChallengeListing]:
        """The challenges the caller may see, newest first."""
        with self._engine.connect() as c:
            rows = c.execute(select(challenges).order_by(challenges.c.created_at.desc())).all()
            people = (
                select(submissions.c.challenge, func.count(func.distinct(submissions.c.user_id)))
                .where(submissions.c.reference.is_(False))
                .group_by(submissions.c.challenge)
            )
            counts: dict[str, int] = {cid: n for cid, n in c.execute(people)}
        out: list[ChallengeListing] = []
        for r in rows:
            try:
                self._visible(r)
            except NotFound:
                continue
            out.append({**self._doc(r), "participants": counts.get(r.id, 0)})
        return out

    def get(self, cid: str) -> Challenge:
        row = self._row(cid)
        self._visible(row)
        return self._doc(row)

    def close(self, cid: str, reason: str) -> Challenge:
        """End a challenge now: no more submissions, and the board shows the hidden scores."""
        row = self._row(cid)
        check(row.owner, "admin")
        if not reason.strip():
            raise InvalidInput("say why the challenge closes early", where="reason")
        with self._engine.begin() as c:
            c.execute(update(challenges).where(challenges.c.id == cid).values(closed_at=_now()))
        self.audit.append("academy.close", tenant=row.owner, target=cid, after={"reason": reason})
        return self.get(cid)

    def public_file(self, cid: str, part: str) -> Path:
        """The training part (always) or the inputs (when the challenge publishes them), as Parquet."""
        row = self._row(cid)
        self._visible(row)
        if part not in ("train", "inputs"):
            raise InvalidInput("the parts to download are train and inputs", where="part")
        if part == "inputs" and not row.definition["inputs_public"]:
            raise Forbidden(
                f"challenge {cid} keeps its inputs next to the data: submit a model spec or Python model instead",
                where="part",
            )
        return self.root / cid / "public" / f"{part}.parquet"

    # --- submissions --------------------------------------------------------------------------------------------
    def submit(
        self,
        cid: str,
        kind: str,
        content: bytes,
        *,
        filename: str | None = None,
        label: str | None = None,
        user: str | None = None,
        reference: bool = False,
        wait: bool = True,
    ) -> Submission:
        """Check a submission at once (its form, the challenge's state, the daily limit), keep it, then run and
        score it (now, or in the background with wait=False)."""
        row = self._row(cid)
        self._visible(row)
        caller = current()
        if "write" not in caller.scopes:
            raise Forbidden("this token's scopes do not allow submitting", where="scope")
        participant = caller.user
        if user is not None and user != caller.user:
            if not caller.platform_admin:
                raise Forbidden("only a platform admin submits on behalf of someone else", where="user")
            if user != BASELINE_USER:
                self.identity.get_user(user)  # must be a registered user
            participant = user
        if self._closed(row) and not reference:
            raise Conflict(
                f"challenge {cid} closed at {_utc(row.closes_at).isoformat()}: no more submissions", where="challenge"
            )
        if kind not in KINDS:
            raise InvalidInput(f"kind is one of {', '.join(KINDS)}", where="kind")
        d = row.definition
        if kind == "predictions" and not d["inputs_public"]:
            raise InvalidInput(
                f"challenge {cid} takes code, not predictions: its inputs never leave the platform", where="kind"
            )
        if kind == "python":
            check_python(content)
        elif kind == "spec":
            try:
                text = content.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput("the spec is not UTF-8 text", where="submission") from None
            parse_spec_submission(text, d["task"])
        else:  # a file that does not fit the inputs is refused at once and does not count toward the limit
            rows = pd.read_parquet(self.root / cid / "public" / "inputs.parquet", columns=["row"])["row"].to_numpy()
            check_predictions(
                read_predictions(content, filename),
                rows,
                d["task"],
                row.info.get("classes"),
                where=filename or "predictions",
            )
        with self._lock:  # the count and the record together: two submissions at once cannot both pass the limit
            if not reference:
                day = _now().replace(hour=0, minute=0, second=0, microsecond=0)
                with self._engine.connect() as c:
                    today = c.execute(
                        select(func.count())
                        .select_from(submissions)
                        .where(
                            submissions.c.challenge == cid,
                            submissions.c.user_id == participant,
                            submissions.c.created_at >= day,
                        )
                    ).scalar_one()
                if today >= d["limits"]["daily"]:
                    raise TooManyRequests(
                        f"{participant} has made {today} submissions to {cid} today, the daily "
                        f"limit; the next is accepted from {(day + timedelta(days=1)).isoformat()}",
                        where="submission",
                    )
            sid = secrets.token_hex(8)
            folder = self.root / cid / "submissions" / sid
            folder.mkdir(parents=True, mode=0o700)
            name = {"python": "submission.py", "spec": "submission.yaml"}.get(kind) or (
                "predictions.parquet" if content[:4] == b"PAR1" else "predictions.csv"
            )
            (folder / name).write_bytes(content)
            with self._engine.begin() as c:
                c.execute(
                    insert(submissions).values(
                        id=sid,
                        challenge=cid,
                        user_id=participant,
                        kind=kind,
                        label=(label or filename or "")[:255] or None,
                        reference=reference,
                        state="queued",
                        created_at=_now(),
                    )
                )
        self.audit.append(
            "academy.submit", tenant=row.owner, target=f"{cid} {sid}", after={"user": participant, "kind": kind}
        )
        if wait:
            self.run(sid)
        else:
            self._in_background(sid)
        return self.submission(sid)

    def _in_background(self, sid: str) -> None:
        """Queue a kept submission on the runners (TAEHWA_ACADEMY_RUNNERS at once)."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.settings.academy_runners, thread_name_prefix="academy")
            self._pool.submit(self.run, sid)

    def run(self, sid: str) -> None:
        """Run and score one kept submission; every failure becomes its verdict, never an exception here."""
        with self._engine.connect() as c:
            s = c.execute(select(submissions).where(submissions.c.id == sid)).first()
        if s is None or s.state == "done":
            return
        row = self._row(s.challenge)
        with self._engine.begin() as c:
            c.execute(update(submissions).where(submissions.c.id == sid).values(state="running"))
        try:
            values = self._outcome(row, s)
        except Exception as exc:
            values = {"verdict": "crashed", "message": f"the platform could not run it: {exc}"}
        with self._engine.begin() as c:
            c.execute(
                update(submissions).where(submissions.c.id == sid).values(state="done", finished_at=_now(), **values)
            )

    def _outcome(self, row: Any, s: Any) -> dict[str, Any]:
        d = row.definition
        folder = self.root / row.id
        labels = pd.read_parquet(folder / "hidden" / "labels.parquet")
        sub_dir = folder / "submissions" / s.id
        out: dict[str, Any] = {}
        if s.kind == "predictions":
            path = next(sub_dir.glob("predictions.*"))
            try:
                table = read_predictions(path.read_bytes(), path.name)
            except InvalidInput as exc:
                return {"verdict": "invalid_output", "message": str(exc)}
        else:
            sandbox.check_hidden(folder / "hidden")
            entry = sub_dir / ("submission.py" if s.kind == "python" else "submission.yaml")
            lim = d["limits"]
            result = sandbox.run(
                kind=s.kind,
                code=entry.read_text(),
                task=d["task"],
                signals=row.info["signals"],
                train=folder / "public" / "train.parquet",
                inputs=folder / "public" / "inputs.parquet",
                scratch=self.root / "_sandbox",
                limits=sandbox.Limits(seconds=float(lim["seconds"]), memory_mb=int(lim["memory_mb"])),
            )
            out.update({"seconds": result.seconds, "sandbox": result.sandbox, "log": result.log[-4000:] or None})
            if result.verdict != "scored" or result.predictions is None:
                return {**out, "verdict": result.verdict, "message": result.message}
            table = result.predictions
            out["message"] = result.message
        try:
            preds = check_predictions(table, labels["row"].to_numpy(), d["task"], row.info.get("classes"))
        except InvalidInput as exc:
            return {**out, "verdict": "invalid_output", "message": str(exc)}
        figures = score(d["task"], labels, preds, d.get("normal_class", "normal"))
        metric = primary_metric(d["task"])
        return {
            **out,
            "verdict": "scored",
            "metrics": figures,
            "public_score": figures.get("validation", {}).get(metric),
            "final_score": figures.get("test", {}).get(metric),
            "message": out.get("message") or "scored",
        }

    def _sub_doc(self, s: Any, *, final: bool) -> Submission:
        """A submission as its participant sees it: the hidden score and figures only once the board is final."""
        metrics = dict(s.metrics or {})
        if not final:
            metrics.pop("test", None)
        return {
            "id": s.id,
            "challenge": s.challenge,
            "user": s.user_id,
            "kind": s.kind,
            "label": s.label,
            "reference": bool(s.reference),
            "state": s.state,
            "verdict": s.verdict,
            "message": s.message,
            "log": s.log,
            "public_score": s.public_score,
            "final_score": s.final_score if final else None,
            "metrics": metrics,
            "sandbox": s.sandbox,
            "seconds": s.seconds,
            "created_at": _utc(s.created_at).isoformat(),
            "finished_at": _utc(s.finished_at).isoformat() if s.finished_at is not None else None,
        }

    def submission(self, sid: str) -> Submission:
        """One submission: its participant, the challenge owner's admins and platform admins may read it."""
        with self._engine.connect() as c:
            s = c.execute(select(submissions).where(submissions.c.id == sid)).first()
        if s is None:
            raise NotFound(f"no submission {sid!r}", where="submission")
        row = self._row(s.challenge)
        self._visible(row)
        p = current()
        if s.user_id != p.user and not s.reference and not p.may(row.owner, "admin"):
            raise NotFound(f"no submission {sid!r}", where="submission")
        return self._sub_doc(s, final=self._closed(row))

    def submissions(self, cid: str, *, everyone: bool = False) -> list[Submission]:
        """The caller's submissions to a challenge, newest first (all of them for its owner's admins)."""
        row = self._row(cid)
        self._visible(row)
        q = select(submissions).where(submissions.c.challenge == cid)
        if not (everyone and current().may(row.owner, "admin")):
            q = q.where(submissions.c.user_id == current().user)
        with self._engine.connect() as c:
            rows = c.execute(q.order_by(submissions.c.created_at.desc())).all()
        final = self._closed(row)
        return [self._sub_doc(s, final=final) for s in rows]

    def board(self, cid: str) -> Board:
        """The leaderboard: each participant's best validation score while the challenge runs; once it closes,
        the hidden test score of that same submission (chosen by its public score, so nobody picks by the hidden
        one). Ties go to whoever submitted first. Published figures and the platform's baseline stand beside."""
        row = self._row(cid)
        self._visible(row)
        metric = primary_metric(row.definition["task"])
        final = self._closed(row)
        with self._engine.connect() as c:
            subs = c.execute(
                select(submissions)
                .where(submissions.c.challenge == cid, submissions.c.state == "done")
                .order_by(submissions.c.created_at)
            ).all()
        best: dict[str, Any] = {}
        counts: dict[str, int] = {}
        for s in subs:
            counts[s.user_id] = counts.get(s.user_id, 0) + 1
            if s.verdict != "scored" or s.public_score is None:
                continue
            cur = best.get(s.user_id)
            if cur is None or M.better(metric, s.public_score, cur.public_score):
                best[s.user_id] = s
        entries: list[BoardEntry] = []
        references: list[BoardEntry] = []
        for user, s in best.items():
            e: BoardEntry = {
                "user": user,
                "label": s.label,
                "submission": s.id,
                "kind": s.kind,
                "public_score": s.public_score,
                "final_score": s.final_score if final else None,
                "submissions": counts[user],
                "submitted_at": _utc(s.created_at).isoformat(),
            }
            (references if s.reference else entries).append(e)
        key: Literal["final_score", "public_score"] = "final_score" if final else "public_score"
        lower = metric in M.LOWER_IS_BETTER

        def rank(e: BoardEntry) -> tuple[bool, float, str]:
            v = e[key]
            return v is None, (v if lower else -v) if v is not None else 0, e["submitted_at"]

        entries.sort(key=rank)
        for i, e in enumerate(entries):
            e["rank"] = i + 1
        published: list[PublishedFigure] = [
            {"name": p["name"], "score": p["score"], "source": p["source"]} for p in row.definition.get("published", [])
        ]
        return {
            "challenge": cid,
            "metric": metric,
            "lower_is_better": lower,
            "phase": "final" if final else "public",
            "entries": entries,
            "baselines": references,
            "published": published,
            "published_note": row.definition.get("published_note"),
        }

    def resume(self) -> None:
        """Submissions left queued or running by a stopped server run again."""
        with self._engine.connect() as c:
            pending = (
                c.execute(
                    select(submissions.c.id).where(submissions.c.state != "done").order_by(submissions.c.created_at)
                )
                .scalars()
                .all()
            )
        for sid in pending:
            self._in_background(sid)

    def close_service(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
