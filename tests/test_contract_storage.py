"""One contract, run over every kind of storage the historian's tenant folders can live on: a local folder, a
file:// URL, S3-compatible object storage (moto's server on loopback, as in test_object_storage) and any other
filesystem through fsspec (its in-memory one).

What every backend must do: replace a small file whole and read it back, stage data files locally and publish
them only when finished (a crash leaves nothing half-written in the store, and the writer's next start clears
what it left), list the tenant folders, and hold a historian's points across a restart.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taehwa.historian.storage import Storage
from taehwa.historian.store import Historian
from tests.test_object_storage import HAS_MOTO, S3Server, _settings
from tests.test_store import T0, series, values


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    if not HAS_MOTO:
        pytest.skip("moto's server (a test extra) is not installed")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ACCESS_KEY_ID", "test")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "test")
        server = S3Server()
        yield server
        server.stop()


def _local(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    return None


def _file_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    return f"file://{tmp_path / 'store'}"


def _s3(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    server: S3Server = request.getfixturevalue("s3_server")
    return server.url(tmp_path.name)  # a prefix of its own in the one bucket


def _fsspec(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    if importlib.util.find_spec("fsspec") is None:
        pytest.skip("fsspec (a test extra) is not installed")
    return f"memory://taehwa/{tmp_path.name}"


# every backend: its name → the historian URL for one test (None: the data directory itself)
BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], str | None]] = {
    "local": _local,
    "file-url": _file_url,
    "s3": _s3,
    "fsspec": _fsspec,
}


@pytest.fixture(params=sorted(BACKENDS))
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    return BACKENDS[request.param](request, tmp_path)


@pytest.fixture
def storage(url: str | None, tmp_path: Path) -> Iterator[Storage]:
    s = Storage(tmp_path / "node", url)
    yield s
    s.close()


def test_small_files_are_replaced_whole_and_read_back(storage: Storage) -> None:
    assert storage.read("acme/manifest.json") is None
    storage.write("acme/manifest.json", b'{"version": 1}')
    assert storage.read("acme/manifest.json") == b'{"version": 1}'
    storage.write("acme/manifest.json", b'{"version": 2}')
    assert storage.read("acme/manifest.json") == b'{"version": 2}'
    storage.delete("acme/manifest.json")
    assert storage.read("acme/manifest.json") is None
    storage.delete("acme/manifest.json")  # a missing file is no error


def test_data_files_are_staged_locally_and_published_whole(storage: Storage, tmp_path: Path) -> None:
    staging = storage.staging("acme")
    assert staging.is_relative_to(tmp_path / "node")  # on the writer's own disk, whatever the store
    finished = staging / "a.parquet"
    finished.write_bytes(b"PAR1 finished PAR1")
    half = staging / "b.parquet"
    half.write_bytes(b"PAR1 half")  # a file being written when the writer crashed
    assert storage.read("acme/day=2024-03-01/a.parquet") is None  # not in the store until published
    assert storage.put(finished, "acme/day=2024-03-01/a.parquet") == len(b"PAR1 finished PAR1")
    assert not finished.exists()  # moved, not copied: the staging folder holds only unfinished files
    with storage.local_paths(["acme/day=2024-03-01/a.parquet"]) as paths:
        assert Path(paths[0]).read_bytes() == b"PAR1 finished PAR1"
    storage.clear_staging()  # what a writer does at start
    assert not half.exists()
    assert storage.read("acme/day=2024-03-01/b.parquet") is None


def test_tenant_folders_are_listed(storage: Storage) -> None:
    assert storage.tenants() == []
    for rel in ("beta/manifest.json", "acme/manifest.json", "_leases/x.json"):
        storage.write(rel, b"{}")
    assert storage.tenants() == ["acme", "beta"]  # names starting with '_' are the store's own


def test_a_historian_keeps_its_points_across_a_restart(url: str | None, tmp_path: Path) -> None:
    settings = _settings(tmp_path / "node", historian_url=url)
    h = Historian(settings, background=False)
    try:
        h.tenants.create("acme")
        h.write("acme", series("p/1", 100))  # through the log
        h.flush()
        h.write("acme", series("p/1", 10, offset=500))  # a rewrite of the first ten
        h.flush()
        assert h.compact("acme") == 1
        staged = h.storage.staging("acme") / "left-by-a-crash.parquet"
    finally:
        h.close()
    staged.write_bytes(b"PAR1 half")
    again = Historian(settings, background=False)  # the writer again: clears what the crash left
    try:
        assert not staged.exists()
        assert values(again, "p/1") == [*map(float, range(500, 510)), *map(float, range(10, 100))]
        assert again.read("acme", "p/1", T0, "2100-01-01").num_rows == 100
        assert again.stats("acme")["files"] == 1
    finally:
        again.close()
