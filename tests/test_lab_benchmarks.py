"""The real benchmarks on the data sets in ../shared/data, by their published protocols (the fast two; C-MAPSS,
which trains gradient boosting on four fleets, runs in bench/lab.py)."""

from __future__ import annotations

from taehwa.demo import default_shared_data
from taehwa.lab import benchmarks


def test_skab_beats_its_leaderboard() -> None:
    figures = benchmarks.run("skab", default_shared_data())["figures"]
    assert figures["skab_files"] == 34
    assert figures["skab_f1"] >= 0.78  # Conv-AE and MSET, the best published
    assert figures["skab_nab_standard"] >= 32.42  # MSCRED, the best published


def test_tep_beats_pca_t2_at_the_same_false_alarm_rate() -> None:
    figures = benchmarks.run("tep", default_shared_data())["figures"]
    assert figures["tep_far"] <= 0.05 and figures["tep_pca_t2_far"] <= 0.05
    assert figures["tep_mean_fdr"] > figures["tep_pca_t2_mean_fdr"] + 0.1
    assert len(figures["tep_fdr_by_fault"]) == 21


def test_cmapss_reads_the_published_split() -> None:
    train = benchmarks.read_cmapss(default_shared_data() / "cmapss" / "train_FD001.txt.gz")
    assert len(train) == 20_631 and train["unit"].nunique() == 100


def test_cmapss_fd001_meets_its_target_by_the_published_protocol() -> None:
    r = benchmarks.cmapss_subset(default_shared_data(), "FD001")
    assert r["rmse"] <= 13.0  # the target; the best published deep model reaches 10.97
    # scoring against the unclipped truth is reported beside and is never the easier figure
    assert r["rmse_raw"] >= r["rmse"] and r["phm08_raw"] >= r["phm08"]
