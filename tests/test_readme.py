"""The README's examples, run as a newcomer runs them: in a fresh folder laid out like a clone, `make run`'s two
steps (`taehwa demo load`, then `taehwa serve --demo`) with the default relative `./taehwa-data`, then every shell
block the README marks `<!-- readme-test -->`, in order, in one shell (so `export TOKEN=…` carries on), each command
checked for its exit code and for what the README promises after it (`# → …`).

The only liberty taken: the server listens on a free port (and the demo's OPC UA server on a free one), and the
commands' `127.0.0.1:8000` is read as that port. A README change that breaks a command fails here.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import POSTGRES

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARK = "<!-- readme-test -->"
PASSWORD = "Kim-engineer-2026!"  # typed at `--password` prompts (twice: the confirmation)

pytestmark = [
    pytest.mark.skipif(POSTGRES, reason="the journey runs on make run's embedded SQLite"),
    pytest.mark.timeout(900),
]


@dataclass
class Command:
    line: int  # where it starts in README.md
    text: str
    promise: str | None = None  # the text after `# →` on the lines below it


def marked_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of each ```bash block right after the marker."""
    lines = text.splitlines()
    out: list[tuple[int, list[str]]] = []
    for i, line in enumerate(lines):
        if line.strip() == MARK:
            assert lines[i + 1].startswith("```bash"), f"README.md:{i + 1}: the marker stands before a ```bash block"
            end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
            out.append((i + 3, lines[i + 2 : end]))
    return out


def commands(first: int, lines: list[str]) -> list[Command]:
    """The block's commands: continuation lines joined, comment lines dropped, `# →` promises kept."""
    out: list[Command] = []
    pending: list[str] = []
    start = first
    for n, line in enumerate(lines, start=first):
        stripped = line.strip()
        if not pending and stripped.startswith("# →") and out:
            out[-1].promise = stripped.removeprefix("# →").strip()
            continue
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if not pending:
            start = n
        if line.rstrip().endswith("\\"):
            pending.append(line.rstrip()[:-1])
            continue
        out.append(Command(start, " ".join(p.strip() for p in [*pending, line])))
        pending = []
    return out


def test_the_readme_marks_the_tour_and_the_journeys() -> None:
    """The tour, the twin, users, sharing, the lab, live alerts and the academy are all run (the marker cannot
    silently go away)."""
    blocks = marked_blocks(README.read_text())
    texts = ["\n".join(lines) for _, lines in blocks]
    for needle in (
        "taehwa tags latest",
        "taehwa twin state",
        "taehwa admin token",
        "/grants",
        "taehwa lab models promote",
        "taehwa live alerts ack",
        "taehwa academy submit",
    ):
        assert any(needle in t for t in texts), needle


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A folder laid out like a fresh clone (the venv, docs and tests beside it), the demo loaded and served as
    `make run` does, with nothing set but a free port."""
    folder = tmp_path_factory.mktemp("clone")
    for name in (".venv", "docs", "tests"):
        (folder / name).symlink_to(ROOT / name)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAEHWA_")}
    env.update(TAEHWA_PORT=str(port), TAEHWA_DEMO_OPCUA_PORT="0", COLUMNS="120", PYTHONUNBUFFERED="1")
    taehwa = str(folder / ".venv" / "bin" / "taehwa")
    load = subprocess.run([taehwa, "demo", "load"], cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert load.returncode == 0, load.stdout[-2000:] + load.stderr[-2000:]
    assert "each with the platform's baseline on its board" in " ".join(load.stdout.split())
    assert (folder / "taehwa-data" / "dev-token").is_file()  # relative to the folder it ran in
    log = open(folder / "serve.log", "w")  # noqa: SIM115 - closed below, after the server
    server = subprocess.Popen([taehwa, "serve", "--demo"], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, (folder / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the server did not answer"
            time.sleep(0.5)
        yield {"folder": folder, "port": port, "env": env, "server": server}
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _script(cmds: list[Command], port: int, out: Path) -> str:
    """One bash script running every command in turn, each one's output and exit code kept apart."""
    (out / "stdin").write_text(f"{PASSWORD}\n{PASSWORD}\n")
    parts = ["set +e"]
    for i, c in enumerate(cmds):
        text = c.text.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        if "curl -sN" in text:  # a stream: read it for a few seconds
            text = "timeout 6 " + text
        parts.append(
            f"s=$EPOCHREALTIME\n{{\n{text}\n}} < {out}/stdin > {out}/{i}.out 2>&1; echo $? > {out}/{i}.rc\n"
            f"echo $s $EPOCHREALTIME > {out}/{i}.time"  # `{` … `}` on lines of their own: a comment ends there
        )
    return "\n".join(parts) + "\n"


def test_the_readme_runs_as_written(clone: dict[str, Any]) -> None:
    cmds = [
        c
        for first, lines in marked_blocks(README.read_text())
        for c in commands(first, lines)
        if not c.text.startswith("make run")
    ]
    assert len(cmds) > 40
    _wait_for_an_alert(clone)  # the live block acknowledges one: the replayed pump raises them within seconds
    out = clone["folder"] / "readme-out"
    out.mkdir()
    script = out / "tour.sh"
    script.write_text(_script(cmds, clone["port"], out))
    subprocess.run(["bash", str(script)], cwd=clone["folder"], env=clone["env"], timeout=800, check=True)
    failures = []
    for i, c in enumerate(cmds):
        rc = int((out / f"{i}.rc").read_text())
        text = (out / f"{i}.out").read_text()
        problem = _problem(c, rc, text)
        if problem:
            failures.append(f"README.md:{c.line}: {c.text}\n  {problem}\n  output: {text[-800:]}")
    _transcript(cmds, out)
    assert not failures, "\n".join(failures)
    _journeys(clone, out, cmds)


def _transcript(cmds: list[Command], out: Path) -> None:
    """Every command of the tour with its exit code and its seconds, kept in test-output/readme/ (the closing notes
    quote it)."""
    lines = []
    for i, c in enumerate(cmds):
        start, end = map(float, (out / f"{i}.time").read_text().split())
        rc = int((out / f"{i}.rc").read_text())
        lines.append(f"README.md:{c.line:<5} exit {rc:<3} {end - start:6.2f} s  {c.text}")
    keep = ROOT / "test-output" / "readme"
    keep.mkdir(parents=True, exist_ok=True)
    (keep / "transcript.txt").write_text("\n".join(lines) + "\n")


def _wait_for_an_alert(clone: dict[str, Any], seconds: float = 240) -> None:
    """Until the live pump's model has raised an alert (the demo's journey: replay → score → alert)."""
    token = (clone["folder"] / "taehwa-data" / "dev-token").read_text().strip()
    url = f"http://127.0.0.1:{clone['port']}/api/v1/demo/alerts?state=open"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30).json():
            return
        time.sleep(2)
    raise AssertionError(f"no alert within {seconds:g} s of the demo's replay")


def _problem(c: Command, rc: int, text: str) -> str | None:
    """What is wrong with one command's answer, or None."""
    if "Traceback (most recent call last)" in text:
        return "a traceback"
    if "curl -sN" in c.text:
        return None if rc == 124 and "data:" in text else f"the stream gave no events (exit {rc})"
    if rc != 0:
        return f"exit code {rc}"
    if c.text.startswith("curl"):
        try:
            doc = json.loads(text)
        except ValueError:
            return "not JSON"
        if c.promise is not None:
            return None if doc == json.loads(c.promise) else f"the README promises {c.promise}"
        if isinstance(doc, dict) and "error" in doc:
            return "an error answer"
    elif c.promise is not None and c.promise not in text:
        return f"the README promises {c.promise!r}"
    return None


def _journeys(clone: dict[str, Any], out: Path, cmds: list[Command]) -> None:
    """What the tour's commands promise a user, checked beyond their exit codes."""
    answers = {c.text: (out / f"{i}.out").read_text() for i, c in enumerate(cmds)}

    def answer(pattern: str) -> str:
        found = [t for c, t in answers.items() if re.search(pattern, c)]
        assert found, pattern
        return found[0]

    assert "good" in answer(r"^taehwa tags latest")  # qualities by name
    assert "skab/valve1-0/accelerometer1_rms" in answer(r"^taehwa tags -t demo")  # never cut at 80 columns
    aligned = (clone["folder"] / "aligned.csv").read_text().splitlines()
    assert len(aligned) == 1 + 7 and all(",," not in row and not row.endswith(",") for row in aligned[1:])
    assert "stored 120 points" in answer(r"^taehwa ingest docs/examples/export.csv")
    assert "moved ulsan/cdu/p-102 to ulsan/vdu/p-102" in answer(r"^taehwa twin move")
    rebuilt = answer(r"^taehwa twin state .* --at ")
    assert "tep/reactor/pressure" in rebuilt and "normal" in rebuilt
    for kind in ("my_model.py", "skab-spec.yaml", "preds.csv"):
        assert answer(rf"^taehwa academy submit skab-valves \S*{re.escape(kind)}").startswith("scored"), kind
    assert "intact" in answer(r"^taehwa audit verify")
    assert "pump-anomaly v1 is in production" in answer(r"^taehwa lab models promote")  # through the gate, unforced
    assert "acknowledged" in answer(r"^taehwa live alerts ack")
    drop = clone["folder"] / "taehwa-data" / "tenants" / "demo" / "files" / "drop"
    assert (drop / "done" / "bench-readings.csv").is_file()  # the drop folder took it, moved it once stored
    assert "removed drop-folder" in answer(r"^taehwa connectors remove drop-folder")
    token = (clone["folder"] / "taehwa-data" / "dev-token").read_text().strip()
    base = f"http://127.0.0.1:{clone['port']}/api/v1/academy/challenges"
    headers = {"Authorization": f"Bearer {token}"}
    challenges = httpx.get(base, headers=headers, timeout=30).json()
    assert {c["id"] for c in challenges} >= {"skab-valves", "cmapss-fd001", "tep-diagnosis"}
    for c in challenges:  # every ready challenge has its scored baseline on its board
        board = httpx.get(f"{base}/{c['id']}/board", headers=headers, timeout=30).json()
        assert "Taehwa baseline" in json.dumps(board), c["id"]
