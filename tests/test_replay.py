"""`taehwa replay`: a data file served as live traffic over a real OPC UA server and a real Mosquitto broker at
once, read back by ordinary connectors; bad data sets and destinations refused with a clear message."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from taehwa.cli.main import app
from taehwa.core.loopback import free_port
from taehwa.replay.session import ReplaySession
from taehwa.replay.sources import file_source, load_sources
from taehwa.server.platform import Platform
from tests.test_connectors_mqtt import MOSQUITTO, Broker, wait_for

ROWS = 30


def plant_file(folder: Path) -> Path:
    path = folder / "line3.csv"
    lines = ["time,line3/flow,line3/temp"]
    lines += [f"2026-03-01T00:00:{i:02d}Z,{100 + i},{20 + i / 10:.1f}" for i in range(ROWS)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_file_source_pivots_points_into_rows(tmp_path: Path) -> None:
    src = file_source(plant_file(tmp_path))
    assert src.tags == ["line3/flow", "line3/temp"] and src.interval_s == 1.0
    rows = src.runs[0][1]
    assert rows.shape == (ROWS, 2) and rows[3].tolist() == [103.0, 20.3]


@pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (make test installs it as root)")
def test_replay_over_opcua_and_mqtt_reaches_the_historian(platform: Platform, tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    broker.start()
    session = ReplaySession(
        load_sources(str(plant_file(tmp_path)), tmp_path),
        speed=30.0,
        opcua_endpoint=f"opc.tcp://127.0.0.1:{free_port()}/taehwa/",
        mqtt=f"127.0.0.1:{broker.port}",
    )
    try:
        session.start()
        opc, mqtt = session.connectors()
        mqtt["tag_prefix"] = "via-mqtt/"  # the same points by the second path, kept apart
        platform.connectors.add("acme", [opc, mqtt])
        platform.connectors.start(interval_s=0.2)

        def seen(tag: str) -> set[float]:
            platform.historian.flush()
            try:
                return set(
                    platform.historian.read("acme", [tag], "2000-01-01", "2100-01-01").column("value").to_pylist()
                )
            except Exception:
                return set()

        want = {100.0 + i for i in range(ROWS)}
        assert wait_for(lambda: seen("line3/flow") >= want and seen("via-mqtt/line3/flow") >= want, timeout=30)
        assert {20.0, 22.9} <= seen("line3/temp")
    finally:
        session.stop()
        broker.stop()


def test_replay_cli_serves_and_writes_connectors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAEHWA_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    out = tmp_path / "replay-connectors.yaml"
    t0 = time.monotonic()
    r = runner.invoke(
        app,
        [
            "replay",
            str(plant_file(tmp_path)),
            "--port",
            str(free_port()),
            "--speed",
            "10",
            "--duration",
            "1",
            "--connector-file",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "OPC UA: opc.tcp://127.0.0.1:" in r.output and time.monotonic() - t0 >= 1
    doc = yaml.safe_load(out.read_text())["connectors"]
    assert [c["protocol"] for c in doc] == ["opcua"]
    assert sorted(i["tag"] for i in doc[0]["items"]) == ["line3/flow", "line3/temp"]


def test_replay_refuses_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["replay", str(tmp_path / "missing.csv"), "--duration", "0.1"])
    assert r.exit_code != 0 and "no data set" in r.output and "tep" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("time,a\nyesterday,1\n")
    r = runner.invoke(app, ["replay", str(bad), "--duration", "0.1"])
    assert r.exit_code != 0 and "bad.csv" in r.output
    r = runner.invoke(app, ["replay", str(plant_file(tmp_path)), "--port", "0", "--duration", "0.1"])
    assert r.exit_code != 0 and "nothing to serve on" in r.output
    r = runner.invoke(
        app, ["replay", str(plant_file(tmp_path)), "--port", "0", "--mqtt", "nohost", "--duration", "0.1"]
    )
    assert r.exit_code != 0 and "host:port" in r.output


def test_replay_refuses_a_taken_port_and_starts_nothing_on_a_bad_broker(tmp_path: Path) -> None:
    import socket

    from taehwa.core.errors import InvalidInput, Unavailable

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        session = ReplaySession(
            load_sources(str(plant_file(tmp_path)), tmp_path), 1.0, f"opc.tcp://127.0.0.1:{port}/taehwa/"
        )
        with pytest.raises(Unavailable, match="cannot listen"):
            session.start()
    session = ReplaySession(
        load_sources(str(plant_file(tmp_path)), tmp_path), 1.0, "opc.tcp://127.0.0.1:0/taehwa/", mqtt="nohost"
    )
    with pytest.raises(InvalidInput, match="host:port"):
        session.start()
    assert session.server is None  # refused before the OPC UA server started
