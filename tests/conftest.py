"""Shared fixtures: a fresh data directory, settings, historian, platform and HTTP client per test."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from taehwa.api.app import create_app
from taehwa.core.settings import Settings
from taehwa.historian.store import Historian
from taehwa.server.platform import Platform

TOKEN = "test-token-0123456789"
# TAEHWA_TEST_DATABASE=postgresql runs the tests against PostgreSQL (a throw-away server, a fresh database per test
# and per module); the default is SQLite in each test's data directory
POSTGRES = os.environ.get("TAEHWA_TEST_DATABASE", "sqlite") == "postgresql"


@pytest.fixture(scope="session", autouse=True)
def _no_process_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Session-wide: no API follower, connector worker or sandbox run that this run started is left when it ends
    (each must end with its parent); any found are ended and the check fails, naming them."""
    from tests.procs import RUN_MARK, end, gone_within, left_behind

    mark = f"{os.getpid()}-{os.urandom(4).hex()}"
    os.environ[RUN_MARK] = mark  # inherited by every process the run starts
    base = str(tmp_path_factory.getbasetemp())
    yield
    left = left_behind(mark, base)
    if left and gone_within(list(left), 15.0) is None:
        left = left_behind(mark, base)
        end(list(left))
        raise AssertionError(f"processes left behind by this run: {left}")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    if not POSTGRES:
        yield None
        return
    from tests.pg import TestServer

    server = TestServer()
    yield server
    server.stop()


@pytest.fixture(scope="module", autouse=True)
def _module_database(pg_server: Any) -> Iterator[None]:
    """Module-wide fixtures (built before any test's own) get a database of their own."""
    if pg_server is None:
        yield
        return
    url = pg_server.database()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TAEHWA_DATABASE_URL", url)
        yield
    pg_server.drop(url)


@pytest.fixture(autouse=True)
def _test_database(pg_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every Settings a test makes (its processes too, through the environment) uses a fresh database."""
    if pg_server is None:
        yield
        return
    url = pg_server.database()
    monkeypatch.setenv("TAEHWA_DATABASE_URL", url)
    yield
    gc.collect()  # a connection the test left open is reported now, against this test, not a later one
    pg_server.drop(url)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", api_token=TOKEN)


@pytest.fixture
def hist(settings: Settings) -> Iterator[Historian]:
    h = Historian(settings, background=False)
    h.tenants.create("acme")
    h.tenants.create("rival")
    yield h
    h.close()


@pytest.fixture
def platform(settings: Settings) -> Iterator[Platform]:
    p = Platform(settings, background=False)
    p.tenants.create("acme")
    p.tenants.create("rival")
    yield p
    p.close()


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform), headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


@contextmanager
def serving(platform: Platform) -> Iterator[str]:
    """The API served by uvicorn on a free loopback port, for streams and processes a test client cannot reach."""
    import socket
    import threading

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        create_app(platform),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    started = threading.Event()
    original = server.startup

    async def startup(sockets: list[socket.socket] | None = None) -> None:
        await original(sockets)
        started.set()

    server.startup = startup  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert started.wait(10), "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def live_server(platform: Platform) -> Iterator[str]:
    """The test platform served over loopback."""
    with serving(platform) as url:
        yield url


# The files that take minutes, started first: `make test` runs the suite on two processes, one file at a time each
# (pytest-xdist's loadfile), so a long file left to the end would run alone while the other process idles.
SLOW_FIRST = (
    "test_readme.py",
    "test_demo_history.py",
    "test_processes.py",
    "test_web_pages.py",
    "test_web_journeys.py",
    "test_web.py",
    "test_city_web.py",
    "test_academy.py",
    "test_lab_sweep.py",
    "test_fuzz.py",
    "test_object_storage.py",
    "test_connectors_mqtt.py",
    "test_workers.py",
    "test_lessons.py",
    "test_lab_benchmarks.py",
    "test_attacks_parsing.py",
    "test_live.py",
    "test_sqlport.py",
    "test_demo_models.py",
    "test_lab_models.py",
    "test_analytics_sources.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow files first, each file's tests in their own order."""
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    order = {id(item): i for i, item in enumerate(items)}
    items.sort(key=lambda item: (rank.get(item.path.name, len(rank)), order[id(item)]))
