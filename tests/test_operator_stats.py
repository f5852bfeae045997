"""The operators' metrics through Airflow's own StatsD client: real ``Stats``, configured by
Airflow's ``[metrics]`` settings as the task runner configures it, sending to a UDP socket
here; the packets carry what the cut and the reconstruction computed."""

from __future__ import annotations

import inspect
import os
import socket
from collections.abc import Iterator
from unittest import mock

import pytest
from helpers import random_ansatz
from qiskit import qasm3

from hybrid_provider.core.cut.job import WrittenJob
from hybrid_provider.core.execute.batch import run_batch
from hybrid_provider.core.execute.options import ExecutionOptions
from hybrid_provider.core.manifest import load_manifest
from hybrid_provider.operators._stats import report_cut
from hybrid_provider.operators.cut import CutCircuitOperator
from hybrid_provider.operators.reconstruct import CupyReconstructOperator

pytest.importorskip(
    "statsd", reason="Airflow's StatsD client: pip install 'apache-airflow[statsd]'"
)

CONTEXT = {"run_id": "manual__stats"}


def _initialize_stats() -> None:
    """What the task runner does before a task starts: Stats from the [metrics] settings
    (Task SDK 1.2, Airflow 3.2, passes the Stats class to the factory; later releases do not)."""
    from airflow.sdk.observability.metrics import stats_utils
    from airflow.sdk.observability.stats import Stats

    if "stats_cls" in inspect.signature(stats_utils.get_stats_factory).parameters:
        Stats.initialize(factory=stats_utils.get_stats_factory(Stats))
    else:
        Stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)


@pytest.fixture
def statsd_packets() -> Iterator[socket.socket]:
    """A UDP socket that Airflow's StatsD client sends to; Stats is reset afterwards."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    settings = {
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(receiver.getsockname()[1]),
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
    }
    try:
        with mock.patch.dict(os.environ, settings):
            _initialize_stats()
            yield receiver
    finally:
        _initialize_stats()  # [metrics] as it was: StatsD off
        receiver.close()


def _received(receiver: socket.socket) -> dict[str, tuple[float, str]]:
    """Every StatsD line sent so far: name -> (value, type)."""
    lines: dict[str, tuple[float, str]] = {}
    receiver.settimeout(0.5)
    try:
        while True:
            for line in receiver.recv(65535).decode().splitlines():
                name, _, rest = line.partition(":")
                value, kind = rest.split("|")[:2]
                lines[name] = (float(value), kind)
    except TimeoutError:
        return lines


def test_the_cut_and_reconstruct_tasks_send_their_metrics_to_statsd(tmp_path, statsd_packets):
    circuit = random_ansatz(4, reps=1)
    cut = CutCircuitOperator(
        task_id="cut",
        circuit=qasm3.dumps(circuit),
        observables=["ZZZZ", "XXII"],
        partition_labels="AABB",
        num_batches=2,
        job_name="stats/run-1",
        store_uri=str(tmp_path),
    ).execute(CONTEXT)
    manifest = load_manifest(cut["manifest_uri"])
    options = ExecutionOptions(mode="shots", shots=256)
    for batch in manifest.batches:
        run_batch(cut["manifest_uri"], batch.index, options)
    result = CupyReconstructOperator(
        task_id="reconstruct", manifest_uri=cut["manifest_uri"], device="cpu"
    ).execute(CONTEXT)

    sent = _received(statsd_packets)
    prefix = "airflow.hybrid_quantum"
    assert sent[f"{prefix}.cut.subexperiments"] == (manifest.num_subexperiments, "g")
    assert sent[f"{prefix}.cut.batches"] == (2, "g")
    assert sent[f"{prefix}.cut.sampling_overhead"][0] == pytest.approx(
        manifest.plan.sampling_overhead
    )
    assert sent[f"{prefix}.cut.duration"] == (
        pytest.approx(manifest.cut_seconds * 1000, abs=1e-3),
        "ms",
    )
    assert sent[f"{prefix}.reconstruct.duration"] == (
        pytest.approx(result["seconds"] * 1000, abs=1e-3),
        "ms",
    )
    largest = max(result["std_errors"])
    assert largest > 0  # shot mode: real error bars
    assert sent[f"{prefix}.result.max_standard_error"][0] == pytest.approx(largest)


def test_a_retried_cut_that_reuses_its_job_does_not_time_the_cut_again(tmp_path, statsd_packets):
    operator = CutCircuitOperator(
        task_id="cut",
        circuit=qasm3.dumps(random_ansatz(4, reps=1)),
        observables=["ZZZZ"],
        partition_labels="AABB",
        job_name="stats/run-2",
        store_uri=str(tmp_path),
    )
    cut = operator.execute(CONTEXT)
    assert "airflow.hybrid_quantum.cut.duration" in _received(statsd_packets)
    # what the cut reports when a retry finds the job already written
    report_cut(operator, WrittenJob(cut["manifest_uri"], load_manifest(cut["manifest_uri"]), True))
    again = _received(statsd_packets)
    assert "airflow.hybrid_quantum.cut.duration" not in again
    assert "airflow.hybrid_quantum.cut.subexperiments" in again
