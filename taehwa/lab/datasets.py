"""Datasets: a table of signals on a regular time grid, one block of rows per unit (an asset, an engine, a run),
with the target the task needs, and the lineage that says exactly what it was built from.

From the historian: tags, or every sensor of the assets of a type or under a path (then each asset is a unit and
columns are signal names), interpolated onto `step`. From a file: CSV or Parquet with a time column, optionally a
unit column and a target column. Targets come from labels (intervals → anomaly flag or fault class; failure points →
remaining useful life; value points → soft-sensor target) or, for forecasts, the signal `horizon` rows ahead.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from taehwa.core.errors import InvalidInput, NotFound
from taehwa.core.tagbatch import TagIndex
from taehwa.core.timeutil import from_us, parse_duration, to_us
from taehwa.lab.gaps import hold_us as gap_hold_us
from taehwa.lab.gaps import newest_known
from taehwa.lab.spec import Spec
from taehwa.tenancy.files import FileRoots

if TYPE_CHECKING:
    from taehwa.historian.store import Historian
    from taehwa.lab.labels import LabelService
    from taehwa.twin.service import TwinService

TIME, UNIT, TARGET, CHANGEPOINT = "time", "unit", "target", "changepoint"


class Sources(Protocol):
    """What a dataset is read from (the lab service, or anything holding the same four services): named here so
    this module needs neither the lab service nor the composition root."""

    @property
    def historian(self) -> Historian: ...
    @property
    def twin(self) -> TwinService: ...
    @property
    def labels(self) -> LabelService: ...
    @property
    def files(self) -> FileRoots: ...
    def event_spans(self, tenant: str, templates: list[str], start_us: int | None, end_us: int | None) -> list[Any]:
        """Closed event frames of these templates as label rows (asset, start, end, kind = the template)."""
        ...

    def event_frames(self, tenant: str, template: str, start_us: int, end_us: int) -> list[dict[str, Any]]:
        """Closed event frames of a template overlapping [start, end): asset, start_us, end_us, stats."""
        ...


class EventRows(Protocol):
    """Where closed event frames are read from (the analytics' event store): as label spans, and as rows."""

    def spans(self, tenant: str, templates: list[str], start_us: int | None, end_us: int | None) -> list[Any]: ...
    def closed_frames(self, tenant: str, template: str, start_us: int, end_us: int) -> list[dict[str, Any]]: ...


@dataclass
class Dataset:
    """Rows in (unit, time) order: `time` (UTC), `unit`, the signal columns, and `target` when the task has one."""

    frame: pd.DataFrame
    signals: list[str]
    lineage: dict[str, Any] = field(default_factory=dict)

    @property
    def has_target(self) -> bool:
        return TARGET in self.frame.columns

    def times_s(self) -> np.ndarray:
        return time_us(self.frame[TIME]) / 1e6 if len(self.frame) else np.array([])


def time_us(times: pd.Series) -> np.ndarray:
    """µs since the epoch of a datetime column, whatever resolution pandas chose for it."""
    return pd.to_datetime(times, utc=True).dt.as_unit("us").astype("int64").to_numpy()


def content_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of the table's values and column names (order included): equal hashes, equal data."""
    h = hashlib.sha256()
    h.update("\x1f".join(map(str, frame.columns)).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def build_dataset(spec: Spec, sources: Sources | None = None, tenant: str | None = None) -> Dataset:
    """The dataset a spec names, with its target and lineage."""
    if sources is None or tenant is None:
        raise InvalidInput("a dataset is built for a tenant", where="tenant")
    if spec.data.source == "file":
        frame, signals, lineage = _from_file(spec, sources.files, tenant)
        if TARGET not in frame.columns and spec.task in ("anomaly", "fault", "soft_sensor"):
            frame = _file_labels(spec, frame, sources, tenant)
            lineage["labels"] = "imported labels (taehwa lab labels) on " + (spec.labels.asset or "the file's units")
    elif spec.data.source == "events":
        frame, signals, lineage = _from_events(spec, sources, tenant)
    else:
        frame, signals, lineage = _from_historian(spec, sources, tenant)
    if not len(frame):
        raise InvalidInput("the data is empty: no rows in the range", where="data")
    frame = frame.sort_values([UNIT, TIME], kind="stable").reset_index(drop=True)
    frame = _forecast_target(spec, frame, signals) if spec.task == "forecast" else frame
    if spec.task == "rul" and TARGET in frame.columns and spec.labels.rul_clip is not None:
        frame[TARGET] = frame[TARGET].clip(upper=spec.labels.rul_clip)
    lineage.update(
        {
            "rows": len(frame),
            "units": int(frame[UNIT].nunique()),
            "signals": signals,
            "content_hash": content_hash(frame),
        }
    )
    return Dataset(frame, signals, lineage)


def _from_file(spec: Spec, files: FileRoots, tenant: str) -> tuple[pd.DataFrame, list[str], dict[str, Any]]:
    """A CSV or Parquet file the tenant may name (see taehwa.tenancy.files); errors say what is wrong with the file,
    never what it holds."""
    d = spec.data
    with files.open(tenant, d.file or "", where="data.file") as fh:
        path = Path(d.file or "")
        size = os.fstat(fh.fileno()).st_size
        try:
            if path.suffix.lower() == ".parquet":
                raw = pd.read_parquet(fh)
            else:
                raw = pd.read_csv(fh, sep=d.separator or None, engine="python" if d.separator is None else "c")
        except Exception as exc:
            kind = "Parquet" if path.suffix.lower() == ".parquet" else "CSV"
            raise InvalidInput(
                f"{path.name} is not a readable {kind} file ({type(exc).__name__})", where="data.file"
            ) from None
    if d.time_column not in raw.columns:
        raise InvalidInput(
            f"{path.name} has no time column {d.time_column!r} (it has {len(raw.columns)} columns)",
            where="data.time_column",
        )
    frame = pd.DataFrame({TIME: pd.to_datetime(raw[d.time_column], utc=True, errors="coerce")})
    if frame[TIME].isna().any():
        row = int(np.flatnonzero(frame[TIME].isna().to_numpy())[0]) + 2
        raise InvalidInput(f"{path.name}: unreadable time at line {row}", where=f"{path.name}:{row}")
    if d.unit_column and d.unit_column not in raw.columns:
        raise InvalidInput(f"{path.name} has no unit column {d.unit_column!r}", where="data.unit_column")
    frame[UNIT] = raw[d.unit_column].astype(str) if d.unit_column else "all"
    skip = {d.time_column, d.unit_column, d.target_column, d.changepoint_column}
    signals = d.columns or [c for c in raw.columns if c not in skip and pd.api.types.is_numeric_dtype(raw[c])]
    missing = [c for c in signals if c not in raw.columns]
    if missing:
        raise InvalidInput(f"{path.name} has no column {missing[0]!r}", where="data.columns")
    for c in signals:
        frame[c] = pd.to_numeric(raw[c], errors="coerce").astype(float)
    for col, name in ((d.target_column, TARGET), (d.changepoint_column, CHANGEPOINT)):
        if col:
            if col not in raw.columns:
                raise InvalidInput(f"{path.name} has no column {col!r}", where="data.target_column")
            frame[name] = raw[col].to_numpy()
    if spec.task == "rul" and TARGET not in frame.columns:  # run-to-failure file: RUL = rows left in the unit
        frame[TARGET] = frame.groupby(UNIT)[TIME].transform("size") - frame.groupby(UNIT).cumcount() - 1
    frame = _between(frame, d.start, d.end)  # after the RUL count: a window of a life keeps the life's RUL
    lineage = {
        "source": "file",
        "file": path.name,
        "size": size,
        "start": d.start,
        "end": d.end,
        "time": [frame[TIME].min().isoformat(), frame[TIME].max().isoformat()],
    }
    return frame, signals, lineage


EVENT_TASKS = ("anomaly", "fault", "soft_sensor")


def _from_events(spec: Spec, sources: Sources, tenant: str) -> tuple[pd.DataFrame, list[str], dict[str, Any]]:
    """One row per closed event frame of `data.template` in the range: its time is the event's start, its unit the
    asset, its features the duration and each statistic the template keeps of its signals (`flow.max`, …); the
    target from the labels that overlap the event (anomaly, fault) or a lab value taken within it (soft sensor)."""
    d, lab = spec.data, spec.labels
    if spec.task not in EVENT_TASKS:
        raise InvalidInput(
            f"a dataset of events has one row per event; its task is {', '.join(EVENT_TASKS)}, not {spec.task!r}",
            where="task",
        )
    assert d.template and d.start and d.end
    lo, hi = to_us(d.start, field="data.start"), to_us(d.end, field="data.end")
    rows = sources.event_frames(tenant, d.template, lo, hi)
    if d.asset_type or d.under:
        plant = sources.twin.plant(tenant)
        under = (d.under or "").strip("/")
        rows = [
            r
            for r in rows
            if (a := plant.assets.get(r["asset"])) is not None
            and (not d.asset_type or a.type == d.asset_type)
            and (not under or r["asset"] == under or r["asset"].startswith(under + "/"))
        ]
    if not rows:
        raise InvalidInput(
            f"no closed event of template {d.template!r} between data.start and data.end", where="data.template"
        )
    rows = sorted(rows, key=lambda r: (r["asset"], r["start_us"]))
    columns: dict[str, list[float]] = {"duration_s": [(r["end_us"] - r["start_us"]) / 1e6 for r in rows]}
    names = sorted(
        {
            f"{sig}.{stat}"
            for r in rows
            for sig, got in (r["stats"] or {}).items()
            if isinstance(got, dict) and (d.signals is None or sig in d.signals)
            for stat, v in got.items()
            if isinstance(v, int | float) or v is None
        }
    )
    for name in names:
        sig, _, stat = name.rpartition(".")
        columns[name] = [
            float(v) if isinstance(v := ((r["stats"] or {}).get(sig) or {}).get(stat), int | float) else np.nan
            for r in rows
        ]
    starts = np.array([r["start_us"] for r in rows], np.int64)
    ends = np.array([r["end_us"] for r in rows], np.int64)
    frame = pd.DataFrame({TIME: pd.to_datetime(starts, unit="us", utc=True), UNIT: [r["asset"] for r in rows]})
    for name, values in columns.items():
        frame[name] = np.asarray(values, float)
    labels = _label_rows(spec, sources, tenant)
    units = frame[UNIT].to_numpy()
    if spec.task == "anomaly":
        target: np.ndarray = np.zeros(len(frame), dtype=int)
    elif spec.task == "fault":
        target = np.full(len(frame), lab.normal_class, dtype=object)
    else:
        target = np.full(len(frame), np.nan)
    for r in labels:
        related = np.array([_related(r.asset, u) for u in units], bool)
        if spec.task == "soft_sensor":
            hit = related & (starts <= r.start) & (ends >= r.start) & np.isnan(target.astype(float))
            if r.value is not None:
                target[hit] = r.value
            continue
        end = r.end if r.end is not None else r.start
        hit = related & (starts < max(end, r.start + 1)) & (ends > r.start)  # the label overlaps the event
        target[hit] = 1 if spec.task == "anomaly" else r.kind
    frame[TARGET] = target
    lineage = {"source": "events", "template": d.template, "events": len(rows), "start": d.start, "end": d.end}
    return frame, list(columns), lineage


def _file_labels(spec: Spec, frame: pd.DataFrame, sources: Sources, tenant: str) -> pd.DataFrame:
    """A file without a target column takes its target from the labels imported for the tenant (`taehwa lab
    labels`), as historian data does: those on `labels.asset` (and the assets above and below it) for a file of one
    unit, or on each unit's own name for a file with a unit column; over the file's own time range."""
    lo, hi = frame[TIME].min().isoformat(), (frame[TIME].max() + pd.Timedelta(microseconds=1)).isoformat()
    dated = spec.model_copy(update={"data": spec.data.model_copy(update={"start": lo, "end": hi})})
    if spec.data.unit_column is None:
        if not spec.labels.asset:
            return frame  # a file of one unsaid unit: labels on every asset would be a guess
        renamed = frame.assign(**{UNIT: spec.labels.asset})
        out = _label_target(dated, renamed, sources, tenant)
        out[UNIT] = frame[UNIT].to_numpy()
        return out
    return _label_target(dated, frame, sources, tenant)


def _between(frame: pd.DataFrame, start: str | None, end: str | None) -> pd.DataFrame:
    """A file's rows from data.start (inclusive) to data.end (exclusive), when the spec gives them."""
    if start is None and end is None:
        return frame
    t = time_us(frame[TIME])
    keep = np.ones(len(t), dtype=bool)
    if start is not None:
        keep &= t >= to_us(start, field="data.start")
    if end is not None:
        keep &= t < to_us(end, field="data.end")
    if not keep.any():
        raise InvalidInput("the data is empty: no rows of the file between data.start and data.end", where="data")
    return frame[keep].reset_index(drop=True)


def _from_historian(spec: Spec, sources: Sources, tenant: str) -> tuple[pd.DataFrame, list[str], dict[str, Any]]:
    d = spec.data
    assert d.start and d.end
    units: dict[str, dict[str, str]] = {}  # unit → {column: tag}
    if d.tags:
        units[spec.labels.asset or "all"] = {t: t for t in d.tags}
    else:
        found = sources.twin.search(tenant, type=d.asset_type, under=d.under, limit=10_000)["items"]
        plant = sources.twin.plant(tenant)
        stored = sources.historian.catalog.ids(tenant, refresh=True)  # assets whose tags never had data are skipped
        for item in found:
            asset = plant.assets[item["path"]]
            tags = {s: t for s, t in asset.tags.items() if (d.signals is None or s in d.signals) and t in stored}
            if tags:
                units[asset.path] = tags
        if not units:
            raise NotFound("no asset matching data.asset_type/under has sensors bound to tags with data", where="data")
    signals = sorted({c for m in units.values() for c in m})
    step_us = parse_duration(d.step, field="data.step")
    parts = []
    for unit, mapping in units.items():
        wide = sources.historian.align(tenant, list(mapping.values()), d.start, d.end, d.step, d.method)
        df = wide.to_pandas()
        block = pd.DataFrame({TIME: pd.to_datetime(df["time"], utc=True), UNIT: unit})
        for col in signals:
            block[col] = df[mapping[col]].to_numpy(float) if col in mapping else np.nan
        block = _held(block, sources, tenant, mapping, step_us)
        block = block.dropna(subset=signals, how="all")
        parts.append(block)
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[TIME, UNIT, *signals])
    # an input unknown at a row (past its hold, while others report) takes its last known value, as live scoring's
    # rows do within their history; a unit's first rows take its first
    frame[signals] = frame.groupby(UNIT)[signals].ffill()
    frame[signals] = frame.groupby(UNIT)[signals].bfill()
    tag_list = sorted({t for m in units.values() for t in m.values()})
    lineage = {
        "source": "historian",
        "tenant": tenant,
        "tags": tag_list,
        "start": d.start,
        "end": d.end,
        "step": d.step,
        "method": d.method,
    }
    if spec.task != "forecast":
        frame = _label_target(spec, frame, sources, tenant)
    return frame, signals, lineage


def _held(block: pd.DataFrame, sources: Sources, tenant: str, mapping: dict[str, str], step_us: int) -> pd.DataFrame:
    """The gap rule of serving on the aligned rows (`taehwa.lab.gaps`): a value is unknown where its tag's newest
    point is more than the hold old, so a silence that live scoring would leave without rows leaves none here."""
    if not len(block):
        return block
    grid = time_us(block[TIME])
    hold = gap_hold_us(step_us)
    lo, hi = int(grid.min()) - hold, int(grid.max()) + 1
    index = TagIndex(sorted(set(mapping.values())))
    raw = sources.historian.read(tenant, list(index.pos), from_us(lo), from_us(hi))
    # each tag's times by one sort on (tag position, time): no Python string per point
    codes = index.codes(raw.column("tag"))
    times = raw.column("time").cast(pa.int64()).to_numpy()
    order = np.lexsort((times, codes))
    codes, times = codes[order], times[order]
    bounds = np.searchsorted(codes, np.arange(len(index) + 1))
    out = block.copy()
    for col, tag in mapping.items():
        k = index.pos[tag]
        t = times[bounds[k] : bounds[k + 1]]
        _, ok = newest_known(t, grid, hold)
        out.loc[~ok, col] = np.nan
    return out


def _label_rows(spec: Spec, sources: Sources, tenant: str) -> list[Any]:
    """The rows a target is made from, in the data's range: labels of the spec's kinds (the failure kind for RUL,
    the value kind for a soft sensor) and, for anomaly and fault, the closed event frames of `labels.events`
    (`kinds: []` beside them: the events alone). A row has asset, start, end (None for a point), kind, value."""
    lab, d = spec.labels, spec.data
    if spec.task == "soft_sensor" and not lab.value_kind:
        raise InvalidInput(
            "a soft sensor names the label kind of its lab values: labels.value_kind", where="labels.value_kind"
        )
    classified = spec.task in ("anomaly", "fault")
    kinds = lab.kinds if classified else [lab.failure_kind] if spec.task == "rul" else [lab.value_kind or ""]
    events = lab.events if classified else []
    rows = [] if events and not lab.kinds else sources.labels.rows(tenant, kinds=kinds, start=d.start, end=d.end)
    if events:
        lo = to_us(d.start, field="data.start") if d.start else None
        hi = to_us(d.end, field="data.end") if d.end else None
        rows = [*rows, *sources.event_spans(tenant, events, lo, hi)]
    return rows


def _label_target(spec: Spec, frame: pd.DataFrame, sources: Sources, tenant: str) -> pd.DataFrame:
    """The target column from labels on each unit's asset (and the assets above and below it)."""
    lab = spec.labels
    rows = _label_rows(spec, sources, tenant)
    t_us = time_us(frame[TIME])
    units = frame[UNIT].to_numpy()
    if spec.task == "anomaly":
        target = np.zeros(len(frame), dtype=int)
    elif spec.task == "fault":
        target = np.full(len(frame), lab.normal_class, dtype=object)
    else:
        target = np.full(len(frame), np.nan)
    step_us = parse_duration(spec.data.step)
    names = np.unique(units)
    for r in rows:
        chosen = [u for u in names if _related(r.asset, u)]
        if not chosen:
            continue
        in_unit = np.isin(units, chosen)
        if spec.task in ("anomaly", "fault") and r.end is not None:
            m = in_unit & (t_us >= r.start) & (t_us < r.end)
            target[m] = 1 if spec.task == "anomaly" else r.kind
        elif spec.task == "rul" and r.end is None:
            m = in_unit & (t_us <= r.start)
            target[m] = (r.start - t_us[m]) / step_us
        elif spec.task == "soft_sensor" and r.value is not None:
            idx = np.flatnonzero(in_unit)
            if len(idx):
                k = idx[np.argmin(np.abs(t_us[idx] - r.start))]
                if abs(t_us[k] - r.start) <= step_us:
                    target[k] = r.value
    out = frame.copy()
    out[TARGET] = target
    if spec.task in ("rul", "soft_sensor") and not np.isfinite(target.astype(float)).any():
        kind = lab.failure_kind if spec.task == "rul" else lab.value_kind
        raise InvalidInput(f"no {kind!r} labels in the range give this task a target", where="labels")
    return out


def _related(label_asset: str, unit: str) -> bool:
    return (
        unit == "all" or label_asset == unit or unit.startswith(label_asset + "/") or label_asset.startswith(unit + "/")
    )


def _forecast_target(spec: Spec, frame: pd.DataFrame, signals: list[str]) -> pd.DataFrame:
    sig = spec.labels.forecast_signal
    if sig not in signals:
        raise InvalidInput(
            f"labels.forecast_signal must be one of the data's signals ({', '.join(signals[:10])})",
            where="labels.forecast_signal",
        )
    out = frame.copy()
    out[TARGET] = out.groupby(UNIT)[sig].shift(-spec.labels.horizon)
    return out


def time_range_us(spec: Spec) -> tuple[int, int]:
    assert spec.data.start and spec.data.end
    return to_us(spec.data.start, field="data.start"), to_us(spec.data.end, field="data.end")
