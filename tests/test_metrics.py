"""The metrics exporter: what it serves over HTTP equals what the store's records say."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from helpers import random_ansatz, run_job
from prometheus_client import start_http_server
from prometheus_client.parser import text_string_to_metric_families
from qiskit.quantum_info import PauliList

from hybrid_provider import metrics
from hybrid_provider.backends.local.backend import LocalBackend
from hybrid_provider.backends.spec import compile_spec
from hybrid_provider.backends.status import (
    BatchStatus,
    Preemption,
    WorkflowPhase,
    WorkflowStatus,
)
from hybrid_provider.cli import main
from hybrid_provider.core import store
from hybrid_provider.core.cut.job import write_job
from hybrid_provider.core.cut.plan import plan_cuts
from hybrid_provider.core.execute.options import ExecutionOptions
from hybrid_provider.core.execute.record import read_record
from hybrid_provider.core.reconstruct.result import ReconstructionResult, write_result
from hybrid_provider.sensors.kueue_wait import write_timeline

TIMEOUT = 60


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample served at ``url``: (name, sorted labels) -> value."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def _serve(store_uri: str) -> str:
    server, _ = start_http_server(0, "127.0.0.1", metrics.registry(store_uri))
    return f"http://127.0.0.1:{server.server_port}/metrics"


@pytest.fixture
def shot_job(tmp_path, monkeypatch):
    """A job run batch by batch as pods run it (flavor from the pod's environment),
    reconstructed, with the reconstruction result the operator publishes."""
    monkeypatch.setenv("HYBRID_QUANTUM_FLAVOR", "cpu")
    options = ExecutionOptions(mode="shots", shots=64)
    job, result = run_job(
        random_ansatz(4, reps=1), ["ZZZZ"], tmp_path, options, partition_labels="AABB"
    )
    write_result(ReconstructionResult.of(job.manifest_uri, result))
    return job, result


def test_the_cli_serves_what_the_records_say(tmp_path, shot_job):
    job, result = shot_job
    records = [read_record(job.manifest_uri, b.index) for b in job.manifest.batches]
    server = subprocess.Popen(
        [sys.executable, "-c", "from hybrid_provider.cli import main; main()", "metrics"]
        + ["--store", str(tmp_path), "--port", "0", "--address", "127.0.0.1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()
        assert f"serving metrics of {tmp_path}" in line
        samples = _scrape(line.split(" on ")[1].strip())
    finally:
        server.terminate()
        server.wait(10)
    key = {"flavor": "cpu", "device": records[0].provenance.device, "mode": "shots"}
    assert _value(samples, "hybrid_quantum_batches_completed_total", **key) == len(records) == 3
    assert (
        _value(samples, "hybrid_quantum_subexperiments_total", **key)
        == job.manifest.num_subexperiments
    )
    assert _value(samples, "hybrid_quantum_shots_total", **key) == 64 * sum(
        r.num_subexperiments for r in records
    )
    assert _value(samples, "hybrid_quantum_batch_duration_seconds_count", **key) == 3
    assert _value(samples, "hybrid_quantum_batch_duration_seconds_sum", **key) == pytest.approx(
        sum(r.duration_s for r in records)
    )
    assert _value(
        samples, "hybrid_quantum_last_batch_finished_timestamp_seconds", flavor="cpu"
    ) == pytest.approx(max(r.finished_at for r in records).timestamp())
    assert _value(samples, "hybrid_quantum_jobs_total") == 1
    assert _value(samples, "hybrid_quantum_cut_duration_seconds_sum") == pytest.approx(
        job.manifest.cut_seconds
    )
    assert _value(samples, "hybrid_quantum_sampling_overhead_sum") == pytest.approx(
        job.manifest.plan.sampling_overhead
    )
    module = {"array_module": result.array_module}
    assert _value(
        samples, "hybrid_quantum_reconstruction_duration_seconds_sum", **module
    ) == pytest.approx(result.seconds)
    where = {"job_name": job.manifest.job_name, "observable": "ZZZZ"}
    assert _value(samples, "hybrid_quantum_result_value", **where) == result.values[0]
    assert (
        _value(samples, "hybrid_quantum_result_standard_error", **where) == (result.std_errors[0])
    )
    assert _value(samples, "hybrid_quantum_store_unreadable_files") == 0


def test_a_local_run_exports_its_batches_queue_and_quota(tmp_path):
    circuit = random_ansatz(6, reps=2)
    plan = plan_cuts(circuit, PauliList(["ZZZZZZ"]), partition_labels="AAABBB")
    job = write_job(circuit, plan, str(tmp_path), "job", num_batches=4)
    backend = LocalBackend(str(tmp_path), quota={"cpu": 1})
    spec = compile_spec(job.manifest, job.manifest_uri, "hq-metrics", ExecutionOptions())
    backend.submit(spec)
    deadline = time.monotonic() + TIMEOUT
    while not (status := backend.status("hq-metrics")).phase.finished:
        assert time.monotonic() < deadline, f"the run did not finish: {status}"
        time.sleep(0.05)
    assert status.phase == WorkflowPhase.SUCCEEDED

    samples = _scrape(_serve(str(tmp_path)))
    assert _value(samples, "hybrid_quantum_local_batches", flavor="cpu", state="succeeded") == 4
    assert _value(samples, "hybrid_quantum_local_batch_attempts_total", flavor="cpu") == 4
    assert _value(samples, "hybrid_quantum_local_batch_preemptions_total", flavor="cpu") == 0
    assert _value(samples, "hybrid_quantum_local_queue_quota", flavor="cpu") == 1
    assert (
        _value(samples, "hybrid_quantum_local_queue_workloads", flavor="cpu", admission="waiting")
        == 0
    )
    waits = [(b.started_at - b.pending_since).total_seconds() for b in status.batches]
    assert _value(
        samples, "hybrid_quantum_local_batch_queue_wait_seconds_sum", flavor="cpu"
    ) == pytest.approx(sum(waits))
    completed = [k for k in samples if k[0] == "hybrid_quantum_batches_completed_total"]
    assert [dict(k[1])["flavor"] for k in completed] == ["cpu"]  # the runner's flavor
    assert samples[completed[0]] == 4


def test_the_waits_timeline_gives_queue_wait_and_attempts_on_any_backend(tmp_path, shot_job):
    job, _ = shot_job
    queued = datetime(2026, 11, 27, 1, 0, tzinfo=timezone.utc)
    preempted = Preemption(at=queued + timedelta(seconds=5), message="preempted to fit a job")
    batches = [
        BatchStatus(index=0, flavor="gpu", pending_since=queued, started_at=queued, attempts=1),
        BatchStatus(
            index=1,
            flavor="gpu",
            pending_since=queued,
            started_at=queued + timedelta(seconds=10),
            attempts=2,
            preemptions=[preempted],
        ),
        BatchStatus(index=2, flavor="gpu", pending_since=queued),  # still queued: no wait yet
    ]
    status = WorkflowStatus(
        name="hq-k8s", backend="kubernetes", phase=WorkflowPhase.RUNNING, batches=batches
    )
    write_timeline(job.manifest_uri, status)

    samples = _scrape(_serve(str(tmp_path)))
    gpu = {"flavor": "gpu"}
    assert _value(samples, "hybrid_quantum_batch_attempts_total", **gpu) == 3
    assert _value(samples, "hybrid_quantum_batch_preemptions_total", **gpu) == 1
    assert _value(samples, "hybrid_quantum_batch_queue_wait_seconds_count", **gpu) == 2
    assert _value(samples, "hybrid_quantum_batch_queue_wait_seconds_sum", **gpu) == 0 + 10


def test_a_steady_store_is_listed_but_not_read_again(tmp_path, shot_job, monkeypatch):
    collector = metrics.StoreCollector(str(tmp_path))
    first, _ = collector.samples()
    reads: list[str] = []
    original = metrics.StoreCollector._read
    monkeypatch.setattr(
        metrics.StoreCollector,
        "_read",
        staticmethod(lambda reader, uri: reads.append(uri) or original(reader, uri)),
    )
    again, _ = collector.samples()
    assert reads == [] and again == first
    job, _ = shot_job
    manifest = json.loads(Path(job.manifest_uri.removeprefix("file://")).read_text())
    store.write_json_atomic(job.manifest_uri, {**manifest, "padding": 1})
    collector.samples()
    assert reads == [job.manifest_uri]  # only the changed file


def test_a_corrupt_record_is_counted_and_skipped(tmp_path, shot_job):
    job, _ = shot_job
    Path(job.manifest_uri.removeprefix("file://")).parent.joinpath(
        "results/batch-00001.json"
    ).write_text("{not json")
    samples = {
        s.name: s.value for f in metrics.StoreCollector(str(tmp_path)).collect() for s in f.samples
    }
    assert samples["hybrid_quantum_store_unreadable_files"] == 1
    assert samples["hybrid_quantum_batches_completed_total"] == 2


def test_an_empty_or_missing_store_exports_zeros(tmp_path):
    samples = _scrape(_serve(str(tmp_path / "nothing-yet")))
    assert _value(samples, "hybrid_quantum_jobs_total") == 0
    assert _value(samples, "hybrid_quantum_store_unreadable_files") == 0


@pytest.mark.parametrize(
    ("relative", "reader"),
    [
        ("nightly/run-1/cut/manifest.json", "_job"),
        ("job/results/batch-00003.json", "_batch"),
        ("job/results/batch-00003.npz", None),
        ("job/results/batch-00003.json.tmp-host-1-abc", None),
        ("job/results/reconstruction.json", "_reconstruction"),
        ("job/results/timeline.json", "_timeline"),
        ("job/subsystems/A.npz", None),
        ("_runs/hq-x/state.json", "_run"),
        ("_runs/hq-x/spec.json", None),
        ("_queue/ledger.json", "_ledger"),
        ("_queue/ledger.lock", None),
    ],
)
def test_which_files_are_read(relative, reader):
    found = metrics.reader_for(relative)
    assert (found.__name__ if found else None) == reader


def test_a_busy_port_is_one_line_and_exit_status_1(tmp_path, capsys):
    server, _ = start_http_server(0, "127.0.0.1", metrics.registry(str(tmp_path)))
    argv = ["metrics", "--store", str(tmp_path), "--port", str(server.server_port)]
    assert main([*argv, "--address", "127.0.0.1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("hybrid-quantum: error:") and err.count("\n") == 1
