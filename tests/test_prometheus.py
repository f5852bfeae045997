"""A real Prometheus (Debian's ``prometheus``) scrapes ``hybrid-quantum metrics`` over a finished
local run, and PromQL over its HTTP API returns the stage's metrics: queue wait, run time and
attempts per flavor, subexperiments, shots, sampling overhead, reconstruction time, and each
value's standard error. The queries are the ones docs/monitoring.md shows.

Needs ``prometheus`` on PATH (``scripts/install_prometheus.sh``, which ``make test`` runs as
root); without it the test is skipped, except on CI (``CI`` set), where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import random_ansatz
from qiskit.quantum_info import PauliList

from hybrid_provider.backends.local.backend import LocalBackend
from hybrid_provider.backends.spec import compile_spec
from hybrid_provider.backends.status import WorkflowPhase, WorkflowStatus
from hybrid_provider.core.cut.job import WrittenJob, write_job
from hybrid_provider.core.cut.plan import plan_cuts
from hybrid_provider.core.execute.options import ExecutionOptions
from hybrid_provider.core.execute.record import read_record
from hybrid_provider.core.reconstruct.combine import Reconstruction, reconstruct_job
from hybrid_provider.core.reconstruct.result import ReconstructionResult, write_result
from hybrid_provider.sensors.kueue_wait import write_timeline

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SHOTS = 64
OBSERVABLE = "ZZZZZZ"
TIMEOUT_S = 60
TARGET_LABELS = ("__name__", "job", "instance")


def _prometheus() -> str:
    if path := shutil.which("prometheus"):
        return path
    why = "no prometheus on PATH; run scripts/install_prometheus.sh as root"
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI must run the Prometheus test: make test installs it)")
    pytest.skip(why)
    raise AssertionError("unreachable")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, WrittenJob, WorkflowStatus, Reconstruction]:
    """A shot-mode job run by the local backend (one cpu slot, so batches queue), its timeline
    written as the wait writes it, and its reconstruction published as the operator does."""
    root = tmp_path_factory.mktemp("store")
    circuit = random_ansatz(6, reps=2)
    plan = plan_cuts(circuit, PauliList([OBSERVABLE]), partition_labels="AAABBB")
    job = write_job(circuit, plan, str(root), "nightly/run-1/cut", num_batches=4)
    backend = LocalBackend(str(root), quota={"cpu": 1})
    options = ExecutionOptions(mode="shots", shots=SHOTS)
    backend.submit(compile_spec(job.manifest, job.manifest_uri, "hq-prom", options))
    deadline = time.monotonic() + TIMEOUT_S
    while not (status := backend.status("hq-prom")).phase.finished:
        assert time.monotonic() < deadline, f"the run did not finish: {status}"
        time.sleep(0.1)
    assert status.phase == WorkflowPhase.SUCCEEDED
    write_timeline(job.manifest_uri, status)
    result = reconstruct_job(job.manifest_uri, device="cpu")
    write_result(ReconstructionResult.of(job.manifest_uri, result))
    return root, job, status, result


@pytest.fixture(scope="module")
def exporter(finished_run) -> Iterator[str]:
    """``hybrid-quantum metrics`` on a free port; yields its host:port."""
    root = finished_run[0]
    command = [sys.executable, "-c", "from hybrid_provider.cli import main; main()", "metrics"]
    server = subprocess.Popen(
        [*command, "--store", str(root), "--port", "0", "--address", "127.0.0.1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()
        assert " on http://" in line, f"the exporter did not start: {line!r}"
        yield urllib.parse.urlsplit(line.split(" on ")[1].strip()).netloc
    finally:
        _stop(server)


@pytest.fixture(scope="module")
def prometheus(exporter, tmp_path_factory) -> Iterator[str]:
    """A real Prometheus scraping the exporter every second; yields its base URL once the
    target is up and the first scrape is stored."""
    binary = _prometheus()
    home = tmp_path_factory.mktemp("prometheus")
    config = home / "prometheus.yml"
    config.write_text(
        json.dumps(  # YAML is a superset of JSON
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "scrape_configs": [
                    {"job_name": "hybrid-quantum", "static_configs": [{"targets": [exporter]}]}
                ],
            }
        )
    )
    address = f"127.0.0.1:{_free_port()}"
    log = (home / "prometheus.log").open("w")
    server = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={home / 'data'}"]
        + [f"--web.listen-address={address}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://{address}"
    try:
        _wait_for_scrape(base, server, home / "prometheus.log")
        yield base
    finally:
        _stop(server)
        log.close()


def _wait_for_scrape(base: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    targets: list[dict] = []
    while time.monotonic() < deadline:
        assert server.poll() is None, f"prometheus exited: {log.read_text()[-2000:]}"
        try:
            targets = _get(f"{base}/api/v1/targets")["data"]["activeTargets"]
            if targets and targets[0]["health"] == "up" and _query(base, "up") == {(): 1.0}:
                return
        except OSError:
            pass  # not listening yet
        time.sleep(0.2)
    raise AssertionError(f"the exporter never came up in Prometheus: targets {targets}")


def _query(base: str, promql: str) -> dict[tuple[tuple[str, str], ...], float]:
    """An instant PromQL query over the HTTP API: labels (but the target's and the name) ->
    value."""
    answer = _get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    assert answer["status"] == "success", answer
    return {
        tuple(sorted((k, v) for k, v in r["metric"].items() if k not in TARGET_LABELS)): float(
            r["value"][1]
        )
        for r in answer["data"]["result"]
    }


def _one(base: str, promql: str, **labels: str) -> float:
    series = _query(base, promql)
    key = tuple(sorted(labels.items()))
    assert key in series, f"{promql}: no series {labels} in {series}"
    return series[key]


def test_promql_returns_the_stage_metrics_of_a_run(finished_run, prometheus):
    _, job, status, result = finished_run
    records = [read_record(job.manifest_uri, b.index) for b in job.manifest.batches]
    waits = [(b.started_at - b.pending_since).total_seconds() for b in status.batches]
    cpu = {"flavor": "cpu"}

    # run time per flavor: mean batch duration, as the dashboard computes it
    mean = "sum by (flavor) (hybrid_quantum_batch_duration_seconds_sum) / sum by (flavor) "
    mean += "(hybrid_quantum_batch_duration_seconds_count)"
    assert _one(prometheus, mean, **cpu) == pytest.approx(
        sum(r.duration_s for r in records) / len(records)
    )
    # queue wait and attempts per flavor: from the wait's timeline (any backend) ...
    assert _one(
        prometheus, "sum by (flavor) (hybrid_quantum_batch_queue_wait_seconds_sum)", **cpu
    ) == pytest.approx(sum(waits))
    assert _one(prometheus, "hybrid_quantum_batch_attempts_total", **cpu) == 4
    # ... and from the local backend's live status, equal here
    assert _one(prometheus, "hybrid_quantum_local_batch_attempts_total", **cpu) == 4
    assert _one(
        prometheus, "sum by (flavor) (hybrid_quantum_local_batch_queue_wait_seconds_count)", **cpu
    ) == len(waits)
    # one slot and four batches: at least three waited behind another
    assert (
        _one(
            prometheus,
            'sum by (flavor) (hybrid_quantum_batch_queue_wait_seconds_bucket{le="0.1"})',
            **cpu,
        )
        <= 1
    )
    assert _one(prometheus, "sum by (flavor) (hybrid_quantum_subexperiments_total)", **cpu) == (
        job.manifest.num_subexperiments
    )
    assert _one(prometheus, "sum by (flavor) (hybrid_quantum_shots_total)", **cpu) == (
        SHOTS * job.manifest.num_subexperiments
    )
    assert _one(prometheus, "hybrid_quantum_sampling_overhead_sum") == pytest.approx(
        job.manifest.plan.sampling_overhead
    )
    assert _one(
        prometheus,
        "hybrid_quantum_reconstruction_duration_seconds_sum",
        array_module=result.array_module,
    ) == pytest.approx(result.seconds)
    where = {"job_name": "nightly/run-1/cut", "observable": OBSERVABLE}
    assert _one(prometheus, "hybrid_quantum_result_standard_error", **where) == pytest.approx(
        result.std_errors[0]
    )
    assert result.std_errors[0] > 0  # shot mode: a real error bar
    assert _one(prometheus, "hybrid_quantum_result_value", **where) == pytest.approx(
        result.values[0]
    )
