"""The data of a challenge as one table: `time`, `unit`, the signals, `target`, `part` (train, validation or test)
and `scored` (which rows the metric reads), from a ready benchmark in ../shared/data or the owner's historian.

Units of the parts participants predict are renamed to neutral ids in a shuffled order, so a unit's name never gives
its label away (a Tennessee Eastman test run named after its fault would). Every shuffle draws from a seed chosen at
random when the challenge is cut (a fixed seed in this open code would be a key to the labels); tests pass their own.
Each cut passes the leak probe (leaks.py) before it is kept: one whose time, unit names or row order tell the labels
is refused, and the probe's figures travel with the table (`frame.attrs["leak_probe"]`)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from taehwa.academy import leaks
from taehwa.academy.challenge import Definition, closes_at
from taehwa.core.errors import InvalidInput
from taehwa.lab.benchmarks import need
from taehwa.lab.datasets import CHANGEPOINT, TARGET, TIME, UNIT

if TYPE_CHECKING:
    from taehwa.lab.datasets import Sources
    from taehwa.sharing.grants import Grant

PART = "part"
SCORED = "scored"


def _rng(seed: int | None) -> np.random.Generator:
    """The cut's random draws: from `seed` when given (tests), else from a seed nobody can read in the code."""
    return np.random.default_rng(secrets.randbits(128) if seed is None else seed)


def _neutral_units(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Rename the units of the predicted parts to unit-01…, in an order drawn from `rng`."""
    hidden = frame[PART] != "train"
    names = pd.unique(frame.loc[hidden, UNIT])
    order = rng.permutation(len(names))
    width = max(2, len(str(len(names))))
    mapping = {n: f"unit-{i + 1:0{width}d}" for n, i in zip(names, order, strict=True)}
    frame.loc[hidden, UNIT] = frame.loc[hidden, UNIT].map(mapping)
    return frame


def probed(d: Definition, frame: pd.DataFrame) -> pd.DataFrame:
    """Run the leak probe on a cut (InvalidInput naming the column when one tells the labels); keep its figures."""
    frame.attrs["leak_probe"] = leaks.check(d.task, frame, accepted={str(k): v for k, v in d.known_leaks.items()})
    return frame


def _by_time(frame: pd.DataFrame, d: Definition) -> pd.Series:
    assert d.source.validation_from and d.source.test_from
    v, t = closes_at(d.source.validation_from), closes_at(d.source.test_from)
    if t <= v:
        raise InvalidInput("source.test_from must come after source.validation_from", where="source.test_from")
    part = pd.Series("train", index=frame.index)
    part[frame[TIME] >= pd.Timestamp(v)] = "validation"
    part[frame[TIME] >= pd.Timestamp(t)] = "test"
    return part


def skab(d: Definition, shared: Path, seed: int | None = None) -> pd.DataFrame:
    """SKAB's runs in time order: whole runs fall in the part their start time says; the anomaly-free run trains."""
    root = need(shared / "skab" / "data")
    files = sorted(root.glob("*/*.csv"))
    blocks = []
    for f in files:
        df = pd.read_csv(f, sep=";", parse_dates=["datetime"])
        block = pd.DataFrame({TIME: pd.to_datetime(df.pop("datetime")).dt.tz_localize("UTC")})
        block[UNIT] = f.stem if f.stem == f.parent.name else f"{f.parent.name}-{f.stem}"
        block[TARGET] = df.pop("anomaly").astype(int) if "anomaly" in df else 0
        block[CHANGEPOINT] = df.pop("changepoint").astype(int) if "changepoint" in df else 0
        for c in df.columns:
            block[c.lower().replace(" ", "_")] = df[c].astype(float)
        blocks.append(block)
    frame = pd.concat(blocks, ignore_index=True)
    starts = frame.groupby(UNIT)[TIME].transform("min")
    frame[PART] = _by_time(frame.assign(**{TIME: starts}), d)
    frame[SCORED] = frame[PART] != "train"
    return _neutral_units(frame, _rng(seed))


def cmapss(d: Definition, shared: Path, seed: int | None = None) -> pd.DataFrame:
    """C-MAPSS: the training fleet run to failure; the official test engines (cut off before failure) split into a
    validation and a hidden part. Only each test engine's last cycle is scored, against RUL_FD00x.txt clipped at
    125 cycles like the training target (the published protocol). One cycle is shown as one hour; each engine
    enters service at its own random hour (the training fleet within 60 days, the test engines within 60 days after
    it), so `time` is a clock and not the engine's age (the age is its row's place in the engine, as in the files)."""
    from taehwa.lab.benchmarks import CMAPSS_RUL_CLIP, read_cmapss

    sub = d.source.subset or "FD001"
    root = need(shared / "cmapss")
    train = read_cmapss(need(root / f"train_{sub}.txt.gz"))
    test = read_cmapss(need(root / f"test_{sub}.txt.gz"))
    truth = np.loadtxt(need(root / f"RUL_{sub}.txt"))
    base = pd.Timestamp("2026-01-01", tz="UTC")
    train[TARGET] = (train.groupby("unit")["cycle"].transform("max") - train["cycle"]).clip(upper=CMAPSS_RUL_CLIP)
    last = test.groupby("unit")["cycle"].transform("max")
    test[TARGET] = (truth[test["unit"].to_numpy() - 1] + last - test["cycle"]).clip(upper=CMAPSS_RUL_CLIP)
    n_val = d.source.validation_units or int(test["unit"].nunique() // 2)
    train[PART] = "train"
    test[PART] = np.where(test["unit"] <= n_val, "validation", "test")
    train[SCORED] = False
    test[SCORED] = test["cycle"] == last
    train["unit"] = train["unit"].map(lambda u: f"engine-{u:03d}")
    test["unit"] = test["unit"].map(lambda u: f"test-engine-{u:03d}")
    frame = pd.concat([train, test], ignore_index=True)
    rng = _rng(seed)
    names = pd.unique(frame["unit"])
    later = np.array([n.startswith("test-") for n in names])
    start = dict(zip(names, rng.integers(0, 60 * 24, len(names)) + np.where(later, 90 * 24, 0), strict=True))
    frame[TIME] = base + pd.to_timedelta(frame["unit"].map(start) + frame["cycle"], unit="h")
    frame = frame.rename(columns={"unit": UNIT})
    return _neutral_units(frame, rng)


def tep(d: Definition, shared: Path, seed: int | None = None) -> pd.DataFrame:
    """Tennessee Eastman: the normal run and the 21 fault runs train; the 22 test runs (48 h each, faults from hour
    8) are cut in two: their first 24 h form the validation part, their last 24 h the hidden test part, each half a
    unit of its own. Nothing but the signals tells the fault: the training runs, then the validation halves, then the
    test halves follow each other every two days, each group in its own random order, and the halves are named in
    another (so a run's time, its name and its rows' place in the files are all unrelated to its fault)."""
    root = need(shared / "tep")
    cols = [f"xmeas_{i:02d}" for i in range(1, 42)] + [f"xmv_{i:02d}" for i in range(1, 12)]
    base = pd.Timestamp("2026-02-01", tz="UTC")
    rng = _rng(seed)
    slot = {"train": rng.permutation(22), "validation": 22 + rng.permutation(22), "test": 44 + rng.permutation(22)}
    blocks = []
    for k in range(22):
        label = d.normal_class if k == 0 else f"idv{k:02d}"
        raw = np.loadtxt(need(root / f"d{k:02d}.dat"))
        runs = [("train", raw.T if k == 0 else raw, np.full(len(raw.T if k == 0 else raw), label, dtype=object))]
        test = np.loadtxt(need(root / f"d{k:02d}_te.dat"))
        target = np.where(np.arange(len(test)) < 160, d.normal_class, label).astype(object)
        half = len(test) // 2
        runs += [("validation", test[:half], target[:half]), ("test", test[half:], target[half:])]
        for part, x, y in runs:
            block = pd.DataFrame(x, columns=cols)
            start = base + pd.Timedelta(days=2 * int(slot[part][k]))
            block.insert(0, TIME, start + pd.to_timedelta(np.arange(len(block)) * 3, unit="min"))
            block.insert(1, UNIT, f"{part}-d{k:02d}")
            block[TARGET] = y
            block[PART] = part
            blocks.append(block)
    frame = pd.concat(blocks, ignore_index=True)
    frame[SCORED] = frame[PART] != "train"
    return _neutral_units(frame, rng)


def historian(d: Definition, data_sources: Sources, owner: str, grant: Grant, seed: int | None = None) -> pd.DataFrame:
    """The owner's own tags, on the lab's grid with the lab's labels, then disguised by the sharing grant made for
    the challenge: each tag under its pseudonym, values as a·v + b with the grant's hidden a and b, assets as
    neutral ids. Participants learn neither names nor real values. The cut passes the leak probe."""
    from taehwa.lab.datasets import build_dataset
    from taehwa.lab.spec import LabelSpec, ModelSpec, Spec

    assert d.source.data is not None
    spec = Spec(
        name=d.id,
        task=d.task,
        data=d.source.data,
        labels=d.source.labels or LabelSpec(),
        model=ModelSpec(kind=_any_kind(d.task)),
    )
    data = build_dataset(spec, data_sources, owner)
    frame = data.frame.copy()
    if TARGET not in frame.columns:
        raise InvalidInput(
            "the owner's data has no labels for this task in the range; label it first (taehwa lab labels add)",
            where="source.labels",
        )
    a, b = grant.scale or (1.0, 0.0)
    rename = {}
    for s in data.signals:
        frame[s] = frame[s] * a + b
        rename[s] = grant.alias(s).rsplit("/", 1)[-1]
    frame = frame.rename(columns=rename)
    frame[UNIT] = frame[UNIT].map(lambda u: grant.alias(str(u)).rsplit("/", 1)[-1])
    frame[PART] = _by_time(frame, d)
    frame[SCORED] = frame[PART] != "train"
    if not (frame[PART] == "train").any() or not (frame[PART] == "test").any():
        raise InvalidInput(
            "the split leaves a part empty: check source.validation_from and source.test_from against the data's range",
            where="source",
        )
    return probed(d, _neutral_units(frame, _rng(seed)))


def _any_kind(task: str) -> str:
    return {"anomaly": "pca", "fault": "lgbm_classifier", "rul": "lgbm_regressor", "soft_sensor": "lgbm_regressor"}[
        task
    ]


def build(d: Definition, shared: Path, seed: int | None = None) -> pd.DataFrame:
    """The table of a ready challenge, once it has passed the leak probe."""
    if d.source.builder == "skab":
        return probed(d, skab(d, shared, seed))
    if d.source.builder == "cmapss":
        return probed(d, cmapss(d, shared, seed))
    if d.source.builder == "tep":
        return probed(d, tep(d, shared, seed))
    raise InvalidInput("historian challenges are built by AcademyService.create", where="source.builder")
