"""Attacks through the paths a caller names, each as it was reproduced: two tenants (a, b) on one server, b's
engineer and admin naming the platform's own files, another tenant's files and the machine's, directly, by `..`
and through links. Each test asserts that nothing leaked, nothing moved and nothing was stored."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from taehwa.api.app import create_app
from taehwa.core.errors import InvalidInput
from taehwa.core.paths import dev_token_path
from taehwa.core.settings import Settings
from taehwa.server.platform import Platform
from taehwa.tenancy.access import Principal, acting_as

SECRET = "secret-cell-31415"


def _tree(root: Path) -> dict[str, int]:
    """Every file under `root` with its size: equal before and after means nothing moved or changed."""
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Tenant a with stored points (a Parquet file on disk), tenant b with an engineer and an admin; no configured
    token, so the bootstrap token lies in the data directory as on a fresh `make run`."""
    data = tmp_path_factory.mktemp("attack") / "data"
    outside = tmp_path_factory.mktemp("outside")
    (outside / "foreign.csv").write_text(f"time,tag,value\n2024-03-01T00:00:00Z,x,1\n# {SECRET}\n")
    p = Platform(Settings(data_dir=data), background=False)
    p.tenants.create("a")
    p.tenants.create("b")
    p.historian.write("a", [("a/secret", "2024-03-03T00:00:00Z", 31.4159)])
    p.historian.flush()
    ident = p.identity
    for user, role in (("bob", "engineer"), ("bea", "tenant_admin")):
        ident.create_user(user)
        ident.set_role(user, "b", role)
    tokens = {u: ident.create_token(u, "test")[0] for u in ("bob", "bea")}
    with TestClient(create_app(p)) as client:
        yield {"client": client, "platform": p, "data": data, "outside": outside, "tokens": tokens}
    p.close()


def _as(world: dict[str, Any], user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world['tokens'][user]}"}


def _spec(file: str, **data: Any) -> dict[str, Any]:
    return {
        "name": "probe",
        "task": "anomaly",
        "data": {"source": "file", "file": file, **data},
        "features": {"windows": [2], "stats": ["mean"]},
        "model": {"kind": "zscore"},
        "split": {"method": "rolling", "folds": 2, "train_fraction": 0.5},
    }


def _victims(world: dict[str, Any]) -> dict[str, str]:
    data: Path = world["data"]
    parquet = next((data / "historian" / "a").rglob("*.parquet"))
    return {
        "bootstrap token": str(dev_token_path(world["platform"].settings)),
        "metadata database": str(data / "metadata.sqlite"),
        "another tenant's Parquet": str(parquet),
        "academy hidden labels": str(data / "academy" / "skab-valves" / "hidden" / "labels.parquet"),
        "passwd": "/etc/passwd",
        "environment": "/proc/self/environ",
        "outside the roots": str(world["outside"] / "foreign.csv"),
        "climbing out of b's folder": "../../a/files/x.csv",
        "climbing to the token": "../../../dev-token",
    }


@pytest.mark.parametrize(
    "victim",
    [
        "bootstrap token",
        "metadata database",
        "another tenant's Parquet",
        "academy hidden labels",
        "passwd",
        "environment",
        "outside the roots",
        "climbing out of b's folder",
        "climbing to the token",
    ],
)
def test_a_lab_spec_cannot_read_a_file_outside_the_tenants_folder(world: dict[str, Any], victim: str) -> None:
    client: TestClient = world["client"]
    path = _victims(world)[victim]
    token = world["platform"].api_token
    r = client.post("/api/v1/b/lab/evaluate", json=_spec(path, separator="|"), headers=_as(world, "bob"))
    assert r.status_code == 422, r.text
    body = r.text
    assert r.json()["where"] == "data.file"
    assert token not in body and "root:" not in body and SECRET not in body and "PATH=" not in body
    assert "outside the folders" in body or "platform's own files" in body


def test_a_link_in_the_tenants_folder_to_a_secret_is_refused(world: dict[str, Any]) -> None:
    """A link planted in b's own folder (by anyone who could) leads nowhere: the real path is what is checked."""
    folder = world["platform"].files.folder("b")
    link = folder / "innocent.csv"
    link.unlink(missing_ok=True)
    link.symlink_to(dev_token_path(world["platform"].settings))
    r = world["client"].post(
        "/api/v1/b/lab/evaluate", json=_spec("innocent.csv", separator="|"), headers=_as(world, "bob")
    )
    assert r.status_code == 422 and world["platform"].api_token not in r.text
    link.unlink()


def test_the_tenants_own_file_is_read_and_its_errors_never_show_its_content(world: dict[str, Any]) -> None:
    folder = world["platform"].files.folder("b")
    rows = "\n".join(f"2024-03-01T00:{m:02d}:00Z,{m % 7},{(m * 3) % 5}" for m in range(60))
    (folder / "pump.csv").write_text("time,pt,ft\n" + rows + "\n")
    r = world["client"].post("/api/v1/b/lab/evaluate", json=_spec("pump.csv"), headers=_as(world, "bob"))
    assert r.status_code == 200, r.text
    assert r.json()["lineage"]["file"] == "pump.csv"
    (folder / "odd.csv").write_text(f"{SECRET};x\n{SECRET}|y\n")
    r = world["client"].post("/api/v1/b/lab/evaluate", json=_spec("odd.csv", separator="|"), headers=_as(world, "bob"))
    assert r.status_code == 422 and SECRET not in r.text, r.text
    (folder / "odd.parquet").write_bytes(SECRET.encode() * 10)
    r = world["client"].post("/api/v1/b/lab/evaluate", json=_spec("odd.parquet"), headers=_as(world, "bob"))
    assert r.status_code == 422 and SECRET not in r.text, r.text


def test_the_operators_shell_may_name_its_own_files_but_never_the_platforms(
    world: dict[str, Any], tmp_path: Path
) -> None:
    files = world["platform"].files
    shell = Principal("cli:root", platform_admin=True, local=True)
    with acting_as(shell):
        assert files.resolve("b", str(tmp_path / "x.csv"), where="data.file") == tmp_path / "x.csv"
        with pytest.raises(InvalidInput, match="platform's own files"):
            files.resolve("b", str(dev_token_path(world["platform"].settings)), where="data.file")
        with pytest.raises(InvalidInput, match="platform's own files"):
            files.resolve("b", str(world["data"]), where="folder", folder=True)
    remote_admin = Principal("admin", platform_admin=True)  # a stolen platform-admin token is no shell
    with acting_as(remote_admin), pytest.raises(InvalidInput, match="outside the folders"):
        files.resolve("b", str(tmp_path / "x.csv"), where="data.file")


def test_configured_roots_open_to_every_tenant_or_to_one(tmp_path: Path) -> None:
    from taehwa.tenancy.files import FileRoots

    shared, own = tmp_path / "shared", tmp_path / "own"
    files = FileRoots(Settings(data_dir=tmp_path / "d", file_roots=f"{shared},b={own}"))
    with acting_as(Principal("u", roles={"a": "engineer", "b": "engineer"})):
        assert files.resolve("a", str(shared / "x.csv"), where="f") == shared / "x.csv"
        assert files.resolve("b", str(own / "x.csv"), where="f") == own / "x.csv"
        with pytest.raises(InvalidInput, match="outside"):
            files.resolve("a", str(own / "x.csv"), where="f")
    with pytest.raises(InvalidInput, match="absolute"):
        from taehwa.core.settings import load_settings

        load_settings(data_dir=tmp_path / "d", file_roots="relative/folder")


@pytest.mark.parametrize(
    "victim", ["another tenant's day folder", "data dir", "etc", "outside the roots", "climbing out"]
)
def test_a_files_connector_cannot_watch_a_folder_outside_the_tenants(world: dict[str, Any], victim: str) -> None:
    data: Path = world["data"]
    folder = {
        "another tenant's day folder": str(next((data / "historian" / "a").rglob("*.parquet")).parent),
        "data dir": str(data),
        "etc": "/etc",
        "outside the roots": str(world["outside"]),
        "climbing out": "../../a",
    }[victim]
    before, outside_before = _tree(data / "historian"), _tree(world["outside"])
    r = world["client"].post(
        "/api/v1/b/connectors",
        headers=_as(world, "bea"),
        json={"name": "grab", "protocol": "files", "folder": folder, "pattern": "*"},
    )
    assert r.status_code == 422, r.text
    assert "folder" in r.json()["where"]
    assert world["client"].get("/api/v1/b/connectors", headers=_as(world, "bea")).json() == []
    assert _tree(data / "historian") == before and _tree(world["outside"]) == outside_before


@pytest.mark.parametrize("pattern", ["**/*", "../*", "*/x.csv", "**", "..", "a\\b"])
def test_a_files_connector_pattern_stays_in_its_folder(world: dict[str, Any], pattern: str) -> None:
    r = world["client"].post(
        "/api/v1/b/connectors",
        headers=_as(world, "bea"),
        json={"name": "deep", "protocol": "files", "folder": "drop", "pattern": pattern},
    )
    assert r.status_code == 422 and "pattern" in r.text, r.text


def test_the_drop_folder_moves_nothing_outside_and_leaves_one_note(tmp_path: Path) -> None:
    """In its own folder a files connector takes regular files only: a link to a secret stays (and the secret
    with it), a bad file gets one note however long it runs, and the note itself is never taken again."""
    p = Platform(Settings(data_dir=tmp_path / "data"), background=False)
    try:
        p.tenants.create("b")
        drop = p.files.folder("b") / "drop"
        drop.mkdir()
        secret = tmp_path / "secret.csv"
        secret.write_text(f"time,tag,value\n2024-03-01T00:00:00Z,leak,1\n# {SECRET}\n")
        (drop / "link.csv").symlink_to(secret)
        (drop / "bad.csv").write_text("time,tag,value\n2024-03-01T00:00:00Z,x,abc\n")
        with acting_as(Principal("bea", roles={"b": "tenant_admin"})):
            p.connectors.add(
                "b", {"name": "lims", "protocol": "files", "folder": "drop", "pattern": "*", "poll_s": 0.05}
            )
        p.connectors.start(interval_s=0.2)
        deadline = time.monotonic() + 20
        while not (drop / "failed" / "bad.csv").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # many more polls: no chain of notes grows
        assert sorted(os.listdir(drop / "failed")) == ["bad.csv", "bad.csv.error.txt"]
        assert (drop / "link.csv").is_symlink() and secret.read_text().endswith(f"# {SECRET}\n")
        assert "abc" not in (drop / "failed" / "bad.csv.error.txt").read_text()
        st = p.connectors.status("b", "lims")
        assert SECRET not in str(st)
        assert p.historian.catalog.ids("b", refresh=True) == {} or "leak" not in str(
            p.historian.catalog.ids("b", refresh=True)
        )
    finally:
        p.close()


@pytest.mark.parametrize("baseline", ["../../dev-token", "/etc/passwd", "baselines/../../x.py", "a/./../b.py"])
def test_a_challenges_baseline_names_a_file_in_its_own_folder_only(baseline: str) -> None:
    from taehwa.academy.challenge import load_definition, parse_definition
    from taehwa.core.errors import ValidationFailed

    definition, _ = load_definition("skab-valves")
    doc = {**definition.model_dump(mode="json"), "baseline": baseline}
    with pytest.raises(ValidationFailed, match="baseline"):
        parse_definition(doc)
