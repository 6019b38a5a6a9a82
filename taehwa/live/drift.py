"""Drift (드리프트): does a deployed model see the data it was validated on? Its recent live inputs and scores are
compared with the samples kept from its training data, by the population stability index (PSI, over ten bins at the
reference's deciles) and the two-sample Kolmogorov–Smirnov test. PSI ≥ 0.25 on any input or on the score is drift
(the usual rule: < 0.1 stable, 0.1–0.25 watch); it raises an alert, cleared when the data comes back."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from taehwa.core.errors import NotFound
from taehwa.core.timeutil import from_us
from taehwa.live.records import DriftReport, SeriesDrift

if TYPE_CHECKING:
    from taehwa.live.alerts import AlertBook
    from taehwa.live.deployments import DeploymentStore
    from taehwa.live.scoring import Running, Scorer
    from taehwa.tenancy.tenants import TenantService

PSI_DRIFT, PSI_WATCH = 0.25, 0.10
MIN_ROWS = 200  # live rows needed before drift is judged


def psi(reference: np.ndarray, live: np.ndarray, bins: int = 10) -> float:
    """Population stability index of `live` against `reference`, bins at the reference's quantiles."""
    ref = reference[np.isfinite(reference)]
    cur = live[np.isfinite(live)]
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1))[1:-1])
    p = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1) / len(ref)
    q = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1) / len(cur)
    p, q = np.clip(p, 1e-4, None), np.clip(q, 1e-4, None)
    return float(np.sum((q - p) * np.log(q / p)))


def compare(name: str, reference: np.ndarray, live: np.ndarray) -> SeriesDrift:
    """PSI and KS of one series, with its verdict."""
    value = psi(reference, live)
    from scipy import stats  # a second to import: paid at the first drift check, not by every CLI command

    ks = stats.ks_2samp(reference, live[np.isfinite(live)]) if len(reference) and np.isfinite(live).any() else None
    status = (
        "unknown"
        if not np.isfinite(value)
        else "drift"
        if value >= PSI_DRIFT
        else "watch"
        if value >= PSI_WATCH
        else "stable"
    )
    return {
        "name": name,
        "psi": round(value, 4) if np.isfinite(value) else None,
        "ks": round(float(ks.statistic), 4) if ks is not None else None,
        "p_value": float(ks.pvalue) if ks is not None else None,
        "reference_mean": float(np.mean(reference)) if len(reference) else None,
        "live_mean": float(np.nanmean(live)) if np.isfinite(live).any() else None,
        "status": status,
    }


class DriftMonitor:
    """Drift reports per deployment, and the alerts they raise."""

    def __init__(
        self, *, tenants: TenantService, deployments: DeploymentStore, scorer: Scorer, alerts: AlertBook
    ) -> None:
        """Tenancy, the deployments and the scorer (whose running deployments it judges), the alert book."""
        self.tenants, self.deployments, self.scorer, self.alerts = tenants, deployments, scorer, alerts
        self.last: dict[tuple[str, str], DriftReport] = {}

    def report(self, tenant: str, name: str) -> DriftReport:
        """The drift of a running deployment now."""
        self.tenants.require(tenant)
        self.deployments.get(tenant, name)
        run = self.scorer.running(tenant, name)
        if run is None:
            raise NotFound(f"deployment {name!r} is not running (paused, or no asset to score)", where="deployment")
        return self._report(run)

    def _report(self, run: Running) -> DriftReport:
        ref = getattr(run.pipe, "reference", None)
        checked_at = from_us(time.time_ns() // 1000).isoformat()
        inputs: list[SeriesDrift] = []
        output: SeriesDrift | None = None
        if not ref:
            drifted, status = (
                False,
                "no reference: the model was trained before drift samples were kept; train it again",
            )
        elif len(run.recent_score) < MIN_ROWS:
            drifted, status = False, f"waiting for {MIN_ROWS} live rows"
        else:
            live = np.array(list(run.recent_in), dtype=float)
            inputs = [
                compare(col, np.asarray(ref["inputs"][col], float), live[:, j])
                for j, col in enumerate(run.columns)
                if col in ref["inputs"]
            ]
            output = compare("score", np.asarray(ref["score"], float), np.array(list(run.recent_score), dtype=float))
            drifted = any(x["status"] == "drift" for x in [*inputs, output])
            status = "drift" if drifted else "stable"
        return {
            "deployment": run.dep.name,
            "model": run.info,
            "live_rows": len(run.recent_score),
            "checked_at": checked_at,
            "thresholds": {"psi_drift": PSI_DRIFT, "psi_watch": PSI_WATCH},
            "drifted": drifted,
            "status": status,
            "inputs": inputs,
            "output": output,
        }

    def check_all(self) -> None:
        """Judge every running deployment; raise or clear its drift alert."""
        book = self.alerts
        for (tenant, name), run in list(self.scorer.runs().items()):
            rep = self._report(run)
            self.last[(tenant, name)] = rep
            if not rep["inputs"] and rep["output"] is None:
                continue
            rule = f"drift/{name}"[:63]
            asset = run.dep.target.get("asset") or run.dep.target.get("under")
            output = rep["output"]
            if rep["drifted"] and output is not None:  # drifted: judged on inputs and output both
                worst = max([*rep["inputs"], output], key=lambda x: x["psi"] or 0)
                book.raise_alert(
                    tenant,
                    rule=rule,
                    asset=asset,
                    tag=None,
                    severity="warning",
                    message=f"{name}: live data drifted from the validation data ({worst['name']} PSI {worst['psi']})",
                    value=worst["psi"],
                    chain={
                        "rule": {"kind": "drift", "psi_drift": PSI_DRIFT},
                        "deployment": name,
                        "message": {
                            "key": "drift",
                            "params": {"deployment": name, "input": worst["name"], "psi": worst["psi"]},
                        },
                        "model": run.info,
                        "report": rep,
                    },
                )
            else:
                open_ = book.open_alert(tenant, rule, asset, None)
                if open_ is not None:
                    book.clear(tenant, open_.id, "the live data is back within the validation data's range")
