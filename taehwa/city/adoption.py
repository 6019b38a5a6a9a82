"""The headquarters' view of AI across the cluster, month by month and company by company, in counts only (as the
control tower shows them): models registered and promoted, alerts raised and handled, data-sharing grants given;
the academy's challenges, participants, submissions and improvements over the baselines; compute used against
the city's quotas. Read from the platform's records; no tag, value or asset name leaves a company here."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from taehwa.academy.scoring import primary_metric
from taehwa.db import alert_events, alerts, challenges, grants, model_events, submissions
from taehwa.lab.metrics import LOWER_IS_BETTER

MONTHS = 12
HANDLED = ("acknowledged", "resolved", "shelved")


def _month(value: datetime) -> str:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).strftime("%Y-%m")


def months_back(n: int = MONTHS, now: datetime | None = None) -> list[str]:
    """The last n months as YYYY-MM, oldest first."""
    now = now or datetime.now(UTC)
    y, m = now.year, now.month
    out = []
    for _ in range(n):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return out[::-1]


def adoption(engine: Engine, tenants: list[str]) -> dict[str, Any]:
    """Per month, in all and per company: models registered and promoted, alerts raised and handled (by a
    person: acknowledged, shelved or resolved), grants given."""
    months = months_back()
    since = datetime.fromisoformat(months[0] + "-01T00:00:00+00:00")
    keys = ("registered", "promoted", "alerts_raised", "alerts_handled", "grants_given")
    per: dict[str, dict[str, dict[str, int]]] = {t: {m: dict.fromkeys(keys, 0) for m in months} for t in tenants}

    def add(tenant: str, when: datetime, key: str) -> None:
        m = _month(when)
        if tenant in per and m in per[tenant]:
            per[tenant][m][key] += 1

    with engine.connect() as c:
        for t, action, at in c.execute(
            select(model_events.c.tenant, model_events.c.action, model_events.c.at).where(model_events.c.at >= since)
        ):
            if action in ("register", "promote"):
                add(t, at, "registered" if action == "register" else "promoted")
        for t, at in c.execute(select(alerts.c.tenant, alerts.c.raised_at).where(alerts.c.raised_at >= since)):
            add(t, at, "alerts_raised")
        for t, at in c.execute(
            select(alerts.c.tenant, alert_events.c.at)
            .join(alerts, alerts.c.id == alert_events.c.alert_id)
            .where(
                (alert_events.c.at >= since) & alert_events.c.action.in_(HANDLED) & (alert_events.c.actor != "system")
            )
        ):
            add(t, at, "alerts_handled")
        for t, at in c.execute(select(grants.c.owner, grants.c.created_at).where(grants.c.created_at >= since)):
            add(t, at, "grants_given")
    total = {m: {k: sum(per[t][m][k] for t in tenants) for k in keys} for m in months}
    return {"months": months, "keys": list(keys), "total": total, "per_company": per}


def talent(engine: Engine) -> dict[str, Any]:
    """The academy: challenges, participants (people who submitted), submissions, and for how many challenges the
    best entry beats the platform's own baseline (with the best relative improvement)."""
    with engine.connect() as c:
        chs = c.execute(select(challenges.c.id, challenges.c.owner, challenges.c.definition)).all()
        subs = c.execute(
            select(
                submissions.c.challenge,
                submissions.c.user_id,
                submissions.c.reference,
                submissions.c.public_score,
                submissions.c.created_at,
            )
        ).all()
    rows = []
    by_challenge: dict[str, list[Any]] = defaultdict(list)
    for s in subs:
        by_challenge[s.challenge].append(s)
    for ch in chs:
        metric = primary_metric(str(ch.definition.get("task")))
        lower = metric in LOWER_IS_BETTER
        mine = by_challenge.get(ch.id, [])
        people = [s for s in mine if not s.reference]
        pick = min if lower else max
        base = [s.public_score for s in mine if s.reference and s.public_score is not None]
        best = [s.public_score for s in people if s.public_score is not None]
        improvement = None
        if base and best:
            b, e = pick(base), pick(best)
            improvement = round(100.0 * ((b - e) if lower else (e - b)) / abs(b), 2) if b else None
        rows.append(
            {
                "challenge": ch.id,
                "owner": ch.owner,
                "title": ch.definition.get("title"),
                "metric": metric,
                "participants": len({s.user_id for s in people}),
                "submissions": len(people),
                "improvement_pct": improvement,
            }
        )
    return {
        "challenges": len(rows),
        "participants": len({s.user_id for s in subs if not s.reference}),
        "submissions": sum(r["submissions"] for r in rows),
        "beat_baseline": sum(1 for r in rows if (r["improvement_pct"] or 0) > 0),
        "per_challenge": rows,
    }
