"""The real benchmarks on the data sets in ../shared/data under the honest protocol of issue 22 (settings chosen on
training data only, limits from normal training data, data-blind baselines in the same run), in reduced form: fewer
SKAB splits, one C-MAPSS seed on FD001, fewer TEP candidates. bench/lab.py runs the full protocol."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from taehwa.core.settings import default_shared_data
from taehwa.lab import benchmarks


@pytest.fixture(scope="module")
def skab() -> dict[str, Any]:
    """SKAB, unsupervised PCA T²+Q only, on 6 random splits of held-out runs."""
    return benchmarks.skab(default_shared_data(), splits=6, supervised=False, tuned=("pca",))


def test_skab_held_out_runs_beat_the_data_blind_baselines(skab: dict[str, Any]) -> None:
    """Settings chosen on the training runs; the held-out runs' F1 beats always-on (about 0.70 here: most scored
    rows are anomalous) and never-on, with fewer false alarms than a coin."""
    f = skab
    assert f["skab_runs"] == 34 and f["skab_splits"] == 6
    assert f["skab_always_on_f1"] == pytest.approx(0.705, abs=0.01)
    assert f["skab_never_on_f1"] == 0.0 and f["skab_never_on_nab"] == 0.0
    assert f["skab_pca_f1"] >= f["skab_always_on_f1"] + 0.05
    assert f["skab_pca_f1"] >= 0.75  # 0.79-0.82 measured; the old 0.807 was tuned on the scored runs
    assert f["skab_pca_f1_sd"] > 0  # a spread over splits, not one figure
    assert f["skab_pca_far_pct"] < 50.0
    # the same detector at a false-alarm target chosen on the training runs trades F1 for fewer false alarms
    assert f["skab_pca_far20_far_pct"] < f["skab_pca_far_pct"] and f["skab_pca_far20_f1"] > f["skab_always_on_f1"]


def test_skab_nab_names_what_a_clock_scores(skab: dict[str, Any]) -> None:
    """A data-blind clock that comes on every 60 s: by SKAB's scorer (60 s windows right of each changepoint) it
    beats the model, so that figure is reported as not informative; by the published NAB score it scores about 0
    and the model beats it."""
    f = skab
    assert f["skab_clock_nab_paper"] < 5.0
    assert f["skab_pca_nab_paper"] > f["skab_clock_nab_paper"] + 5.0
    assert f["skab_clock_nab"] > f["skab_pca_nab"]
    assert "nab" in f["skab_pca_not_informative"] and "nab_paper" not in f["skab_pca_not_informative"]
    assert f["skab_clock_nab_both_edges"] > 55.0  # the artefact of issue 22 (64.9 with the old re-firing)


def test_skab_supervised_path_on_one_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """The supervised model (LightGBM on the training runs' labels, threshold and hold from out-of-fold
    predictions), with few trees to stay quick: it still beats always-on on held-out runs."""
    monkeypatch.setitem(benchmarks.SKAB_LGBM, "n_estimators", 40)
    f = benchmarks.skab(default_shared_data(), splits=1, supervised=True, tuned=())
    assert f["skab_lgbm_f1"] > f["skab_always_on_f1"]
    assert set(f["skab_chosen_settings"]["lgbm"]) == {"threshold", "quiet_s"}


def test_tep_limit_margin_follows_the_statistics_autocorrelation() -> None:
    """One standard error of the false-alarm rate on d00's effectively independent samples: white noise keeps all
    500 (the 96th percentile); an AR(1) with ρ = 0.9 keeps about 26 (a limit near the top); a slower one none."""
    rng = np.random.default_rng(0)
    white = rng.standard_normal(500)
    assert benchmarks._tep_neff(white) == pytest.approx(500, rel=0.15)
    assert benchmarks._tep_limit_q(white) == pytest.approx(benchmarks.TEP_LIMIT_Q, abs=0.003)
    ar = np.zeros(500)
    for i in range(1, 500):
        ar[i] = 0.9 * ar[i - 1] + rng.standard_normal()
    assert 10 < benchmarks._tep_neff(ar) < 45
    q = benchmarks._tep_limit_q(ar)
    assert q is not None and q > 0.985
    slow = np.cumsum(rng.standard_normal(500))  # a random walk: nothing to set a 5 % limit on
    assert benchmarks._tep_limit_q(slow) is None


def test_tep_limits_from_training_hold_on_unseen_normal_samples() -> None:
    """Limits from d00.dat only, at the 5 % target less one s.e. on the statistic's effectively independent samples;
    false alarms counted on the 4,320 unseen normal test samples and on the long normal run d00_te alone (48 h) can
    exceed 5 % (they are not the limit's own rows), and here do not; ours ahead of PCA-T²+Q and DPCA in the same run;
    EWMA too slow for d00's 500 samples is not a candidate."""
    assert abs(benchmarks.TEP_LIMIT_Q - 0.9597) < 1e-4
    cands = [
        c
        for c in benchmarks.TEP_CANDIDATES
        if c["explained_variance"] == 0.9 and c["lags"] == 0 and c["alpha"] in (1.0, 0.5, 0.2, 0.1, 0.03)
    ]
    f = benchmarks.tep(default_shared_data(), candidates=cands)
    for key in ("tep", "tep_pca_t2q", "tep_dpca_t2q"):
        assert f[f"{key}_far"] <= 0.05 and f[f"{key}_far_d00_te"] <= 0.05
        assert benchmarks.TEP_LIMIT_Q <= f[f"{key}_limit_q"] < 1.0
        assert len(f[f"{key}_fdr_by_fault"]) == 21
    assert f["tep_chosen"]["alpha"] > 0.1 and {c["alpha"] for c in f["tep_not_eligible"]} == {0.1, 0.03}
    assert f["tep_mean_fdr"] > max(f["tep_pca_t2q_mean_fdr"], f["tep_dpca_t2q_mean_fdr"]) + 0.02
    assert f["tep_mean_fdr_18"] >= f["tep_mean_fdr"]  # faults 3, 9, 15 are near chance for every monitor
    assert f["tep_median_delay_min"] > 0


def test_cmapss_reads_the_published_split() -> None:
    """FD001's training file as NASA ships it."""
    train = benchmarks.read_cmapss(default_shared_data() / "cmapss" / "train_FD001.txt.gz")
    assert len(train) == 20_631 and train["unit"].nunique() == 100


def test_cmapss_fd001_settings_from_validation_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    """One seed: settings from a validation fifth of the training engines; clipped and unclipped truth beside (one
    model instead of the bench's mean of three, to stay quick)."""
    monkeypatch.setattr(benchmarks, "CMAPSS_BAG", 1)
    monkeypatch.setitem(benchmarks.CMAPSS_GRID, "num_leaves", (15,))  # the windows still chosen on validation
    monkeypatch.setattr(benchmarks, "CMAPSS_MAX_TREES", 200)
    r = benchmarks.cmapss_subset(default_shared_data(), "FD001", seeds=(0,))
    assert r["rmse"] <= 12.5  # the goal is 11.5
    assert tuple(r["per_seed"][0]["windows"]) in benchmarks.CMAPSS_GRID["windows"]
    assert r["rmse"] < r["ridge_rmse"] < r["constant_rmse"]  # the same run's baselines, same features
    # scoring against the unclipped truth is reported beside and is never the easier figure
    assert r["rmse_raw"] >= r["rmse"] and r["phm08_raw"] >= r["phm08"]
