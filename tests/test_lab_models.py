"""One contract suite over every model kind: rebuilt from its parameters it gives the same answers, it refuses
unknown parameters and unfitted use, and it actually learns (beats chance on data made to be learnable)."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest

from taehwa.core.errors import InvalidInput
from taehwa.lab.features import WindowFeatures
from taehwa.lab.models import KINDS, build

rng = np.random.default_rng(7)
X_NORMAL = rng.normal(size=(400, 4))
X_NORMAL[:, 1] = X_NORMAL[:, 0] * 0.9 + rng.normal(scale=0.2, size=400)  # correlated, as process signals are
X_FAULT = X_NORMAL[:100].copy()
X_FAULT[:, 1] = -X_FAULT[:, 0] * 2  # breaks the correlation: a PCA residual (SPE) sees it
X_FAULT[:, 3] += 5.0  # and a shift far outside normal, which any detector must see
Y_REG = X_NORMAL @ np.array([2.0, -1.0, 0.5, 0.0]) + 10
Y_CLS = np.where(X_NORMAL[:, 2] > 0.3, "fault-a", "normal")


def _fit(kind: str) -> tuple[Any, np.ndarray]:
    model = build(kind)
    if "anomaly" in model.tasks:
        return model.fit(X_NORMAL), X_NORMAL
    y = Y_CLS if "fault" in model.tasks else Y_REG
    return model.fit(X_NORMAL, y), X_NORMAL


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_rebuilt_from_its_parameters_gives_the_same_answers(kind: str) -> None:
    model, X = _fit(kind)
    twin = build(kind, model.get_params())
    if "anomaly" in twin.tasks:
        twin.fit(X)
    else:
        twin.fit(X, Y_CLS if "fault" in twin.tasks else Y_REG)
    np.testing.assert_array_equal(model.predict(X), twin.predict(X))
    np.testing.assert_allclose(model.score(X), twin.score(X))
    # and a saved model answers as the original
    np.testing.assert_allclose(pickle.loads(pickle.dumps(model)).score(X), model.score(X))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_refuses_unknown_parameters_unfitted_use_and_wrong_width(kind: str) -> None:
    with pytest.raises(InvalidInput, match="no parameter 'bogus'"):
        build(kind, {"bogus": 1})
    with pytest.raises(InvalidInput, match="not fitted"):
        build(kind).predict(X_NORMAL)
    model, _ = _fit(kind)
    with pytest.raises(InvalidInput, match="fitted on 4 features"):
        model.predict(X_NORMAL[:, :3])
    with pytest.raises(InvalidInput, match="2-D"):
        build(kind).fit(np.zeros(10))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_decide_is_predict_and_score_in_one_pass(kind: str) -> None:
    model, X = _fit(kind)
    decision, score = model.decide(X[:50])
    np.testing.assert_array_equal(decision, model.predict(X[:50]))
    np.testing.assert_allclose(score, model.score(X[:50]))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_outputs_have_one_value_per_row(kind: str) -> None:
    model, X = _fit(kind)
    assert model.predict(X[:17]).shape == (17,)
    assert model.score(X[:17]).shape == (17,)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_memory_rows_are_all_the_history_a_score_needs(kind: str) -> None:
    """What live scoring gives as history: with the `memory_rows()` rows before it, a row scores as it does after
    the whole past (None: every earlier row counts), here and with the parameters that give a model memory."""
    model, X = _fit(kind)
    rows = np.vstack([X_FAULT[:30], X[:30]])  # a fault first, so a model with memory remembers something
    memory = model.memory_rows()
    full = model.score(rows)[-1]
    if memory is not None:
        np.testing.assert_allclose(model.score(rows[len(rows) - memory - 1 :])[-1], full)
    for params in ({"lags": 3}, {"alpha": 0.3}, {"window": 5}, {"adapt": False}):
        if set(params) <= set(model.get_params()) and "anomaly" in model.tasks:
            m = build(kind, params).fit(X)
            k = m.memory_rows()
            if k is not None:
                np.testing.assert_allclose(m.score(rows[len(rows) - k - 1 :])[-1], m.score(rows)[-1])


@pytest.mark.parametrize("kind", [k for k, c in KINDS.items() if "anomaly" in c.tasks and k != "zscore"])
def test_detectors_flag_faults_and_few_normal_rows(kind: str) -> None:
    model = build(kind).fit(X_NORMAL)
    fresh = rng.normal(size=(400, 4))
    fresh[:, 1] = fresh[:, 0] * 0.9 + rng.normal(scale=0.2, size=400)
    assert model.predict(fresh).mean() < 0.06
    # PCA sees every faulty row; Isolation Forest, whose scores saturate, a good share (as on SKAB, where its
    # published F1 is 0.29)
    assert model.predict(X_FAULT).mean() > (0.9 if kind == "pca" else 0.3)


def test_regressors_and_classifiers_learn() -> None:
    lgbm = build("lgbm_regressor", {"n_estimators": 200, "learning_rate": 0.1}).fit(X_NORMAL, Y_REG)
    mean = build("mean").fit(X_NORMAL, Y_REG)

    def err(m: Any) -> float:
        return float(np.sqrt(np.mean((m.predict(X_NORMAL) - Y_REG) ** 2)))

    assert err(lgbm) < 0.5 * err(mean)
    clf = build("lgbm_classifier").fit(X_NORMAL, Y_CLS)
    assert (clf.predict(X_NORMAL) == Y_CLS).mean() > 0.95
    faulty = Y_CLS != "normal"
    assert clf.score(X_NORMAL)[faulty].mean() > clf.score(X_NORMAL)[~faulty].mean()


def test_model_must_fit_its_task_and_kind_must_exist() -> None:
    with pytest.raises(InvalidInput, match="does not do task 'rul'"):
        build("pca", task="rul")
    with pytest.raises(InvalidInput, match="unknown model kind"):
        build("deep-magic")
    with pytest.raises(InvalidInput, match="learns from labels"):
        build("lgbm_regressor").fit(X_NORMAL)
    with pytest.raises(InvalidInput, match="two classes"):
        build("lgbm_classifier").fit(X_NORMAL, np.full(len(X_NORMAL), "normal"))


def test_dynamic_pca_lags_and_smoothing_restart_per_unit() -> None:
    model = build("pca", {"lags": 2, "alpha": 0.2}).fit(X_NORMAL)
    groups = np.repeat(["a", "b"], 50)
    both = model.score(X_NORMAL[:100], groups)
    alone = model.score(X_NORMAL[50:100])
    np.testing.assert_allclose(both[50:], alone)  # unit b's score never sees unit a's rows


def test_window_features_are_causal() -> None:

    frame = pd.DataFrame({"unit": ["a"] * 50, "x": rng.normal(size=50)})
    wf = WindowFeatures(windows=(5, 10), stats=("mean", "std", "slope", "ewm"), lags=(1,), spectrum_bands=2)
    full = wf.transform(frame, ["x"], "unit")
    prefix = wf.transform(frame.iloc[:30], ["x"], "unit")
    np.testing.assert_allclose(full.iloc[:30].to_numpy(), prefix.to_numpy())
    with pytest.raises(InvalidInput, match="unknown feature statistic"):
        WindowFeatures(stats=("median-ish",))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_window_features_match_pandas_rolling_per_unit(seed: int) -> None:
    """The vectorised statistics equal pandas' group-by rolling, with gaps (NaN), units of one row, units given
    interleaved, and values far from zero (the sums are centred per unit)."""
    rng = np.random.default_rng(seed)
    n = 400
    units = rng.choice(["a", "b", "c", "d"], size=n, p=[0.5, 0.3, 0.19, 0.01])
    frame = pd.DataFrame({"unit": units, "x": 1e6 + rng.standard_normal(n), "y": rng.standard_normal(n) * 50})
    frame.loc[rng.random(n) < 0.1, "x"] = np.nan
    wf = WindowFeatures(windows=(1, 3, 7), stats=("mean", "std", "min", "max"), lags=(2,), include_raw=False)
    got = wf.transform(frame, ["x", "y"], "unit")
    g = frame.groupby("unit", sort=False)
    for s in ("x", "y"):
        expect_lag = g[s].shift(2).fillna(0.0)
        np.testing.assert_allclose(got[f"{s}__lag2"], expect_lag, rtol=1e-12)
        for w in (1, 3, 7):
            for stat in ("mean", "std", "min", "max"):
                expect = getattr(g[s].rolling(w, min_periods=1), stat)().reset_index(level=0, drop=True)
                expect = expect.reindex(frame.index).fillna(0.0)
                # atol: pandas' own running sums lose about 1e-12 of the values' magnitude (1e6 here)
                np.testing.assert_allclose(
                    got[f"{s}__{stat}{w}"], expect, rtol=1e-9, atol=1e-6, err_msg=f"{s} {stat}{w}"
                )


def test_ecod_scores_each_row_as_pyods_ecod_does() -> None:
    """Our ECOD scores a new row against the training distributions alone; PyOD's own `decision_function` on that
    single row gives the same figure (so batching cannot change a live score)."""
    from pyod.models.ecod import ECOD  # type: ignore[import-untyped]

    model = build("ecod").fit(X_NORMAL)
    reference = ECOD().fit(X_NORMAL)
    rows = np.vstack([X_NORMAL[:3], X_FAULT[:3]])
    ours = model._raw(rows, None)  # type: ignore[attr-defined]
    theirs = [reference.decision_function(rows[i : i + 1])[0] for i in range(len(rows))]
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)
    both = model.score(rows)
    np.testing.assert_allclose(model.score(rows[3:]), both[3:])  # a row's score does not depend on its batch


def test_half_space_trees_follow_slow_drift_but_not_a_jump() -> None:
    """river's Half-Space Trees go on learning rows they find normal: after a slow drift the adapting detector
    alarms on fewer drifted rows than the same trees frozen, and a sudden jump still scores over the limit."""
    drift = X_NORMAL[np.arange(1600) % 400] + np.linspace(0, 2.5, 1600)[:, None]
    adapting, frozen = build("hst").fit(X_NORMAL), build("hst", {"adapt": False}).fit(X_NORMAL)
    assert adapting.predict(drift)[-400:].mean() < frozen.predict(drift)[-400:].mean()
    jump = np.vstack([X_NORMAL[:300], X_NORMAL[:100] + 8.0])
    assert adapting.score(jump)[-50:].mean() > 1.0


def test_matrix_profile_is_the_nearest_normal_window_by_brute_force() -> None:
    """STUMPY's AB-join as the detector uses it: each row's raw distance equals the brute-force distance from the
    window ending at it to its nearest training window (standardised values), and a row's score does not depend on
    the rows after it in the call (live batches score as a backfill does)."""
    model = build("matrix_profile", {"window": 8}).fit(X_NORMAL)
    rows = np.vstack([X_NORMAL[:40], X_FAULT[:40]])
    got = model._profiles((rows - model.mean_) / model.std_)  # type: ignore[attr-defined]
    Z, ref = (rows - model.mean_) / model.std_, model.reference_  # type: ignore[attr-defined]
    windows = np.lib.stride_tricks.sliding_window_view(ref, 8, axis=0)  # (n windows, signals, 8)
    for i in (7, 39, 45, 79):
        q = Z[i - 7 : i + 1].T
        expect = np.sqrt(((windows - q[None]) ** 2).sum(axis=2).min(axis=0))
        np.testing.assert_allclose(got[i], expect, rtol=1e-6, atol=1e-6)
    # the training rows themselves are in the reference: distance 0 from the first full window on
    assert np.allclose(got[7:40], 0.0, atol=1e-6)
    np.testing.assert_allclose(model.score(rows[:50]), model.score(rows)[:50])
    assert model.predict(X_FAULT).mean() > 0.9


def test_streaming_zscore_follows_slow_drift_but_not_a_jump() -> None:
    """The streaming z-score goes on learning rows it finds normal: after a slow drift of 3σ the adapting detector
    alarms on fewer drifted rows than the same detector frozen, and a sudden jump still scores over the limit."""
    drift = X_NORMAL[np.arange(2000) % 400] + np.linspace(0, 6.0, 2000)[:, None]
    adapting = build("zscore_stream", {"halflife": 100}).fit(X_NORMAL)
    frozen = build("zscore_stream", {"halflife": 100, "adapt": False}).fit(X_NORMAL)
    assert adapting.predict(drift)[-400:].mean() < 0.1 < 0.9 < frozen.predict(drift)[-400:].mean()
    jump = np.vstack([X_NORMAL[:300], X_NORMAL[:100] + 8.0])
    assert adapting.predict(jump)[-100:].mean() > 0.9


def _daily(days: int, seed: int = 0) -> pd.DataFrame:
    """A signal with a daily cycle (±10 around 50), every 10 minutes, and a little noise."""
    n = days * 144
    t = pd.date_range("2026-03-01", periods=n, freq="10min", tz="UTC")
    phase = np.arange(n) % 144 / 144
    x = 50 + 10 * np.sin(2 * np.pi * phase) + np.random.default_rng(seed).normal(0, 0.5, n)
    return pd.DataFrame({"time": t, "x": x})


def test_a_seasonal_profile_learnt_on_training_days_finds_a_value_out_of_its_hour() -> None:
    """A value normal at the day's peak but not at its trough: the same detector misses it without the season and
    finds it with it, with few alarms on the normal days (the profile learnt from the training days only)."""
    from taehwa.lab.spec import FeatureSpec
    from taehwa.lab.validation import Pipeline

    frame = _daily(12)
    trough = (frame.index % 144 >= 100) & (frame.index % 144 < 116)  # around 3/4 of the day: x near 40
    odd = trough & (frame.index >= 11 * 144)
    frame.loc[odd, "x"] = 58.0  # inside the day's range (40-60), but not at this hour
    train = frame.index < 8 * 144
    scored = frame.index >= 8 * 144
    found = {}
    for season in (None, "1d"):
        spec = FeatureSpec(windows=[1], stats=["mean"], season=season, season_bins=48)
        pipe = Pipeline("anomaly", spec, "zscore", {"k": 4.0}, ["x"])
        pipe.fit(frame[train].reset_index(drop=True))
        _, score = pipe.predict(frame[scored].reset_index(drop=True))
        flags = score > 1.0
        found[season] = (flags[odd[scored]].mean(), flags[~odd[scored]].mean())
    assert found[None][0] == 0.0  # within the day's range: the plain z-score never sees it
    assert found["1d"][0] > 0.9 and found["1d"][1] < 0.02, found


def test_a_season_is_checked_and_needs_two_periods_of_training() -> None:
    from pydantic import ValidationError

    from taehwa.lab.spec import FeatureSpec
    from taehwa.lab.validation import Pipeline

    for bad in ("0s", "soon", "30s", "400d"):
        with pytest.raises(ValidationError, match=r"features\.season"):
            FeatureSpec(season=bad)
    pipe = Pipeline("anomaly", FeatureSpec(season="7d"), "zscore", {}, ["x"])
    with pytest.raises(InvalidInput, match="two periods") as err:
        pipe.fit(_daily(10))
    assert err.value.where == "features.season"
