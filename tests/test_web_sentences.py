"""The refusals the models page's train-and-sweep form and the alerts page's actions can show are said in Korean by
the one catalogue (taehwa/web/sentences.py), taken from the code that raises them, not copied: a spec, a sweep's
grid, a model's parameter, the city's compute quota; an alert acknowledged or resolved twice, unshelved when not
shelved, one that does not exist, a shelving too long, a filter's state. No browser: the catalogue is the same one
the page gets."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from taehwa.city.compute import QuotaExceeded
from taehwa.core.errors import TaehwaError, ValidationFailed
from taehwa.lab import sweep
from taehwa.lab.spec import parse_spec
from taehwa.server.platform import Platform
from taehwa.tenancy.access import Principal, acting_as
from taehwa.web.sentences import PREFIX, in_language

SPEC = {
    "name": "pumps",
    "task": "anomaly",
    "data": {"tags": ["p/0"], "start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
    "model": {"kind": "pca"},
}


def english_left(said: str) -> list[str]:
    """Runs of three or more English words left in a Korean sentence, outside quoted names, JSON and dotted keys
    (the data and code a sentence names)."""
    plain = re.sub(r"'[^']*'|\{.*\}|\S+\.\S+|[A-Za-z_]+,", " ", said)
    return re.findall(r"(?:\b[A-Za-z]{2,}\b[ ]+){2,}\b[A-Za-z]{2,}\b", plain)


def refusals(platform: Platform) -> list[str]:
    """What the form's calls answer with, from the code itself."""
    spec = parse_spec(SPEC)
    out = []
    grids: list[dict[str, Any]] = [
        {},
        {"quantile": []},
        {"quantile": [0.9 + i / 10_000 for i in range(sweep.MAX_COMBINATIONS + 1)]},
    ]
    for grid in grids:
        with pytest.raises(TaehwaError) as exc:
            sweep.combinations(spec, grid)
        out.append(exc.value.message)
    with pytest.raises(TaehwaError) as exc:
        sweep.combinations(spec, {"depth": [1, 2]})  # a parameter the model does not take
    out.append(exc.value.message)
    with pytest.raises(ValidationFailed) as failed:
        parse_spec({**SPEC, "model": {"kind": "xgboost-9"}})
    out += [str(p["message"]).removeprefix(PREFIX) for p in failed.value.to_dict()["problems"]]
    with pytest.raises(TaehwaError) as exc:
        parse_spec(["not", "a", "mapping"])
    out.append(exc.value.message)
    platform.tenants.create("city")
    with acting_as(Principal("mayor", roles={"city": "tenant_admin"})):
        platform.city.policy.set_quota("acme", 0)
    with pytest.raises(QuotaExceeded) as quota:
        platform.lab.run("acme", SPEC)
    out.append(quota.value.message)
    with pytest.raises(QuotaExceeded) as quota:
        platform.lab.sweep("acme", SPEC, {"alpha": [1]})
    out.append(quota.value.message)
    return out


def alert_refusals(platform: Platform) -> list[str]:
    """What the alerts page's buttons and filters answer with, from the alert service itself."""
    platform.live.rules.put("acme", {"name": "hot", "kind": "threshold", "tag": "p/0", "op": ">", "value": 1})
    platform.live.engine.refresh(force=True)
    platform.historian.write("acme", [("p/0", datetime.now(UTC), 5.0)])
    platform.live.engine.drain()
    [alert] = platform.live.alerts.list("acme")
    alerts, out = platform.live.alerts, []
    calls: list[Callable[[], object]] = [
        lambda: alerts.unshelve("acme", alert["id"]),
        lambda: alerts.acknowledge("acme", alert["id"]),
        lambda: alerts.acknowledge("acme", alert["id"]),  # the second time
        lambda: alerts.resolve("acme", alert["id"]),
        lambda: alerts.resolve("acme", alert["id"]),  # the second time
        lambda: alerts.acknowledge("acme", 10**9),
        lambda: alerts.shelve("acme", alert["id"], 86_400 * 30),
        lambda: alerts.list("acme", state="burning"),
    ]
    for call in calls:
        try:
            call()
        except TaehwaError as exc:
            out.append(exc.message)
    return out


def test_the_forms_refusals_are_said_in_korean(platform: Platform) -> None:
    lab, alerts = refusals(platform), alert_refusals(platform)
    assert len(lab) >= 8 and len(alerts) >= 6, (lab, alerts)
    for english in lab + alerts:
        korean = in_language(english, "ko")
        assert korean != english, f"not in the catalogue: {english}"
        assert not english_left(korean), (english, korean)
