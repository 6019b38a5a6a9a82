"""Shared fixtures: a fresh data directory, settings, historian, platform and HTTP client per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from taehwa.api.app import create_app
from taehwa.historian.store import Historian
from taehwa.platform import Platform
from taehwa.settings import Settings

TOKEN = "test-token-0123456789"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", api_token=TOKEN)  # type: ignore[arg-type]


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
