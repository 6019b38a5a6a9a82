"""Where fanned-out jobs run: one rule (`taehwa.lab.fanout.choose_backend`) over one setting (`ray_address`, read
from TAEHWA_RAY_ADDRESS by Settings and nowhere else), and no environment written by importing the lab; where the
data sets lie is a setting too (TAEHWA_SHARED_DATA)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from taehwa.core.errors import InvalidInput
from taehwa.core.settings import Settings, default_shared_data, load_settings
from taehwa.lab import fanout


def test_the_caller_then_the_cluster_then_the_size_decide(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAEHWA_RAY_ADDRESS", raising=False)
    here = Settings(data_dir=tmp_path)
    cluster = Settings(data_dir=tmp_path, ray_address="ray://head:10001")
    assert (here.fan_out, cluster.fan_out) == ("pool", "ray")
    assert fanout.choose_backend(settings=here) == "pool"
    assert fanout.choose_backend(settings=here, small=True) == "serial"
    assert fanout.choose_backend(settings=cluster) == fanout.choose_backend(settings=cluster, small=True) == "ray"
    for asked in fanout.BACKENDS:  # what the caller asks for wins over the settings
        assert fanout.choose_backend(asked, settings=cluster) == asked
    with pytest.raises(InvalidInput, match="backend is one of") as info:
        fanout.choose_backend("dask", settings=here)
    assert info.value.where == "backend"
    # without settings given, the process's own: the environment, read by Settings
    assert fanout.choose_backend() == fanout.default_backend() == "pool"
    assert fanout.default_backend(ray=True) == "ray"
    monkeypatch.setenv("TAEHWA_RAY_ADDRESS", "ray://head:10001")
    assert load_settings().ray_address == "ray://head:10001"
    assert fanout.choose_backend() == fanout.default_backend() == "ray"


def test_the_shared_data_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TAEHWA_SHARED_DATA is read by Settings like every other setting; unset, the data beside the checkout."""
    monkeypatch.delenv("TAEHWA_SHARED_DATA", raising=False)
    beside = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    assert default_shared_data() == default_shared_data(Settings(data_dir=tmp_path)) == beside
    assert default_shared_data(Settings(data_dir=tmp_path, shared_data=tmp_path)) == tmp_path
    monkeypatch.setenv("TAEHWA_SHARED_DATA", str(tmp_path / "sets"))
    assert load_settings().shared_data == default_shared_data() == tmp_path / "sets"


def test_importing_the_tracker_writes_no_environment() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")}
    code = (
        "import os, taehwa.lab.tracking, taehwa.lab.service; "
        "print(sorted(k for k in ('MLFLOW_DISABLE_TELEMETRY', 'DO_NOT_TRACK') if k in os.environ))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_the_tracker_switches_telemetry_off_when_it_opens_mlflow() -> None:
    # MLflow keeps quiet by itself under pytest or CI (it looks for their variables): hide the usual two from it
    hidden = ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "CI", "PYTEST_CURRENT_TEST")
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    code = (
        "import mlflow; from taehwa.lab import tracking; from mlflow.telemetry import utils; "
        "from mlflow.telemetry.client import get_telemetry_client; "
        "before = get_telemetry_client() is not None or utils._IS_IN_CI_ENV_OR_TESTING; "
        "tracking._no_telemetry(); print(before, get_telemetry_client())"
    )  # as Tracker.client does first
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True None"  # on when mlflow was imported first; off once the tracker opens it
