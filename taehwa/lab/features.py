"""Windowed feature pipelines: what a model sees of a signal's recent past.

Every feature is causal (row t uses rows ≤ t of its own unit only), so a backtest never peeks at the future and the
live scorer can compute the same features from a rolling window. Parameters only in the constructor, like models.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from taehwa.errors import InvalidInput
from taehwa.lab.models import segments

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


class WindowFeatures:
    """Rolling statistics over each signal's recent rows (per unit): mean/std/min/max/slope over `windows`, `lags`,
    an EWMA, and `spectrum_bands` > 0 band powers of the last `windows[-1]` rows (for vibration)."""

    def __init__(self, windows: tuple[int, ...] | list[int] = (10,), stats: tuple[str, ...] | list[str] = ("mean",),
                 lags: tuple[int, ...] | list[int] = (), ewm_alpha: float = 0.1, spectrum_bands: int = 0,
                 include_raw: bool = True, include_position: bool = False) -> None:
        bad = [s for s in stats if s not in STATS]
        if bad:
            raise InvalidInput(f"unknown feature statistic {bad[0]!r}; known: {', '.join(STATS)}",
                               where="features.stats")
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
        return {"windows": self.windows, "stats": self.stats, "lags": self.lags, "ewm_alpha": self.ewm_alpha,
                "spectrum_bands": self.spectrum_bands, "include_raw": self.include_raw,
                "include_position": self.include_position}

    def transform(self, frame: pd.DataFrame, signals: list[str], group: str | None = None) -> pd.DataFrame:
        """Feature columns for each row of `frame` (same index and order)."""
        keys = frame[group] if group else pd.Series(0, index=frame.index)
        grouped = frame[signals].groupby(keys.to_numpy(), sort=False)
        cols: dict[str, pd.Series | np.ndarray] = {}
        if self.include_position:
            cols["position"] = grouped.cumcount().to_numpy() + 1
        for s in signals:
            g = grouped[s]
            if self.include_raw:
                cols[s] = frame[s].to_numpy(float)
            for lag in self.lags:
                cols[f"{s}__lag{lag}"] = g.shift(lag).to_numpy(float)
            for w in self.windows:
                roll = g.rolling(w, min_periods=1)
                for stat in self.stats:
                    if stat in ("mean", "std", "min", "max"):
                        vals = getattr(roll, stat)().reset_index(level=0, drop=True).sort_index()
                        cols[f"{s}__{stat}{w}"] = vals.reindex(frame.index).to_numpy(float)
                    elif stat == "slope" and w >= 3:
                        cols[f"{s}__slope{w}"] = _rolling_slope(frame[s].to_numpy(float), keys.to_numpy(), w)
            if "ewm" in self.stats:
                cols[f"{s}__ewm"] = g.transform(lambda v: v.ewm(alpha=self.ewm_alpha).mean()).to_numpy(float)
            if "cummean" in self.stats:
                cols[f"{s}__cummean"] = g.transform(lambda v: v.expanding().mean()).to_numpy(float)
            if self.spectrum_bands > 0:
                bands = _band_powers(frame[s].to_numpy(float), keys.to_numpy(), self.windows[-1],
                                     self.spectrum_bands)
                for b in range(self.spectrum_bands):
                    cols[f"{s}__band{b}"] = bands[:, b]
        out = pd.DataFrame(cols, index=frame.index)
        return out.fillna(0.0) if "std" in self.stats or self.lags else out


def _cumsum0(arr: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(arr)])


def _rolling_slope(v: np.ndarray, keys: np.ndarray, w: int) -> np.ndarray:
    """Least-squares slope over the last `w` rows of each unit (fewer at a unit's start), vectorised."""
    out = np.zeros(len(v))
    for seg in segments(len(keys), keys):
        a, b = seg.start, seg.stop
        x = v[a:b]
        n = len(x)
        t = np.arange(n, dtype=float)
        sy, sty, st, stt = _cumsum0(x), _cumsum0(t * x), _cumsum0(t), _cumsum0(t * t)
        hi = np.arange(1, n + 1)
        lo = np.maximum(hi - w, 0)
        k = (hi - lo).astype(float)
        Sy, Sty, St, Stt = sy[hi] - sy[lo], sty[hi] - sty[lo], st[hi] - st[lo], stt[hi] - stt[lo]
        den = k * Stt - St ** 2
        with np.errstate(invalid="ignore", divide="ignore"):
            out[a:b] = np.where(den > 0, (k * Sty - St * Sy) / np.where(den > 0, den, 1.0), 0.0)
    return out


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
            out[a + w - 1: b, i] = spec[:, edges[i]: max(edges[i + 1], edges[i] + 1)].mean(axis=1)
    return out
