"""The data volume over days on the pages that show the data rate (control tower, connectors), without a browser:
points held per UTC day counted from the store's manifest and buffers (no point read), each company's only to
those who may read it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from taehwa.core.errors import Forbidden
from taehwa.server.platform import Platform
from taehwa.tenancy.access import Principal, acting_as


def total(html: str, figure_id: str) -> int:
    """The total a day-bars figure of the page carries."""
    m = re.search(rf'id="{figure_id}" data-total="(\d+)"', html)
    assert m, f"no figure {figure_id}"
    return int(m.group(1))


def test_points_per_day_on_the_tower_and_the_connectors_page(client: TestClient, platform: Platform) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    then = now - timedelta(days=3)
    stored = [(f"p/{i}", then + timedelta(seconds=s), float(s)) for i in range(2) for s in range(5)]
    platform.historian.write("acme", stored)
    platform.historian.flush()  # ten in the day files of three days ago
    platform.historian.write("acme", [("p/0", now, 1.0), ("p/1", now, 2.0), ("p/0", now - timedelta(days=30), 3.0)])
    days = [then.date().isoformat(), now.date().isoformat(), (now - timedelta(days=1)).date().isoformat()]
    assert platform.historian.points_per_day("acme", days) == {days[0]: 10, days[1]: 2, days[2]: 0}
    with acting_as(Principal("stranger", roles={"rival": "tenant_admin"})), pytest.raises(Forbidden):
        platform.historian.points_per_day("acme", days)
    tower = client.get("/tower")
    assert tower.status_code == 200
    assert total(tower.text, "volume-acme") == 12 and total(tower.text, "volume-rival") == 0  # the last 14 days
    assert total(tower.text, "volume-cluster") == 12
    client.cookies.set("taehwa_lang", "ko")
    page = client.get("/t/acme/connectors")
    assert page.status_code == 200 and total(page.text, "volume-days") == 12
    assert "일별 저장 포인트" in page.text
