"""Serving a node (`taehwa serve`): which role it takes (a primary with its followers, or a reader node of another
primary), TLS, the optional SQL and Flight ports, the demo's replay, and the order things start and stop in.

The command line only reads its options and prints what this says (`say`, text with rich markup), so the sequence
is the same whoever starts a node.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import TYPE_CHECKING

from taehwa.core.errors import InvalidInput
from taehwa.core.paths import dev_token_path

if TYPE_CHECKING:
    from taehwa.core.settings import Settings
    from taehwa.server.platform import Platform

Say = Callable[[str], None]


def scheme(settings: Settings) -> str:
    """https when the settings name a certificate and its key, else http."""
    return "https" if settings.tls_cert and settings.tls_key else "http"


def serve_node(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    demo: bool = False,
    access_log: bool = False,
    sql_port: int | None = None,
    flight_port: int | None = None,
    say: Say = print,
) -> None:
    """Serve until stopped: a reader node when the settings follow a primary, else the primary (its writer,
    connectors and live scoring, `workers` API processes behind the port, SQL and Flight when given a port, the
    demo's replay when asked); everything it started is closed again in order when it stops."""
    if settings.follow_url:
        serve_reader(settings, host, port, demo=demo, workers=workers, say=say)
        return
    from taehwa.server.platform import Platform

    platform = Platform(settings)
    url = f"{scheme(settings)}://{host}:{port}"
    platform.announce(url)
    if platform.historian.leases.tenants is not None:
        say(
            f"writer of tenants {settings.writer_tenants}, reached at {platform.historian.leases.url}; "
            "other tenants' requests go to their writers"
        )
    say(f"[bold]Taehwa (태화)[/bold] serving {url}  (OpenAPI: {url}/docs)")
    say(f"data: {settings.data_dir.resolve()}   metadata: {settings.metadata_url}")
    if settings.api_token is None:
        say(f"development API token: [bold]{platform.api_token}[/bold]  (kept in {dev_token_path(settings)})")
    replayer = None
    sql = None
    flight = None
    try:
        if flight_port is not None:
            flight = platform.flight(host, flight_port)
            say(f"Arrow Flight: grpc://{host}:{flight.start()}  (authorization: Bearer <API token>)")
        if sql_port is not None:
            sql = platform.sql_port()
            bound = sql.start(host, sql_port)
            say(
                f"SQL (PostgreSQL protocol): psql -h {host} -p {bound} -d TENANT -U USER  (password: an API "
                f"token or your password{'; TLS offered' if sql.tls else ''})"
            )
        platform.connectors.start()
        platform.live.start()
        if demo:
            from taehwa.core.settings import default_shared_data
            from taehwa.demo.replay import demo_sign_in, start_demo

            replayer = start_demo(platform, default_shared_data(settings))
            password = demo_sign_in(platform)
            say(
                f"web UI: {url}/  — sign in as [bold]demo[/bold] / [bold]{password}[/bold] (kept in "
                f"{settings.data_dir / 'demo-password'})"
            )
            say(
                f"demo plant loaded into tenant 'demo', replaying at {replayer.speed:g}× real time over OPC UA "
                f"({replayer.server.endpoint}, read by connector 'demo-plant'): "
                + "; ".join(f"{s['source']} ({s['run']})" for s in replayer.status())
            )
        gc.collect()
        gc.freeze()  # what start-up built (plant models, their live states and programs) is not walked by every
        # full collection: half a million objects made each one a pause of hundreds of ms on the write path
        _serve_http(platform, host, port, workers, access_log=access_log, say=say)
    finally:
        if sql is not None:
            sql.close()
        if flight is not None:
            flight.close()
        if replayer is not None:  # the connectors first: a link whose server went first would log its loss
            platform.connectors.close()
            replayer.stop()
        platform.close()


def _serve_http(platform: Platform, host: str, port: int, count: int, *, access_log: bool, say: Say) -> None:
    """The HTTP API: in this process alone, or as the primary of `count` API processes behind the port."""
    import uvicorn

    from taehwa.api.app import create_app
    from taehwa.api.routing import routed
    from taehwa.api.workers import serve_primary, tls_files

    app = routed(create_app(platform), platform)
    if count == 1:
        cert, key = tls_files(platform.settings)
        # open event streams end with the server: waiting on them would wait for ever
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="info",
            access_log=access_log,
            timeout_graceful_shutdown=5,
            ssl_certfile=cert,
            ssl_keyfile=key,
        )
        return
    serve_primary(
        platform,
        app,
        host,
        port,
        count,
        announce=lambda pids: say(
            f"{count} API processes on port {port}: this one owns the writer; followers {', '.join(map(str, pids))}"
        ),
    )


def serve_reader(settings: Settings, host: str, port: int, *, demo: bool, workers: int, say: Say = print) -> None:
    """`serve --follow URL`: a reader node beside the primary at URL (alone: no demo, one process)."""
    from taehwa.api.workers import serve_follower
    from taehwa.server.platform import Platform

    if demo or workers > 1:
        raise InvalidInput("a reader node runs alone: --follow goes without --demo and --workers", where="--follow")
    platform = Platform(settings, follow=True, background=False)
    at = f"{scheme(settings)}://{host}:{port}"
    say(f"[bold]Taehwa (태화)[/bold] reader node on {at}, following {settings.follow_url}")
    say(f"historian: {platform.historian.storage.describe()}   metadata: {settings.metadata_url}")
    serve_follower(platform, host, port, settings.follow_url or "")
