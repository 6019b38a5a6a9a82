"""The historian on object storage and writers partitioned by tenant.

The S3 tests run against a real S3-compatible server on loopback (moto's standalone server, a test extra: no
S3-compatible server is packaged by Debian), spoken to over HTTP by pyarrow's own S3 client, as production would.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.fs as pafs
import pytest

from taehwa.core.errors import Conflict, InvalidInput, Unavailable
from taehwa.core.loopback import free_port
from taehwa.core.settings import Settings, load_settings
from taehwa.historian.store import Historian
from taehwa.server.platform import Platform
from tests.conftest import TOKEN
from tests.test_store import T0, series, values

HAS_MOTO = importlib.util.find_spec("moto") is not None


class S3Server:
    """A throw-away S3-compatible server on a loopback port, with one bucket."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:  # an HTTP request, not a bare connection: the server is up once it answers one
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("the S3 test server did not start")
        self.fs.create_dir("taehwa")

    @property
    def fs(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(
            endpoint_override=f"127.0.0.1:{self.port}",
            scheme="http",
            region="us-east-1",
            access_key="test",
            secret_key="test",
            allow_bucket_creation=True,
        )

    def url(self, prefix: str = "city") -> str:
        return f"s3://taehwa/{prefix}?endpoint_override=127.0.0.1:{self.port}&scheme=http&region=us-east-1"

    def objects(self, prefix: str = "city") -> list[str]:
        infos = self.fs.get_file_info(pafs.FileSelector(f"taehwa/{prefix}", recursive=True, allow_not_found=True))
        return sorted(i.path.removeprefix(f"taehwa/{prefix}/") for i in infos if i.type == pafs.FileType.File)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    if not HAS_MOTO:
        pytest.skip("moto's server (a test extra) is not installed")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    server = S3Server()
    yield server
    server.stop()


def _settings(root: Path, **kw: object) -> Settings:
    return Settings(data_dir=root, api_token=TOKEN, **kw)  # type: ignore[arg-type]


def _shared_db(tmp_path: Path) -> dict[str, str]:
    """Writers on several machines share one metadata database (PostgreSQL in production)."""
    url = os.environ.get("TAEHWA_DATABASE_URL") or f"sqlite:///{tmp_path / 'shared.sqlite'}"
    return {"database_url": url}


def test_store_on_s3_answers_like_a_local_one(s3: S3Server, tmp_path: Path) -> None:
    db = _shared_db(tmp_path)
    remote = Historian(_settings(tmp_path / "a", historian_url=s3.url(), **db), background=False)
    local = Historian(_settings(tmp_path / "b"), background=False)
    try:
        for h in (remote, local):
            if "acme" not in [t.id for t in h.tenants.list()]:
                h.tenants.create("acme")
            h.write("acme", series("p/1", 100))  # buffered (write-ahead log)
            h.write("acme", series("p/2", 600_000, step_s=0.1))  # large: straight to files
            h.flush()
            h.write("acme", series("p/1", 10, offset=1000))  # a rewrite, in another file of the day
            h.flush()
        objects = s3.objects()
        assert "acme/manifest.json" in objects and "acme/latest.parquet" in objects
        assert sum(o.startswith("acme/day=2024-03-01/") and o.endswith(".parquet") for o in objects) == 3
        assert "acme/writer.json" in objects  # the writer's lease on the tenant
        # the writer's own folder holds the log and the cache, never the store's files
        assert not (tmp_path / "a" / "historian" / "acme").exists()
        queries: tuple[Callable[[Historian], pa.Table], ...] = (
            lambda h: h.read("acme", ["p/1", "p/2"], T0, "2024-03-02"),
            lambda h: h.downsample("acme", ["p/1", "p/2"], T0, "2024-03-02", "1m", "avg,max,count"),
            lambda h: h.interpolate("acme", "p/1", T0, "2024-03-01T00:02:00Z", "7s", "linear"),
            lambda h: h.latest("acme"),
        )
        for query in queries:
            assert query(remote).equals(query(local))
        assert values(remote, "p/1")[:3] == [1000.0, 1001.0, 1002.0]
        # compaction merges the day on the bucket; the replaced objects go after the grace period
        remote.compact("acme")
        assert remote.stats("acme")["files"] == 1
        assert remote.read("acme", "p/2", T0, "2024-03-02").num_rows == 600_000
        remote.maintenance.delete_obsolete(grace_s=0)
        assert sum(o.startswith("acme/day=") for o in s3.objects()) == 1
        assert remote.stats("acme")["storage"].startswith("s3://taehwa/city?")
    finally:
        local.close()
        remote.close()
    assert "acme/writer.json" not in s3.objects()  # the lease is given up on close
    # a restart reads manifests and last values back from the bucket, and replays its own log
    again = Historian(_settings(tmp_path / "a", historian_url=s3.url(), **db), background=False)
    try:
        assert values(again, "p/1")[:2] == [1000.0, 1001.0]
        assert again.latest("acme", ["p/2"]).column("value").to_pylist() == [599_999.0]
    finally:
        again.close()


def test_readers_anywhere_follow_the_bucket_with_a_bounded_cache(s3: S3Server, tmp_path: Path) -> None:
    db = _shared_db(tmp_path)
    writer = Historian(_settings(tmp_path / "w", historian_url=s3.url(), **db), background=False)
    writer.tenants.create("acme")
    # another machine: its own data folder, nothing shared but the bucket and the database; a cache too small
    # for more than one file at a time
    reader = Historian(_settings(tmp_path / "r", historian_url=s3.url(), historian_cache_bytes=1, **db), follow=True)
    try:
        for day in range(3):
            writer.write("acme", series("p/1", 1000, f"2024-03-0{day + 1}T00:00:00Z", offset=day * 1000))
            writer.flush()
        time.sleep(1.1)  # a remote manifest is read again at most every second
        assert values(reader, "p/1") == list(map(float, range(3000)))
        assert reader.latest("acme").column("value").to_pylist() == [2999.0]
        assert reader.storage.cache_stats()["files"] <= 1  # the least recently used copies went
        with pytest.raises(Conflict):
            reader.write("acme", series("p/1", 1))
        # a point in the writer's log is not on the bucket yet: a remote reader sees it after the flush
        writer.write("acme", series("p/1", 1, "2024-03-04T00:00:00Z", offset=-1))
        time.sleep(1.1)
        assert len(values(reader, "p/1")) == 3000
        writer.flush()
        time.sleep(1.1)
        assert values(reader, "p/1")[-1] == -1.0
    finally:
        reader.close()
        writer.close()


def test_a_follower_on_the_writers_machine_reads_every_write_at_once(s3: S3Server, tmp_path: Path) -> None:
    """An API follower beside the writer (`--workers`) reads the log too: nothing waits for a manifest read, not
    even across a flush, when the log's points move to the bucket."""
    settings = _settings(tmp_path / "w", historian_url=s3.url(), **_shared_db(tmp_path))
    writer = Historian(settings, background=False)
    writer.tenants.create("acme")
    follower = Historian(settings, follow=True, background=False)
    try:
        for k in range(3):
            writer.write("acme", series("p/1", 10, f"2024-03-01T00:0{k}:00Z", offset=10 * k))
            time.sleep(0.03)
            assert len(values(follower, "p/1")) == 10 * k + 10  # from the log
            writer.flush()
            time.sleep(0.03)
            assert values(follower, "p/1") == list(map(float, range(10 * k + 10)))  # from the bucket, at once
        assert follower.storage.cache_dir != writer.storage.cache_dir  # each process evicts only its own copies
        cache = follower.storage.cache_dir
        assert cache.exists()
    finally:
        follower.close()
        writer.close()
    assert not cache.exists()  # a reader's cache goes with it


def test_storage_down_loses_nothing(s3: S3Server, tmp_path: Path) -> None:
    settings = _settings(tmp_path / "w", historian_url=s3.url(), **_shared_db(tmp_path))
    h = Historian(settings, background=False)
    h.tenants.create("acme")
    try:
        h.write("acme", series("p/1", 50))  # acknowledged: in the log on local disk
        s3.stop()
        with pytest.raises(Unavailable, match="stay in the log"):
            h.flush()
        assert values(h, "p/1") == list(map(float, range(50)))  # still answered from memory
        h.write("acme", series("p/1", 5, "2024-03-01T00:01:00Z", offset=100))  # more, while the bucket is down
        s3.start()  # an empty bucket again: nothing had been committed to it
        assert h.flush() == 55
        assert values(h, "p/1") == [*map(float, range(50)), 100.0, 101.0, 102.0, 103.0, 104.0]
        assert h.wal.read_all().num_rows == 0  # the log is let go only now
    finally:
        h.close()


def test_writers_partitioned_by_tenant(tmp_path: Path) -> None:
    """Two writers share one store folder (a mounted share, here) and one database, each taking its tenants."""
    shared = tmp_path / "store"
    db = _shared_db(tmp_path)
    a = Historian(_settings(tmp_path / "a", historian_url=str(shared), writer_tenants="acme", **db), background=False)
    a.tenants.create("acme")
    a.tenants.create("beta")
    b = Historian(_settings(tmp_path / "b", historian_url=str(shared), writer_tenants="beta", **db), background=False)
    try:
        with pytest.raises(Conflict, match="another writer"):
            a.write("beta", series("q/1", 3))
        a.write("acme", series("p/1", 10))
        b.write("beta", series("q/1", 20))
        a.flush()
        b.flush()
        assert sorted(p.name for p in shared.iterdir()) == ["acme", "beta"]
        assert (shared / "acme" / "writer.json").exists() and (shared / "beta" / "writer.json").exists()
        # each writer reads the other's tenant as its writer commits it
        assert values(a, "q/1", "beta") == list(map(float, range(20)))
        b.write("beta", series("q/1", 1, "2024-03-01T00:01:00Z", offset=-5))
        b.flush()
        assert values(a, "q/1", "beta")[-1] == -5.0
        # a third writer given a tenant that is held is refused, and takes it once the holder closes
        c = Historian(
            _settings(tmp_path / "c", historian_url=str(shared), writer_tenants="acme", **db), background=False
        )
        try:
            with pytest.raises(Conflict, match="being written by"):
                c.write("acme", series("p/1", 1))
            assert not c.leases.active("acme")  # a standby: it runs none of the tenant's work
            a.close()
            c.leases.renew(force=True)  # (every 10 s in the background) takes the lease given up
            assert c.leases.active("acme")
            c.write("acme", series("p/1", 1, "2024-03-01T00:00:30Z", offset=50))
            c.flush()
            assert values(c, "p/1")[:2] == [0.0, 1.0] and values(c, "p/1")[-1] == 50.0
            # the old holder's commit is refused: another writer has committed since
            with pytest.raises(Conflict):
                a.state.commit("acme", [], set())
        finally:
            c.close()
    finally:
        a.close()
        b.close()


def test_a_stale_writer_cannot_overwrite_a_newer_manifest(tmp_path: Path) -> None:
    """Should two writers ever hold one tenant (a lease that lapsed while its holder was paused), the one
    behind is refused at its next commit instead of replacing the other's files."""
    shared = tmp_path / "store"
    db = _shared_db(tmp_path)
    a = Historian(_settings(tmp_path / "a", historian_url=str(shared), writer_tenants="acme", **db), background=False)
    a.tenants.create("acme")
    try:
        a.write("acme", series("p/1", 10))
        a.flush()
        (shared / "acme" / "writer.json").unlink()  # as if the lease had lapsed
        b = Historian(
            _settings(tmp_path / "b", historian_url=str(shared), writer_tenants="acme", **db), background=False
        )
        try:
            b.write("acme", series("p/1", 1, offset=99))
            b.flush()
        finally:
            b.close()
        a.leases.renew(force=True)  # the lease file is gone: a renews it, but b committed meanwhile
        a.write("acme", series("p/1", 1, offset=7))
        with pytest.raises(Unavailable, match="another writer has committed"):
            a.flush()
    finally:
        a.close()


@pytest.mark.skipif(importlib.util.find_spec("fsspec") is None, reason="fsspec (a test extra) is not installed")
def test_any_fsspec_filesystem(tmp_path: Path) -> None:
    """A scheme pyarrow does not know goes through fsspec: here its in-memory filesystem."""
    settings = _settings(tmp_path / "w", historian_url=f"memory://taehwa/{tmp_path.name}")
    h = Historian(settings, background=False)
    h.tenants.create("acme")
    try:
        h.write("acme", series("p/1", 100))
        h.flush()
        h.write("acme", series("p/1", 10, offset=500))
        h.flush()
        h.compact("acme")
        assert h.storage.remote and h.stats("acme")["files"] == 1
    finally:
        h.close()
    again = Historian(settings, readonly=True, background=False)
    try:
        assert values(again, "p/1") == [*map(float, range(500, 510)), *map(float, range(10, 100))]
    finally:
        again.close()


def test_bad_storage_settings_are_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="invalid tenant id") as info:
        load_settings(data_dir=tmp_path, writer_tenants="acme, Beta!")
    assert info.value.where == "setting TAEHWA_WRITER_TENANTS"
    with pytest.raises(InvalidInput, match="at least one tenant"):
        load_settings(data_dir=tmp_path, writer_tenants=" , ")
    both = load_settings(data_dir=tmp_path, writer_tenants=" acme ,beta")
    assert both.writer_tenant_set == frozenset({"acme", "beta"})
    with pytest.raises(InvalidInput, match="cannot open historian storage") as bad:
        Historian(_settings(tmp_path, historian_url="nosuchscheme://x/y?secret_key=hush"), background=False)
    assert "hush" not in str(bad.value)  # secrets in the URL are never echoed


def _serve(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "taehwa", "serve", *args],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _up(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        try:
            return str(httpx.get(f"{url}/healthz").headers["x-taehwa-worker"])
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def test_a_reader_node_on_another_machine(s3: S3Server, tmp_path: Path) -> None:
    """`taehwa serve --follow URL`: its own data folder, the bucket and the database shared; reads answered
    there from the bucket, writes and everything else passed to the primary."""
    db = _shared_db(tmp_path)["database_url"]
    common = {"TAEHWA_HISTORIAN_URL": s3.url(), "TAEHWA_DATABASE_URL": db, "TAEHWA_API_TOKEN": "tok"}
    primary_port, reader_port = free_port(), free_port()
    primary = _serve(
        {
            **common,
            "TAEHWA_DATA_DIR": str(tmp_path / "p"),
            "TAEHWA_PORT": str(primary_port),
            "TAEHWA_BUFFER_MAX_AGE_S": "0.5",
        }
    )
    reader = None
    try:
        primary_pid = _up(f"http://127.0.0.1:{primary_port}", primary)
        reader = _serve(
            {**common, "TAEHWA_DATA_DIR": str(tmp_path / "r"), "TAEHWA_PORT": str(reader_port)},
            "--follow",
            f"http://127.0.0.1:{primary_port}",
        )
        url = f"http://127.0.0.1:{reader_port}"
        reader_pid = _up(url, reader)
        assert reader_pid != primary_pid
        h = {"Authorization": "Bearer tok"}
        r = httpx.post(f"{url}/api/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=h)
        assert r.status_code == 201 and r.headers["x-taehwa-worker"] == primary_pid  # passed on
        points = [{"tag": "p/PT", "time": f"2026-11-30T00:00:{k:02d}Z", "value": k} for k in range(20)]
        r = httpx.post(f"{url}/api/v1/acme/points", json=points, headers=h)
        assert r.status_code == 200, r.text
        got: list[dict[str, object]] = []
        deadline = time.monotonic() + 30
        while len(got) < 20 and time.monotonic() < deadline:  # after the primary's flush and a manifest read
            r = httpx.get(
                f"{url}/api/v1/acme/points",
                params={"tags": "p/PT", "start": "2026-11-30", "end": "2026-12-01"},
                headers=h,
            )
            assert r.status_code == 200 and r.headers["x-taehwa-worker"] == reader_pid, r.text[:300]
            got = r.json()["points"]
            time.sleep(0.2)
        assert [p["value"] for p in got] == [float(k) for k in range(20)]
        assert (
            httpx.get(
                f"{url}/api/v1/acme/points", params={"tags": "p/PT", "start": "x", "end": "y"}, headers=h
            ).status_code
            == 422
        )  # refusals are the reader's own
        assert (
            httpx.get(
                f"{url}/api/v1/acme/points", params={"tags": "p/PT", "start": "2026-11-30", "end": "2026-12-01"}
            ).status_code
            == 401
        )
    finally:
        for proc in (reader, primary):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
                if proc.stderr:
                    proc.stderr.close()


def test_reader_node_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="http:// or https://"):
        load_settings(data_dir=tmp_path, follow_url="primary.city.local:8000")
    run = subprocess.run(
        [sys.executable, "-m", "taehwa", "serve", "--follow", "http://127.0.0.1:9", "--demo"],
        env={**os.environ, "TAEHWA_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0 and "without --demo" in run.stdout + run.stderr


def test_a_writer_runs_only_its_own_tenants_connectors(tmp_path: Path) -> None:
    """Writers by tenant share one database of connector definitions: each runs only its own tenants'."""
    db = _shared_db(tmp_path)
    p = Platform(
        _settings(tmp_path / "a", historian_url=str(tmp_path / "store"), writer_tenants="acme", **db), background=False
    )
    try:
        for tenant in ("acme", "beta"):
            p.tenants.create(tenant)
            (tmp_path / tenant).mkdir()
            p.connectors.add(tenant, {"name": "lims", "protocol": "files", "folder": str(tmp_path / tenant)})
        p.connectors.reconcile()
        assert sorted(p.connectors._links) == [("acme", "lims")]
    finally:
        p.close()


def test_writer_nodes_pass_each_other_their_tenants_requests(tmp_path: Path) -> None:
    """Two writer nodes, each taking its own tenants, one store folder and one database: a client may call
    either for any tenant; the request is answered by the tenant's writer."""
    db = _shared_db(tmp_path)["database_url"]
    common = {"TAEHWA_HISTORIAN_URL": str(tmp_path / "store"), "TAEHWA_DATABASE_URL": db, "TAEHWA_API_TOKEN": "tok"}
    ports = {"acme": free_port(), "beta": free_port()}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    h = {"Authorization": "Bearer tok"}
    try:
        pids = {}
        for tenant, port in ports.items():
            procs[tenant] = _serve(
                {
                    **common,
                    "TAEHWA_DATA_DIR": str(tmp_path / tenant),
                    "TAEHWA_PORT": str(port),
                    "TAEHWA_WRITER_TENANTS": tenant,
                }
            )
            pids[tenant] = _up(f"http://127.0.0.1:{port}", procs[tenant])
        a = f"http://127.0.0.1:{ports['acme']}"
        for tenant in ports:
            assert httpx.post(f"{a}/api/v1/tenants", json={"id": tenant, "name": tenant}, headers=h).status_code == 201
        # each writer took its tenants' leases at start, with the URL it serves at
        lease = json.loads((tmp_path / "store" / "beta" / "writer.json").read_text())
        assert lease["url"] == f"http://127.0.0.1:{ports['beta']}"
        b = f"http://127.0.0.1:{ports['beta']}"
        assert (
            httpx.post(
                f"{b}/api/v1/beta/points", json=[{"tag": "q", "time": "2026-11-30T00:00:00Z", "value": 0}], headers=h
            ).status_code
            == 200
        )
        for k in range(1, 6):  # through acme's node, for beta: answered by beta's writer
            r = httpx.post(
                f"{a}/api/v1/beta/points", json=[{"tag": "q", "time": f"2026-11-30T00:00:0{k}Z", "value": k}], headers=h
            )
            assert r.status_code == 200 and r.headers["x-taehwa-worker"] == pids["beta"], r.text
        r = httpx.get(
            f"{a}/api/v1/beta/points", params={"tags": "q", "start": "2026-11-30", "end": "2026-12-01"}, headers=h
        )
        assert r.headers["x-taehwa-worker"] == pids["beta"]
        assert [p["value"] for p in r.json()["points"]] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]  # read-your-writes
        r = httpx.post(
            f"{a}/api/v1/acme/points", json=[{"tag": "p", "time": "2026-11-30T00:00:00Z", "value": 7}], headers=h
        )
        assert r.status_code == 200 and r.headers["x-taehwa-worker"] == pids["acme"]  # its own: answered there
        # refusals come back from the tenant's writer as they are
        r = httpx.post(f"{a}/api/v1/beta/points", json=[{"tag": "q", "time": "not a time", "value": 1}], headers=h)
        assert r.status_code == 422 and r.headers["x-taehwa-worker"] == pids["beta"]
        assert (
            httpx.get(
                f"{a}/api/v1/beta/points", params={"tags": "q", "start": "2026-11-30", "end": "2026-12-01"}
            ).status_code
            == 401
        )
        # live streams of beta's twin, opened through acme's node, are relayed from beta's writer
        from websockets.sync.client import connect

        seen: list[str] = []

        def listen() -> None:
            with httpx.Client(headers=h, timeout=20) as c, c.stream("GET", f"{a}/api/v1/beta/events") as r:
                for line in r.iter_lines():
                    seen.append(line)
                    if "yard-1" in line:
                        return

        sse = threading.Thread(target=listen, daemon=True)
        sse.start()
        with connect(f"ws://{a.removeprefix('http://')}/api/v1/beta/events/ws", additional_headers=h) as ws:
            time.sleep(1.0)
            r = httpx.post(f"{a}/api/v1/beta/assets", json={"id": "yard-1", "type": "Site"}, headers=h)
            assert r.status_code == 201 and r.headers["x-taehwa-worker"] == pids["beta"], r.text
            got = ""
            deadline = time.monotonic() + 15
            while "yard-1" not in got and time.monotonic() < deadline:
                got += ws.recv(timeout=15, decode=True)
            assert "yard-1" in got
        sse.join(15)
        assert any("yard-1" in line for line in seen)
        # a request already routed once is answered where it lands: a write for another's tenant is refused
        r = httpx.post(
            f"{a}/api/v1/beta/points",
            json=[{"tag": "q", "time": "2026-11-30T00:00:09Z", "value": 9}],
            headers={**h, "X-Taehwa-Routed": "1"},
        )
        assert r.status_code == 409 and "another writer" in r.text
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=30)
            if proc.stderr:
                proc.stderr.close()
