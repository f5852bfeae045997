"""The example DAG and the provider, in real Airflow (SQLite metadata DB, dag.test())."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pendulum
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_example_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    dag = dagbag.dags["nightly_circuit_cutting"]
    assert set(dag.task_ids) == {
        "prepare_inputs",
        "cut",
        "submit",
        "wait",
        "reconstruct",
        "publish",
    }
    assert dag.catchup is False
    assert dag.default_args["retries"] >= 1
    assert dag.get_task("wait").deferrable  # never reschedule mode: apache/airflow#71172
    downstream = dag.get_task("submit").downstream_task_ids
    assert downstream == {"wait"}


def test_provider_info_names_every_component():
    from hybrid_provider.get_provider_info import get_provider_info

    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-hybrid-quantum"
    modules = [
        m
        for section in ("operators", "sensors", "hooks")
        for e in info[section]
        for m in e["python-modules"]
    ]
    for module in modules:
        __import__(module)
    assert info["connection-types"][0]["connection-type"] == "hybrid_quantum"


def test_only_a_nights_run_publishes_under_its_date():
    """An ad-hoc run used to overwrite the scheduled run's file of its date; one without a
    logical date wrote ``None.csv``."""
    import importlib.util

    from airflow.sdk.api.datamodels._generated import DagRunType
    from airflow.sdk.exceptions import AirflowFailException

    spec = importlib.util.spec_from_file_location(
        "nightly_results_naming", ROOT / "dags" / "nightly_circuit_cutting.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results_uri, folder = module.results_uri, module.RESULTS_FOLDER
    cases = [
        (DagRunType.SCHEDULED, "2026-11-20", "scheduled__2026-11-20T00:00:00+00:00", "2026-11-20.csv"),
        (DagRunType.BACKFILL, "2026-11-19", "backfill__2026-11-19T00:00:00+00:00", "2026-11-19.csv"),
        (DagRunType.MANUAL, "2026-11-20", "manual__2026-11-20T08:15:00+00:00",
         "adhoc/manual__2026-11-20T08_15_00_00_00.csv"),
        (DagRunType.MANUAL, None, "manual__2026-11-20T08:15:00.123+00:00",
         "adhoc/manual__2026-11-20T08_15_00.123_00_00.csv"),
        (DagRunType.ASSET_TRIGGERED, "2026-11-20", "my run", "adhoc/my_run.csv"),
        (None, "2026-11-20", "outside-airflow", "adhoc/outside-airflow.csv"),
    ]  # fmt: skip
    for run_type, ds, run_id, name in cases:
        assert results_uri(run_type, ds, run_id) == f"{folder}/{name}", (run_type, ds, run_id)
    with pytest.raises(AirflowFailException, match="no logical date"):
        results_uri(DagRunType.SCHEDULED, None, "scheduled__x")


@pytest.mark.slow
def test_airflow_providers_list_shows_the_provider(airflow_db):
    listed = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "list"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=True,
    )
    assert "airflow-provider-hybrid-quantum" in listed.stdout


@pytest.mark.slow
def test_nightly_dag_end_to_end_matches_the_exact_values(airflow_db, dagbag):
    from airflow.utils.state import DagRunState

    from hybrid_provider.core.manifest import load_manifest
    from hybrid_provider.hooks.hybrid_quantum import default_store_uri
    from hybrid_provider.operators._common import safe_path

    dag = dagbag.dags["nightly_circuit_cutting"]
    run = dag.test(logical_date=pendulum.datetime(2026, 11, 20, tz="UTC"))
    assert run.state == DagRunState.SUCCESS
    published = run.get_task_instance("publish").xcom_pull(task_ids="publish")
    folder = default_store_uri().removeprefix("file://") + "/nightly-results"
    # dag.test() makes a manual run: it must not take the scheduled run's 2026-11-20.csv
    assert published == f"file://{folder}/adhoc/{safe_path(run.run_id)}.csv"
    (event,) = asset_events(run.run_id)
    assert event == {"results_uri": published, "logical_date": "2026-11-20"}
    with open(published.removeprefix("file://"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["observable"] for row in rows] == [
        "ZZZZZZZZZZZZ",
        "XXXXXXXXXXXX",
        "IIIIIZZIIIII",
        "IIIIIIIIIIZZ",
    ]
    values = np.array([float(row["value"]) for row in rows])
    exact = np.array([float(row["exact"]) for row in rows])
    np.testing.assert_allclose(values, exact, rtol=0, atol=1e-8)
    reconstruct = run.get_task_instance("reconstruct")
    assert reconstruct.xcom_pull(task_ids="reconstruct", key="mode") == "exact"
    manifest_uri = reconstruct.xcom_pull(task_ids="reconstruct", key="manifest_uri")
    origin = load_manifest(manifest_uri).provenance.origin
    assert (origin.dag_id, origin.run_id, origin.task_id) == (dag.dag_id, run.run_id, "cut")


def asset_events(run_id: str) -> list[dict]:
    """The extras of the Asset events a run emitted, from the metadata database."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(
            session.scalars(select(AssetEvent.extra).where(AssetEvent.source_run_id == run_id))
        )
