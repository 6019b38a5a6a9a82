"""The CLI: ingest with a progress bar, query to a file, tags, and clear errors with their exit codes."""

from __future__ import annotations

from pathlib import Path

import pyarrow.csv as pacsv
import pytest
from typer.testing import CliRunner

from taehwa.cli.main import app


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("TAEHWA_DATA_DIR", str(tmp_path / "data"))
    return CliRunner()


def test_ingest_query_tags(runner: CliRunner, tmp_path: Path) -> None:
    assert runner.invoke(app, ["tenants", "create", "acme"]).exit_code == 0
    src = tmp_path / "in.csv"
    src.write_text("time,line1/temp,line1/flow\n2024-03-01T00:00:00Z,20.5,3\n2024-03-01T00:00:01Z,21.5,4\n")
    r = runner.invoke(app, ["ingest", str(src), "--tenant", "acme"])
    assert r.exit_code == 0, r.output
    assert "stored 4 points in 2 tags" in r.output
    out = tmp_path / "out.csv"
    r = runner.invoke(
        app,
        [
            "query",
            "line1/temp",
            "-t",
            "acme",
            "--start",
            "2024-03-01",
            "--end",
            "2024-03-02",
            "--every",
            "1m",
            "--agg",
            "avg,max",
            "-o",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    table = pacsv.read_csv(out)
    assert table.column("avg").to_pylist() == [21.0] and table.column("max").to_pylist() == [21.5]
    r = runner.invoke(app, ["tags", "set", "line1/temp", "-t", "acme", "--unit", "degC", "--attr", "loop=A"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["tags", "-t", "acme"])
    assert "line1/temp" in r.output and "degC" in r.output


def test_tags_set_is_audited(runner: CliRunner) -> None:
    """`tags set` goes through the historian's audited path: each change leaves a tag.set record with before and after,
    and attributes given later are merged with those the tag has."""
    import json

    assert runner.invoke(app, ["tenants", "create", "acme"]).exit_code == 0
    r = runner.invoke(app, ["tags", "set", "line1/temp", "-t", "acme", "--unit", "degC", "--attr", "loop=A"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["tags", "set", "line1/temp", "-t", "acme", "--attr", "area=cdu"])
    assert r.exit_code == 0, r.output
    shown = json.loads(runner.invoke(app, ["tags", "show", "line1/temp", "-t", "acme"]).stdout)
    assert shown["unit"] == "degC" and shown["attributes"] == {"loop": "A", "area": "cdu"}
    entries = json.loads(runner.invoke(app, ["audit", "show", "-t", "acme", "--json"]).stdout)
    sets = [e for e in entries if e["action"] == "tag.set"]
    assert [e["target"] for e in sets] == ["line1/temp", "line1/temp"]
    assert all(e["actor"].startswith("cli:") for e in sets)
    newest, first = sets  # newest first
    assert first["before"] is None and first["after"]["unit"] == "degC"
    assert newest["before"]["attributes"] == {"loop": "A"} and newest["after"]["attributes"] == shown["attributes"]
    r = runner.invoke(app, ["tags", "set", "line1/temp", "-t", "nobody", "--attr", "x=1"])
    assert r.exit_code != 0 and "nobody" in r.output


def test_tables_print_json_on_request(runner: CliRunner, tmp_path: Path) -> None:
    """`--json` prints what a table shows as JSON (whole rows, not cut to the terminal), for scripts."""
    import json

    assert runner.invoke(app, ["tenants", "create", "acme", "--name", "Acme refinery"]).exit_code == 0
    src = tmp_path / "in.csv"
    src.write_text("time,line1/temp\n2024-03-01T00:00:00Z,20.5\n2024-03-01T00:00:01Z,21.5\n")
    assert runner.invoke(app, ["ingest", str(src), "-t", "acme"]).exit_code == 0
    tenants = json.loads(runner.invoke(app, ["tenants", "list", "--json"]).stdout)
    assert {"id": "acme", "name": "Acme refinery"}.items() <= tenants[0].items()
    latest = json.loads(runner.invoke(app, ["tags", "latest", "-t", "acme", "--json"]).stdout)
    assert [(r["tag"], r["value"], r["quality"]) for r in latest] == [("line1/temp", 21.5, "good")]
    points = json.loads(
        runner.invoke(
            app, ["query", "line1/temp", "-t", "acme", "--start", "2024-03-01", "--end", "2024-03-02", "--json"]
        ).stdout
    )
    assert [p["value"] for p in points] == [20.5, 21.5]
    tags = json.loads(runner.invoke(app, ["tags", "-t", "acme", "--json"]).stdout)
    assert [t["name"] for t in tags] == ["line1/temp"]
    for command in (
        ["admin", "users", "--json"],
        ["audit", "show", "--json"],
        ["twin", "types", "-t", "acme", "--json"],
        ["twin", "versions", "-t", "acme", "--json"],
        ["twin", "children", "-t", "acme", "--json"],
    ):
        r = runner.invoke(app, command)
        assert r.exit_code == 0, (command, r.output)
        assert isinstance(json.loads(r.stdout), list), command


def test_cli_errors_have_exit_codes(runner: CliRunner, tmp_path: Path) -> None:
    runner.invoke(app, ["tenants", "create", "acme"])
    bad = tmp_path / "bad.csv"
    bad.write_text("tag,time,value\na,2024-03-01T00:00:00Z,1\na,2024-03-01T00:00:01Z,high\n")
    r = runner.invoke(app, ["ingest", str(bad), "-t", "acme"])
    assert r.exit_code == 2
    assert "bad.csv, row 2, column 'value'" in r.output and "is not a number" in r.output and "'high'" not in r.output
    r = runner.invoke(app, ["ingest", str(bad), "-t", "nobody"])
    assert r.exit_code == 3 and "unknown tenant" in r.output
    r = runner.invoke(app, ["ingest", str(tmp_path / "missing.parquet"), "-t", "acme"])
    assert r.exit_code == 2 and "file not found" in r.output
    r = runner.invoke(app, ["query", "a", "-t", "acme", "--start", "2024-03-01", "--end", "2024-03-02"])
    assert r.exit_code == 3 and "unknown tag 'a'" in r.output
    assert runner.invoke(app, ["tenants", "create", "acme"]).exit_code == 4


def test_help_lists_the_commands(runner: CliRunner) -> None:
    r = runner.invoke(app, ["--help"])
    for command in ("serve", "ingest", "query", "tags", "tenants", "demo", "compact"):
        assert command in r.output
