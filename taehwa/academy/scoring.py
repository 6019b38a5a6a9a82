"""Scores of one submission's predictions on the hidden labels, part by part, with the lab's own metrics (the same
figures a lab run reports), and the one number each board ranks by."""

from __future__ import annotations

from typing import Any

import pandas as pd

from taehwa.lab import metrics as M
from taehwa.lab.datasets import TARGET
from taehwa.lab.validation import task_metrics


def primary_metric(task: str) -> str:
    return M.PRIMARY[task]


def score(
    task: str, labels: pd.DataFrame, predictions: pd.Series, normal_class: str = "normal"
) -> dict[str, dict[str, Any]]:
    """{part: metrics} for the validation and test parts. `labels` has row, part, scored, time, unit, target
    (and changepoint for anomalies); `predictions` is indexed by row."""
    out: dict[str, dict[str, Any]] = {}
    for part in ("validation", "test"):
        rows = labels[(labels["part"] == part) & labels["scored"]].copy()
        if not len(rows):
            continue
        pred = predictions.loc[rows["row"].to_numpy()].to_numpy()
        rows["pred"] = pred
        rows["fold"] = 0
        if task == "anomaly":
            rows["score"] = pred.astype(float)
        elif task == "fault":
            rows[TARGET] = rows[TARGET].astype(str)
            rows["score"] = (pred.astype(str) != normal_class).astype(float)
        rows = rows.sort_values(["unit", "time"], kind="stable")
        figures = task_metrics(task, rows, normal_class)
        figures.pop("confusion", None)
        out[part] = M.json_safe(figures)
    return out
