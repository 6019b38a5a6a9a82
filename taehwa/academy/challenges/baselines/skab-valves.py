"""Taehwa's baseline for skab-valves: SKAB's own protocol. Each run starts in normal operation, so the detector
learns every run's normal state from that run's first 400 rows (smoothed over 20 s): PCA with the T² and Q
statistics, a limit at 5 × the 99th percentile, alarms held for 30 s. The labelled training runs are not needed."""

import numpy as np
import pandas as pd

from taehwa.lab.models import PCAMonitor


class Model:
    def fit(self, X: pd.DataFrame, y: pd.Series) -> None:
        self.signals = [c for c in X.columns if c not in ("time", "unit")]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        out = np.zeros(len(X), dtype=int)
        for _, idx in X.groupby("unit", sort=False).indices.items():
            block = X.iloc[idx].sort_values("time")
            smooth = block[self.signals].rolling(20, min_periods=1).mean().to_numpy(float)
            model = PCAMonitor(explained_variance=0.85, statistic="combined", quantile=0.99, limit_factor=5.0).fit(
                smooth[:400]
            )
            flags = pd.Series(model.predict(smooth)).rolling(30, min_periods=1).max().to_numpy().astype(int)
            out[X.index.get_indexer(block.index)] = flags
        return out
