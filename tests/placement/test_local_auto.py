"""flavor="auto" on the local backend, end to end: telemetry, decision, run, re-placement."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from counting_sampler import COUNT_FOLDER, SLEEP, executions
from helpers import random_ansatz
from qiskit.quantum_info import PauliList

from hybrid_provider.backends.local.backend import LocalBackend
from hybrid_provider.backends.spec import Replacement, compile_spec
from hybrid_provider.backends.status import BatchPhase, Reason
from hybrid_provider.constants import Flavor
from hybrid_provider.core.cut.job import write_job
from hybrid_provider.core.cut.plan import plan_cuts
from hybrid_provider.core.execute.options import ExecutionOptions
from hybrid_provider.core.execute.record import read_record

HERE = Path(__file__).parent
TIMEOUT = 90
COUNTING = ExecutionOptions(mode="shots", shots=64, sampler="counting_sampler:CountingSampler")


@pytest.fixture
def counted(tmp_path, monkeypatch) -> Path:
    """Runners started from here import the counting sampler and count into the store."""
    folder = tmp_path / "executions"
    monkeypatch.setenv(COUNT_FOLDER, str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    return folder


def _job(store: Path, name: str, batches: int):
    circuit = random_ansatz(6, reps=1)
    plan = plan_cuts(circuit, PauliList(["ZZZZZZ"]), partition_labels="AAABBB")
    return write_job(circuit, plan, str(store), name, num_batches=batches)


def _wait(backend, name, until=lambda s: s.phase.finished):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        status = backend.status(name)
        if until(status):
            return status
        time.sleep(0.05)
    raise AssertionError(f"{name} did not get there in {TIMEOUT} s: {status.summary_line()}")


def test_the_local_telemetry_shows_quota_slots_taken_and_batches_waiting(
    tmp_path, counted, monkeypatch
):
    backend = LocalBackend(str(tmp_path), quota={"cpu": 2, "gpu": 1, "qpu": 0})
    idle = backend.telemetry()
    assert {f: (t.slots, t.in_use, t.pending) for f, t in idle.flavors.items()} == {
        Flavor.CPU: (2, 0, 0), Flavor.GPU: (1, 0, 0), Flavor.QPU: (0, 0, 0)
    }  # fmt: skip
    assert idle.max_parallel == os.cpu_count()
    assert idle.of(Flavor.QPU).note == "no slots in the local quota"
    monkeypatch.setenv(SLEEP, "3")
    tenant = _job(tmp_path, "tenant", batches=3)
    backend.submit(compile_spec(tenant.manifest, tenant.manifest_uri, "tenant", COUNTING,
                                flavor="gpu"))  # fmt: skip
    _wait(backend, "tenant", lambda s: any(b.phase == BatchPhase.RUNNING for b in s.batches))
    busy = backend.telemetry().of(Flavor.GPU)
    assert (busy.in_use, busy.pending, busy.free) == (1, 2, 0)
    backend.stop("tenant")


def test_a_waiting_batch_moves_to_a_free_flavor_and_runs_exactly_once(
    tmp_path, counted, monkeypatch
):
    """Without re-placement, every batch waited for the busy GPU although the CPU was free."""
    backend = LocalBackend(str(tmp_path), quota={"cpu": 1, "gpu": 1})
    monkeypatch.setenv(SLEEP, "4")  # another tenant holds the only GPU slot for a while
    tenant = _job(tmp_path, "tenant", batches=2)
    backend.submit(compile_spec(tenant.manifest, tenant.manifest_uri, "tenant", COUNTING,
                                flavor="gpu"))  # fmt: skip
    _wait(backend, "tenant", lambda s: any(b.phase == BatchPhase.RUNNING for b in s.batches))
    monkeypatch.setenv(SLEEP, "0")
    ours = _job(tmp_path, "ours", batches=3)
    spec = compile_spec(
        ours.manifest, ours.manifest_uri, "ours", COUNTING, flavor="gpu",
        replacement=Replacement(flavors=[Flavor.CPU, Flavor.GPU], after_s=0.5),
    )  # fmt: skip
    backend.submit(spec)
    status = _wait(backend, "ours")
    assert status.phase.value == "Succeeded", status.message
    moved = [b for b in status.batches if b.moved_from]
    assert moved, "no batch moved off the busy GPU"
    assert all(b.moved_from == [Flavor.GPU] and b.flavor == Flavor.CPU for b in moved)
    assert all(b.attempts == 1 for b in status.batches)
    # counted from the store: one execution per batch, on the flavor the status reports
    assert executions(counted, "ours") == sorted(b.flavor.value for b in status.batches)
    for batch in status.batches:
        record = read_record(ours.manifest_uri, batch.index)
        assert record.provenance.executor.flavor == batch.flavor.value
    log = backend.logs("ours")
    assert f"batch {moved[0].index} moved from gpu to cpu: not admitted after" in log
    _wait(backend, "tenant")
    assert executions(counted, "tenant") == ["gpu", "gpu"]


def test_a_batch_moves_only_where_a_slot_is_free_and_never_without_the_rule(tmp_path, counted):
    """Pure checks of the runner's rule through its ledger: no free slot, no move."""
    from hybrid_provider.backends.local.queue import Ledger, Workload
    from hybrid_provider.backends.local.runner import Runner
    from hybrid_provider.backends.status import BatchStatus

    class Bare(Runner):
        def __init__(self, spec, running=()):  # only what _replace reads
            self.spec = spec
            self.running = dict(enumerate(running))

    ours = _job(tmp_path, "ours", batches=2)
    rule = Replacement(flavors=[Flavor.CPU, Flavor.GPU], after_s=1.0)
    spec = compile_spec(ours.manifest, ours.manifest_uri, "ours", COUNTING, flavor="gpu",
                        replacement=rule)  # fmt: skip
    long_ago = __import__("datetime").datetime(2026, 1, 1, tzinfo=__import__("datetime").UTC)
    pending = {i: BatchStatus(index=i, flavor=Flavor.GPU, pending_since=long_ago) for i in (0, 1)}
    full = Ledger(quota={"cpu": 1, "gpu": 1}, workloads=[
        Workload(run="other", index=0, flavor="cpu", created_at=long_ago, admitted_at=long_ago)
    ])  # fmt: skip
    assert Bare(spec)._replace(full, pending) == []
    free = Ledger(quota={"cpu": 1, "gpu": 1})
    ours_on_gpu = BatchStatus(index=2, flavor=Flavor.GPU)
    assert Bare(spec, [ours_on_gpu])._replace(free, pending) == []  # throughput, not a queue
    just_done = Ledger(quota={"cpu": 1, "gpu": 1}, workloads=[
        Workload(run="ours", index=2, flavor="gpu", created_at=long_ago, admitted_at=long_ago)
    ])  # fmt: skip
    assert Bare(spec)._replace(just_done, pending) == []  # its slot is ours until released
    moved = Bare(spec)._replace(free, pending)
    assert [b.index for b in moved] == [0]  # one free cpu slot: one batch moves
    assert pending[0].reason == Reason.REPLACED and pending[1].flavor == Flavor.GPU
    plain = compile_spec(ours.manifest, ours.manifest_uri, "ours", COUNTING, flavor="gpu")
    assert Bare(plain)._replace(Ledger(quota={"cpu": 4}), pending) == []


def test_the_decision_is_reused_by_a_retried_submit(tmp_path):
    from hybrid_provider.placement.decide import decide, write_decision

    backend = LocalBackend(str(tmp_path), quota={"cpu": 1, "gpu": 1})
    job = _job(tmp_path, "job", batches=4)
    kwargs = {"mode": "exact", "requested": "auto", "store_uri": str(tmp_path)}
    first = decide(backend, job.manifest, job.manifest_uri, workflow="run-1", **kwargs)
    write_decision(job.manifest_uri, first)
    slower = LocalBackend(str(tmp_path), quota={"cpu": 1, "gpu": 0})
    assert decide(slower, job.manifest, job.manifest_uri, workflow="run-1", **kwargs) == first
    other = decide(slower, job.manifest, job.manifest_uri, workflow="run-2", **kwargs)
    assert set(other.assignment.values()) == {Flavor.CPU} and other.workflow == "run-2"


def test_auto_without_telemetry_is_refused_in_one_line(tmp_path):
    from hybrid_provider.core.errors import InputError
    from hybrid_provider.placement.decide import decide

    class NoTelemetry:
        name = "slurm"

    job = _job(tmp_path, "job", batches=2)
    with pytest.raises(InputError, match="the slurm backend reports no queue telemetry"):
        decide(NoTelemetry(), job.manifest, job.manifest_uri, mode="exact", requested="auto",
               store_uri=str(tmp_path), workflow="w")  # fmt: skip


def test_the_operators_place_auto_log_it_and_learn_from_the_run(tmp_path, monkeypatch, capsys):
    """The connection's flavor auto: the decision is in the task log, the timeline and the
    report; the finished run lands in the history, and the next decision uses it."""
    from qiskit import qasm3

    from hybrid_provider.operators.cut import CutCircuitOperator
    from hybrid_provider.operators.reconstruct import CupyReconstructOperator
    from hybrid_provider.operators.submit import ArgoSubmitOperator
    from hybrid_provider.placement import load_history
    from hybrid_provider.sensors.kueue_wait import KueueWaitSensor

    extra = {"backend": "local", "store_uri": str(tmp_path), "flavor": "auto",
             "local_quota": '{"cpu": 1, "gpu": 1, "qpu": 1}'}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_HQ_AUTO", json.dumps({"conn_type": "hybrid_quantum",
                                                           "extra": extra}))  # fmt: skip
    context = {"run_id": "manual__2026-12-02T00:00:00+00:00"}
    cut = CutCircuitOperator(
        task_id="cut", circuit=qasm3.dumps(random_ansatz(6, reps=1)), observables=["ZZZZZZ"],
        partition_labels="AAABBB", num_batches=4, job_name="tests/auto", hybrid_conn_id="hq_auto",
    ).execute(context)  # fmt: skip
    submitted = ArgoSubmitOperator(
        task_id="submit", manifest_uri=cut["manifest_uri"], hybrid_conn_id="hq_auto"
    ).execute(context)
    assert submitted["placement"] == "cpu 2, gpu 2"  # priors: equal speed, two slots at once
    sensor = KueueWaitSensor(task_id="wait", submitted=submitted, poke_interval=0.1,
                             hybrid_conn_id="hq_auto")  # fmt: skip
    deadline = time.monotonic() + TIMEOUT
    while not sensor.poke({}) and time.monotonic() < deadline:
        time.sleep(0.1)
    log = "".join(capsys.readouterr())
    assert "Placement (auto): cpu 2, gpu 2 batch(es), predicted to finish in" in log
    assert "qpu: not eligible (exact mode never runs on a QPU)" in log
    assert "conservative priors used" in log
    timeline = json.loads((tmp_path / "tests" / "auto" / "results" / "timeline.json").read_text())
    assert timeline["placement"][0].startswith("Placement (auto): cpu 2, gpu 2")
    assert sorted(b["flavor"] for b in timeline["batches"]) == ["cpu", "cpu", "gpu", "gpu"]
    CupyReconstructOperator(task_id="reconstruct", manifest_uri=cut["manifest_uri"],
                            hybrid_conn_id="hq_auto").execute(context)  # fmt: skip
    page = (tmp_path / "tests" / "auto" / "report.html").read_text()
    assert '<pre id="placement">Placement (auto): cpu 2, gpu 2' in page
    history = load_history(str(tmp_path))
    assert [run.workflow for run in history.runs] == [submitted["workflow_name"]]
    learned = history.seconds_per_subexperiment(Flavor.GPU, "exact", 3)
    assert learned is not None and learned.source.startswith("history: 2 exact batch(es)")


def test_auto_with_nowhere_to_run_fails_the_submit_task_in_one_line(tmp_path, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from hybrid_provider.operators.submit import ArgoSubmitOperator

    extra = {"backend": "local", "store_uri": str(tmp_path),
             "local_quota": '{"cpu": 0, "gpu": 0, "qpu": 1}'}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_HQ_QPU_ONLY", json.dumps({"conn_type": "hybrid_quantum",
                                                               "extra": extra}))  # fmt: skip
    job = _job(tmp_path, "job", batches=2)
    submit = ArgoSubmitOperator(task_id="submit", manifest_uri=job.manifest_uri, flavor="auto",
                                hybrid_conn_id="hq_qpu_only")  # fmt: skip
    with pytest.raises(AirflowFailException) as failed:
        submit.execute({"run_id": "manual__2026-12-02"})
    message = str(failed.value)
    assert "\n" not in message and message.startswith("flavor auto found no flavor to run on")
    assert "cpu: no slots in the local quota" in message
    assert "qpu: exact mode never runs on a QPU" in message
    assert not (tmp_path / "_runs").exists()


def test_an_ibm_runtime_sampler_puts_every_batch_on_the_qpu_flavor(tmp_path):
    """The sampler decides where circuits run; the qpu quota stands for the device."""
    from hybrid_provider.placement.decide import decide

    job = _job(tmp_path, "job", batches=3)
    placement = decide(LocalBackend(str(tmp_path), quota={"cpu": 4, "qpu": 1}), job.manifest,
                       job.manifest_uri, mode="shots", requested="auto", store_uri=str(tmp_path),
                       workflow="w", sampler="ibm-runtime:fake_torino")  # fmt: skip
    assert set(placement.assignment.values()) == {Flavor.QPU}
    assert "IBM Quantum device" in placement.reasons[0]
