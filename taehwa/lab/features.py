"""Windowed feature pipelines: what a model sees of a signal's recent past.

Every feature is causal (row t uses rows ≤ t of its own unit only), so a backtest never peeks at the future and the
live scorer can compute the same features from a rolling window. Parameters only in the constructor, like models.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from taehwa.core.errors import InvalidInput
from taehwa.lab.protocol import segments

STATS = ("mean", "std", "min", "max", "slope", "last", "ewm", "cummean")


class ConditionNormalizer:
    """Per-operating-condition standardisation: rows are put into `n_conditions` clusters of the setting columns
    (k-means), and each signal is standardised with the mean and spread of its condition in the training data."""

    def __init__(self, settings: list[str], n_conditions: int = 1, round_to: int = 2) -> None:
        self.settings, self.n_conditions, self.round_to = list(settings), int(n_conditions), int(round_to)

    def fit(self, frame: pd.DataFrame, signals: list[str]) -> ConditionNormalizer:
        self.signals = list(signals)
        cond = self._conditions(frame, fit=True)
        self.stats_: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for c in np.unique(cond):
            block = frame.loc[cond == c, self.signals].to_numpy(float)
            sd = block.std(axis=0)
            sd[sd < 1e-9] = 1.0
            self.stats_[int(c)] = (block.mean(axis=0), sd)
        return self

    def _conditions(self, frame: pd.DataFrame, *, fit: bool = False) -> np.ndarray:
        if self.n_conditions <= 1 or not self.settings:
            return np.zeros(len(frame), dtype=int)
        missing = [s for s in self.settings if s not in frame.columns]
        if missing:
            raise InvalidInput(f"operating-condition column {missing[0]!r} is not in the data", where="features")
        values = frame[self.settings].to_numpy(float).round(self.round_to)
        if fit:
            from sklearn.cluster import KMeans

            self.kmeans_ = KMeans(self.n_conditions, n_init=10, random_state=0).fit(values)
        return np.asarray(self.kmeans_.predict(values), dtype=int)

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        cond = self._conditions(frame)
        values = out[self.signals].to_numpy(float, copy=True)
        for c, (mu, sd) in self.stats_.items():
            m = cond == c
            values[m] = (values[m] - mu) / sd
        out[self.signals] = values
        return out


class SeasonalProfile:
    """Classical seasonal decomposition, learnt on the training rows: each signal's trend is its centred moving
    average over one period, and its seasonal part the mean of what is left at each phase of the period (`bins`
    phases, centred on zero). Transforming takes the seasonal part away, so a detector downstream sees the level
    and what does not belong to the hour of day (or week); a value normal at noon but not at midnight stands out.
    Written out rather than taken from statsmodels: its `seasonal_decompose` is this computation on one series,
    while here the profile must be kept and applied to live rows by their time."""

    def __init__(self, period_us: int, bins: int) -> None:
        self.period_us, self.bins = int(period_us), int(bins)

    def _phase(self, t_us: np.ndarray) -> np.ndarray:
        return np.asarray((t_us % self.period_us) * self.bins // self.period_us, dtype=np.int64)

    def fit(self, t_us: np.ndarray, values: np.ndarray, units: np.ndarray | None = None) -> SeasonalProfile:
        """Learn the profile of each column of `values` (rows in unit, time order) from rows at times `t_us`."""
        t_us = np.asarray(t_us, np.int64)
        span = int(t_us.max() - t_us.min()) if len(t_us) else 0
        if span < 2 * self.period_us:
            raise InvalidInput(
                f"features.season needs at least two periods of training data; it covers {span / 3.6e9:.1f} h",
                where="features.season",
            )
        steps = np.diff(t_us)
        step = int(np.median(steps[steps > 0])) if (steps > 0).any() else self.period_us
        window = max(2, min(len(t_us), round(self.period_us / max(step, 1))))
        trend = np.empty_like(values, dtype=float)
        for seg in segments(len(values), units):
            block = pd.DataFrame(values[seg])
            trend[seg] = block.rolling(window, center=True, min_periods=max(1, window // 2)).mean().to_numpy()
        rest = values - trend
        phase = self._phase(t_us)
        profile = np.zeros((self.bins, values.shape[1]))
        for b in range(self.bins):
            at = rest[phase == b]
            if len(at):
                with np.errstate(invalid="ignore"):
                    mean = np.nanmean(at, axis=0) if np.isfinite(at).any() else np.zeros(values.shape[1])
                profile[b] = np.nan_to_num(mean)
        self.profile_ = profile - profile.mean(axis=0)
        return self

    def transform(self, t_us: np.ndarray, values: np.ndarray) -> np.ndarray:
        """The values less the seasonal part of their phase."""
        return np.asarray(np.asarray(values, float) - self.profile_[self._phase(np.asarray(t_us, np.int64))])


class WindowFeatures:
    """Rolling statistics over each signal's recent rows (per unit): mean/std/min/max/slope over `windows`, `lags`,
    an EWMA, and `spectrum_bands` > 0 band powers of the last `windows[-1]` rows (for vibration)."""

    def __init__(
        self,
        windows: tuple[int, ...] | list[int] = (10,),
        stats: tuple[str, ...] | list[str] = ("mean",),
        lags: tuple[int, ...] | list[int] = (),
        ewm_alpha: float = 0.1,
        spectrum_bands: int = 0,
        include_raw: bool = True,
        include_position: bool = False,
    ) -> None:
        bad = [s for s in stats if s not in STATS]
        if bad:
            raise InvalidInput(
                f"unknown feature statistic {bad[0]!r}; known: {', '.join(STATS)}", where="features.stats"
            )
        if any(int(w) < 1 for w in windows):
            raise InvalidInput("feature windows must be at least 1 row", where="features.windows")
        self.windows = [int(w) for w in windows]
        self.stats = list(stats)
        self.lags = [int(lag) for lag in lags]
        self.ewm_alpha = float(ewm_alpha)
        self.spectrum_bands = int(spectrum_bands)
        self.include_raw = include_raw
        self.include_position = include_position

    def params(self) -> dict[str, Any]:
        return {
            "windows": self.windows,
            "stats": self.stats,
            "lags": self.lags,
            "ewm_alpha": self.ewm_alpha,
            "spectrum_bands": self.spectrum_bands,
            "include_raw": self.include_raw,
            "include_position": self.include_position,
        }

    def transform(self, frame: pd.DataFrame, signals: list[str], group: str | None = None) -> pd.DataFrame:
        """Feature columns for each row of `frame` (same index and order).

        Rows of a unit are taken as one sequence; units interleaved in `frame` are put in unit order first and the
        features put back in the frame's order. The rolling statistics are computed for all signals and units at
        once with cumulative sums (not a pandas group-by per signal): live scoring calls this for every batch."""
        keys = frame[group].to_numpy() if group else np.zeros(len(frame), dtype=np.int64)
        order = None
        if len(keys) > 1 and not _grouped(keys):
            order = np.argsort(pd.factorize(keys)[0], kind="stable")
            frame, keys = frame.iloc[order], keys[order]
        V = frame[signals].to_numpy(float)
        start = _run_starts(keys)
        cols: dict[str, np.ndarray] = {}
        if self.include_position:
            cols["position"] = (np.arange(len(keys)) - start + 1).astype(float)
        raw = {s: V[:, j] for j, s in enumerate(signals)} if self.include_raw else {}
        lagged = {lag: _shifted(V, start, lag) for lag in self.lags}
        rolled: dict[tuple[str, int], np.ndarray] = {}
        for w in self.windows:
            if {"mean", "std"} & set(self.stats):
                mean, std = _window_moments(V, start, w)
                rolled[("mean", w)], rolled[("std", w)] = mean, std
            if "min" in self.stats:
                rolled[("min", w)] = _window_extreme(V, start, w, np.fmin)
            if "max" in self.stats:
                rolled[("max", w)] = _window_extreme(V, start, w, np.fmax)
            if "slope" in self.stats and w >= 3:
                rolled[("slope", w)] = _rolling_slope(V, start, w)
        grouped = frame[signals].groupby(keys, sort=False) if {"ewm", "cummean"} & set(self.stats) else None
        for j, s in enumerate(signals):
            if self.include_raw:
                cols[s] = raw[s]
            for lag in self.lags:
                cols[f"{s}__lag{lag}"] = lagged[lag][:, j]
            for w in self.windows:
                for stat in self.stats:
                    if (stat, w) in rolled:
                        cols[f"{s}__{stat}{w}"] = rolled[(stat, w)][:, j]
            if grouped is not None and "ewm" in self.stats:
                cols[f"{s}__ewm"] = grouped[s].transform(lambda v: v.ewm(alpha=self.ewm_alpha).mean()).to_numpy(float)
            if grouped is not None and "cummean" in self.stats:
                cols[f"{s}__cummean"] = grouped[s].transform(lambda v: v.expanding().mean()).to_numpy(float)
            if self.spectrum_bands > 0:
                bands = _band_powers(V[:, j], keys, self.windows[-1], self.spectrum_bands)
                for b in range(self.spectrum_bands):
                    cols[f"{s}__band{b}"] = bands[:, b]
        if not cols:  # a spec refuses this already; kept so an empty matrix never reaches a model
            raise InvalidInput(
                "features make no feature: give windows with stats, lags, include_raw or spectrum_bands",
                where="features",
            )
        if order is not None:
            back = np.empty_like(order)
            back[order] = np.arange(len(order))
            cols = {k: v[back] for k, v in cols.items()}
            frame = frame.iloc[back]
        out = pd.DataFrame(cols, index=frame.index)
        return out.fillna(0.0) if "std" in self.stats or self.lags else out


def _grouped(keys: np.ndarray) -> bool:
    """Whether each unit's rows are one contiguous run."""
    runs = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return len(runs) == len(pd.unique(keys))


def _run_starts(keys: np.ndarray) -> np.ndarray:
    """For each row, the index of the first row of its unit's run."""
    n = len(keys)
    if n == 0:
        return np.empty(0, np.int64)
    first = np.r_[True, keys[1:] != keys[:-1]]
    return np.maximum.accumulate(np.where(first, np.arange(n), 0))


def _shifted(V: np.ndarray, start: np.ndarray, lag: int) -> np.ndarray:
    """Each row's value `lag` rows earlier in its unit (NaN before the unit's start)."""
    out = np.full_like(V, np.nan)
    if 0 < lag < len(V):
        out[lag:] = V[:-lag]
        out[np.arange(len(V)) - lag < start] = np.nan
    elif lag == 0:
        out[:] = V
    return out


def _window_bounds(start: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """[lo, hi) of each row's window: its last `w` rows, not before its unit's first row."""
    hi = np.arange(1, len(start) + 1)
    return np.maximum(hi - w, start), hi


def _window_moments(V: np.ndarray, start: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling mean and sample standard deviation over each row's window, NaN values left out (as pandas' rolling
    with min_periods=1). Values are centred per unit first so the cumulative sums stay small."""
    ok = np.isfinite(V)
    firsts = np.flatnonzero(start == np.arange(len(start)))
    if len(V) == 0:
        return V.copy(), V.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = np.add.reduceat(np.where(ok, V, 0.0), firsts, axis=0) / np.add.reduceat(ok, firsts, axis=0)
    centre = np.nan_to_num(centre)[np.cumsum(start == np.arange(len(start))) - 1]
    X = np.where(ok, V - centre, 0.0)
    lo, hi = _window_bounds(start, w)
    count = _cumsum0(ok.astype(float))
    s1, s2 = _cumsum0(X), _cumsum0(X * X)
    k = count[hi] - count[lo]
    S1, S2 = s1[hi] - s1[lo], s2[hi] - s2[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(k > 0, S1 / k, np.nan)
        var = np.where(k > 1, (S2 - S1 * S1 / np.where(k > 0, k, 1.0)) / (k - 1), np.nan)
    return mean + centre, np.sqrt(np.clip(var, 0.0, None))


def _window_extreme(V: np.ndarray, start: np.ndarray, w: int, pick: Any) -> np.ndarray:
    """Rolling min or max (`np.fmin` / `np.fmax`, which skip NaN) over each row's window."""
    out = V.copy()
    idx = np.arange(len(V))
    for d in range(1, min(w, len(V))):
        shifted = np.empty_like(V)
        shifted[d:], shifted[:d] = V[:-d], np.nan
        shifted[idx - d < start] = np.nan
        out = pick(out, shifted)
    return out


def _cumsum0(arr: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros((1, *arr.shape[1:])), np.cumsum(arr, axis=0)])


def _rolling_slope(V: np.ndarray, start: np.ndarray, w: int) -> np.ndarray:
    """Least-squares slope per row over the last `w` rows of its unit (fewer at a unit's start), all columns at
    once; time is the row's position in its unit, values are NaN-free (features of filled rows)."""
    t = (np.arange(len(start)) - start).astype(float)[:, None]
    X = np.nan_to_num(V)
    lo, hi = _window_bounds(start, w)
    sy, sty, st, stt = _cumsum0(X), _cumsum0(t * X), _cumsum0(t), _cumsum0(t * t)
    k = (hi - lo).astype(float)[:, None]
    Sy, Sty, St, Stt = sy[hi] - sy[lo], sty[hi] - sty[lo], st[hi] - st[lo], stt[hi] - stt[lo]
    den = k * Stt - St**2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(den > 0, (k * Sty - St * Sy) / np.where(den > 0, den, 1.0), 0.0))


def _band_powers(v: np.ndarray, keys: np.ndarray, w: int, bands: int) -> np.ndarray:
    """Power in `bands` equal frequency bands of the last `w` rows (zero until a unit has `w` rows)."""
    out = np.zeros((len(v), bands))
    for seg in segments(len(keys), keys):
        a, b = seg.start, seg.stop
        x = v[a:b]
        if len(x) < w:
            continue
        windows = np.lib.stride_tricks.sliding_window_view(x, w)
        spec = np.abs(np.fft.rfft(windows - windows.mean(axis=1, keepdims=True), axis=1)) ** 2
        edges = np.linspace(1, spec.shape[1], bands + 1).astype(int)
        for i in range(bands):
            out[a + w - 1 : b, i] = spec[:, edges[i] : max(edges[i + 1], edges[i] + 1)].mean(axis=1)
    return out
