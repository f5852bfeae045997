"""Test setup: an isolated AIRFLOW_HOME (SQLite) before anything imports Airflow, and circuits."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_HOME = tempfile.mkdtemp(prefix="hq-airflow-home-")
os.environ["AIRFLOW_HOME"] = AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """A migrated SQLite metadata database in the session's AIRFLOW_HOME."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    return AIRFLOW_HOME


@pytest.fixture(autouse=True)
def trigger_fires_at_once(monkeypatch):
    """In process (dag.test(), the trigger tests) no scheduler can race the trigger, so it may
    fire at once; `airflow standalone` runs keep the real hold (triggers/kueue_wait.py)."""
    from hybrid_provider.triggers import kueue_wait

    monkeypatch.setattr(kueue_wait, "MIN_EVENT_AGE_SECONDS", 0.0)
