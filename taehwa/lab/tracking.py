"""Experiment tracking in MLflow, with its store in the data directory: a SQLite file and an artifact folder, no
server, and no usage reporting (MLflow's telemetry is switched off when the tracker first opens it, not at import)."""

from __future__ import annotations

import logging
import os
import threading
import warnings
from pathlib import Path
from typing import Any

_lock = threading.Lock()


def _no_telemetry() -> None:
    """Switch MLflow's usage reporting off (sovereign: nothing leaves the machine). MLflow reads the switch from the
    environment when it is imported, so it is set just before the first import, and MLflow is told again if
    something imported it earlier."""
    import sys

    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["DO_NOT_TRACK"] = "true"
    if "mlflow.telemetry.client" in sys.modules:
        from mlflow.telemetry.client import set_telemetry_client

        set_telemetry_client()  # re-reads the switch: no client when off


def _flat(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = str(value)[:500]


class Tracker:
    """One MLflow store per platform, one experiment per tenant."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._client: Any = None

    def client(self) -> Any:
        with _lock:
            if self._client is None:
                self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    logging.getLogger("mlflow").setLevel(logging.WARNING)
                    logging.getLogger("alembic").setLevel(logging.WARNING)
                    _no_telemetry()
                    from mlflow.tracking import MlflowClient

                    self._client = MlflowClient(tracking_uri=f"sqlite:///{self.root / 'mlflow.db'}")
            return self._client

    def _experiment(self, tenant: str) -> str:
        c = self.client()
        name = f"tenant/{tenant}"
        exp = c.get_experiment_by_name(name)
        if exp is not None:
            return str(exp.experiment_id)
        return str(c.create_experiment(name, artifact_location=(self.root / "artifacts" / tenant).as_uri()))

    def log_run(
        self,
        tenant: str,
        name: str,
        *,
        params: dict[str, Any],
        metrics: dict[str, float],
        tags: dict[str, str],
        artifacts: list[Path],
    ) -> str:
        """Record one lab run; returns MLflow's run id."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c = self.client()
            run = c.create_run(self._experiment(tenant), run_name=name, tags=tags)
            rid = run.info.run_id
            flat: dict[str, str] = {}
            _flat("", params, flat)
            for key, text in list(flat.items())[:200]:
                c.log_param(rid, key[:250], text)
            for key, value in metrics.items():
                c.log_metric(rid, key[:250], float(value))
            for path in artifacts:
                c.log_artifact(rid, str(path))
            c.set_terminated(rid)
        return str(rid)
