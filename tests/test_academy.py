"""The academy: a plant's challenge cut from its own (pseudonymised) data, submissions of every kind scored on the
hidden labels, boards that rank by the public score and turn to the hidden one at the end, limits, who may see
what, and the sandbox that stops code which reaches for the network, the hidden labels, time, memory or files."""

from __future__ import annotations

import contextlib
import copy
import io
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from taehwa.academy import landlock
from taehwa.academy.challenge import load_definition
from taehwa.core.errors import Conflict, Forbidden, InvalidInput, NotFound, TooManyRequests, ValidationFailed
from taehwa.server.platform import Platform
from taehwa.tenancy.access import Principal, acting_as
from tests.test_lab_service import PLANT, PT, _pump_history

CHALLENGE: dict[str, Any] = {
    "id": "acme-pump",
    "title": {"en": "P-101A anomalies", "ko": "P-101A 이상 탐지"},
    "task": "anomaly",
    "source": {
        "builder": "historian",
        "data": {"tags": [PT, "ulsan/cdu/P-101A/FT"], "start": "2024-03-01", "end": "2024-03-04", "step": "1m"},
        "labels": {"kinds": ["anomaly"], "asset": "ulsan/cdu/p-101a"},
        "validation_from": "2024-03-02T00:00:00Z",
        "test_from": "2024-03-03T00:00:00Z",
    },
    "inputs_public": True,
    "closes": "2099-01-01T00:00:00Z",
    "limits": {"seconds": 60, "memory_mb": 2048, "daily": 50},
}

# a detector that learns pressure from flow on the normal training rows and flags large residuals
GOOD = textwrap.dedent("""
    import numpy as np

    class Model:
        def fit(self, X, y):
            cols = [c for c in X.columns if c not in ("time", "unit")]
            normal = y.to_numpy() == 0
            A = np.c_[X[cols[0]].to_numpy()[normal], np.ones(normal.sum())]
            self.cols = cols
            self.coef, *_ = np.linalg.lstsq(A, X[cols[1]].to_numpy()[normal], rcond=None)
            r = X[cols[1]].to_numpy()[normal] - A @ self.coef
            self.limit = 4 * r.std()

        def predict(self, X):
            A = np.c_[X[self.cols[0]].to_numpy(), np.ones(len(X))]
            r = X[self.cols[1]].to_numpy() - A @ self.coef
            return (np.abs(r) > self.limit).astype(int)
    """)


def user(p: Platform, name: str, tenant: str, role: str) -> Principal:
    with acting_as(Principal("system", platform_admin=True)):
        with contextlib.suppress(Conflict):
            p.identity.create_user(name)
        p.identity.set_role(name, tenant, role)
    return p.identity.authenticate(p.identity.create_token(name, "t")[0])


@pytest.fixture
def academy(platform: Platform) -> Platform:
    platform.twin.load("acme", PLANT)
    _pump_history(platform)
    platform.tenants.create("uni")
    platform.academy.create("acme", CHALLENGE)
    return platform


def _labels(p: Platform, cid: str) -> pd.DataFrame:
    return pd.read_parquet(p.academy.root / cid / "hidden" / "labels.parquet")


def _csv(rows: np.ndarray, values: np.ndarray) -> bytes:
    return pd.DataFrame({"row": rows, "prediction": values}).to_csv(index=False).encode()


def test_plant_challenge_is_pseudonymised_through_a_grant(academy: Platform) -> None:
    c = academy.academy.get("acme-pump")
    assert c["scored_rows"] is not None
    assert c["rows"]["train"] > 0 and c["scored_rows"]["validation"] > 0 and c["scored_rows"]["test"] > 0
    train = pd.read_parquet(academy.academy.public_file("acme-pump", "train"))
    inputs = pd.read_parquet(academy.academy.public_file("acme-pump", "inputs"))
    # no tag, asset or plant name reaches the participants; the values are scaled by the grant's hidden a·v + b
    text = " ".join(map(str, [*train.columns, *train["unit"].unique(), *inputs["unit"].unique()]))
    assert "P-101A" not in text and "ulsan" not in text and "p-101a" not in text
    assert "target" not in inputs.columns and len(c["signals"]) == 2
    real = academy.historian.read("acme", [PT], "2024-03-01", "2024-03-01T00:01:00Z").column("value")[0].as_py()
    assert all(abs(train[s].iloc[0] - real) > 1e-6 for s in c["signals"])
    # the time split holds: every input is later than every training row
    assert inputs["time"].min() > train["time"].max()
    given = academy.sharing.overview("acme")["given"]
    assert [g["purpose"] for g in given] == ["academy challenge acme-pump"] and given[0]["pseudonymised"]
    assert given[0]["grantee"] == "academy"


def test_posing_needs_the_owners_admin_and_a_sound_definition(academy: Platform) -> None:
    bad = copy.deepcopy(CHALLENGE) | {"id": "acme-pump-2"}
    with acting_as(user(academy, "eng", "acme", "engineer")), pytest.raises(Forbidden):
        academy.academy.create("acme", bad)
    with pytest.raises(Conflict):
        academy.academy.create("acme", CHALLENGE)
    broken = copy.deepcopy(bad)
    broken["source"]["test_from"] = "2024-03-01T12:00:00Z"  # before validation_from
    with pytest.raises(InvalidInput, match="test_from"):
        academy.academy.create("acme", broken)
    with pytest.raises(ValidationFailed, match="title"):
        academy.academy.create("acme", bad | {"title": {"en": "only English"}})
    with pytest.raises(ValidationFailed, match="unknown"):
        academy.academy.create("acme", bad | {"unknown": 1})
    assert not (academy.academy.root / "acme-pump-2").exists()  # nothing half-written


def test_submissions_rank_by_score_ties_by_time_and_turn_final_at_the_close(academy: Platform) -> None:
    lab = _labels(academy, "acme-pump")
    rows, truth = lab["row"].to_numpy(), lab["target"].to_numpy().astype(int)
    rng = np.random.default_rng(0)
    noisy = np.where(rng.random(len(truth)) < 0.3, 1 - truth, truth)
    who = {n: user(academy, n, "uni", "researcher") for n in ("ana", "ben", "cho")}
    with acting_as(who["ana"]):
        perfect = academy.academy.submit("acme-pump", "predictions", _csv(rows, truth), filename="p.csv")
        assert perfect["verdict"] == "scored" and perfect["public_score"] == 1.0
        assert perfect["final_score"] is None and "test" not in perfect["metrics"]  # hidden while open
    with acting_as(who["ben"]):
        ben = academy.academy.submit("acme-pump", "python", GOOD.encode(), filename="good.py")
        assert ben["verdict"] == "scored", ben["message"]
        assert (
            ben["public_score"] is not None
            and 0.3 < ben["public_score"] < 1.0
            and ben["sandbox"]["landlock_abi"] == landlock.abi()
        )
    with acting_as(who["cho"]):
        cho = academy.academy.submit("acme-pump", "predictions", _csv(rows, noisy), filename="n.csv")
        again = academy.academy.submit("acme-pump", "python", GOOD.encode(), filename="same.py")
        assert again["public_score"] == ben["public_score"]  # same code, same data: same score
    board = academy.academy.board("acme-pump")
    assert board["phase"] == "public" and board["metric"] == "f1"
    assert [e["user"] for e in board["entries"]] == ["ana", "ben", "cho"]  # cho ties ben, later
    assert cho["public_score"] is not None and ben["public_score"] is not None
    assert board["entries"][2]["submissions"] == 2 and cho["public_score"] < ben["public_score"]
    assert all(e["final_score"] is None for e in board["entries"])
    with acting_as(who["ana"]), pytest.raises(Forbidden):
        academy.academy.close("acme-pump", "done")
    academy.academy.close("acme-pump", "the term ends")
    final = academy.academy.board("acme-pump")
    assert final["phase"] == "final" and final["entries"][0]["final_score"] == 1.0
    with acting_as(who["ben"]):
        mine = academy.academy.submissions("acme-pump")
        assert mine[0]["final_score"] == mine[0]["metrics"]["test"]["f1"]  # shown now the challenge is over
        assert final["entries"][1]["final_score"] == mine[0]["final_score"]
        with pytest.raises(Conflict, match="closed"):
            academy.academy.submit("acme-pump", "python", GOOD.encode())


def test_daily_limit_and_bad_submissions_are_refused_with_the_reason(academy: Platform) -> None:
    lab = _labels(academy, "acme-pump")
    rows = lab["row"].to_numpy()
    ok = _csv(rows, np.zeros(len(rows), int))
    cases = [
        (b"row,guess\n0,1\n", "column 'prediction' is missing"),
        (_csv(rows[:-1], np.zeros(len(rows) - 1, int)), "1 input rows have no prediction"),
        (_csv(np.r_[rows, rows[:1]], np.zeros(len(rows) + 1, int)), "predicted twice"),
        (_csv(np.r_[rows, [10**9]], np.zeros(len(rows) + 1, int)), "not one of the inputs"),
        (_csv(rows, np.array(["2"] * len(rows))), "not an anomaly flag"),
    ]
    with acting_as(user(academy, "dan", "uni", "researcher")):
        for content, message in cases:
            with pytest.raises(InvalidInput, match=message):  # refused at once: nothing kept, nothing counted
                academy.academy.submit("acme-pump", "predictions", content, filename="x.csv")
        with pytest.raises(InvalidInput, match="class named Model"):
            academy.academy.submit("acme-pump", "python", b"x = 1\n")
        with pytest.raises(InvalidInput, match="not valid Python"):
            academy.academy.submit("acme-pump", "python", b"def (:\n")
        with pytest.raises(InvalidInput, match="unknown"):
            academy.academy.submit("acme-pump", "spec", b"model: {kind: nope}\n")
        with pytest.raises(InvalidInput, match="does not do task"):
            academy.academy.submit("acme-pump", "spec", b"model: {kind: lgbm_regressor}\n")
        with pytest.raises(InvalidInput, match="kind is one of"):
            academy.academy.submit("acme-pump", "notebook", ok)
    strict = copy.deepcopy(CHALLENGE) | {"id": "acme-strict", "inputs_public": False}
    strict["limits"] = {"seconds": 60, "memory_mb": 2048, "daily": 2}
    academy.academy.create("acme", strict)
    with acting_as(user(academy, "eve", "uni", "researcher")):
        with pytest.raises(InvalidInput, match="takes code"):
            academy.academy.submit("acme-strict", "predictions", ok)
        with pytest.raises(Forbidden, match="keeps its inputs"):
            academy.academy.public_file("acme-strict", "inputs")
        spec = b"features: {windows: [5], stats: [mean]}\nmodel: {kind: pca, params: {quantile: 0.995}}\n"
        for _ in range(2):
            assert academy.academy.submit("acme-strict", "spec", spec)["verdict"] == "scored"
        with pytest.raises(TooManyRequests, match="daily limit"):
            academy.academy.submit("acme-strict", "spec", spec)


def test_only_the_audience_sees_a_challenge(academy: Platform) -> None:
    private = copy.deepcopy(CHALLENGE) | {"id": "acme-internal", "audience": ["acme"]}
    academy.academy.create("acme", private)
    with acting_as(user(academy, "out", "uni", "researcher")):
        assert [c["id"] for c in academy.academy.list_challenges()] == ["acme-pump"]
        with pytest.raises(NotFound):
            academy.academy.get("acme-internal")
        with pytest.raises(NotFound):
            academy.academy.submit("acme-internal", "python", GOOD.encode())
    with acting_as(user(academy, "insider", "acme", "viewer")):
        assert {c["id"] for c in academy.academy.list_challenges()} == {"acme-pump", "acme-internal"}


EVIL = {
    "network": ("import socket\n", "socket.create_connection(('127.0.0.1', 9))", "forbidden", "network socket"),
    "hidden labels": ("", "open(HIDDEN).read()", "forbidden", "tried to read"),
    "write outside": ("", "open(OUTSIDE, 'w').write('x')", "forbidden", "tried to write"),
    "process": ("import subprocess\n", "subprocess.run(['true'])", "forbidden", "started a process"),
    "native": ("import ctypes\n", "ctypes.CDLL(None).fork()", "forbidden", "C library"),
    "time": ("import time\n", "time.sleep(60)", "timed_out", "time limit"),
    "busy loop": ("", "while True: pass", "timed_out", "time limit"),
    "memory": ("import numpy as np\n", "self.x = np.ones(1 << 31)", "out_of_memory", "memory"),
    "crash": ("", "raise ValueError('bad luck')", "crashed", "ValueError: bad luck"),
}


@pytest.mark.parametrize("case", sorted(EVIL))
def test_sandbox_stops_code_that_oversteps_with_a_clear_verdict(academy: Platform, tmp_path: Path, case: str) -> None:
    imports, body, verdict, message = EVIL[case]
    hidden = academy.academy.root / "acme-pump" / "hidden" / "labels.parquet"
    outside = tmp_path / "escaped.txt"
    code = (
        f"{imports}HIDDEN = {str(hidden)!r}\nOUTSIDE = {str(outside)!r}\n\nclass Model:\n"
        f"    def fit(self, X, y):\n        {body}\n\n    def predict(self, X):\n        return [0] * len(X)\n"
    )
    d = copy.deepcopy(CHALLENGE) | {"id": "acme-tight", "limits": {"seconds": 6, "memory_mb": 1536, "daily": 50}}
    if not (academy.academy.root / "acme-tight").exists():
        academy.academy.create("acme", d)
    doc = academy.academy.submit("acme-tight", "python", code.encode())
    assert doc["verdict"] == verdict and message in (doc["message"] or ""), doc
    assert not outside.exists()
    assert academy.academy.get("acme-tight")["state"] == "open"  # the platform carries on


def test_garbage_output_is_a_verdict(academy: Platform) -> None:
    for predict, message in (
        ("return 'nonsense'", "shape ()"),
        ("return [[1, 2]] * 3", "shape (3, 2)"),
        ("return [0] * 5", "5 values"),
        ("return ['maybe'] * len(X)", "not an anomaly flag"),
    ):
        code = (
            f"class Model:\n    def fit(self, X, y):\n        print('x' * 10000)\n"
            f"    def predict(self, X):\n        {predict}\n"
        )
        doc = academy.academy.submit("acme-pump", "python", code.encode())
        assert doc["verdict"] == "invalid_output" and message in (doc["message"] or ""), doc


@pytest.mark.skipif(landlock.abi() < 4, reason="the kernel has no Landlock network rules")
def test_landlock_alone_denies_files_and_tcp(tmp_path: Path) -> None:
    """The kernel's layer, without the audit hook: reads outside the allowed folders and TCP both fail."""
    secret = tmp_path / "secret.txt"
    secret.write_text("hidden")
    work = tmp_path / "work"
    work.mkdir()
    script = textwrap.dedent(f"""
        import socket, sys
        from pathlib import Path
        from taehwa.academy import landlock, sandbox
        landlock.restrict([Path(p) for p in sandbox.readable_roots()], [Path({str(work)!r})])
        Path({str(work)!r}, "ok.txt").write_text("fine")
        for attempt in (lambda: open({str(secret)!r}).read(), lambda: socket.create_connection(("127.0.0.1", 9))):
            try:
                attempt()
                print("allowed")
            except PermissionError:
                print("denied")
            except OSError as e:
                print("other", e)
        """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["denied", "denied"], out.stderr
    assert (work / "ok.txt").read_text() == "fine"


def test_academy_over_http(academy: Platform, client: TestClient) -> None:
    token = academy.identity.create_token(user(academy, "fay", "uni", "researcher").user, "http")[0]
    auth = {"Authorization": f"Bearer {token}"}
    listed = client.get("/api/v1/academy/challenges", headers=auth).json()
    assert [c["id"] for c in listed] == ["acme-pump"] and listed[0]["metric"] == "f1"
    train = pd.read_parquet(
        io.BytesIO(client.get("/api/v1/academy/challenges/acme-pump/data/train", headers=auth).content)
    )
    assert "target" in train.columns
    r = client.post(
        "/api/v1/academy/challenges/acme-pump/submissions?kind=python&wait=true",
        content=GOOD,
        headers=auth | {"Content-Type": "text/x-python"},
    )
    assert r.status_code == 200 and r.json()["verdict"] == "scored"
    sid = r.json()["id"]
    assert client.get(f"/api/v1/academy/submissions/{sid}", headers=auth).json()["public_score"] > 0.5
    queued = client.post(
        "/api/v1/academy/challenges/acme-pump/submissions?kind=python",
        content=GOOD,
        headers=auth | {"Content-Type": "text/x-python"},
    )
    assert queued.status_code in (200, 202)
    deadline = time.monotonic() + 60
    while (doc := client.get(f"/api/v1/academy/submissions/{queued.json()['id']}", headers=auth).json())[
        "state"
    ] != "done" and time.monotonic() < deadline:  # run in the background, in order
        time.sleep(0.2)
    assert doc["verdict"] == "scored" and doc["public_score"] == r.json()["public_score"]
    board = client.get("/api/v1/academy/challenges/acme-pump/board", headers=auth).json()
    assert board["entries"][0]["user"] == "fay"
    # the typed answers (academy.records) are the routes' response models: each answer is the service's, whole
    with acting_as(academy.identity.authenticate(token)):
        service = academy.academy
        assert board == service.board("acme-pump") and list(board["entries"][0]) == list(
            service.board("acme-pump")["entries"][0]
        )
        assert client.get("/api/v1/academy/challenges", headers=auth).json() == service.list_challenges()
        one = client.get("/api/v1/academy/challenges/acme-pump", headers=auth).json()
        assert one == service.get("acme-pump") and list(one) == list(service.get("acme-pump"))
        assert client.get(f"/api/v1/academy/submissions/{sid}", headers=auth).json() == service.submission(sid)
        mine = client.get("/api/v1/academy/challenges/acme-pump/submissions", headers=auth).json()
        assert mine == service.submissions("acme-pump") and len(mine) == 2
    bad = client.post("/api/v1/academy/challenges/acme-pump/submissions?kind=python", content=b"x=1", headers=auth)
    assert bad.status_code == 422 and "class named Model" in bad.json()["message"]
    assert client.get("/api/v1/academy/challenges", headers={"Authorization": "Bearer nope"}).status_code == 401
    gus = academy.identity.create_token(user(academy, "gus", "uni", "researcher").user, "t")[0]
    other = client.get(f"/api/v1/academy/submissions/{sid}", headers={"Authorization": f"Bearer {gus}"})
    assert other.status_code == 404  # another participant's entry is not shown


@pytest.mark.parametrize("name", ["cmapss-fd001", "tep-diagnosis"])
def test_ready_challenges_cut_the_benchmarks_by_their_protocols(platform: Platform, name: str) -> None:
    from taehwa.core.settings import default_shared_data

    if not default_shared_data().exists():
        pytest.skip("../shared/data is not beside the checkout")
    d, _ = load_definition(name)
    c = platform.academy.install_ready([name], baseline=False)[0]
    inputs = pd.read_parquet(platform.academy.public_file(name, "inputs"))
    labels = _labels(platform, name)
    assert set(inputs["unit"]).isdisjoint(set(pd.read_parquet(platform.academy.public_file(name, "train"))["unit"]))
    assert all(u.startswith("unit-") for u in inputs["unit"].unique())  # nothing in a name gives a label away
    if name == "cmapss-fd001":
        assert c["scored_rows"] == {"validation": 50, "test": 50} and c["metric"] == "rmse" and c["lower_is_better"]
        assert labels.loc[labels["scored"], "target"].max() <= 125
        assert [p["name"] for p in c["published"]][:1] == ["MTSTAN"]
    else:
        assert len(c["classes"]) == 22 and c["rows"]["validation"] == c["rows"]["test"] == 22 * 480
        assert (labels.groupby("part")["target"].apply(lambda s: (s == "normal").mean())["test"]) < 0.1
    assert d.published_note


def test_two_submissions_at_once_cannot_both_pass_the_daily_limit(academy: Platform) -> None:
    import threading

    once = copy.deepcopy(CHALLENGE) | {"id": "acme-once", "limits": {"seconds": 60, "memory_mb": 2048, "daily": 1}}
    academy.academy.create("acme", once)
    rows = _labels(academy, "acme-once")["row"].to_numpy()
    content = _csv(rows, np.zeros(len(rows), int))
    who = user(academy, "hal", "uni", "researcher")
    outcomes: list[str] = []

    def submit() -> None:
        with acting_as(who):
            try:
                outcomes.append(str(academy.academy.submit("acme-once", "predictions", content)["verdict"]))
            except TooManyRequests:
                outcomes.append("refused")

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused", "refused", "refused", "scored"]
