"""No connection value or store credential ever leaves the place it was put.

A marker secret is planted where secrets live: the ``hybrid_quantum`` connection's password
and extras, a ``kubernetes`` connection, other ``AIRFLOW_CONN_*`` variables and the store's
credentials (``HYBRID_QUANTUM_STORE_*``). The example DAG then runs on the local backend, and
the marker must appear in no task log, XCom, rendered template field, file under the store
(job, results, report, run logs), generated Argo Workflow, validation error, or in the local
runner's environment.
"""

from __future__ import annotations

import json
import os
import traceback
from pathlib import Path

import pendulum
import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException

from hybrid_provider.backends.local import backend as local_backend
from hybrid_provider.backends.local.environment import runner_environment
from hybrid_provider.backends.spec import BatchTask, WorkflowSpec
from hybrid_provider.core.errors import InputError
from hybrid_provider.core.execute.options import ExecutionOptions
from hybrid_provider.hooks.hybrid_quantum import HybridQuantumHook
from hybrid_provider.operators.submit import ArgoSubmitOperator

ROOT = Path(__file__).resolve().parents[1]
MARKER = "hq-planted-secret-7f3a9c"


def connection(extra: dict, **fields) -> str:
    return json.dumps({"conn_type": "hybrid_quantum", "extra": extra, **fields})


def test_the_runner_keeps_only_what_running_batches_needs():
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/home/airflow",
        "LC_ALL": "C.UTF-8",
        "PYTHONPATH": "/opt/dags",
        "CUDA_VISIBLE_DEVICES": "0",
        "OMP_NUM_THREADS": "2",
        "QISKIT_PARALLEL": "FALSE",
        "HYBRID_QUANTUM_AER_THREADS": "1",
        "AIRFLOW_CONN_HYBRID_QUANTUM_DEFAULT": MARKER,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": MARKER,
        "AIRFLOW__CORE__FERNET_KEY": MARKER,
        "HYBRID_QUANTUM_STORE_secret": MARKER,
        "AWS_SECRET_ACCESS_KEY": MARKER,
        "KUBECONFIG": MARKER,
    }
    kept = runner_environment(environ)
    assert kept == {name: value for name, value in environ.items() if value != MARKER}


@pytest.mark.parametrize(
    "extra, fields",
    [
        ({"tokn": MARKER}, ["tokn: not a known field"]),
        ({"retry_limit": MARKER}, ["retry_limit: Input should be a valid integer"]),
        ({"local_queues": {"cpu": [MARKER]}, "tokn": MARKER}, ["local_queues.cpu", "tokn"]),
    ],
)
def test_connection_validation_errors_name_the_field_never_the_value(monkeypatch, extra, fields):
    extra = {"backend": "kubernetes", "namespace": "ns", **extra}
    monkeypatch.setenv("AIRFLOW_CONN_HQ_BAD", connection(extra))
    with pytest.raises(InputError) as raised:
        HybridQuantumHook("hq_bad").get_backend()
    shown = "".join(traceback.format_exception(raised.value))  # what a task log prints
    assert MARKER not in shown
    assert all(field in str(raised.value) for field in fields), str(raised.value)
    assert "docs/kubernetes.md" in str(raised.value)


def test_a_bad_resource_count_is_named_when_the_workflow_is_compiled(monkeypatch):
    extra = {"backend": "kubernetes", "namespace": "ns", "resources": {"qpu": {"qpu": MARKER}}}
    monkeypatch.setenv("AIRFLOW_CONN_HQ_BAD", connection(extra))
    batch = BatchTask(index=0, flavor="qpu", num_subexperiments=1)
    spec = WorkflowSpec(
        name="w",
        manifest_uri="file:///m",
        job_name="j",
        execution=ExecutionOptions(),
        batches=[batch],
    )
    with pytest.raises(InputError, match="resources.qpu.qpu") as raised:
        HybridQuantumHook("hq_bad").get_backend().compile(spec)
    assert MARKER not in "".join(traceback.format_exception(raised.value))


def test_a_bad_connection_fails_the_task_without_its_values(monkeypatch, tmp_path):
    extra = {"backend": "kubernetes", "namespace": "ns", "api_token": MARKER}
    monkeypatch.setenv("AIRFLOW_CONN_HQ_BAD", connection(extra, password=MARKER))
    submit = ArgoSubmitOperator(
        task_id="submit", manifest_uri=str(tmp_path / "manifest.json"), hybrid_conn_id="hq_bad"
    )
    with pytest.raises(AirflowFailException) as raised:
        submit.execute({"run_id": "manual__1"})
    assert "api_token" in str(raised.value)
    assert MARKER not in "".join(traceback.format_exception(raised.value))
    monkeypatch.setenv("AIRFLOW_CONN_HQ_BAD", connection({"backend": MARKER}))
    with pytest.raises(InputError) as unknown:
        HybridQuantumHook("hq_bad").get_backend()
    assert MARKER not in "".join(traceback.format_exception(unknown.value))


@pytest.fixture
def planted(monkeypatch, tmp_path):
    """The marker in every place a secret lives; the store in ``tmp_path / "store"``."""
    store = tmp_path / "store"
    # a field of the kubernetes backend, which the local one ignores (an unknown one is refused)
    extra = {"backend": "local", "store_uri": str(store), "image": MARKER}
    monkeypatch.setenv(
        "AIRFLOW_CONN_HYBRID_QUANTUM_DEFAULT", connection(extra, login="quantum", password=MARKER)
    )
    kubernetes = {"conn_type": "kubernetes", "password": MARKER, "extra": {"token": MARKER}}
    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", json.dumps(kubernetes))
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", f"postgres://etl:{MARKER}@db:5432/warehouse")
    monkeypatch.setenv("HYBRID_QUANTUM_STORE_secret", MARKER)
    monkeypatch.setenv("HYBRID_QUANTUM_STORE_key", MARKER)
    # The results Asset keeps the session's store: an Asset renamed to another URI is
    # inactive once an earlier run registered it, and the run would fail for that alone.
    return store


def runner_environments(monkeypatch) -> list[bytes]:
    """Every local runner's ``/proc/<pid>/environ``, read the moment it has started."""
    seen: list[bytes] = []
    launch = local_backend.LocalBackend._launch

    def launch_and_look(self, run_dir):
        status = launch(self, run_dir)
        pid = (run_dir / local_backend.PID_FILE).read_text().strip()
        seen.append(Path(f"/proc/{pid}/environ").read_bytes())
        return status

    monkeypatch.setattr(local_backend.LocalBackend, "_launch", launch_and_look)
    return seen


def stored_values(dag_id: str, run_id: str) -> tuple[list[str], list[str]]:
    """The run's XCom values and rendered template fields, as the metadata database holds them."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        xcoms = session.scalars(
            select(XComModel.value).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id)
        ).all()
        rendered = session.scalars(
            select(RenderedTaskInstanceFields.rendered_fields).where(
                RenderedTaskInstanceFields.dag_id == dag_id,
                RenderedTaskInstanceFields.run_id == run_id,
            )
        ).all()
    return [json.dumps(value, default=str) for value in xcoms], [
        json.dumps(fields, default=str) for fields in rendered
    ]


def files_holding(folder: Path, text: str) -> list[Path]:
    encoded = text.encode()
    return [path for path in folder.rglob("*") if path.is_file() and encoded in path.read_bytes()]


def argo_workflow_yaml(spec: WorkflowSpec, monkeypatch) -> str:
    """The Argo Workflow the kubernetes backend would create for the same run, from a
    ``hybrid_quantum`` connection with the marker in its password."""
    extra = {
        "backend": "kubernetes",
        "kubernetes_conn_id": "kubernetes_default",
        "namespace": "quantum",
        "store_uri": "s3://bucket/hybrid-quantum",
    }
    monkeypatch.setenv("AIRFLOW_CONN_HQ_CLUSTER", connection(extra, password=MARKER))
    return yaml.safe_dump(HybridQuantumHook("hq_cluster").get_backend().compile(spec))


@pytest.mark.slow
def test_no_secret_in_logs_xcoms_templates_store_report_workflow_or_runner(
    airflow_db, planted, monkeypatch, capfd
):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.state import DagRunState

    environments = runner_environments(monkeypatch)
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["nightly_circuit_cutting"]
    run = dag.test(logical_date=pendulum.datetime(2026, 12, 1, tz="UTC"))
    assert run.state == DagRunState.SUCCESS
    logs = capfd.readouterr()
    log_files = files_holding(Path(os.environ["AIRFLOW_HOME"]) / "logs", MARKER)

    xcoms, rendered = stored_values(dag.dag_id, run.run_id)
    (spec_file,) = (planted / "_runs").glob("*/spec.json")
    spec = WorkflowSpec.model_validate_json(spec_file.read_text())
    workflow = argo_workflow_yaml(spec, monkeypatch)

    # Each place was looked at with something in it, so no check passes vacuously.
    assert "Reconstructed 4 observable(s)" in logs.out + logs.err
    assert xcoms and rendered and any("AAAAAABBBBBB" in fields for fields in rendered)
    published = Path(
        run.get_task_instance("publish").xcom_pull(task_ids="publish").removeprefix("file://")
    )
    assert published.read_text().count("\n") == 5  # the header and four observables
    assert list(planted.rglob("report.html")) and list(planted.rglob("runner.log"))
    assert "secretRef" in workflow  # the store's credentials, by the Secret's name
    assert environments and all(b"PATH=" in environ for environ in environments)

    assert MARKER not in logs.out + logs.err and not log_files
    assert not [value for value in xcoms + rendered if MARKER in value]
    assert not files_holding(planted, MARKER) and MARKER not in published.read_text()
    assert MARKER not in workflow
    leaking = sum(MARKER.encode() in environ for environ in environments)
    assert not leaking, f"{leaking} runner(s) started with the marker in their environment"
