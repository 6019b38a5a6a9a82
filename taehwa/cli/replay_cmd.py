"""`taehwa replay DATASET`: serve a data set as live plant traffic over a real OPC UA server and/or an MQTT broker."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
import yaml

from taehwa.cli.common import fail, out
from taehwa.core.errors import TaehwaError


def replay(
    dataset: Annotated[
        str,
        typer.Argument(
            help="demo, tep, skab, cmapss (from ../shared/data) or a "
            "CSV/Parquet file in the formats 'taehwa ingest' takes."
        ),
    ],
    speed: Annotated[float, typer.Option(help="Times faster than real time.", min=0.001, max=100_000)] = 1.0,
    port: Annotated[int, typer.Option(help="OPC UA port on --host (0: no OPC UA server).", min=0, max=65535)] = 4840,
    host: Annotated[str, typer.Option(help="Address the OPC UA server listens on.")] = "127.0.0.1",
    mqtt: Annotated[str | None, typer.Option(help="Also publish to this MQTT broker (host:port).")] = None,
    topic: Annotated[str, typer.Option(help="MQTT topic prefix.")] = "taehwa/replay",
    connector_file: Annotated[
        Path | None,
        typer.Option(help="Write the connector definitions that read this replay (for 'taehwa connectors add')."),
    ] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Serve a data set as live plant traffic (values stamped with the time they are played) until Ctrl-C."""
    from taehwa.core.settings import default_shared_data
    from taehwa.replay.session import ReplaySession
    from taehwa.replay.sources import load_sources

    try:
        sources = load_sources(dataset, default_shared_data())
        session = ReplaySession(sources, speed, f"opc.tcp://{host}:{port}/taehwa/" if port else None, mqtt, topic)
        session.start()
    except TaehwaError as exc:
        fail(exc)
        return
    try:
        if session.server is not None:
            out.print(f"OPC UA: {session.server.endpoint} ({len(session.server.ids)} variables)")
        if session.publisher is not None:
            out.print(f"MQTT: publishing to {mqtt} under {topic}/")
        if connector_file is not None:
            connector_file.write_text(yaml.safe_dump({"connectors": session.connectors()}, sort_keys=False))
            out.print(f"connector definitions written to {connector_file} (taehwa connectors add {connector_file})")
        out.print(f"replaying {', '.join(s.name for s in sources)} at {speed:g}× real time; Ctrl-C stops")
        deadline = time.monotonic() + duration if duration else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        session.stop()
