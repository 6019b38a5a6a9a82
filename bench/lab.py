"""The lab benchmark: SKAB, C-MAPSS FD001–FD004 and Tennessee Eastman by their published protocols, in one run.

Each figure is printed beside the published baselines (from the data sets' READMEs); for TEP the PCA-T² baseline is
computed in the same run. `--quick` runs C-MAPSS FD001 only. The last line is
{"bench": "lab", "figures": {...}}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taehwa.demo import default_shared_data
from taehwa.lab import benchmarks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="C-MAPSS FD001 only")
    args = ap.parse_args()
    shared = default_shared_data()
    t0 = time.perf_counter()
    figures: dict[str, float] = {}
    skab = benchmarks.skab(shared)
    print(f"SKAB   F1 {skab['skab_f1']:.3f} (best published 0.78, Conv-AE/MSET; PCA T²+Q 0.76)  "
          f"NAB standard {skab['skab_nab_standard']:.2f} (best published 32.42, MSCRED)  "
          f"FAR {skab['skab_far_pct']}%  MAR {skab['skab_mar_pct']}%", flush=True)
    figures.update({k: v for k, v in skab.items() if k != "skab_files"})
    subsets = ("FD001",) if args.quick else ("FD001", "FD002", "FD003", "FD004")
    cm = benchmarks.cmapss(shared, subsets=subsets)
    for sub in subsets:
        pub = benchmarks.PUBLISHED["cmapss"]["rmse"][sub]
        key = f"cmapss_{sub.lower()}"
        print(f"C-MAPSS {sub} RMSE {cm[key + '_rmse']:.2f} PHM08 {cm[key + '_phm08']:.0f} (truth clipped at 125, as "
              f"published: " + ", ".join(f"{k} {v}" for k, v in pub.items()) + ")"
              f"; against the unclipped truth RMSE {cm[key + '_rmse_raw']:.2f} PHM08 {cm[key + '_phm08_raw']:.0f}",
              flush=True)
    figures.update(cm)
    tep = benchmarks.tep(shared)
    print(f"TEP    mean FDR {tep['tep_mean_fdr']:.3f} vs PCA-T² {tep['tep_pca_t2_mean_fdr']:.3f} "
          f"(ratio {tep['tep_mean_fdr'] / tep['tep_pca_t2_mean_fdr']:.2f}) at FAR {tep['tep_far']:.3f}", flush=True)
    figures.update({k: v for k, v in tep.items() if not k.endswith("by_fault")})
    figures["train_seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps({"bench": "lab", "quick": args.quick, "figures": figures}))


if __name__ == "__main__":
    main()
