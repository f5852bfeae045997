"""The local backend: a detached runner with a Kueue-like quota, found again by name."""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime, timedelta, timezone

import pytest
from helpers import random_ansatz
from qiskit.quantum_info import PauliList

from hybrid_provider.backends.base import get_backend
from hybrid_provider.backends.local.backend import PID_FILE, LocalBackend, read_state
from hybrid_provider.backends.spec import compile_spec, label_value, workflow_name
from hybrid_provider.backends.status import (
    Admission,
    BatchPhase,
    BatchStatus,
    WorkflowPhase,
    WorkflowStatus,
)
from hybrid_provider.core.cut.job import write_job
from hybrid_provider.core.cut.plan import plan_cuts
from hybrid_provider.core.errors import BackendError, InputError
from hybrid_provider.core.execute.options import ExecutionOptions
from hybrid_provider.core.reconstruct.combine import reconstruct_job

TIMEOUT = 60


@pytest.fixture
def job(tmp_path):
    circuit = random_ansatz(6, reps=2)
    plan = plan_cuts(circuit, PauliList(["ZZZZZZ"]), partition_labels="AAABBB")
    return write_job(circuit, plan, str(tmp_path), "job", num_batches=4)


def _spec(job, name="hq-test-run", **kwargs):
    options = kwargs.pop("options", ExecutionOptions())
    return compile_spec(job.manifest, job.manifest_uri, name, options, **kwargs)


def _wait(backend, name, until=lambda s: s.phase.finished):
    deadline = time.monotonic() + TIMEOUT
    seen_running = 0
    while time.monotonic() < deadline:
        status = backend.status(name)
        seen_running = max(seen_running, sum(b.phase == BatchPhase.RUNNING for b in status.batches))
        if until(status):
            return status, seen_running
        time.sleep(0.05)
    raise AssertionError(f"workflow {name} did not get there in {TIMEOUT} s: {status}")


def test_a_run_succeeds_under_quota_and_reports_every_batch(tmp_path, job):
    backend = LocalBackend(str(tmp_path), quota={"cpu": 1})
    first = backend.submit(_spec(job))
    assert [b.queue_position for b in first.batches] == [0, 1, 2, 3]
    assert all(b.admission == Admission.PENDING for b in first.batches)
    status, most_running = _wait(backend, "hq-test-run")
    assert status.phase == WorkflowPhase.SUCCEEDED and status.progress == "4/4"
    assert most_running <= 1  # the quota of one cpu slot held
    assert all(b.admission == Admission.FINISHED and b.duration_s >= 0 for b in status.batches)
    assert "batch 3 done" in backend.logs("hq-test-run")
    assert reconstruct_job(job.manifest_uri).values


def test_resubmitting_the_same_spec_reattaches_and_another_spec_is_refused(tmp_path, job):
    backend = LocalBackend(str(tmp_path))
    backend.submit(_spec(job))
    pid = (backend.runs_dir / "hq-test-run" / PID_FILE).read_text()
    backend.submit(_spec(job))
    assert (backend.runs_dir / "hq-test-run" / PID_FILE).read_text() == pid
    with pytest.raises(BackendError, match="already exists with another spec"):
        backend.submit(_spec(job, options=ExecutionOptions(mode="shots", shots=10)))
    _wait(backend, "hq-test-run")


def test_a_flavor_without_quota_is_refused_at_submit(tmp_path, job):
    backend = LocalBackend(str(tmp_path), quota={"gpu": 0})
    with pytest.raises(InputError, match=r"flavor gpu has no slots .*gpu=0.*local_quota"):
        backend.submit(_spec(job, flavor="gpu"))
    assert not (backend.runs_dir / "hq-test-run").exists()  # nothing queued, nothing to wait for


def test_a_new_try_after_a_failed_run_runs_what_did_not_finish(tmp_path, job):
    backend = LocalBackend(str(tmp_path), quota={"cpu": 1})
    backend.submit(_spec(job))
    backend.stop("hq-test-run")  # before the runner has started a batch
    failed, _ = _wait(backend, "hq-test-run")
    assert failed.phase == WorkflowPhase.FAILED and failed.done < failed.total
    retried = backend.submit(_spec(job))  # the task cleared
    assert retried.phase != WorkflowPhase.FAILED
    status, _ = _wait(backend, "hq-test-run")
    assert status.phase == WorkflowPhase.SUCCEEDED and status.progress == "4/4"


def test_stop_ends_the_run(tmp_path, job):
    backend = LocalBackend(str(tmp_path), quota={"cpu": 1})
    backend.submit(_spec(job, options=ExecutionOptions(mode="shots", shots=200_000)))
    backend.stop("hq-test-run")
    status, _ = _wait(backend, "hq-test-run")
    assert status.phase == WorkflowPhase.FAILED and status.message == "Stopped"
    assert status.done < status.total


def test_a_dead_runner_is_reported_and_a_resubmit_resumes(tmp_path):
    circuit = random_ansatz(6, reps=2)
    plan = plan_cuts(circuit, PauliList(["ZZZZZZ"]), partition_labels="AAABBB")
    job = write_job(circuit, plan, str(tmp_path), "job", num_batches=12)  # one slot: ~1 s of work
    backend = LocalBackend(str(tmp_path), quota={"cpu": 1})
    spec = _spec(job)
    backend.submit(spec)
    run_dir = backend.runs_dir / spec.name
    _wait(backend, spec.name, until=lambda s: s.done >= 1)
    os.kill(int((run_dir / PID_FILE).read_text()), signal.SIGKILL)
    time.sleep(0.2)
    interrupted = backend.status(spec.name)
    assert interrupted.phase == WorkflowPhase.ERROR and "exited unexpectedly" in interrupted.message
    before = {
        b.index: b.started_at
        for b in read_state(run_dir).batches
        if b.phase == BatchPhase.SUCCEEDED
    }
    assert 1 <= len(before) < 12
    backend.submit(spec)
    status, _ = _wait(backend, spec.name)
    assert status.phase == WorkflowPhase.SUCCEEDED
    after = {b.index: b.started_at for b in status.batches}
    assert all(after[index] == started for index, started in before.items())


def test_backend_selection_and_store_errors(tmp_path):
    with pytest.raises(InputError, match="unknown backend: .* must be one of kubernetes, local"):
        get_backend("slurm")
    with pytest.raises(InputError, match="file:// store"):
        LocalBackend("s3://bucket/path")
    with pytest.raises(BackendError, match="no local workflow named nope"):
        LocalBackend(str(tmp_path)).status("nope")


def test_names_and_labels_are_deterministic_and_valid():
    name = workflow_name(
        "nightly_circuit_cutting", "submit", "scheduled__2026-11-28T00:00:00+00:00"
    )
    assert name == workflow_name(
        "nightly_circuit_cutting", "submit", "scheduled__2026-11-28T00:00:00+00:00"
    )
    assert name != workflow_name(
        "nightly_circuit_cutting", "submit", "manual__2026-11-28T00:00:00+00:00"
    )
    assert len(name) <= 63 and name.startswith("hq-nightly-circuit-cutting-submit-")
    assert label_value("manual__2026-11-28T05:00:00+00:00").startswith(
        "manual__2026-11-28T05-00-00"
    )
    assert len(label_value("x" * 200)) <= 63


def _status(*batches, started_ago=600.0):
    now = datetime.now(timezone.utc)
    return WorkflowStatus(
        name="w",
        backend="test",
        phase=WorkflowPhase.RUNNING,
        started_at=now - timedelta(seconds=started_ago),
        batches=list(batches),
    )


def test_queue_wait_counts_only_time_with_nothing_running():
    long_ago = datetime.now(timezone.utc) - timedelta(seconds=500)
    waiting = BatchStatus(index=0, flavor="gpu", pending_since=long_ago, queue_position=3)
    running = BatchStatus(
        index=1, flavor="cpu", phase=BatchPhase.RUNNING, admission=Admission.ADMITTED
    )
    assert _status(waiting).queue_wait_seconds() == pytest.approx(500, abs=5)
    assert _status(waiting, running).queue_wait_seconds() == 0.0
    finished = BatchStatus(
        index=2,
        flavor="cpu",
        phase=BatchPhase.SUCCEEDED,
        admission=Admission.FINISHED,
        finished_at=datetime.now(timezone.utc) - timedelta(seconds=20),
    )
    assert _status(waiting, finished).queue_wait_seconds() == pytest.approx(20, abs=5)
    assert _status(waiting).by_flavor() == {"gpu": {"pending": 1}}
