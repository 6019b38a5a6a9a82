"""Sharing by consent: grants of tags × time to another tenant, pseudonymised or not, time-limited, revocable, and
every read under them in the owner's audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from taehwa.core.errors import Forbidden, InvalidInput, NotFound
from taehwa.db import grants
from taehwa.server.platform import Platform
from taehwa.tenancy.access import Principal, acting_as

T0 = "2024-03-01T00:00:00Z"


@pytest.fixture
def shared(platform: Platform) -> Platform:
    platform.tenants.create("uni")
    rows = [(f"cdu/p{k}", f"2024-03-01T00:00:{i:02d}Z", float(10 * k + i)) for k in (1, 2) for i in range(20)]
    platform.historian.write("acme", [*rows, ("secret/recipe", T0, 42.0)])
    for user, tenant, role in [
        ("boss", "acme", "tenant_admin"),
        ("op", "acme", "viewer"),
        ("prof", "uni", "researcher"),
        ("spy", "rival", "tenant_admin"),
    ]:
        platform.identity.create_user(user)
        platform.identity.set_role(user, tenant, role)
    return platform


def as_user(p: Platform, user: str) -> Principal:
    return p.identity.authenticate(p.identity.create_token(user, "t")[0])


def test_plain_grant_read_clipped_and_audited(shared: Platform) -> None:
    s = shared.sharing
    with acting_as(as_user(shared, "boss")):
        g = s.create("acme", "uni", ["cdu/*"], T0, "2024-03-01T00:00:10Z", days=30, purpose="thesis")
    with acting_as(as_user(shared, "prof")):
        assert s.tags("uni", g.id) == ["cdu/p1", "cdu/p2"]
        t = s.read("uni", g.id, ["cdu/p1"], "2024-01-01", "2025-01-01")  # asked wide: clipped to the grant
        assert t.num_rows == 10
        with pytest.raises(NotFound):
            s.read("uni", g.id, ["secret/recipe"], "2024-01-01", "2025-01-01")
        with pytest.raises(InvalidInput, match="outside grant"):
            s.read("uni", g.id, ["cdu/p1"], "2024-06-01", "2024-07-01")
        assert s.overview("uni")["received"][0]["id"] == g.id
    with acting_as(as_user(shared, "boss")):
        reads = [e for e in shared.audit.entries("acme") if e["action"] == "grant.read"]
        assert reads and reads[0]["after"]["grantee"] == "uni" and reads[0]["after"]["by"] == "prof"
        assert reads[0]["after"]["rows"] == 10


def test_pseudonymised_grant_hides_names_and_scales_values(shared: Platform) -> None:
    s = shared.sharing
    with acting_as(as_user(shared, "boss")):
        g = s.create("acme", "uni", ["cdu/p1"], T0, "2024-03-02", days=1, pseudonymise=True)
    with acting_as(as_user(shared, "prof")):
        [alias] = s.tags("uni", g.id)
        assert "cdu" not in alias and alias.startswith(f"shared/{g.id}/")
        got = s.read("uni", g.id, [alias], T0, "2024-03-02")
        assert set(got.column("tag").to_pylist()) == {alias}
        shown = np.array(got.column("value").to_pylist())
        view = s.overview("uni")["received"][0]
        assert "tags" not in view and "scale" not in view
        avg = s.read("uni", g.id, [alias], T0, "2024-03-02", every="1h", agg="avg,count")
        with pytest.raises(InvalidInput, match="pseudonymised"):
            s.read("uni", g.id, [alias], T0, "2024-03-02", every="1h", agg="sum")
    original = np.arange(10, 30, dtype=float)
    slope, intercept = np.polyfit(original, shown, 1)
    assert np.allclose(slope * original + intercept, shown)  # an affine map: shapes kept, levels hidden
    assert not np.allclose(shown, original)
    assert avg.column("avg").to_pylist()[0] == pytest.approx(slope * original.mean() + intercept)


def test_revoke_expiry_and_who_may(shared: Platform) -> None:
    s = shared.sharing
    with acting_as(as_user(shared, "op")), pytest.raises(Forbidden):  # a viewer may not share
        s.create("acme", "uni", ["cdu/p1"], T0, "2024-03-02", days=1)
    with acting_as(as_user(shared, "boss")):
        g = s.create("acme", "uni", ["cdu/p1"], T0, "2024-03-02", days=1)
        g2 = s.create("acme", "uni", ["cdu/p2"], T0, "2024-03-02", days=1)
        with pytest.raises(InvalidInput):
            s.create("acme", "acme", ["cdu/p1"], T0, "2024-03-02", days=1)
        with pytest.raises(InvalidInput):
            s.create("acme", "uni", ["cdu/p1"], "2024-03-02", T0, days=1)
    with acting_as(as_user(shared, "spy")), pytest.raises(NotFound):  # another tenant cannot use it
        s.read("rival", g.id, ["cdu/p1"], T0, "2024-03-02")
    with acting_as(as_user(shared, "boss")):
        s.revoke("acme", g.id)
    with shared.historian.engine.begin() as c:
        c.execute(update(grants).where(grants.c.id == g2.id).values(expires_at=datetime.now(UTC) - timedelta(1)))
    with acting_as(as_user(shared, "prof")):
        with pytest.raises(Forbidden, match="revoked"):
            s.read("uni", g.id, ["cdu/p1"], T0, "2024-03-02")
        with pytest.raises(Forbidden, match="expired"):
            s.read("uni", g2.id, ["cdu/p2"], T0, "2024-03-02")


def test_sharing_over_http(shared: Platform, client: TestClient) -> None:
    boss = {"Authorization": "Bearer " + shared.identity.create_token("boss", "t")[0]}
    prof = {"Authorization": "Bearer " + shared.identity.create_token("prof", "t")[0]}
    r = client.post(
        "/api/v1/acme/grants",
        headers=boss,
        json={"grantee": "uni", "tags": ["cdu/p1"], "start": T0, "end": "2024-03-02", "days": 7},
    )
    assert r.status_code == 201, r.text
    gid = r.json()["id"]
    r = client.get(
        f"/api/v1/uni/shared/{gid}/points", headers=prof, params={"tags": "cdu/p1", "start": T0, "end": "2024-03-02"}
    )
    assert r.status_code == 200 and r.json()["count"] == 20
    assert client.get("/api/v1/acme/grants", headers=boss).json()["given"][0]["id"] == gid
    assert client.get(f"/api/v1/acme/shared/{gid}/tags", headers=prof).status_code == 403
    assert client.delete(f"/api/v1/acme/grants/{gid}", headers=boss).status_code == 204
    assert client.get(f"/api/v1/uni/shared/{gid}/tags", headers=prof).status_code == 403
