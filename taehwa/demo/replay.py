"""The live demo plant: the demo data sets replayed as a real OPC UA server on loopback, read by an ordinary OPC UA
connector of tenant `demo` — the same path a real plant's data takes (protocol → durable queue → historian → twin).

`make run` (`taehwa serve --demo`) starts it: no root, no system service, nothing beyond the Python environment.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taehwa.core.errors import NotFound, TaehwaError
from taehwa.replay.opcua_server import ReplayServer
from taehwa.replay.player import Replayer
from taehwa.server.platform import Platform
from taehwa.tenancy.access import SYSTEM, acting_as

DEMO_CONNECTOR = "demo-plant"
log = logging.getLogger(__name__)


@dataclass
class LiveDemo:
    """The running demo: the replay OPC UA server and the clock that feeds it."""

    server: ReplayServer
    replayer: Replayer

    @property
    def speed(self) -> float:
        return self.replayer.speed

    def status(self) -> list[dict[str, Any]]:
        return self.replayer.status()

    def stop(self) -> None:
        self.replayer.stop()
        self.server.stop()


def start_demo(platform: Platform, shared: Path, *, speed: float | None = None, port: int | None = None) -> LiveDemo:
    """Load (or refresh) the demo plant into tenant `demo`, serve its data sets over OPC UA on loopback (`port`:
    TAEHWA_DEMO_OPCUA_PORT by default, 0 for any free one) and define connector `demo-plant` that reads them."""
    from taehwa.demo import DEMO_TENANT
    from taehwa.demo.history import load_demo_plant, match_replay_speed

    sources = load_demo_plant(platform, shared, DEMO_TENANT)
    speed = speed or platform.settings.demo_speed
    try:  # the demo's models score a row per replayed data row, whatever speed the demo was loaded at
        match_replay_speed(platform, DEMO_TENANT, speed)
    except TaehwaError as exc:
        log.warning("demo deployments not re-spaced for speed %g: %s", speed, exc)
    port = platform.settings.demo_opcua_port if port is None else port
    server = ReplayServer(f"opc.tcp://127.0.0.1:{port}/taehwa/")  # port 0: the server picks a free one
    server.start([t for s in sources for t in s.tags])
    try:
        platform.connectors.add(
            DEMO_TENANT, server.connector(DEMO_CONNECTOR, publish_ms=200.0), replace=True, source="demo"
        )
        platform.connectors.start()
        replayer = Replayer(sources, speed, server.write)
        replayer.start()
    except Exception:
        server.stop()
        raise
    return LiveDemo(server, replayer)


def demo_sign_in(platform: Platform) -> str:
    """The demo's web sign-in: a platform admin `demo` with a random password kept beside the development token
    (readable only by its owner), made on first use."""
    path = platform.settings.data_dir / "demo-password"
    with acting_as(SYSTEM):
        try:
            platform.identity.get_user("demo")
            if path.exists():
                return path.read_text().strip()
            password = secrets.token_urlsafe(12)
            platform.identity.set_password("demo", password)
        except NotFound:
            password = secrets.token_urlsafe(12)
            platform.identity.create_user("demo", "Demo (city office)", password=password, platform_admin=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password)
    return password
