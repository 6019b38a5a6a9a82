"""Predictions for skab-valves made on your own machine: `python predict_skab.py INPUTS.parquet preds.csv`.

Reads the challenge's public inputs (`taehwa academy data skab-valves inputs`), flags rows whose smoothed signals
leave their run's first rows by more than six standard deviations, writes `row,prediction`."""

import sys

import numpy as np
import pandas as pd

inputs = pd.read_parquet(sys.argv[1])
signals = [c for c in inputs.columns if c not in ("row", "time", "unit")]
pred = np.zeros(len(inputs), dtype=int)
for _, idx in inputs.groupby("unit", sort=False).indices.items():
    block = inputs.iloc[idx].sort_values("time")
    values = block[signals].rolling(20, min_periods=1).mean().to_numpy(float)
    normal = values[:400]
    z = np.abs((values - normal.mean(axis=0)) / (normal.std(axis=0) + 1e-9)).max(axis=1)
    pred[inputs.index.get_indexer(block.index)] = (z > 6).astype(int)
pd.DataFrame({"row": inputs["row"], "prediction": pred}).to_csv(sys.argv[2], index=False)
print(f"wrote {len(inputs)} predictions to {sys.argv[2]}")
