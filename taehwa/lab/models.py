"""One model protocol for every task, and the model kinds that implement it.

Every model takes its parameters only in the constructor (so `build(kind, params)` rebuilds it exactly from a run's
record), learns in `fit(X, y)`, and answers with `predict(X)` (the decision: a flag, a class, a value) and
`score(X)` (the continuous output behind it: an anomaly score where 1.0 is the control limit, the probability that
a row is not normal, or the predicted value). `X` is a 2-D float array in time order (rows may belong to several
units; models that carry state over rows, such as lags and smoothing, are given `groups` to restart per unit).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from taehwa.core.errors import InvalidInput
from taehwa.lab.detectors import MatrixProfileDetector, StreamingZScore
from taehwa.lab.protocol import Detector, Model, ewma, need_target, segments


def lgbm_threads(threads: Any) -> int:
    """LightGBM's threads: the spec's `threads`, else the process's OpenMP budget (OMP_NUM_THREADS, which the other
    libraries' pools keep to: an explicit count overrides it, and two processes of two threads each on two cores
    spin against each other), else 2."""
    if threads is not None:
        return int(threads)
    budget = os.environ.get("OMP_NUM_THREADS", "")
    return int(budget) if budget.isdigit() and int(budget) > 0 else 2


def _lagged(X: np.ndarray, lags: int, groups: np.ndarray | None) -> np.ndarray:
    """Each row with the `lags` rows before it (dynamic PCA); the first rows of a unit repeat their first row."""
    if lags <= 0:
        return X
    parts = []
    for seg in segments(len(X), groups):
        block = X[seg]
        padded = np.vstack([np.repeat(block[:1], lags, axis=0), block])
        parts.append(np.hstack([padded[lags - i : lags - i + len(block)] for i in range(lags + 1)]))
    return np.vstack(parts) if parts else X


class PCAMonitor(Detector):
    """PCA process monitoring: Hotelling's T² in the principal subspace and SPE (Q) in the residual, each over its
    own control limit from normal data; `lags` > 0 makes it dynamic PCA; `alpha` < 1 smooths the statistic (EWMA)."""

    kind = "pca"
    defaults: ClassVar[dict[str, Any]] = {
        "explained_variance": 0.9,
        "statistic": "combined",
        "lags": 0,
        "alpha": 1.0,
        "quantile": 0.99,
        "limit_factor": 1.0,
    }

    def memory_rows(self) -> int | None:
        return None if float(self.params["alpha"]) < 1.0 else int(self.params["lags"])

    def _stats(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        Z = (_lagged(X, int(self.params["lags"]), groups) - self.mean_) / self.scale_
        T = Z @ self.components_.T
        t2 = (T**2 / self.variance_).sum(axis=1) / self.t2_limit_
        resid = Z - T @ self.components_
        spe = (resid**2).sum(axis=1) / self.spe_limit_
        stat = self.params["statistic"]
        raw = t2 if stat == "t2" else spe if stat == "spe" else np.maximum(t2, spe)
        return ewma(raw, float(self.params["alpha"]), groups)

    def _fit(self, X: np.ndarray, y: np.ndarray | None, groups: np.ndarray | None) -> None:
        from sklearn.decomposition import PCA

        if self.params["statistic"] not in ("t2", "spe", "combined"):
            raise InvalidInput("statistic must be t2, spe or combined", where="model.params.statistic")
        self.n_features_ = X.shape[1]
        L = _lagged(X, int(self.params["lags"]), groups)
        self.mean_ = L.mean(axis=0)
        self.scale_ = L.std(axis=0)
        self.scale_[self.scale_ < 1e-12] = 1.0
        Z = (L - self.mean_) / self.scale_
        ev = self.params["explained_variance"]
        pca = PCA(n_components=min(float(ev), 0.999999) if ev < 1 else int(ev)).fit(Z)
        self.components_ = pca.components_
        self.variance_ = np.maximum(pca.explained_variance_, 1e-12)
        T = Z @ self.components_.T
        q = float(self.params["quantile"])
        self.t2_limit_ = max(float(np.quantile((T**2 / self.variance_).sum(axis=1), q)), 1e-12)
        self.spe_limit_ = max(float(np.quantile(((Z - T @ self.components_) ** 2).sum(axis=1), q)), 1e-12)
        self.limit_ = 1.0
        self.limit_ = self._limit_from(self._stats(X, groups))

    def _score(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        return self._stats(X, groups) / self.limit_


class IsolationForestDetector(Detector):
    """scikit-learn's Isolation Forest on normal data; the score is its anomaly score over the training quantile."""

    kind = "iforest"
    defaults: ClassVar[dict[str, Any]] = {
        "n_estimators": 200,
        "max_samples": 256,
        "alpha": 1.0,
        "quantile": 0.99,
        "limit_factor": 1.0,
        "random_state": 0,
    }

    def _raw(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        raw = np.asarray(-self.forest_.score_samples(X), dtype=float)
        return ewma(raw, float(self.params["alpha"]), groups)

    def _fit(self, X: np.ndarray, y: np.ndarray | None, groups: np.ndarray | None) -> None:
        from sklearn.ensemble import IsolationForest

        self.n_features_ = X.shape[1]
        self.forest_ = IsolationForest(
            n_estimators=int(self.params["n_estimators"]),
            max_samples=min(int(self.params["max_samples"]), len(X)),
            random_state=int(self.params["random_state"]),
            n_jobs=1,
        ).fit(X)
        self.offset_ = float(np.quantile(self._raw(X, groups), 0.5))
        self.limit_ = self._limit_from(self._raw(X, groups) - self.offset_)

    def _score(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        return np.maximum(self._raw(X, groups) - self.offset_, 0.0) / self.limit_


class ZScoreLimits(Detector):
    """The trivial baseline a plant already has: each signal against its own mean ± k·σ from normal data."""

    kind = "zscore"
    defaults: ClassVar[dict[str, Any]] = {"quantile": 1.0, "limit_factor": 1.0, "k": 4.0}

    def _fit(self, X: np.ndarray, y: np.ndarray | None, groups: np.ndarray | None) -> None:
        self.n_features_ = X.shape[1]
        self.mean_ = X.mean(axis=0)
        self.std_ = X.std(axis=0)
        self.std_[self.std_ < 1e-12] = 1.0

    def _score(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        return np.asarray(np.abs((X - self.mean_) / self.std_).max(axis=1) / float(self.params["k"]))


class ECODDetector(Detector):
    """ECOD (Li et al. 2022, PyOD's `ECOD`): the sum over signals of each value's tail probability under the training
    data's empirical distributions, skewness-aware; no parameters to tune, so a sensible default for a new series.
    PyOD fits it (and scores the training rows); new rows are scored each on its own against the training
    distributions (PyOD's `decision_function` re-ranks a whole batch together, so a row's score would depend on the
    rows scored with it, and live batches would disagree with a backfill)."""

    kind = "ecod"
    defaults: ClassVar[dict[str, Any]] = {"alpha": 1.0, "quantile": 0.99, "limit_factor": 1.0}

    def _raw(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        srt = self.sorted_
        n = len(srt)
        le = np.column_stack([np.searchsorted(srt[:, j], X[:, j], side="right") for j in range(X.shape[1])]) + 1
        ge = n - np.column_stack([np.searchsorted(srt[:, j], X[:, j], side="left") for j in range(X.shape[1])]) + 1
        u_l, u_r = -np.log(le / (n + 1.0)), -np.log(ge / (n + 1.0))
        sk = self.skew_sign_
        u_skew = u_l * -1 * np.sign(sk - 1) + u_r * np.sign(sk + 1)
        raw = np.maximum(np.maximum(u_l, u_r), u_skew).sum(axis=1)
        return ewma(np.asarray(raw, dtype=float), float(self.params["alpha"]), groups)

    def _fit(self, X: np.ndarray, y: np.ndarray | None, groups: np.ndarray | None) -> None:
        from pyod.models.ecod import ECOD  # type: ignore[import-untyped]
        from scipy.stats import skew

        self.n_features_ = X.shape[1]
        self.pyod_ = ECOD().fit(X)
        self.sorted_ = np.sort(X, axis=0)
        self.skew_sign_ = np.sign(np.nan_to_num(skew(X, axis=0)))
        self.pyod_.X_train = None  # the training matrix lives on in sorted_; not pickled twice
        del self.pyod_.X_train
        self.limit_ = self._limit_from(self._raw(X, groups))

    def _score(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        return self._raw(X, groups) / self.limit_


class HalfSpaceTreesDetector(Detector):
    """river's Half-Space Trees (Tan et al. 2011), an online detector: fitted on normal rows, and while it scores it
    goes on learning the rows it finds normal (score under the limit, `adapt`), so it follows slow drift without
    learning the anomalies. Signals are standardised on the training rows and squashed into [0, 1] as the trees
    expect. Each call starts from the fitted state, so a score depends only on the rows given (live scoring gives
    the last `UNBOUNDED_HISTORY` rows of history; the trees' window of `window_size` rows bounds their memory)."""

    kind = "hst"
    defaults: ClassVar[dict[str, Any]] = {
        "n_trees": 10,
        "height": 8,
        "window_size": 250,
        "adapt": True,
        "alpha": 1.0,
        "quantile": 0.99,
        "limit_factor": 1.0,
        "random_state": 0,
    }

    def memory_rows(self) -> int | None:
        return None if self.params["adapt"] else super().memory_rows()

    def _rows(self, X: np.ndarray) -> list[dict[int, float]]:
        Z = np.clip((X - self.mean_) / self.std_, -6.0, 6.0) / 12.0 + 0.5
        return [dict(enumerate(r)) for r in Z.tolist()]

    def _run(self, X: np.ndarray, groups: np.ndarray | None, learn: bool) -> np.ndarray:
        import copy

        out = np.empty(len(X))
        rows = self._rows(X)
        for seg in segments(len(X), groups):
            model = copy.deepcopy(self.forest_)
            limit = getattr(self, "raw_limit_", None)
            for i in range(seg.start, seg.stop):
                out[i] = model.score_one(rows[i])  # type: ignore[no-untyped-call]
                if learn and (limit is None or out[i] <= limit):
                    model.learn_one(rows[i])  # type: ignore[no-untyped-call]
        return ewma(out, float(self.params["alpha"]), groups)

    def _fit(self, X: np.ndarray, y: np.ndarray | None, groups: np.ndarray | None) -> None:
        from river.anomaly import HalfSpaceTrees

        self.n_features_ = X.shape[1]
        self.mean_ = X.mean(axis=0)
        self.std_ = X.std(axis=0)
        self.std_[self.std_ < 1e-12] = 1.0
        self.forest_ = HalfSpaceTrees(
            n_trees=int(self.params["n_trees"]),
            height=int(self.params["height"]),
            window_size=int(self.params["window_size"]),
            limits={j: (0.0, 1.0) for j in range(X.shape[1])},
            seed=int(self.params["random_state"]),
        )
        for r in self._rows(X):
            self.forest_.learn_one(r)  # type: ignore[no-untyped-call]
        train = self._run(X, groups, learn=False)
        self.raw_limit_ = self._limit_from(train)
        self.limit_ = self.raw_limit_

    def _score(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        return self._run(X, groups, learn=bool(self.params["adapt"])) / self.limit_


class LightGBMRegressor(Model):
    """Gradient-boosted trees for remaining useful life, soft sensors and forecasts; `seeds` > 1 averages several."""

    kind = "lgbm_regressor"
    tasks = ("rul", "soft_sensor", "forecast")
    defaults: ClassVar[dict[str, Any]] = {
        "n_estimators": 600,
        "learning_rate": 0.02,
        "num_leaves": 31,
        "min_child_samples": 40,
        "subsample": 0.8,
        "colsample_bytree": 0.5,
        "seeds": 1,
        "clip_min": None,
        "clip_max": None,
        "threads": None,  # None: the process's OpenMP budget (lgbm_threads)
    }

    def _fit(self, X: np.ndarray, y: np.ndarray | None, groups: np.ndarray | None) -> None:
        import lightgbm as lgb

        target = need_target(y, X, self.kind).astype(float)
        self.n_features_ = X.shape[1]
        self.models_ = []
        for seed in range(int(self.params["seeds"])):
            m = lgb.LGBMRegressor(
                n_estimators=int(self.params["n_estimators"]),
                learning_rate=float(self.params["learning_rate"]),
                num_leaves=int(self.params["num_leaves"]),
                min_child_samples=int(self.params["min_child_samples"]),
                subsample=float(self.params["subsample"]),
                subsample_freq=1,
                colsample_bytree=float(self.params["colsample_bytree"]),
                random_state=seed,
                n_jobs=lgbm_threads(self.params.get("threads")),
                verbose=-1,
            )
            self.models_.append(m.fit(X, target))

    def _predict(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        pred = np.mean([m.predict(X) for m in self.models_], axis=0)
        lo, hi = self.params["clip_min"], self.params["clip_max"]
        return np.asarray(np.clip(pred, lo, hi) if lo is not None or hi is not None else pred, dtype=float)


class LightGBMClassifier(Model):
    """Gradient-boosted trees for fault diagnosis; `score` is the probability that a row is not normal."""

    kind = "lgbm_classifier"
    tasks = ("fault",)
    defaults: ClassVar[dict[str, Any]] = {
        "n_estimators": 300,
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_child_samples": 20,
        "colsample_bytree": 0.7,
        "normal_class": "normal",
        "threads": None,  # None: the process's OpenMP budget (lgbm_threads)
    }

    def _fit(self, X: np.ndarray, y: np.ndarray | None, groups: np.ndarray | None) -> None:
        import lightgbm as lgb

        target = need_target(y, X, self.kind).astype(str)
        self.n_features_ = X.shape[1]
        self.classes_ = np.unique(target)
        if len(self.classes_) < 2:
            raise InvalidInput(
                f"fault diagnosis needs at least two classes in the training data, found {self.classes_.tolist()}",
                where="target",
            )
        self.model_ = lgb.LGBMClassifier(
            n_estimators=int(self.params["n_estimators"]),
            learning_rate=float(self.params["learning_rate"]),
            num_leaves=int(self.params["num_leaves"]),
            min_child_samples=int(self.params["min_child_samples"]),
            colsample_bytree=float(self.params["colsample_bytree"]),
            random_state=0,
            n_jobs=lgbm_threads(self.params.get("threads")),
            verbose=-1,
        ).fit(X, target)

    def _predict(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        return np.asarray(self.model_.predict(X)).astype(str)

    def _score(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        return self._decide(X, groups)[1]

    def _decide(self, X: np.ndarray, groups: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        proba = np.asarray(self.model_.predict_proba(X), dtype=float)
        classes = list(self.model_.classes_)
        normal = str(self.params["normal_class"])
        decision = np.asarray(self.model_.classes_)[np.argmax(proba, axis=1)].astype(str)
        return decision, np.asarray(1.0 - proba[:, classes.index(normal)] if normal in classes else proba.max(axis=1))


class MeanRegressor(Model):
    """The trivial baseline for regression: always the training mean (or the last known value, for forecasts)."""

    kind = "mean"
    tasks = ("rul", "soft_sensor", "forecast")
    defaults: ClassVar[dict[str, Any]] = {}

    def _fit(self, X: np.ndarray, y: np.ndarray | None, groups: np.ndarray | None) -> None:
        self.n_features_ = X.shape[1]
        self.mean_ = float(np.mean(need_target(y, X, self.kind).astype(float)))

    def _predict(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        return np.full(len(X), self.mean_)


class MajorityClassifier(Model):
    """The trivial baseline for fault diagnosis: always the most frequent class."""

    kind = "majority"
    tasks = ("fault",)
    defaults: ClassVar[dict[str, Any]] = {"normal_class": "normal"}

    def _fit(self, X: np.ndarray, y: np.ndarray | None, groups: np.ndarray | None) -> None:
        self.n_features_ = X.shape[1]
        values, counts = np.unique(need_target(y, X, self.kind).astype(str), return_counts=True)
        self.class_ = str(values[int(np.argmax(counts))])

    def _predict(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        return np.full(len(X), self.class_, dtype=object).astype(str)

    def _score(self, X: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
        return np.full(len(X), 0.0 if self.class_ == self.params["normal_class"] else 1.0)


KINDS: dict[str, type[Model]] = {
    c.kind: c
    for c in (
        PCAMonitor,
        IsolationForestDetector,
        ZScoreLimits,
        ECODDetector,
        HalfSpaceTreesDetector,
        MatrixProfileDetector,
        StreamingZScore,
        LightGBMRegressor,
        LightGBMClassifier,
        MeanRegressor,
        MajorityClassifier,
    )
}
BASELINES: dict[str, str] = {
    "anomaly": "zscore",
    "fault": "majority",
    "rul": "mean",
    "soft_sensor": "mean",
    "forecast": "mean",
}


def _register_torch() -> None:
    """The optional PyTorch network (`pip install torch==2.13.0`): registered only when torch imports."""
    try:
        from taehwa.lab.torch_models import MLPRegressor  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return
    KINDS[MLPRegressor.kind] = MLPRegressor


_register_torch()


def build(kind: str, params: dict[str, Any] | None = None, *, task: str | None = None) -> Model:
    """A model of `kind` built from its recorded parameters (checked against the task it is meant for)."""
    cls = KINDS.get(kind)
    if cls is None:
        raise InvalidInput(f"unknown model kind {kind!r}; known: {', '.join(sorted(KINDS))}", where="model.kind")
    if task is not None and task not in cls.tasks:
        raise InvalidInput(
            f"model {kind!r} does not do task {task!r} (it does {', '.join(cls.tasks)})", where="model.kind"
        )
    return cls(**(params or {}))


ModelFactory = Callable[[], Model]
