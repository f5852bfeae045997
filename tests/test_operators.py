"""The operators and the sensor over the local backend, outside a DAG run."""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from airflow.sdk.exceptions import AirflowFailException
from helpers import exact_values, random_ansatz
from qiskit import qasm3

from hybrid_provider.backends.local.backend import LocalBackend
from hybrid_provider.backends.status import (
    Admission,
    BatchPhase,
    BatchStatus,
    WorkflowPhase,
    WorkflowStatus,
)
from hybrid_provider.core.errors import InputError
from hybrid_provider.core.execute.batch import run_batch
from hybrid_provider.core.execute.options import ExecutionOptions
from hybrid_provider.hooks.hybrid_quantum import HybridQuantumHook
from hybrid_provider.operators.cut import CutCircuitOperator
from hybrid_provider.operators.reconstruct import CupyReconstructOperator
from hybrid_provider.operators.submit import ArgoSubmitOperator
from hybrid_provider.sensors.kueue_wait import KueueWaitSensor

CONTEXT = {"run_id": "manual__2026-11-28T00:00:00+00:00"}


@pytest.fixture
def circuit_text():
    circuit = random_ansatz(6, reps=2)
    return circuit, qasm3.dumps(circuit)


def _cut(tmp_path, text, **kwargs):
    operator = CutCircuitOperator(
        task_id="cut",
        circuit=text,
        observables=["ZZZZZZ", "IXXIII"],
        partition_labels="AAABBB",
        num_batches=3,
        job_name="tests/run-1",
        store_uri=str(tmp_path),
        **kwargs,
    )
    return operator.execute(CONTEXT)


def _wait_until_done(tmp_path, name, **kwargs):
    sensor = KueueWaitSensor(task_id="wait", workflow_name=name, store_uri=str(tmp_path), **kwargs)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        outcome = sensor.poke({})
        if outcome:
            return outcome.xcom_value
        time.sleep(0.1)
    raise AssertionError("the workflow did not finish in 60 s")


def test_the_four_operators_chain_over_the_local_backend(tmp_path, circuit_text, capsys):
    circuit, text = circuit_text
    cut = _cut(tmp_path, text)
    assert cut["num_batches"] == 3 and cut["num_cuts"] == 2
    assert json.loads(json.dumps(cut)) == cut  # XCom stays small and serialisable
    submit = ArgoSubmitOperator(
        task_id="submit", manifest_uri=cut["manifest_uri"], store_uri=str(tmp_path)
    )
    submitted = submit.execute(CONTEXT)
    again = ArgoSubmitOperator(
        task_id="submit", manifest_uri=cut["manifest_uri"], store_uri=str(tmp_path)
    )
    assert (
        again.execute(CONTEXT)["workflow_name"] == submitted["workflow_name"]
    )  # a retry reattaches
    runs = list((tmp_path / "_runs").iterdir())
    assert [r.name for r in runs] == [submitted["workflow_name"]]
    summary = _wait_until_done(tmp_path, submitted["workflow_name"], poke_interval=1000)
    assert summary["phase"] == "Succeeded" and summary["progress"] == "3/3"
    assert summary["by_flavor"] == {"cpu": {"finished": 3}}
    log = capsys.readouterr().out
    assert "batch 2 (3 of 3) cpu finished: queued" in log
    assert_transitions_logged_once(log, 3)
    reconstruct = CupyReconstructOperator(task_id="reconstruct", manifest_uri=cut["manifest_uri"])
    result = reconstruct.execute(CONTEXT)
    assert result["array_module"] == "numpy"
    exact = list(exact_values(circuit, ["ZZZZZZ", "IXXIII"]))
    assert result["values"] == pytest.approx(exact, abs=1e-8)
    assert result["exact"] == pytest.approx(exact, abs=1e-12)  # computed once, for publish too
    log = "".join(capsys.readouterr())  # the values where engineers look: the task's log
    for label, value in zip(["ZZZZZZ", "IXXIII"], exact, strict=True):
        reference = re.escape(f"{value:+.10f}")
        assert re.search(rf"<{label}> = [+-]\d\.\d{{10}} ± 0\.00e\+00   exact {reference}", log)
    # the Results link opens the report (the store here is not the one the UI plugin serves)
    assert reconstruct.results_url == result["results_uri"].replace(
        "results/reconstruction.json", "report.html"
    )
    assert (tmp_path / "tests" / "run-1" / "report.png").exists()
    assert (tmp_path / "tests" / "run-1" / "results" / "reconstruction.json").exists()
    assert_provenance(cut["manifest_uri"], submitted["workflow_name"])


def assert_transitions_logged_once(log: str, total: int) -> None:
    """Every batch's finish is logged once, as the wait observed it, with when it happened."""
    for n in range(total):
        finished = re.findall(
            rf"batch {n} \({n + 1} of {total}\) cpu: (?:\w+ -> )?finished at", log
        )
        assert len(finished) == 1, (n, log[-2000:])


def assert_provenance(manifest_uri: str, workflow: str) -> None:
    """The cut task is the job's origin; each batch names the local run and flavor it ran in."""
    from hybrid_provider.core.execute.record import read_record
    from hybrid_provider.core.manifest import load_manifest

    manifest = load_manifest(manifest_uri)
    assert manifest.provenance.origin.model_dump() == {
        "dag_id": "adhoc_airflow", "run_id": CONTEXT["run_id"], "task_id": "cut",
        "try_number": None,
    }  # fmt: skip
    for batch in manifest.batches:
        executor = read_record(manifest_uri, batch.index).provenance.executor
        assert (executor.kind, executor.workflow, executor.flavor) == ("process", workflow, "cpu")


def test_a_nightly_verify_sample_that_does_not_reproduce_publishes_nothing(
    tmp_path, circuit_text, capsys
):
    _, text = circuit_text
    cut = _cut(tmp_path, text)
    manifest_uri = cut["manifest_uri"]
    for batch in range(cut["num_batches"]):
        run_batch(manifest_uri, batch, ExecutionOptions(mode="shots", shots=100))
    reconstruct = CupyReconstructOperator(
        task_id="reconstruct", manifest_uri=manifest_uri, verify_sample=3
    )
    reconstruct.execute(CONTEXT)
    assert capsys.readouterr().out.count("reproduces the stored outcomes") == 3
    results = tmp_path / "tests" / "run-1" / "results" / "reconstruction.json"
    results.unlink()
    stored = tmp_path / "tests" / "run-1" / "results" / "batch-00001.npz"
    kept = stored.read_bytes()
    run_batch(manifest_uri, 1, ExecutionOptions(mode="shots", shots=100, seed=5))
    stored.write_bytes(kept)  # outcomes of another seed than the record says
    with pytest.raises(AirflowFailException, match=r"batch\(es\) \[1\] did not reproduce"):
        reconstruct.execute(CONTEXT)
    assert not results.exists(), "nothing was published"


def test_bad_input_fails_the_task_without_retrying(tmp_path, circuit_text):
    _, text = circuit_text
    with pytest.raises(AirflowFailException, match="has 4 letters but the circuit has 6"):
        CutCircuitOperator(
            task_id="cut",
            circuit=text,
            observables="ZZZZ",
            partition_labels="AAABBB",
            store_uri=str(tmp_path),
        ).execute(CONTEXT)
    cut = _cut(tmp_path, text)
    with pytest.raises(AirflowFailException, match="positive number of shots"):
        ArgoSubmitOperator(
            task_id="submit",
            manifest_uri=cut["manifest_uri"],
            mode="shots",
            store_uri=str(tmp_path),
        ).execute(CONTEXT)
    with pytest.raises(AirflowFailException, match="(?s)3 of 3 batch result"):
        CupyReconstructOperator(task_id="reconstruct", manifest_uri=cut["manifest_uri"]).execute(
            CONTEXT
        )


def test_an_unknown_backend_fails_the_submit_task_at_once(tmp_path, circuit_text):
    _, text = circuit_text
    cut = _cut(tmp_path, text)
    with pytest.raises(AirflowFailException, match="unknown backend: .*one of kubernetes, local"):
        ArgoSubmitOperator(
            task_id="submit",
            manifest_uri=cut["manifest_uri"],
            backend="slurm",
            store_uri=str(tmp_path),
        ).execute(CONTEXT)


def test_a_flavor_without_local_quota_fails_the_submit_task_at_once(
    tmp_path, circuit_text, monkeypatch
):
    """It used to be accepted and to fail only in the wait, with a traceback around the reason."""
    extra = {"backend": "local", "store_uri": str(tmp_path), "local_quota": '{"gpu": 0}'}
    monkeypatch.setenv(
        "AIRFLOW_CONN_HQ_NO_GPU", json.dumps({"conn_type": "hybrid_quantum", "extra": extra})
    )
    _, text = circuit_text
    cut = _cut(tmp_path, text)
    submit = ArgoSubmitOperator(
        task_id="submit", manifest_uri=cut["manifest_uri"], flavor="gpu", hybrid_conn_id="hq_no_gpu"
    )
    with pytest.raises(AirflowFailException) as failed:
        submit.execute(CONTEXT)
    message = str(failed.value)
    assert "\n" not in message
    assert "flavor gpu has no slots" in message and "gpu=0" in message
    assert "use flavor cpu" in message and "local_quota" in message
    assert not (tmp_path / "_runs").exists()


def test_on_kill_stops_the_workflow(tmp_path, circuit_text):
    _, text = circuit_text
    cut = _cut(tmp_path, text)
    submit = ArgoSubmitOperator(
        task_id="submit",
        manifest_uri=cut["manifest_uri"],
        mode="shots",
        shots=300_000,
        store_uri=str(tmp_path),
    )
    name = submit.execute(CONTEXT)["workflow_name"]
    submit.on_kill()
    with pytest.raises(AirflowFailException, match="Stopped"):
        _wait_until_done(tmp_path, name)


class _Scripted:
    """A backend whose status is given; it records the workflows it was asked to stop."""

    name = "scripted"

    def __init__(self, status):
        self._status = status
        self.stopped: list[str] = []

    def status(self, _name):
        return self._status

    def stop(self, name):
        self.stopped.append(name)


def _scripted(monkeypatch, status) -> _Scripted:
    backend = _Scripted(status)
    monkeypatch.setattr(HybridQuantumHook, "get_backend", lambda self: backend)
    return backend


def _pending_for(seconds, flavor="gpu"):
    since = datetime.now(timezone.utc) - timedelta(seconds=seconds)
    return BatchStatus(
        index=0, flavor=flavor, pending_since=since, queue_position=4, reason="Pending"
    )


def test_queue_wait_timeout_is_separate_from_run_time(monkeypatch):
    sensor = KueueWaitSensor(
        task_id="wait", workflow_name="w", queue_wait_timeout=timedelta(seconds=60)
    )
    waiting = WorkflowStatus(
        name="w", backend="s", phase=WorkflowPhase.RUNNING, batches=[_pending_for(300)]
    )
    backend = _scripted(monkeypatch, waiting)
    with pytest.raises(AirflowFailException, match=r"queue wait exceeded.*position 4"):
        sensor.poke({})
    assert backend.stopped == ["w"], "a workflow given up on is stopped: its pods hold no quota"
    running = BatchStatus(
        index=1, flavor="cpu", phase=BatchPhase.RUNNING, admission=Admission.ADMITTED
    )
    busy = WorkflowStatus(
        name="w", backend="s", phase=WorkflowPhase.RUNNING, batches=[_pending_for(300), running]
    )
    _scripted(monkeypatch, busy)
    assert sensor.poke({}) is False  # a long run with its own batches running is not a queue wait


def test_a_batch_that_cannot_start_fails_the_wait_and_stops_the_workflow(monkeypatch):
    blocked = BatchStatus(
        index=2,
        flavor="cpu",
        reason="CreateContainerConfigError",
        message='container main: secret "hybrid-quantum-store" not found',
    )
    status = WorkflowStatus(name="w", backend="s", phase=WorkflowPhase.RUNNING, batches=[blocked])
    backend = _scripted(monkeypatch, status)
    with pytest.raises(AirflowFailException, match='batch 2 of w cannot start.*"hybrid-quantum'):
        KueueWaitSensor(task_id="wait", workflow_name="w").poke({})
    assert backend.stopped == ["w"]
    kept = _scripted(monkeypatch, status)
    with pytest.raises(AirflowFailException):
        KueueWaitSensor(task_id="keep", workflow_name="w", stop_on_kill=False).poke({})
    assert kept.stopped == [], "stop_on_kill=False leaves the workflow alone"


def test_the_wait_fails_with_its_reason_even_when_the_stop_fails(monkeypatch):
    blocked = BatchStatus(index=0, flavor="cpu", reason="Misconfigured", message="no queue")
    backend = _scripted(
        monkeypatch,
        WorkflowStatus(name="w", backend="s", phase=WorkflowPhase.RUNNING, batches=[blocked]),
    )

    def refuse(name):
        raise RuntimeError("the API server said no")

    backend.stop = refuse
    with pytest.raises(AirflowFailException, match="Misconfigured: no queue"):
        KueueWaitSensor(task_id="wait", workflow_name="w").poke({})


def test_target_admitted_and_failure_messages(monkeypatch):
    admitted = BatchStatus(
        index=0, flavor="cpu", phase=BatchPhase.RUNNING, admission=Admission.ADMITTED
    )
    _scripted(
        monkeypatch,
        WorkflowStatus(name="w", backend="s", phase=WorkflowPhase.RUNNING, batches=[admitted]),
    )
    assert KueueWaitSensor(task_id="a", workflow_name="w", target="admitted").poke({}).is_done
    assert KueueWaitSensor(task_id="f", workflow_name="w", target="finished").poke({}) is False
    failed = BatchStatus(
        index=3, flavor="cpu", phase=BatchPhase.FAILED, message="bad input: no such batch"
    )
    _scripted(
        monkeypatch,
        WorkflowStatus(name="w", backend="s", phase=WorkflowPhase.FAILED, batches=[failed]),
    )
    with pytest.raises(AirflowFailException, match="batch 3: bad input: no such batch"):
        KueueWaitSensor(task_id="f", workflow_name="w").poke({})
    with pytest.raises(ValueError, match="target must be one of"):
        KueueWaitSensor(task_id="x", workflow_name="w", target="running")


def test_the_hook_reads_backend_and_store_from_its_connection(tmp_path, monkeypatch):
    hook = HybridQuantumHook()
    assert hook.settings()["backend"] == "local"  # no connection: the local default
    extra = {"backend": "local", "store_uri": str(tmp_path / "from-connection")}
    monkeypatch.setenv(
        "AIRFLOW_CONN_HQ_TEST", json.dumps({"conn_type": "hybrid_quantum", "extra": extra})
    )
    settings = HybridQuantumHook("hq_test").settings()
    assert settings["store_uri"] == f"file://{tmp_path / 'from-connection'}"
    assert HybridQuantumHook("hq_test", store_uri=str(tmp_path)).store_uri == f"file://{tmp_path}"


def test_the_local_quota_comes_from_the_connection_form_as_json(tmp_path, monkeypatch):
    extra = {"backend": "local", "store_uri": str(tmp_path), "local_quota": '{"cpu": 1, "gpu": 3}'}
    monkeypatch.setenv(
        "AIRFLOW_CONN_HQ_QUOTA", json.dumps({"conn_type": "hybrid_quantum", "extra": extra})
    )
    backend = HybridQuantumHook("hq_quota").get_backend()
    assert backend.quota["cpu"] == 1 and backend.quota["gpu"] == 3
    rebuilt = LocalBackend(**json.loads(json.dumps(backend.config())))  # as a trigger would
    assert rebuilt.quota == backend.quota and rebuilt.runs_dir == backend.runs_dir
    extra["local_quota"] = "{cpu: 1"
    monkeypatch.setenv(
        "AIRFLOW_CONN_HQ_QUOTA", json.dumps({"conn_type": "hybrid_quantum", "extra": extra})
    )
    with pytest.raises(InputError, match=r"local_quota must be JSON"):
        HybridQuantumHook("hq_quota").get_backend()


def test_the_wait_defers_by_default_and_never_reschedules():
    """Reschedule mode meets apache/airflow#71172 (phantom retries): deferral is the default,
    poke mode the fallback without a triggerer."""
    assert KueueWaitSensor(task_id="wait", workflow_name="w").deferrable
    fallback = KueueWaitSensor(task_id="w2", workflow_name="w", deferrable=False)
    assert (fallback.deferrable, fallback.mode) == (False, "poke")


def test_a_deferred_wait_resumes_with_the_record_of_every_batch(
    tmp_path, circuit_text, capsys, caplog
):
    import asyncio

    from airflow.sdk.exceptions import TaskDeferred

    _, text = circuit_text
    cut = _cut(tmp_path, text)
    submitted = ArgoSubmitOperator(
        task_id="submit", manifest_uri=cut["manifest_uri"], store_uri=str(tmp_path)
    ).execute(CONTEXT)
    sensor = KueueWaitSensor(
        task_id="wait", workflow_name=submitted["workflow_name"], store_uri=str(tmp_path),
        poke_interval=0.2,
    )  # fmt: skip
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(CONTEXT)

    async def first_event():
        async for event in deferred.value.trigger.run():
            return event.payload

    with caplog.at_level(logging.INFO):
        event = asyncio.run(asyncio.wait_for(first_event(), timeout=90))
    assert_transitions_logged_once(caplog.text + capsys.readouterr().out, 3)
    assert sensor.execute_complete(CONTEXT, event)["progress"] == "3/3"
    log = capsys.readouterr().out
    assert all(f"batch {n} ({n + 1} of 3) cpu finished: queued" in log for n in (0, 1, 2))


def test_a_trigger_event_the_sensor_does_not_know_fails_the_task_with_its_message():
    sensor = KueueWaitSensor(task_id="wait", workflow_name="w", stop_on_kill=False)
    with pytest.raises(AirflowFailException, match="cluster unreachable"):
        sensor.execute_complete({}, {"state": "error", "message": "cluster unreachable"})


def test_the_wait_reads_the_backend_the_submit_used_not_its_own_connection(
    tmp_path, circuit_text, monkeypatch
):
    """The connection says kubernetes; the submit task overrides it with local. The wait,
    given what the submit returned, reads the local run (it used to ask the cluster)."""
    cluster = {"conn_type": "hybrid_quantum",
               "extra": {"backend": "kubernetes", "kubernetes_conn_id": "nowhere"}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_HYBRID_QUANTUM_DEFAULT", json.dumps(cluster))
    _, text = circuit_text
    cut = _cut(tmp_path, text)
    submitted = ArgoSubmitOperator(
        task_id="submit", manifest_uri=cut["manifest_uri"], backend="local",
        store_uri=str(tmp_path),
    ).execute(CONTEXT)  # fmt: skip
    assert submitted["backend"] == "local"
    sensor = KueueWaitSensor(task_id="wait", submitted=submitted, poke_interval=0.1)
    deadline = time.monotonic() + 60
    while not (outcome := sensor.poke({})) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert outcome and outcome.xcom_value["progress"] == "3/3"


def test_the_wait_ends_with_a_timeline_that_outlives_its_log(tmp_path, circuit_text, capsys):
    """The last log had only "batch k/N done" (1-based, unlike every other line); nothing said
    when a batch was queued, started or finished, and a retry lost even that."""
    _, text = circuit_text
    cut = _cut(tmp_path, text)
    submitted = ArgoSubmitOperator(
        task_id="submit", manifest_uri=cut["manifest_uri"], store_uri=str(tmp_path)
    ).execute(CONTEXT)
    sensor = KueueWaitSensor(task_id="wait", submitted=submitted, poke_interval=0.1)
    deadline = time.monotonic() + 60
    while not sensor.poke({}) and time.monotonic() < deadline:
        time.sleep(0.1)
    log = "".join(capsys.readouterr())
    lines = [line for line in log.splitlines() if "cpu finished: queued" in line]
    assert len(lines) == 3, log
    for n, line in enumerate(lines):
        assert re.search(
            rf"batch {n} \({n + 1} of 3\) cpu finished: queued \d\d:\d\d:\d\d\.\d{{3}}, started "
            rf"\d\d:\d\d:\d\d\.\d{{3}} after \d+\.\d s in queue, finished \S+ \(\d+\.\d s\); "
            r"1 attempt\(s\), 0 preemption\(s\)",
            line,
        ), line
    timeline = json.loads((tmp_path / "tests" / "run-1" / "results" / "timeline.json").read_text())
    assert timeline["workflow"] == submitted["workflow_name"] and timeline["phase"] == "Succeeded"
    assert [b["index"] for b in timeline["batches"]] == [0, 1, 2]
    assert all(
        b["pending_since"] <= b["started_at"] <= b["finished_at"] for b in timeline["batches"]
    )
    CupyReconstructOperator(task_id="reconstruct", manifest_uri=cut["manifest_uri"]).execute(
        CONTEXT
    )
    page = (tmp_path / "tests" / "run-1" / "report.html").read_text()
    assert page.split('<table id="timeline">')[1].split("</table>")[0].count("<tr>") == 4
