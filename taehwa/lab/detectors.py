"""Two detectors for a new series with no labels: STUMPY's matrix profile against normal running (shape and level
discords over a window) and a streaming z-score that follows slow drift. Both follow the model protocol
(`taehwa.lab.protocol`): parameters in the constructor, a score where 1.0 is the control limit, and a score of a
row that depends only on the rows given before it in the same call (so a live batch scores as a backfill does)."""

from __future__ import annotations

import contextlib
import importlib
import warnings
from typing import Any, ClassVar

import numpy as np

from taehwa.core.errors import InvalidInput
from taehwa.lab.protocol import Detector, ewma, segments

_STUMPY_CACHING = False


def _stumpy() -> Any:
    """STUMPY, with numba's on-disk cache switched on for its compiled functions (once per process): the first
    call of a fresh installation compiles them (about a minute), every later process loads them from the cache
    (about a second). This is what STUMPY's own `cache._enable` does (deprecated there in favour of `cache.save`,
    which recompiles everything at once); where no cache folder is writable the functions are compiled in memory."""
    global _STUMPY_CACHING
    import stumpy  # type: ignore[import-untyped]
    from stumpy import cache

    if not _STUMPY_CACHING:
        _STUMPY_CACHING = True
        for module_name, func_name in cache.get_njit_funcs():
            func = getattr(importlib.import_module(f"stumpy.{module_name}"), func_name)
            # no writable cache folder, or numba's JIT switched off: compiled in memory as usual
            with contextlib.suppress(AttributeError, RuntimeError):
                func.enable_caching()
    return stumpy


class MatrixProfileDetector(Detector):
    """The matrix profile (Yeh et al. 2016) by STUMPY as a discord detector: each row's score is the distance from
    the window of `window` rows ending at it to its nearest neighbour among the windows of normal training running
    (an AB-join), per signal over that signal's limit, the largest of them. `normalize=False` (the default) compares
    standardised values, so a level shift is a discord as well as a change of shape; `normalize=True` z-normalises
    every window (STUMPY's default: shape only). The per-signal limits come from the training windows' own matrix
    profile (each to its nearest non-overlapping neighbour), so they reflect windows the reference did not contain
    as themselves; the default limit is the largest of them (the training running's top discord: neighbouring
    windows overlap, so a few hundred rows hold few independent windows and a high quantile of them is a poor
    estimate). The reference keeps the last `reference_rows` training rows. The first rows of a call, with fewer
    rows before them than a window, are compared over the rows there are."""

    kind = "matrix_profile"
    defaults: ClassVar[dict[str, Any]] = {
        "window": 10,
        "normalize": False,
        "reference_rows": 2000,
        "alpha": 1.0,
        "quantile": 1.0,
        "limit_factor": 1.0,
    }

    def memory_rows(self) -> int | None:
        own = super().memory_rows()
        return None if own is None else int(self.params["window"]) - 1

    def _profiles(self, Z: np.ndarray) -> np.ndarray:
        """Distance of each row's window of Z to the reference, per signal: STUMPY's AB-join for the rows with a
        full window, and for the first rows of a call (fewer rows before them than a window) the same distance
        over the rows there are, scaled to a full window's length."""
        stumpy = _stumpy()
        m = int(self.params["window"])
        out = np.empty((len(Z), Z.shape[1]))
        if len(Z) >= m:
            with (
                warnings.catch_warnings()
            ):  # the training rows themselves: an AB-join that STUMPY takes for a self-join
                warnings.filterwarnings("ignore", message="Arrays T_A, T_B are equal")
                warnings.filterwarnings("ignore", message="A large number of values in `P` are smaller")
                for j in range(Z.shape[1]):
                    ref = self.reference_[:, j]
                    mp = stumpy.stump(Z[:, j], m, ref, ignore_trivial=False, normalize=self.normalize_)
                    out[m - 1 :, j] = np.asarray(mp[:, 0], dtype=float)
        for i in range(min(m - 1, len(Z))):
            out[i] = self._partial(Z[: i + 1]) * np.sqrt(m / (i + 1))
        return out

    def _partial(self, Q: np.ndarray) -> np.ndarray:
        """Per signal, the distance of the short window Q (its rows in order) to its nearest reference window of
        the same length (z-normalised both when `normalize`; a window under 3 rows has no shape: distance 0)."""
        n = len(Q)
        W = np.lib.stride_tricks.sliding_window_view(self.reference_, n, axis=0)  # (windows, signals, n)
        q = Q.T[None, :, :]
        if self.normalize_:
            if n < 3:
                return np.zeros(Q.shape[1])
            W = (W - W.mean(axis=2, keepdims=True)) / np.maximum(W.std(axis=2, keepdims=True), 1e-7)
            q = (q - q.mean(axis=2, keepdims=True)) / np.maximum(q.std(axis=2, keepdims=True), 1e-7)
        return np.asarray(np.sqrt(((W - q) ** 2).sum(axis=2).min(axis=0)), dtype=float)

    def _raw(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        Z = (X - self.mean_) / self.std_
        raw = np.empty(len(X))
        for seg in segments(len(X), groups):
            raw[seg] = (self._profiles(Z[seg]) / self.signal_limit_).max(axis=1)
        return ewma(raw, float(self.params["alpha"]), groups)

    def _fit(self, X: np.ndarray, y: np.ndarray | None, groups: np.ndarray | None) -> None:
        m = int(self.params["window"])
        if m < 3:
            raise InvalidInput("window must be at least 3 rows", where="model.params.window")
        ref_rows = int(self.params["reference_rows"])
        if len(X) < 4 * m or ref_rows < 4 * m:
            raise InvalidInput(
                f"model 'matrix_profile' needs at least 4 windows ({4 * m} rows) of normal running to learn from, "
                f"got {min(len(X), ref_rows)}",
                where="data",
            )
        self.n_features_ = X.shape[1]
        self.normalize_ = bool(self.params["normalize"])
        self.mean_ = X.mean(axis=0)
        self.std_ = X.std(axis=0)
        self.std_[self.std_ < 1e-12] = 1.0
        self.reference_ = np.ascontiguousarray((X[-ref_rows:] - self.mean_) / self.std_)
        stumpy = _stumpy()
        own = np.column_stack(
            [
                np.asarray(stumpy.stump(self.reference_[:, j], m, normalize=self.normalize_)[:, 0], dtype=float)
                for j in range(X.shape[1])
            ]
        )
        q = float(self.params["quantile"])
        # a signal constant in training: any change is a discord, at a scale of a tenth of its training spread
        self.signal_limit_ = np.maximum(np.quantile(own, q, axis=0), 0.1 * np.sqrt(m))
        train = ewma((own / self.signal_limit_).max(axis=1), float(self.params["alpha"]), None)
        self.limit_ = self._limit_from(train)

    def _score(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        return self._raw(X, groups) / self.limit_


class StreamingZScore(Detector):
    """A z-score per signal against an exponentially weighted mean and variance (half-life `halflife` rows) that
    start from the training running and go on learning every row they find normal (score under the limit, when
    `adapt`): a slow drift moves the reference with it, a jump or an anomaly does not. The score is the largest
    |z| over `k`, so 1.0 is k standard deviations. Each call starts from the fitted state, so a score depends only
    on the rows given (live scoring gives the history before the new rows)."""

    kind = "zscore_stream"
    defaults: ClassVar[dict[str, Any]] = {"halflife": 500, "k": 4.0, "adapt": True, "alpha": 1.0}

    def memory_rows(self) -> int | None:
        return None if self.params["adapt"] else super().memory_rows()

    def _fit(self, X: np.ndarray, y: np.ndarray | None, groups: np.ndarray | None) -> None:
        if float(self.params["halflife"]) <= 0 or float(self.params["k"]) <= 0:
            raise InvalidInput("halflife and k must be positive", where="model.params")
        self.n_features_ = X.shape[1]
        self.mean_ = X.mean(axis=0)
        self.var_ = np.maximum(X.var(axis=0), 1e-24)

    def _score(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        a = 1.0 - 0.5 ** (1.0 / float(self.params["halflife"]))
        k, adapt = float(self.params["k"]), bool(self.params["adapt"])
        out = np.empty(len(X))
        for seg in segments(len(X), groups):
            mu, var = self.mean_.copy(), self.var_.copy()
            for i in range(seg.start, seg.stop):
                d = X[i] - mu
                out[i] = float(np.max(np.abs(d) / np.sqrt(var))) / k
                if adapt and out[i] <= 1.0:
                    mu = mu + a * d
                    var = np.maximum((1.0 - a) * (var + a * d * d), 1e-24)
        return ewma(out, float(self.params["alpha"]), groups)
