"""`taehwa twin`: load, export, search, show, change and state from the shell, directly and through a running
server; errors name the line and exit with the invalid-input code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taehwa.cli.main import app
from taehwa.core.settings import Settings
from taehwa.server.platform import Platform
from tests.conftest import serving

PLANT = Path(__file__).parent / "data" / "plant.yaml"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("TAEHWA_DATA_DIR", str(tmp_path / "data"))
    r = CliRunner()
    assert r.invoke(app, ["tenants", "create", "acme"]).exit_code == 0
    return r


def test_load_search_change_export(runner: CliRunner, tmp_path: Path) -> None:
    r = runner.invoke(app, ["twin", "load", str(PLANT), "-t", "acme"])
    assert r.exit_code == 0, r.output
    assert "6 assets, 6 added" in r.output
    r = runner.invoke(app, ["twin", "search", "-t", "acme", "--type", "CentrifugalPump", "--attr", "service=standby"])
    assert "ulsan/cdu/p-101b" in r.output and "ulsan/cdu/p-101a" not in r.output
    r = runner.invoke(
        app,
        [
            "twin",
            "create",
            "p-102",
            "-t",
            "acme",
            "--parent",
            "ulsan/cdu",
            "--type",
            "CentrifugalPump",
            "--attr",
            "rated_power=90",
            "--tag",
            "flow=ulsan/cdu/P-102/FT",
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["twin", "set", "ulsan/cdu/p-102", "-t", "acme", "--attr", "rated_power=95"])
    assert r.exit_code == 0, r.output
    shown = json.loads(runner.invoke(app, ["twin", "show", "ulsan/cdu/p-102", "-t", "acme"]).output)
    assert shown["attributes"] == {"rated_power": 95} and shown["tags"] == {"flow": "ulsan/cdu/P-102/FT"}
    assert runner.invoke(app, ["twin", "move", "ulsan/cdu/p-102", "-t", "acme", "--to", "ulsan"]).exit_code == 0
    assert runner.invoke(app, ["twin", "delete", "ulsan/p-102", "-t", "acme"]).exit_code == 0
    out = tmp_path / "export.yaml"
    assert runner.invoke(app, ["twin", "export", "-t", "acme", "-o", str(out)]).exit_code == 0
    r = runner.invoke(app, ["twin", "load", str(out), "-t", "acme"])
    assert "0 added, 0 changed, 0 removed" in r.output
    r = runner.invoke(app, ["twin", "versions", "-t", "acme"])
    assert "created ulsan/cdu/p-102" in r.output
    r = runner.invoke(app, ["twin", "state", "ulsan/cdu/p-101a", "-t", "acme"])
    assert r.exit_code == 0 and "discharge_pressure" in r.output


def test_errors_name_the_line_and_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(PLANT.read_text().replace("type: Column\n", "type: Colum\n"))
    r = runner.invoke(app, ["twin", "load", str(bad), "-t", "acme"])
    assert r.exit_code == 2
    line = PLANT.read_text().splitlines().index("          - id: c-101") + 1  # the asset's own line
    assert f"bad.yaml:{line}: asset 'ulsan/cdu/c-101': unknown type 'Colum'" in r.output
    assert runner.invoke(app, ["twin", "load", str(tmp_path / "missing.yaml"), "-t", "acme"]).exit_code == 2
    assert runner.invoke(app, ["twin", "show", "nowhere", "-t", "acme"]).exit_code == 3
    r = runner.invoke(app, ["twin", "create", "x", "-t", "acme", "--type", "Column", "--attr", "novalue"])
    assert r.exit_code == 2 and "NAME=VALUE" in r.output


def test_changes_go_through_a_running_server(runner: CliRunner, tmp_path: Path, live_cli_server: Platform) -> None:
    r = runner.invoke(app, ["twin", "load", str(PLANT), "-t", "acme"])
    assert r.exit_code == 0, r.output
    assert live_cli_server.twin.search("acme")["total"] == 6  # the server's own model saw it
    bad = tmp_path / "bad.yaml"
    bad.write_text(PLANT.read_text().replace("type: Column\n", "type: Colum\n"))
    r = runner.invoke(app, ["twin", "load", str(bad), "-t", "acme"])
    line = PLANT.read_text().splitlines().index("          - id: c-101") + 1
    # the server's error said as the CLI says its own: the file by its name, the line from the body's location
    assert r.exit_code == 2 and f"bad.yaml:{line}: asset 'ulsan/cdu/c-101': unknown type 'Colum'" in r.output
    r = runner.invoke(app, ["twin", "delete", "ulsan/cdu", "-t", "acme"])
    assert r.exit_code == 4 and "recursive" in r.output


@pytest.fixture
def live_cli_server(runner: CliRunner, tmp_path: Path) -> Iterator[Platform]:
    """A server on the same data directory as the CLI, announced in server.json as `taehwa serve` does."""
    platform = Platform(Settings(data_dir=tmp_path / "data"), background=False)
    try:
        with serving(platform) as url:
            platform.announce(url)
            yield platform
    finally:
        platform.close()
