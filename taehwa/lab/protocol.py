"""The one protocol every model kind follows (see `models`): parameters only in the constructor, `fit`, `predict`,
`score` and `decide`, checked inputs. Kept apart from the kinds so optional ones (the PyTorch network) build on it
without importing the registry of kinds."""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import numpy as np

from taehwa.core.errors import InvalidInput

TASKS = ("anomaly", "fault", "rul", "soft_sensor", "forecast")


class Model:
    """The protocol: parameters in the constructor, then fit / predict / score."""

    kind: ClassVar[str]
    tasks: ClassVar[tuple[str, ...]]
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise InvalidInput(
                f"model {self.kind!r} has no parameter {unknown[0]!r}; it takes "
                f"{', '.join(sorted(self.defaults)) or 'none'}",
                where="model.params",
            )
        self.params: dict[str, Any] = {**self.defaults, **params}
        self.fitted = False

    def get_params(self) -> dict[str, Any]:
        """The parameters it was built with (all of them, defaults included)."""
        return dict(self.params)

    def memory_rows(self) -> int | None:
        """How many rows before a row its output depends on (lags, windows), or None when every earlier row of
        the call counts (smoothing, online learning): what live scoring gives as history so that a live batch
        scores as a backfill does. Row by row models depend on none."""
        alpha = self.params.get("alpha")
        return None if alpha is not None and float(alpha) < 1.0 else 0

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, groups: np.ndarray | None = None) -> Model:
        X = _matrix(X)
        if len(X) < 2:
            raise InvalidInput(f"model {self.kind!r} needs at least 2 rows to learn from, got {len(X)}", where="data")
        self._fit(X, y, groups)
        self.fitted = True
        return self

    def predict(self, X: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        self._check(X)
        return self._predict(_matrix(X), groups)

    def score(self, X: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        self._check(X)
        return self._score(_matrix(X), groups)

    def decide(self, X: np.ndarray, groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`predict` and `score` together, in one pass where they share their work (scoring live data asks for
        both: a regressor's score is its prediction, a detector's decision is its score over the limit)."""
        self._check(X)
        return self._decide(_matrix(X), groups)

    def _check(self, X: np.ndarray) -> None:
        if not self.fitted:
            raise InvalidInput(f"model {self.kind!r} is not fitted yet", where="model")
        width = getattr(self, "n_features_", None)
        if width is not None and np.asarray(X).shape[1] != width:
            raise InvalidInput(
                f"model {self.kind!r} was fitted on {width} features, got {np.asarray(X).shape[1]}", where="data"
            )

    # subclasses fill these in
    def _fit(self, X: np.ndarray, y: np.ndarray | None, groups: np.ndarray | None) -> None:
        raise NotImplementedError

    def _predict(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError

    def _score(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        return self._predict(X, groups).astype(float)

    def _decide(self, X: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if type(self)._score is Model._score:  # the score is the prediction: predict once
            decision = self._predict(X, groups)
            return decision, decision.astype(float)
        return self._predict(X, groups), self._score(X, groups)


def segments(n: int, groups: np.ndarray | None) -> list[slice]:
    """Contiguous runs of the same group (each unit's rows restart lags, smoothing and windows)."""
    if groups is None or n == 0:
        return [slice(0, n)]
    g = np.asarray(groups)
    cuts = np.flatnonzero(g[1:] != g[:-1]) + 1
    return [slice(a, b) for a, b in itertools.pairwise([0, *cuts.tolist(), n])]


def ewma(s: np.ndarray, alpha: float, groups: np.ndarray | None) -> np.ndarray:
    """Exponentially weighted moving average per unit (causal: row t sees rows ≤ t only)."""
    if alpha >= 1.0:
        return s
    out = np.empty_like(s)
    for seg in segments(len(s), groups):
        acc = 0.0
        for i in range(seg.start, seg.stop):
            acc = s[i] if i == seg.start else alpha * s[i] + (1 - alpha) * acc
            out[i] = acc
    return out


class Detector(Model):
    """Shared by the anomaly detectors: a raw statistic, smoothed, divided by its control limit (a score of 1.0 is
    the limit; the decision is the score over it)."""

    tasks = ("anomaly",)

    def _limit_from(self, s: np.ndarray) -> float:
        limit = float(np.quantile(s, self.params["quantile"])) * float(self.params["limit_factor"])
        return limit if limit > 0 else 1e-12

    def _predict(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        return (self._score(X, groups) > 1.0).astype(int)

    def _decide(self, X: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        score = self._score(X, groups)
        return (score > 1.0).astype(int), score


def _matrix(X: Any) -> np.ndarray:
    arr = np.asarray(X, dtype=float)
    if arr.ndim != 2:
        raise InvalidInput(f"expected a 2-D table of features, got {arr.ndim} dimension(s)", where="data")
    return arr


def need_target(y: np.ndarray | None, X: np.ndarray, kind: str) -> np.ndarray:
    if y is None:
        raise InvalidInput(f"model {kind!r} learns from labels; the data has no target", where="target")
    y = np.asarray(y)
    if len(y) != len(X):
        raise InvalidInput(f"{len(y)} targets for {len(X)} rows", where="target")
    return y
