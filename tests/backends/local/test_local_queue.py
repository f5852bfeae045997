"""The store's local queue: one quota and one FIFO queue for every local run on a store."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from helpers import exact_values, random_ansatz
from qiskit.quantum_info import PauliList

from hybrid_provider.backends.local.backend import PID_FILE, LocalBackend, read_state
from hybrid_provider.backends.local.queue import Ledger, Workload
from hybrid_provider.backends.spec import compile_spec
from hybrid_provider.backends.status import BatchPhase, WorkflowPhase
from hybrid_provider.core.cut.job import write_job
from hybrid_provider.core.cut.plan import plan_cuts
from hybrid_provider.core.errors import BackendError
from hybrid_provider.core.execute.options import ExecutionOptions
from hybrid_provider.core.reconstruct.combine import reconstruct_job

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
T1 = T0 + timedelta(seconds=1)


# --- the ledger's decisions, as tables --------------------------------------------------------
def _ledger(cpu_in_use: int = 0) -> Ledger:
    """Run a (submitted first): cpu batches 0, 1 and gpu batch 2; run b: cpu 0, gpu 1."""
    workloads = [
        Workload(run="a", index=0, flavor="cpu", created_at=T0),
        Workload(run="a", index=1, flavor="cpu", created_at=T0),
        Workload(run="a", index=2, flavor="gpu", created_at=T0),
        Workload(run="b", index=0, flavor="cpu", created_at=T1),
        Workload(run="b", index=1, flavor="gpu", created_at=T1),
    ]
    for workload in workloads[:cpu_in_use]:
        workload.admitted_at = T1
    return Ledger(quota={"cpu": 2, "gpu": 1}, workloads=workloads)


@pytest.mark.parametrize(
    ("cpu_in_use", "run", "room", "admitted"),
    [
        (0, "b", 9, []),  # a's batches are ahead in both flavors: b waits
        (0, "a", 9, [0, 1, 2]),  # two cpu slots, one gpu slot
        (0, "a", 1, [0]),  # no more than the runner has free workers
        (1, "a", 9, [1, 2]),
        (2, "b", 9, []),  # cpu full; gpu: a's batch 2 is ahead of b's
    ],
)
def test_only_the_head_of_each_flavor_queue_is_admitted(cpu_in_use, run, room, admitted):
    ledger = _ledger(cpu_in_use)
    assert [w.index for w in ledger.admit(run, room, T1)] == admitted
    assert all(ledger.in_use(f) <= ledger.quota[f] for f in ledger.quota)


def test_positions_count_the_batches_of_every_run_ahead():
    ledger = _ledger()
    assert ledger.positions("b") == {0: 2, 1: 1}
    ledger.admit("a", 9, T1)
    assert ledger.positions("b") == {0: 0, 1: 0} and ledger.positions("a") == {}


def test_track_keeps_running_batches_requeues_the_rest_and_drops_finished_ones():
    ledger = _ledger(cpu_in_use=2)  # a's cpu batches 0 and 1 admitted
    ledger.track("a", T0, queued={1: "cpu", 2: "gpu"}, admitted={0})  # 1 was left by a dead runner
    mine = {w.index: w.admitted_at for w in ledger.workloads if w.run == "a"}
    assert mine == {0: T1, 1: None, 2: None}
    unchanged = ledger.model_dump_json()
    ledger.track("b", T1, queued={0: "cpu", 1: "gpu"}, admitted=set())  # b as it was
    assert ledger.model_dump_json() == unchanged  # a turn that changes nothing writes nothing
    ledger.track("a", T0, queued={}, admitted=set())  # the run leaves the queue
    assert {w.run for w in ledger.workloads} == {"b"}


def test_reap_drops_the_runs_whose_runner_is_gone():
    ledger = _ledger(cpu_in_use=2)
    assert ledger.reap(alive=lambda run: run == "b") == ["a"]
    assert ledger.in_use("cpu") == 0 and ledger.positions("b") == {0: 0, 1: 0}


# --- the backend on a real store ---------------------------------------------------------------
TIMEOUT = 120


def _job(store, name, num_batches, seed=7):
    circuit = random_ansatz(4, reps=1, seed=seed)
    plan = plan_cuts(circuit, PauliList(["ZZZZ", "XIIX"]), partition_labels="AABB")
    return circuit, write_job(circuit, plan, str(store), name, num_batches=num_batches)


def _spec(job, name, options=None, **kwargs):
    options = options or ExecutionOptions()
    return compile_spec(job.manifest, job.manifest_uri, name, options, **kwargs)


def _wait(backend, name, until=lambda s: s.phase.finished):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        status = backend.status(name)
        if until(status):
            return status
        time.sleep(0.05)
    raise AssertionError(f"workflow {name} did not get there in {TIMEOUT} s: {status}")


def test_racing_submits_of_one_name_with_different_specs_accept_exactly_one(tmp_path):
    _, job = _job(tmp_path, "job", num_batches=1)
    backend = LocalBackend(str(tmp_path), quota={"cpu": 1})
    for attempt in range(8):
        name = f"hq-race-{attempt}"
        specs = [_spec(job, name), _spec(job, name, ExecutionOptions(mode="shots", shots=64))]
        start, outcomes = threading.Barrier(2), [None, None]

        def submit(which, specs=specs, start=start, outcomes=outcomes):
            start.wait()
            try:
                outcomes[which] = backend.submit(specs[which]).name
            except BackendError as exc:
                outcomes[which] = str(exc)

        threads = [threading.Thread(target=submit, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(o == name for o in outcomes) == [False, True], outcomes
        assert any("already exists with another spec" in o for o in outcomes), outcomes
        accepted = specs[outcomes.index(name)]
        assert (tmp_path / "_runs" / name / "spec.json").read_text() == accepted.model_dump_json()
        backend.stop(name)  # the runner ends at once
        _wait(backend, name)


def test_a_killed_runner_frees_its_slot_for_the_next_run(tmp_path):
    backend = LocalBackend(str(tmp_path), quota={"cpu": 1})
    _, slow = _job(tmp_path, "slow", num_batches=4)
    circuit, fast = _job(tmp_path, "fast", num_batches=4)
    backend.submit(_spec(slow, "hq-slow", ExecutionOptions(mode="shots", shots=400_000)))
    _wait(backend, "hq-slow", until=lambda s: s.batches[0].phase == BatchPhase.RUNNING)
    queued = backend.submit(_spec(fast, "hq-fast"))
    assert [b.queue_position for b in queued.batches] == [3, 4, 5, 6]  # behind hq-slow's three
    time.sleep(1.0)
    waiting = backend.status("hq-fast").batches
    assert all(b.phase == BatchPhase.PENDING for b in waiting)  # the one slot is hq-slow's
    os.kill(int((backend.runs_dir / "hq-slow" / PID_FILE).read_text()), signal.SIGKILL)
    status = _wait(backend, "hq-fast")
    assert status.phase == WorkflowPhase.SUCCEEDED, status.message
    assert backend.status("hq-slow").phase == WorkflowPhase.ERROR
    assert "freed the slots of hq-slow" in backend.logs("hq-fast")
    with backend.queue.transaction() as ledger:
        assert ledger.workloads == []
    values = reconstruct_job(fast.manifest_uri, device="cpu").values
    np.testing.assert_allclose(values, exact_values(circuit, ["ZZZZ", "XIIX"]), atol=1e-8)


def test_the_latest_submit_sets_the_quota_of_the_whole_queue(tmp_path, caplog):
    _, job = _job(tmp_path, "job", num_batches=1)
    first = LocalBackend(str(tmp_path), quota={"cpu": 1, "gpu": 0})
    first.submit(_spec(job, "hq-first"))
    second = LocalBackend(str(tmp_path), quota={"cpu": 3, "gpu": 0})
    with caplog.at_level(logging.WARNING):
        second.submit(_spec(job, "hq-second"))
    assert "changes its quota from {'cpu': 1," in caplog.text
    with second.queue.transaction() as ledger:
        assert ledger.quota == second.quota
    for name in ("hq-first", "hq-second"):
        assert _wait(second, name).phase == WorkflowPhase.SUCCEEDED


@pytest.mark.slow
def test_soak_twenty_runs_share_a_quota_of_two_in_submission_order(tmp_path):
    observables = ["ZZZZ", "XIIX"]
    jobs = [_job(tmp_path, f"soak-{i}", num_batches=1, seed=i) for i in range(20)]
    backend = LocalBackend(str(tmp_path), quota={"cpu": 2})
    names = [f"hq-soak-{i:02d}" for i in range(20)]
    started = time.monotonic()
    for name, (_, job) in zip(names, jobs, strict=True):
        backend.submit(_spec(job, name))
    most_admitted = most_running = 0
    while time.monotonic() - started < 600:
        with backend.queue.transaction() as ledger:  # nothing is admitted or freed meanwhile
            states = [read_state(backend.runs_dir / name) for name in names]
            most_admitted = max(most_admitted, ledger.in_use("cpu"))
        running = sum(b.phase == BatchPhase.RUNNING for s in states for b in s.batches)
        most_running = max(most_running, running)
        if all(s.phase.finished for s in states):
            break
        time.sleep(0.1)
    took = time.monotonic() - started
    print(f"soak: {took:.1f} s, at most {most_admitted} admitted, {most_running} running")
    assert [s.phase for s in states] == [WorkflowPhase.SUCCEEDED] * 20
    assert most_admitted <= 2 and most_running <= 2
    batches = [
        (b.started_at, b.finished_at, i, b.index) for i, s in enumerate(states) for b in s.batches
    ]
    assert _most_at_once(batches) == 2  # the quota was used and held, over the whole soak
    admitted = [(i, index) for _, _, i, index in sorted(batches, key=lambda b: (b[0], b[2], b[3]))]
    assert admitted == sorted(admitted)  # admission order is submission order
    for circuit, job in jobs:
        values = reconstruct_job(job.manifest_uri, device="cpu").values
        np.testing.assert_allclose(values, exact_values(circuit, observables), atol=1e-8)


def _most_at_once(batches) -> int:
    """The most batches whose [started_at, finished_at] overlap at one instant."""
    events = sorted([(s, 1) for s, *_ in batches] + [(f, -1) for _, f, *_ in batches])
    running = most = 0
    for _, change in events:  # at equal times an end (-1) sorts before a start
        running += change
        most = max(most, running)
    return most
