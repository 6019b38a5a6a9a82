"""Processes end with their parent: the followers of `taehwa serve --workers N` when the primary is killed or stopped
(started again from the primary's watch thread included), a connector's worker process when its server dies
although its input pipe stays open, and a sandbox run (confined: seccomp loaded, its own uid as root) when its
server dies. The session-wide check that none is left is `_no_process_left` (conftest)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from taehwa.core.loopback import free_port
from tests.procs import alive, children, gone_within
from tests.test_workers import _workers

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
FOLLOWER = "taehwa.api.workers"


def _serve(tmp_path: Path, workers: int) -> tuple[str, subprocess.Popen[bytes]]:
    """`taehwa serve` with `workers` API processes, once all of them answer."""
    port = free_port()
    env = {
        **os.environ,
        "TAEHWA_DATA_DIR": str(tmp_path / "data"),
        "TAEHWA_PORT": str(port),
        "TAEHWA_API_TOKEN": "tok",
        "TAEHWA_WORKERS": str(workers),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "taehwa", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    if len(_workers(url, workers, 90)) != workers:
        proc.kill()
        proc.wait()
        pytest.fail(f"{workers} API processes did not come up")
    return url, proc


@pytest.fixture
def stopped() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Primaries a test started, killed at its end whatever happened (their followers then go by themselves)."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_followers_end_when_the_primary_is_killed(tmp_path: Path, stopped: list[subprocess.Popen[bytes]]) -> None:
    url, primary = _serve(tmp_path, 3)
    stopped.append(primary)
    first = children(primary.pid, FOLLOWER)
    assert len(first) == 2, first
    os.kill(first[0], signal.SIGKILL)  # its replacement is started by the primary's watch thread, not the main one
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (
        len(children(primary.pid, FOLLOWER)) != 2 or first[0] in children(primary.pid, FOLLOWER)
    ):
        time.sleep(0.1)
    followers = children(primary.pid, FOLLOWER)
    assert len(followers) == 2 and first[0] not in followers and first[1] in followers
    assert len(_workers(url, 3, 60)) == 3  # the replacement serves (well past setting its parent-death signal)
    primary.kill()
    primary.wait()
    seconds = gone_within(followers, 10.0)
    assert seconds is not None, f"followers {[p for p in followers if alive(p)]} outlived their killed primary"
    print(f"followers gone {seconds:.2f} s after the primary was killed")


def test_a_stopped_primary_waits_for_its_followers(tmp_path: Path, stopped: list[subprocess.Popen[bytes]]) -> None:
    _, primary = _serve(tmp_path, 2)
    stopped.append(primary)
    followers = children(primary.pid, FOLLOWER)
    assert len(followers) == 1
    primary.send_signal(signal.SIGTERM)
    assert primary.wait(timeout=30) == -signal.SIGTERM  # it still ends by the signal, as before
    assert not any(alive(p) for p in followers)  # already gone: it waited for them


def test_a_connector_worker_ends_with_its_server_though_its_input_stays_open(tmp_path: Path) -> None:
    # the server is a process that starts the worker as the link does; the worker's input is a pipe whose writing
    # end this test also holds (as a process that inherited it would), so the input does not close with the server
    read, write = os.pipe()
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from taehwa.connectors.process import start_process; "
            "print(start_process(stdin=int(sys.argv[1])).pid, flush=True); time.sleep(120)",
            str(read),
        ],
        pass_fds=(read,),
        stdout=subprocess.PIPE,
        text=True,
    )
    os.close(read)
    try:
        assert server.stdout is not None
        worker = int(server.stdout.readline())
        spec = {
            "protocol": "modbus",
            "name": "plc",
            "host": "127.0.0.1",
            "port": free_port(),
            "items": [{"address": 0, "tag": "plc/x"}],
        }  # nothing listens there: it keeps trying
        job = {
            "tenant": "acme",
            "spec": spec,
            "folder": str(tmp_path / "queue"),
            "earliest_time": "1970-01-01T00:00:00Z",
            "future_tolerance_s": 3600.0,
            "log_level": 30,
        }
        os.write(write, (json.dumps(job) + "\n").encode())
        time.sleep(1.0)
        assert alive(worker)  # runs while its server does
        server.kill()
        server.wait()
        seconds = gone_within([worker], 10.0)
        assert seconds is not None, "the connector worker outlived its killed server"
        assert seconds < 5.0  # its graceful stop on SIGTERM, not the last resort 10 s later
        print(f"connector worker gone {seconds:.2f} s after its server was killed")
    finally:
        os.close(write)
        if server.poll() is None:
            server.kill()
            server.wait()
        if server.stdout is not None:
            server.stdout.close()


SANDBOX_PARENT = """
import sys
from pathlib import Path
import pandas as pd
from taehwa.academy import sandbox
folder = Path(sys.argv[1])
pd.DataFrame({"a": [1.0, 2.0], "target": [0, 1]}).to_parquet(folder / "train.parquet")
pd.DataFrame({"row": [0, 1], "a": [1.0, 2.0]}).to_parquet(folder / "inputs.parquet")
code = "import time\\nclass Model:\\n    def fit(self, X, y):\\n        time.sleep(300)\\n"
sandbox.run(kind="python", code=code, task="classification", signals=["a"], train=folder / "train.parquet",
            inputs=folder / "inputs.parquet", scratch=folder / "scratch", limits=sandbox.Limits(seconds=300))
"""


def _seccomp_mode(pid: int) -> int | None:
    """A process's seccomp mode (2: a filter is loaded), None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Seccomp:"):
                return int(line.split()[1])
    except OSError:
        return None
    return 0


def test_a_sandbox_run_ends_with_its_server(tmp_path: Path) -> None:
    server = subprocess.Popen([sys.executable, "-c", SANDBOX_PARENT, str(tmp_path)])
    try:
        deadline = time.monotonic() + 60
        runs: list[int] = []
        while time.monotonic() < deadline and not (runs and _seccomp_mode(runs[0]) == 2):
            runs = children(server.pid, "taehwa.academy.runner")
            time.sleep(0.1)
        assert runs and _seccomp_mode(runs[0]) == 2, "the run was not confined in time"  # sleeping in fit
        server.kill()
        server.wait()
        seconds = gone_within(runs, 10.0)
        assert seconds is not None, "the sandbox run outlived its killed server"
        print(f"sandbox run gone {seconds:.2f} s after its server was killed")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
