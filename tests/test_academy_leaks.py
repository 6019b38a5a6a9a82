"""The leak probe: a cut whose time, unit names or row order tell the hidden labels is refused with the column named
(the Tennessee Eastman cut as it was, with each test run at base + (3k + 1.5) days for fault k, among them); the
ready challenges as they are cut now pass it, and a plant's own challenge is probed when it is created."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from taehwa.academy import leaks, sources
from taehwa.academy.challenge import Definition, load_definition, parse_definition
from taehwa.academy.scoring import score
from taehwa.core.errors import InvalidInput, ValidationFailed
from taehwa.lab.datasets import TARGET, TIME, UNIT
from taehwa.server.platform import Platform

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not (SHARED / "tep" / "d00.dat").exists(), reason="../shared/data is not here")


def _old_tep(d: Definition) -> pd.DataFrame:
    """The Tennessee Eastman cut as it was: run k of the training part at base + 3k days, its test run at
    base + (3k + 1.5) days, validation and test the two halves of one unit."""
    cols = [f"xmeas_{i:02d}" for i in range(1, 42)] + [f"xmv_{i:02d}" for i in range(1, 12)]
    base = pd.Timestamp("2026-02-01", tz="UTC")
    blocks = []
    for k in range(22):
        for kind in ("train", "test"):
            raw = np.loadtxt(SHARED / "tep" / (f"d{k:02d}.dat" if kind == "train" else f"d{k:02d}_te.dat"))
            block = pd.DataFrame(raw.T if k == 0 and kind == "train" else raw, columns=cols)
            n = len(block)
            start = base + pd.Timedelta(days=3 * k + (0 if kind == "train" else 1.5))
            block.insert(0, TIME, start + pd.to_timedelta(np.arange(n) * 3, unit="min"))
            block.insert(1, UNIT, f"{kind}-d{k:02d}")
            label = "normal" if k == 0 else f"idv{k:02d}"
            if kind == "train":
                block[TARGET], block[sources.PART] = label, "train"
            else:
                block[TARGET] = np.where(np.arange(n) < 160, "normal", label)
                block[sources.PART] = np.where(np.arange(n) < n // 2, "validation", "test")
            blocks.append(block)
    frame = pd.concat(blocks, ignore_index=True)
    frame[sources.SCORED] = frame[sources.PART] != "train"
    return sources._neutral_units(frame, np.random.default_rng(13))


@needs_data
def test_the_old_tep_cut_is_refused_naming_time() -> None:
    d, _ = load_definition("tep-diagnosis")
    frame = _old_tep(d)
    figures = leaks.probe(d.task, frame)
    # time alone, read by a tree fitted on the training runs, names the fault of every hidden row
    assert figures["columns"]["time_in_span"]["test"]["score"] > 0.95
    assert figures["columns"]["time_in_span"]["validation"]["gain"] > 0.5
    assert figures["columns"]["time"]["validation"]["score"] > 4 * figures["columns"]["time"]["validation"]["chance"]
    with pytest.raises(InvalidInput, match=r"through time .*'time_in_span'.*macro_f1 1\.000 on the test part"):
        sources.probed(d, frame)


@needs_data
def test_the_new_tep_cut_passes_and_stays_a_challenge() -> None:
    d, _ = load_definition("tep-diagnosis")
    frame = sources.build(d, SHARED, seed=7)
    figures = frame.attrs["leak_probe"]
    assert not leaks.leaking(figures) and not figures["accepted"]
    assert all(f["gain"] < 0.1 for parts in figures["columns"].values() for f in parts.values())
    # the signals still carry the faults: the best single signal is far above chance
    assert max(s["validation"]["gain"] for s in figures["signals"].values()) > 0.1
    parts = {p: g for p, g in frame.groupby(sources.PART)}
    assert all(parts[p][TARGET].nunique() == 22 for p in ("train", "validation", "test"))
    assert set(parts["validation"][UNIT]).isdisjoint(parts["test"][UNIT])  # each half is a unit of its own
    assert set(parts["train"][UNIT]).isdisjoint(parts["validation"][UNIT])
    assert all(u.startswith("unit-") for u in pd.concat([parts["validation"], parts["test"]])[UNIT])
    assert (
        parts["train"][TIME].max()
        < parts["validation"][TIME].min()
        <= parts["validation"][TIME].max()
        < parts["test"][TIME].min()
    )
    # the order of the runs in time is unrelated to the fault, and a fresh cut draws a fresh order
    first = parts["validation"].groupby(TARGET)[TIME].min().sort_values().index.tolist()
    assert first != sorted(first)
    other = sources.tep(d, SHARED)
    again = other[other[sources.PART] == "validation"].groupby(TARGET)[TIME].min().sort_values().index.tolist()
    assert again != first


@needs_data
@pytest.mark.parametrize("name", ["skab-valves", "cmapss-fd001", "tep-diagnosis"])
def test_ready_challenges_pass_the_probe(name: str) -> None:
    d, _ = load_definition(name)
    figures = sources.build(d, SHARED, seed=1).attrs["leak_probe"]
    assert figures["metric"] == {"skab-valves": "f1", "cmapss-fd001": "rmse", "tep-diagnosis": "macro_f1"}[name]
    assert not [x for x in leaks.leaking(figures) if x[0] not in figures["accepted"]]
    assert set(figures["columns"]) >= {"time", "time_in_span", "unit", "unit_number", "row"}
    assert max(s["validation"]["gain"] for s in figures["signals"].values()) > 0.1  # signals do tell
    if name == "skab-valves":  # SKAB's protocol needs whole runs: the place in a run tells, and the board says so
        assert set(figures["accepted"]) == {"position_in_unit"}
        assert figures["columns"]["position_in_unit"]["validation"]["score"] > 0.9
    if name == "cmapss-fd001":  # a row's place in its engine is the engine's age: recorded, not refused
        assert "position_in_unit" in figures["context"]


def _frame(rng: np.random.Generator, *, in_class_order: bool = False, units: int = 12, rows: int = 40) -> pd.DataFrame:
    """A small fault challenge: three classes, one per unit, a signal that is a noisy copy of the class; each part's
    units follow each other every 3 days in a random order (or grouped by class)."""
    blocks = []
    for part, offset in (("train", 0), ("validation", 100), ("test", 200)):
        order = np.argsort([u % 3 for u in range(units)], kind="stable") if in_class_order else rng.permutation(units)
        for slot, u in enumerate(order):
            blocks.append(
                pd.DataFrame(
                    {
                        TIME: pd.Timestamp("2026-01-01", tz="UTC")
                        + pd.to_timedelta(offset + 3 * slot + np.arange(rows) / rows, unit="D"),
                        UNIT: f"{part}-{u:02d}",
                        "s": u % 3 + rng.normal(0, 2.0, rows),
                        TARGET: f"c{u % 3}",
                        sources.PART: part,
                    }
                )
            )
    frame = pd.concat(blocks, ignore_index=True)
    frame[sources.SCORED] = frame[sources.PART] != "train"
    return frame


def test_unit_names_and_times_that_follow_the_label_are_refused() -> None:
    rng = np.random.default_rng(0)
    named = _frame(rng)  # hidden units numbered as the training ones: the number in the name tells
    with pytest.raises(InvalidInput, match=r"through unit .*'unit(_number)?'"):
        leaks.check("fault", named)
    neutral = sources._neutral_units(named.copy(), np.random.default_rng(3))
    figures = leaks.check("fault", neutral)  # passes: what a column shows here, a blind deal of it shows as well
    assert not leaks.leaking(figures)
    assert figures["signals"]["s"]["validation"]["gain"] > 0.1
    grouped = sources._neutral_units(_frame(rng, in_class_order=True), np.random.default_rng(3))
    assert leaks.probe("fault", grouped)["columns"]["time_in_span"]["test"]["gain"] >= figures["margin"]
    with pytest.raises(InvalidInput, match="gives its labels away"):  # runs placed in class order: time tells
        leaks.check("fault", grouped)


def test_the_probe_counts_the_boards_metric() -> None:
    rng = np.random.default_rng(1)
    for task, truth, pred in (
        ("fault", rng.choice(["normal", "a", "b"], 300), rng.choice(["normal", "a", "c"], 300)),
        ("anomaly", rng.integers(0, 2, 300), rng.integers(0, 2, 300)),
        ("rul", rng.uniform(0, 125, 300), rng.uniform(0, 125, 300)),
    ):
        labels = pd.DataFrame(
            {
                "row": np.arange(300),
                "part": "validation",
                "scored": True,
                "time": pd.date_range("2026-01-01", periods=300, freq="1min", tz="UTC"),
                "unit": "u",
                "target": truth,
                "changepoint": 0,
            }
        )
        metric = {"fault": "macro_f1", "anomaly": "f1", "rul": "rmse"}[task]
        board = score(task, labels, pd.Series(pred, index=np.arange(300)))["validation"][metric]
        assert leaks.metric_value(task, np.asarray(truth), np.asarray(pred)) == pytest.approx(board)


def test_known_leaks_name_only_a_place_in_a_run_with_a_reason() -> None:
    d, _ = load_definition("tep-diagnosis")
    doc = d.model_dump(mode="json")
    with pytest.raises(ValidationFailed, match="known_leaks"):
        parse_definition(doc | {"known_leaks": {"time": {"en": "x", "ko": "x"}}})
    with pytest.raises(ValidationFailed, match="English and Korean"):
        parse_definition(doc | {"known_leaks": {"position_in_unit": {"en": "runs"}}})


def test_a_plants_challenge_is_probed_and_a_refusal_revokes_its_grant(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_academy import CHALLENGE
    from tests.test_lab_service import PLANT, _pump_history

    platform.twin.load("acme", PLANT)
    _pump_history(platform)
    platform.academy.create("acme", CHALLENGE)
    with platform.historian.engine.connect() as c:
        from sqlalchemy import select

        from taehwa.db import challenges

        info = c.execute(select(challenges.c.info).where(challenges.c.id == "acme-pump")).scalar_one()
    probe = info["leak_probe"]
    assert probe["metric"] == "f1" and set(probe["columns"]) == set(leaks.NON_SIGNAL)
    assert len(probe["signals"]) == 2 and not leaks.leaking(probe)
    # the probe reads the rows in the order the files hold them
    folder = platform.academy.root / "acme-pump" / "public"
    d = parse_definition(copy.deepcopy(CHALLENGE))
    grant = platform.sharing.create(
        "acme",
        "academy",
        list(CHALLENGE["source"]["data"]["tags"]),
        "2024-03-01",
        "2024-03-04",
        days=1,
        pseudonymise=True,
        purpose="look",
    )
    frame = sources.historian(d, platform.lab, "acme", grant)
    train, rest = leaks.public_view(frame)
    written = pd.read_parquet(folder / "inputs.parquet")
    assert (rest[TIME].to_numpy() == written[TIME].to_numpy()).all()
    assert (train[TIME].to_numpy() == pd.read_parquet(folder / "train.parquet")[TIME].to_numpy()).all()
    # a cut the probe refuses is not kept, and the grant made for it is revoked
    monkeypatch.setattr(leaks, "leaking", lambda f: [("time", "validation", {"score": 1, "chance": 0, "gain": 1})])
    leaky = copy.deepcopy(CHALLENGE) | {"id": "acme-pump-leaky"}
    with pytest.raises(InvalidInput, match="gives its labels away"):
        platform.academy.create("acme", leaky)
    assert not (platform.academy.root / "acme-pump-leaky").exists()
    purposes = {g["purpose"]: g for g in platform.sharing.overview("acme")["given"]}
    assert "academy challenge acme-pump-leaky" not in purposes or purposes["academy challenge acme-pump-leaky"].get(
        "revoked_at"
    )
