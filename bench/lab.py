"""The lab benchmark under the honest protocol of issue 22: SKAB, Tennessee Eastman and C-MAPSS in one run.

Every figure is printed with its convention, beside the baselines computed in the same run (data-blind always-on,
never-on and a 60 s clock for SKAB; PCA-T²+Q and dynamic PCA for TEP) and a ratio to the best of them, and beside
the published figures (from the data sets' READMEs) where they compare like for like. Settings are chosen on
training data only; the scored part is touched once. `--quick` runs C-MAPSS FD001 only, `--subsets` the ones named
(the default runs all four); `--only` runs one benchmark.
The last line is {"bench": "lab", "figures": {...}}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taehwa.core.settings import default_shared_data
from taehwa.lab import benchmarks
from taehwa.lab.metrics import json_safe

GOALS = {
    "skab_f1": 0.82,
    "skab_nab": 35.0,
    "skab_far_pct": 20.0,
    "tep_mean_fdr": 0.85,
    "tep_far": 0.05,
    "tep_far_long_run": 0.05,
    "cmapss_fd001_rmse": 11.5,
    "cmapss_fd002_rmse": 12.5,
    "cmapss_fd003_rmse": 11.5,
    "cmapss_fd004_rmse": 13.5,
}


def _pm(f: dict[str, Any], key: str, nd: int = 3) -> str:
    """'mean ± sd' of a figure and its _sd partner."""
    return f"{f[key]:.{nd}f} ± {f.get(key + '_sd', 0.0):.{nd}f}"


def _ratio(a: float, b: float) -> str:
    """a / b, or 'n/a' when b is not positive (a ratio to a figure ≤ 0 says nothing)."""
    return f"{a / b:.2f}" if b > 0 else "n/a"


def print_skab(f: dict[str, Any]) -> None:
    """SKAB's figures, model by model, with the data-blind baselines of the same splits."""
    print(f"SKAB   {f['skab_protocol']}", flush=True)
    for k, v in f["skab_conventions"].items():
        print(f"       convention {k}: {v}")
    names = {
        "pca": "PCA T²+Q (unsupervised; smoothing, limit factor, quiet period, on-delay chosen on the training runs)",
        "pca_far20": "PCA T²+Q at a false-alarm target (best training F1 among settings with training FAR ≤ 20 %)",
        "mp": "matrix profile (STUMPY, 10 s windows against the run's first 400 rows; the same settings chosen on "
        "the training runs)",
        "lgbm": "LightGBM on per-run standardised features (supervised by the training runs' labels; "
        "not comparable to SKAB's unsupervised leaderboard)",
        "ecod_default": "ECOD at the lab's defaults (nothing chosen on labels; alarm calibrated on each run's "
        "first 400 rows to 1 false alarm a week)",
        "pca_default": "PCA T²+Q at the lab's defaults (the same calibration)",
        "always_on": "always-on (data-blind)",
        "never_on": "never-on (data-blind)",
        "clock": "60 s clock, 30 s on (data-blind)",
    }
    for name, label in names.items():
        if f"skab_{name}_f1" not in f:
            continue
        print(
            f"  {label}\n     F1 {_pm(f, f'skab_{name}_f1')}  FAR {_pm(f, f'skab_{name}_far_pct', 1)} %  "
            f"MAR {_pm(f, f'skab_{name}_mar_pct', 1)} %  NAB (SKAB's scorer, on-edges) "
            f"{_pm(f, f'skab_{name}_nab', 1)}  NAB (on+off edges) {_pm(f, f'skab_{name}_nab_both_edges', 1)}  "
            f"NAB (published score, Lavin & Ahmad) {_pm(f, f'skab_{name}_nab_paper', 1)}",
            flush=True,
        )
    for name in benchmarks.SKAB_MODELS:
        if f"skab_{name}_f1" not in f:
            continue
        best = {k: max(f[f"skab_{b}_{k}"] for b in benchmarks.SKAB_BLIND) for k in benchmarks.SKAB_HIGHER_IS_BETTER}
        print(
            f"  {name}: ratio to the best data-blind baseline: "
            + ", ".join(f"{k} {_ratio(f[f'skab_{name}_{k}'], v)}" for k, v in best.items())
            + f"; not informative here (a data-blind detector scores as well): "
            f"{', '.join(f[f'skab_{name}_not_informative']) or 'none'}"
        )
    print(f"  settings chosen per split: {f['skab_chosen_settings']}")
    print(
        "  published (SKAB leaderboard, unsupervised, scored on every run, settings not stated): F1 Conv-AE/MSET "
        "0.78, T²+Q 0.76; NAB MSCRED 32.42, T²+Q 25.35 (on+off edges per SKAB's notebooks)",
        flush=True,
    )


def print_tep(f: dict[str, Any]) -> None:
    """TEP: ours, PCA-T²+Q and DPCA, limits from d00 only, on unseen test samples."""
    print(f"TEP    {f['tep_protocol']}", flush=True)
    print(f"       ours chosen on training runs only: {f['tep_chosen']}")
    print(
        f"       not candidates (too slow a statistic for d00's 500 samples to set a 5 % limit on): "
        f"{len(f['tep_not_eligible'])} of them, e.g. {f['tep_not_eligible'][:2]}"
    )
    for key, label in (
        ("tep", "ours (PCA/DPCA + EWMA, chosen on d01..d21.dat)"),
        ("tep_pca_t2q", "PCA T²+Q"),
        ("tep_dpca_t2q", "dynamic PCA (2 lags) T²+Q"),
    ):
        if key + "_far" not in f:
            continue
        for sfx, rule in (
            ("", f"limit at d00's out-of-fold {100 * f[key + '_limit_q']:.2f}th percentile (5 % less one s.e.)"),
            ("_p99", "limit at the 99th percentile"),
        ):
            k = key + sfx
            print(
                f"  {label}, {rule}: FAR {f[k + '_far']:.4f} (d00_te alone {f[k + '_far_d00_te']:.4f}, "
                f"{f[k + '_excursions_d00_te']:.0f} excursions over the limit in its 48 h)  mean detection rate, "
                f"21 faults {f[k + '_mean_fdr']:.3f}, 18 faults without 3/9/15 {f[k + '_mean_fdr_18']:.3f}  "
                f"median delay {f[k + '_median_delay_min']:.0f} min",
                flush=True,
            )
    best = max(f["tep_pca_t2q_mean_fdr"], f["tep_dpca_t2q_mean_fdr"])
    best18 = max(f["tep_pca_t2q_mean_fdr_18"], f["tep_dpca_t2q_mean_fdr_18"])
    print(
        f"  ratio to the better baseline: 21 faults {_ratio(f['tep_mean_fdr'], best)}, "
        f"18 faults {_ratio(f['tep_mean_fdr_18'], best18)}"
    )
    print(f"  ours by fault: {f['tep_fdr_by_fault']}")
    print(f"  ours delay (min) by fault: {f['tep_delay_min_by_fault']}", flush=True)


def print_cmapss(f: dict[str, Any], subsets: tuple[str, ...]) -> None:
    """C-MAPSS: clipped and unclipped RMSE side by side, mean ± sd over seeds."""
    print(f"C-MAPSS {f['cmapss_protocol']}; {f['cmapss_seeds']} seeds", flush=True)
    for k, v in f["cmapss_conventions"].items():
        print(f"       convention {k}: {v}")
    for sub in subsets:
        key = f"cmapss_{sub.lower()}"
        pub = benchmarks.PUBLISHED["cmapss"]["rmse"][sub]
        print(
            f"  {sub} RMSE clipped at 125 (FFVE/RVE convention) {_pm(f, key + '_rmse', 2)}  PHM08 "
            f"{_pm(f, key + '_phm08', 0)}  |  unclipped RMSE {_pm(f, key + '_rmse_raw', 2)}  PHM08 "
            f"{_pm(f, key + '_phm08_raw', 0)}  |  published (clipped): "
            + ", ".join(f"{k} {v}" for k, v in pub.items())
            + f"  |  chosen {f[key + '_chosen']}",
            flush=True,
        )
        print(
            f"        baselines of this run, clipped / unclipped RMSE: mean training RUL "
            f"{f[key + '_constant_rmse']:.2f} / {f[key + '_constant_rmse_raw']:.2f}, ridge on the 5-60-cycle "
            f"window features "
            f"{f[key + '_ridge_rmse']:.2f} / {f[key + '_ridge_rmse_raw']:.2f}; ratio ours/ridge (clipped) "
            f"{_ratio(f[key + '_rmse'], f[key + '_ridge_rmse'])}",
            flush=True,
        )


def goals(figures: dict[str, Any]) -> dict[str, Any]:
    """Each goal of issue 22 against the figure measured here, with the model and convention it is read for.

    SKAB's goals are read for the unsupervised PCA and for the supervised LightGBM (labels of the training runs
    only): the goal text does not restrict supervision, the leaderboard's methods have no labels, so both are
    printed. A goal whose metric a data-blind baseline of the same run beats is marked not informative and counts
    neither way (issue 22: "the gate does not count it"). TEP's detection goal is read over the 18 faults PCA-type
    monitors can see (without 3, 9, 15: Chiang, Russell & Braatz 2001) with the 21-fault figure and its ceiling
    beside: while 3, 9 and 15 stay at the false-alarm rate, no monitor's 21-fault mean exceeds (18 + 3·FAR) / 21."""
    f = figures
    rows: list[tuple[str, str, float, str]] = [
        ("skab_f1", "skab_pca_f1", GOALS["skab_f1"], "PCA T²+Q, unsupervised"),
        ("skab_far_pct", "skab_pca_far_pct", GOALS["skab_far_pct"], "PCA T²+Q, unsupervised"),
        ("skab_nab", "skab_pca_nab", GOALS["skab_nab"], "PCA T²+Q, SKAB's scorer on on-edges"),
        ("skab_f1_supervised", "skab_lgbm_f1", GOALS["skab_f1"], "LightGBM, supervised by the training runs"),
        ("skab_far_pct_supervised", "skab_lgbm_far_pct", GOALS["skab_far_pct"], "LightGBM, supervised"),
        ("skab_nab_supervised", "skab_lgbm_nab", GOALS["skab_nab"], "LightGBM, SKAB's scorer on on-edges"),
        ("tep_mean_fdr_18", "tep_mean_fdr_18", GOALS["tep_mean_fdr"], "18 observable faults (without 3, 9, 15)"),
        ("tep_mean_fdr", "tep_mean_fdr", GOALS["tep_mean_fdr"], "all 21 faults"),
        ("tep_far", "tep_far", GOALS["tep_far"], "4,320 unseen normal test samples"),
        ("tep_far_long_run", "tep_far_d00_te", GOALS["tep_far_long_run"], "d00_te alone, 48 h of normal running"),
    ]
    rows += [(k, k, g, "test RUL clipped at 125 (FFVE/RVE)") for k, g in GOALS.items() if k.startswith("cmapss")]
    out: dict[str, Any] = {}
    for name, key, goal, convention in rows:
        v = f.get(key)
        if v is None:
            continue
        low = name.endswith(("_rmse", "_pct", "_pct_supervised", "tep_far", "far_long_run"))
        row: dict[str, Any] = {"goal": goal, "measured": v, "met": bool(v <= goal if low else v >= goal)}
        row["convention"] = convention
        model = key.split("_")[1] if key.startswith("skab_") else ""
        metric = key.rsplit("_", 1)[-1] if key.startswith("skab_") else ""
        if model and metric in f.get(f"skab_{model}_not_informative", []):
            row["met"] = None
            row["convention"] += "; not informative: a data-blind baseline of the same run scores higher"
        if name == "tep_mean_fdr" and f.get("tep_far") is not None:
            row["ceiling"] = round((18 + 3 * float(f["tep_far"])) / 21, 4)
            row["convention"] += f"; ceiling {row['ceiling']} while faults 3, 9, 15 stay at the false-alarm rate"
        out[name] = row
    return out


def main() -> None:
    """Run the three benchmarks, print them with their baselines, and a JSON line last."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="C-MAPSS FD001 only")
    ap.add_argument("--splits", type=int, default=benchmarks.SKAB_SPLITS, help="SKAB random splits (≥ 20)")
    ap.add_argument("--seeds", type=int, default=len(benchmarks.CMAPSS_SEEDS), help="C-MAPSS seeds")
    ap.add_argument("--only", choices=("skab", "tep", "cmapss"), action="append", help="run only these")
    ap.add_argument(
        "--subsets", nargs="+", choices=("FD001", "FD002", "FD003", "FD004"), help="C-MAPSS subsets (default: all)"
    )
    args = ap.parse_args()
    shared = default_shared_data()
    only = set(args.only or ("skab", "tep", "cmapss"))
    t0 = time.perf_counter()
    figures: dict[str, Any] = {}
    if "skab" in only:
        skab = benchmarks.skab(shared, splits=args.splits)
        print_skab(skab)
        figures.update(skab)
    if "tep" in only:
        tep = benchmarks.tep(shared)
        print_tep(tep)
        figures.update(tep)
    if "cmapss" in only:
        subsets = tuple(args.subsets or (("FD001",) if args.quick else ("FD001", "FD002", "FD003", "FD004")))
        cm = benchmarks.cmapss(shared, subsets=subsets, seeds=tuple(range(args.seeds)))
        print_cmapss(cm, subsets)
        figures.update(cm)
    figures["goals"] = goals(figures)
    figures["train_seconds"] = round(time.perf_counter() - t0, 1)
    for k, v in figures["goals"].items():
        said = "not counted" if v["met"] is None else "met" if v["met"] else "NOT met"
        print(f"goal {k}: {said} (goal {v['goal']}, measured {v['measured']}; {v['convention']})")
    print(json.dumps({"bench": "lab", "quick": args.quick, "figures": json_safe(figures)}))


if __name__ == "__main__":
    main()
