"""One replay run: sources played at a speed into a replay OPC UA server and/or an MQTT broker, with the connector
definitions that read them back (what `taehwa replay` runs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from taehwa.core.errors import InvalidInput
from taehwa.demo.plant import Source
from taehwa.replay.mqtt_publisher import MqttPublisher
from taehwa.replay.opcua_server import ReplayServer
from taehwa.replay.player import Replayer


@dataclass
class ReplaySession:
    sources: list[Source]
    speed: float
    opcua_endpoint: str | None = "opc.tcp://127.0.0.1:4840/taehwa/"
    mqtt: str | None = None  # host:port
    mqtt_prefix: str = "taehwa/replay"
    server: ReplayServer | None = field(default=None, init=False)
    publisher: MqttPublisher | None = field(default=None, init=False)
    replayer: Replayer | None = field(default=None, init=False)

    def start(self) -> None:
        if not self.opcua_endpoint and not self.mqtt:
            raise InvalidInput("nothing to serve on: give an OPC UA port or an MQTT broker", where="replay")
        host, _, port = (self.mqtt or "").rpartition(":")
        if self.mqtt and (not host or not port.isdigit()):  # checked before anything starts
            raise InvalidInput(f"MQTT broker {self.mqtt!r} is not host:port", where="mqtt")
        if self.opcua_endpoint:
            self.server = ReplayServer(self.opcua_endpoint)
            self.server.start([t for s in self.sources for t in s.tags])
        if self.mqtt:
            try:
                self.publisher = MqttPublisher(host, int(port), prefix=self.mqtt_prefix)
            except OSError as exc:
                self.stop()
                raise InvalidInput(f"cannot reach the MQTT broker at {self.mqtt}: {exc}", where="mqtt") from None
        self.replayer = Replayer(self.sources, self.speed, self._send)
        self.replayer.start()

    def _send(self, table: pa.Table) -> None:
        if self.server is not None:
            self.server.write(table)
        if self.publisher is not None:
            self.publisher.write(table)

    def connectors(self) -> list[dict[str, Any]]:
        """Definitions for `taehwa connectors add` that read this replay back."""
        out = []
        if self.server is not None:
            out.append(self.server.connector("replay-opcua"))
        if self.publisher is not None:
            out.append(self.publisher.connector("replay-mqtt"))
        return out

    def stop(self) -> None:
        if self.replayer is not None:
            self.replayer.stop()
        if self.publisher is not None:
            self.publisher.close()
        if self.server is not None:
            self.server.stop()
