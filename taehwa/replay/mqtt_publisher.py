"""Replayed points published to an MQTT broker (paho-mqtt, QoS 1): one JSON message per source and instant, a list
of `{"tag", "time", "value"}` of at most `per_message` points, on `<prefix>/<source>`."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pyarrow as pa


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class MqttPublisher:
    """Publish replayed points; `connector()` gives the matching MQTT connector definition."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        prefix: str = "taehwa/replay",
        per_message: int = 100,
        client_id: str = "taehwa-replay",
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.host, self.port, self.prefix, self.per_message = host, port, prefix, per_message
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect(host, port)
        self.client.loop_start()

    def write(self, table: pa.Table, topic: str = "points") -> None:
        """Publish points (tag, time, value) in messages of at most `per_message`, waiting for the broker's acks."""
        tags = table.column("tag").to_pylist()
        times = table.column("time").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist()
        values = table.column("value").to_pylist()
        infos = []
        for k in range(0, len(tags), self.per_message):
            rows = [
                {"tag": tags[i], "time": times[i], "value": values[i]}
                for i in range(k, min(k + self.per_message, len(tags)))
            ]
            infos.append(self.client.publish(f"{self.prefix}/{topic}", orjson.dumps(rows), qos=1))
        for info in infos:
            info.wait_for_publish(timeout=60)

    def connector(self, name: str = "replay-mqtt") -> dict[str, Any]:
        return {
            "name": name,
            "protocol": "mqtt",
            "host": self.host,
            "port": self.port,
            "description": "MQTT replay (taehwa replay)",
            "items": [{"topic": f"{self.prefix}/+", "format": "json", "tag": "{name}", "qos": 1}],
        }

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
