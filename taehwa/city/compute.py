"""Compute used per company, and the quotas the city sets on it: CPU seconds of lab runs (as the lab records them),
of sweeps (from the sweep reports the lab keeps), and of academy submissions (charged to the company that hosts
the challenge). The lab asks `QuotaGuard.check` before it starts a run or a sweep; a company at or over its
monthly quota — or whose next run, by the typical length of its runs this month, would pass it — is refused with
a clear error."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, func, select

from taehwa.city.records import ComputeStatus
from taehwa.core.errors import TooManyRequests
from taehwa.db import challenges, lab_runs, submissions

if TYPE_CHECKING:
    from taehwa.city.policy import PolicyBook

MAX_SWEEP_FILES = 10_000  # sweep reports read per company (the newest; each is a few kB)


class QuotaExceeded(TooManyRequests):
    """A company's compute quota for the month is spent (429: it can run again next month, or with more quota)."""


def month_start(now: datetime | None = None) -> datetime:
    """The first instant of the current calendar month (UTC)."""
    now = now or datetime.now(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class ComputeLedger:
    """CPU seconds per company and kind (lab, sweep, academy), over any span, by month."""

    def __init__(self, engine: Engine, lab_root: Path) -> None:
        """`lab_root`: the lab's folder (its sweep reports lie in `sweeps/<tenant>/`)."""
        self._engine, self._sweeps = engine, lab_root / "sweeps"

    def runs(self, tenant: str | None, since: datetime | None = None) -> list[tuple[str, str, datetime, float]]:
        """(tenant, kind, when, seconds) of every run since a time."""
        out: list[tuple[str, str, datetime, float]] = []
        q = select(lab_runs.c.tenant, lab_runs.c.created_at, lab_runs.c.seconds)
        a = (
            select(challenges.c.owner, submissions.c.created_at, submissions.c.seconds)
            .join(challenges, challenges.c.id == submissions.c.challenge)
            .where(submissions.c.seconds.is_not(None))
        )
        if tenant is not None:
            q = q.where(lab_runs.c.tenant == tenant)
            a = a.where(challenges.c.owner == tenant)
        if since is not None:
            q = q.where(lab_runs.c.created_at >= since)
            a = a.where(submissions.c.created_at >= since)
        with self._engine.connect() as c:
            out += [(r[0], "lab", _utc(r[1]), float(r[2] or 0)) for r in c.execute(q)]
            out += [(r[0], "academy", _utc(r[1]), float(r[2] or 0)) for r in c.execute(a)]
        out += self._sweep_runs(tenant, since)
        return out

    def _sweep_runs(self, tenant: str | None, since: datetime | None) -> list[tuple[str, str, datetime, float]]:
        if not self._sweeps.is_dir():
            return []
        folders = (
            [self._sweeps / tenant] if tenant is not None else sorted(p for p in self._sweeps.iterdir() if p.is_dir())
        )
        out = []
        for folder in folders:
            if not folder.is_dir():
                continue
            files = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)[:MAX_SWEEP_FILES]
            for path in files:
                try:
                    doc = json.loads(path.read_text())
                    when = _utc(datetime.fromisoformat(str(doc["created_at"])))
                    seconds = float(doc.get("seconds") or 0)
                except (OSError, ValueError, KeyError, TypeError):
                    continue  # a report being written, or not one
                if since is None or when >= since:
                    out.append((folder.name, "sweep", when, seconds))
        return out

    def used(self, tenant: str, since: datetime | None = None) -> dict[str, float]:
        """CPU seconds a company used since a time (this month by default), by kind and in all."""
        since = since or month_start()
        out = {"lab": 0.0, "sweep": 0.0, "academy": 0.0}
        for _, kind, _, s in self.runs(tenant, since):
            out[kind] += s
        out["total"] = sum(out.values())
        return out

    def by_month(self, months: int = 12) -> dict[str, dict[str, dict[str, float]]]:
        """CPU hours per company, per month (YYYY-MM) and kind, over the last months."""
        now = datetime.now(UTC)
        y, m = now.year, now.month - (months - 1)
        while m <= 0:
            y, m = y - 1, m + 12
        since = datetime(y, m, 1, tzinfo=UTC)
        out: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
        for tenant, kind, when, s in self.runs(None, since):
            out[tenant][when.strftime("%Y-%m")][kind] += s / 3600
        return {t: {mo: dict(k) for mo, k in sorted(v.items())} for t, v in out.items()}

    def lab_runs_count(self) -> int:
        """How many lab runs the platform has kept (for the report's summary)."""
        with self._engine.connect() as c:
            return int(c.execute(select(func.count()).select_from(lab_runs)).scalar_one())


class QuotaGuard:
    """The check the lab makes before it starts work for a company."""

    def __init__(self, ledger: ComputeLedger, policy: PolicyBook) -> None:
        self._ledger, self._policy = ledger, policy

    def check(self, tenant: str, kind: str) -> None:
        """Refuse a run (`kind`: lab or sweep) that the company's quota for this month does not leave room for."""
        quota_h = self._policy.quota(tenant)
        if quota_h is None:
            return
        since = month_start()
        runs = [s for _, k, _, s in self._ledger.runs(tenant, since)]
        used_h = sum(runs) / 3600
        typical_h = statistics.median(runs) / 3600 if runs else 0.0
        if used_h >= quota_h or used_h + typical_h > quota_h:
            raise QuotaExceeded(
                f"tenant {tenant!r} has used {used_h:.2f} of its {quota_h:g} CPU hours for "
                f"{since.strftime('%Y-%m')} (the city's quota); a {kind} run "
                + ("would pass it" if used_h < quota_h else "cannot start")
                + " — ask the city office for more, or wait for next month",
                where="quota",
            )

    def status(self, tenant: str) -> ComputeStatus:
        """A company's use and quota this month (hours)."""
        used = self._ledger.used(tenant)
        quota = self._policy.quota(tenant)
        return {
            "tenant": tenant,
            "month": month_start().strftime("%Y-%m"),
            "used_hours": {k: round(v / 3600, 4) for k, v in used.items()},
            "quota_hours": quota,
            "left_hours": None if quota is None else round(max(0.0, quota - used["total"] / 3600), 4),
        }
