"""ArgoSubmitOperator, KueueWaitSensor and KueueWaitTrigger on the kubernetes backend,
against the emulated API server (real HTTP, real cncf-kubernetes hooks and clients).

Only what the real engines (tests/controlplane) cannot show quickly is here: a create race
answered 409, Argo's compressedNodes, a queue wait of many minutes (backdated), the trigger's
polling at millisecond intervals, and the operator's own surface (labels, the Argo link,
serialisation). Reattaching, stopping, replacing, admission, queue positions, preemption and
failed batches are specified against the real Kueue and Argo in test_real_engines.py."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pendulum
import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
from k8s_support import ARGO_UI, NAMESPACE, write_fake_manifest

from hybrid_provider.links import ArgoWorkflowLink
from hybrid_provider.operators.submit import ArgoSubmitOperator
from hybrid_provider.sensors.kueue_wait import KueueWaitSensor
from hybrid_provider.triggers.kueue_wait import KueueWaitTrigger

RUN_ID = "scheduled__2026-11-28T00:00:00+00:00"
DAG_ARGS = {"schedule": None, "start_date": pendulum.datetime(2026, 11, 1, tz="UTC")}


def submit_task(manifest_uri, **kwargs) -> ArgoSubmitOperator:
    with DAG(dag_id="nightly_circuit_cutting", **DAG_ARGS):
        return ArgoSubmitOperator(task_id="submit", manifest_uri=manifest_uri, **kwargs)


def wait_task(name, **kwargs) -> KueueWaitSensor:
    with DAG(dag_id="nightly_circuit_cutting", **DAG_ARGS):
        sensor = KueueWaitSensor(task_id="wait", workflow_name=name, **kwargs)
    return sensor


def submitted(manifest_uri, **kwargs) -> tuple[ArgoSubmitOperator, dict]:
    op = submit_task(manifest_uri, **kwargs)
    return op, op.execute({"run_id": RUN_ID})


def posts(cluster) -> int:
    return sum(1 for method, path in cluster.server.requests if method == "POST")


def backdate(cluster, name, seconds):
    """Pretend the workflow and its pods were created ``seconds`` ago."""
    past = (datetime.now(timezone.utc) - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with cluster.server.lock:
        workflow = cluster.argo.workflow(NAMESPACE, name)
        workflow["status"]["startedAt"] = past
        for node in workflow["status"]["nodes"].values():
            node["startedAt"] = past
        cluster.server.put("argoproj.io", "workflows", workflow)
        for pod in cluster.server.objects("", "pods", NAMESPACE):
            pod["metadata"]["creationTimestamp"] = past
            if pod["status"].get("startTime"):
                pod["status"]["startTime"] = past
        for workload in cluster.server.objects("kueue.x-k8s.io", "workloads", NAMESPACE):
            for cond in workload.get("status", {}).get("conditions", []):
                cond["lastTransitionTime"] = past


# --------------------------------------------------------------------------- submit


def test_submit_creates_one_labelled_workflow_and_links_to_argo(cluster, manifest_uri):
    op, result = submitted(manifest_uri, flavor="gpu", priority_class="hybrid-quantum-nightly")
    (workflow,) = cluster.workflows()
    name = workflow["metadata"]["name"]
    assert result["workflow_name"] == name and result["backend"] == "kubernetes"
    labels = workflow["metadata"]["labels"]
    assert labels["hybrid-quantum.io/dag-id"] == "nightly_circuit_cutting"
    assert labels["hybrid-quantum.io/task-id"] == "submit"
    assert labels["hybrid-quantum.io/run-id"].startswith("scheduled__2026-11-28")
    url = f"{ARGO_UI}/workflows/{NAMESPACE}/{name}"
    assert result["ui_url"] == url
    assert ArgoWorkflowLink().get_link(op, ti_key=None) == url
    assert any(isinstance(link, ArgoWorkflowLink) for link in op.operator_extra_links)
    retry = workflow["spec"]["templates"][0]["retryStrategy"]
    assert retry["limit"] == 3  # from the connection's extras


def test_a_create_race_answered_409_reads_the_existing_workflow(cluster, manifest_uri, monkeypatch):
    from hybrid_provider.hooks.kubernetes import ArgoKueueHook

    _, first = submitted(manifest_uri)
    real_get = ArgoKueueHook.get_workflow
    calls = []

    def blind_first_get(self, name, namespace):  # the other try created it in between
        calls.append(name)
        return None if len(calls) == 1 else real_get(self, name, namespace)

    monkeypatch.setattr(ArgoKueueHook, "get_workflow", blind_first_get)
    _, again = submitted(manifest_uri)
    assert again["workflow_name"] == first["workflow_name"]
    assert cluster.server.count("argoproj.io", "workflows") == 1
    assert posts(cluster) == 2  # the second POST got 409 AlreadyExists


def test_a_different_spec_under_the_same_name_is_refused(cluster, manifest_uri):
    submitted(manifest_uri)
    with pytest.raises(Exception, match="another spec"):
        submitted(manifest_uri, mode="shots", shots=100)
    assert cluster.server.count("argoproj.io", "workflows") == 1


def test_queue_wait_timeout_is_separate_from_run_time(cluster, tmp_path):
    uri = write_fake_manifest(tmp_path / "q", num_batches=2)
    _, result = submitted(uri)
    name = result["workflow_name"]
    cluster.argo.start(NAMESPACE, name)
    backdate(cluster, name, 600)  # ten minutes in the queue, nothing admitted
    with pytest.raises(AirflowFailException, match=r"queue wait exceeded: .* waited 6\d\d s"):
        wait_task(name, queue_wait_timeout=timedelta(minutes=5)).poke({})
    assert wait_task(name, queue_wait_timeout=timedelta(minutes=15)).poke({}) is False

    cluster.argo.admit(NAMESPACE, name, 0)
    backdate(cluster, name, 7200)  # one batch has run for two hours, the other still queued
    assert wait_task(name, queue_wait_timeout=60).poke({}) is False  # run time is not queue time


def test_compressed_nodes_read_the_same(cluster, manifest_uri):
    _, result = submitted(manifest_uri)
    name = result["workflow_name"]
    cluster.argo.start(NAMESPACE, name)
    cluster.argo.admit(NAMESPACE, name, 0)
    cluster.argo.finish(NAMESPACE, name, 0)
    backend = wait_task(name).hook.get_backend()
    before = backend.status(name)
    cluster.argo.compress_nodes(NAMESPACE, name)
    workflow = cluster.argo.workflow(NAMESPACE, name)
    assert "nodes" not in workflow["status"] and workflow["status"]["compressedNodes"]
    after = backend.status(name)
    assert after.model_dump() == before.model_dump()
    assert after.progress == "1/4"


def test_missing_workflow_is_a_clear_error(cluster):
    with pytest.raises(Exception, match="no Argo workflow named hq-nope"):
        wait_task("hq-nope").poke({})


# --------------------------------------------------------------------------- deferrable


def _first_event(trigger):
    async def first():
        return await trigger.run().__anext__()

    return asyncio.run(asyncio.wait_for(first(), 30))


def test_deferrable_sensor_defers_to_a_serializable_trigger(cluster, manifest_uri):
    _, result = submitted(manifest_uri)
    name = result["workflow_name"]
    cluster.argo.start(NAMESPACE, name)
    sensor = wait_task(name, deferrable=True, queue_wait_timeout=300, poke_interval=0.05)
    with pytest.raises(TaskDeferred) as caught:
        sensor.execute({})
    trigger = caught.value.trigger
    path, kwargs = trigger.serialize()
    assert path == "hybrid_provider.triggers.kueue_wait.KueueWaitTrigger"
    rebuilt = KueueWaitTrigger(**kwargs)
    assert rebuilt.serialize() == (path, kwargs)
    assert kwargs["backend_config"]["namespace"] == NAMESPACE
    assert kwargs["queue_wait_timeout"] == 300

    for batch in range(4):
        cluster.argo.admit(NAMESPACE, name, batch)
        cluster.argo.finish(NAMESPACE, name, batch)
    event = _first_event(rebuilt)
    assert event.payload["state"] == "done"
    assert sensor.execute_complete({}, event.payload)["phase"] == "Succeeded"


def test_trigger_reports_failure_and_queue_timeout(cluster, tmp_path):
    uri = write_fake_manifest(tmp_path / "t", num_batches=1)
    _, result = submitted(uri)
    name = result["workflow_name"]
    cluster.argo.start(NAMESPACE, name)
    backdate(cluster, name, 120)
    config = wait_task(name).hook.get_backend().config()
    trigger = KueueWaitTrigger(
        name, "kubernetes", config, queue_wait_timeout=60, poll_interval=0.05
    )
    event = _first_event(trigger)
    assert event.payload["state"] == "queue_timeout"
    with pytest.raises(AirflowFailException, match="queue wait exceeded"):
        wait_task(name).execute_complete({}, event.payload)

    cluster.argo.admit(NAMESPACE, name, 0)
    cluster.argo.finish(NAMESPACE, name, 0, exit_code=2, message="bad input")
    event = _first_event(KueueWaitTrigger(name, "kubernetes", config, poll_interval=0.05))
    assert event.payload["state"] == "failed" and "bad input" in event.payload["message"]


def test_trigger_waits_while_batches_progress(cluster, manifest_uri):
    _, result = submitted(manifest_uri)
    name = result["workflow_name"]
    cluster.argo.start(NAMESPACE, name)
    config = wait_task(name).hook.get_backend().config()
    trigger = KueueWaitTrigger(name, "kubernetes", config, target="admitted", poll_interval=0.05)

    async def scenario():
        waiting = asyncio.ensure_future(trigger.run().__anext__())
        await asyncio.sleep(0.3)
        assert not waiting.done()
        for batch in range(4):
            await asyncio.to_thread(cluster.argo.admit, NAMESPACE, name, batch)
        return await asyncio.wait_for(waiting, 10)

    event = asyncio.run(scenario())
    assert event.payload["state"] == "done"
    counts = event.payload["summary"]["by_flavor"]["cpu"]
    assert set(counts) <= {"admitted", "running"} and sum(counts.values()) == 4, counts


def test_trigger_on_kill_stops_the_workflow(cluster, manifest_uri):
    _, result = submitted(manifest_uri)
    name = result["workflow_name"]
    config = wait_task(name).hook.get_backend().config()
    asyncio.run(KueueWaitTrigger(name, "kubernetes", config, stop_on_kill=False).on_kill())
    assert "shutdown" not in cluster.argo.workflow(NAMESPACE, name)["spec"]
    asyncio.run(KueueWaitTrigger(name, "kubernetes", config).on_kill())
    assert cluster.argo.workflow(NAMESPACE, name)["spec"]["shutdown"] == "Stop"


def test_trigger_on_the_local_backend_reads_the_local_status(tmp_path):
    from hybrid_provider.backends.local.backend import LocalBackend, write_state
    from hybrid_provider.backends.status import BatchStatus, WorkflowPhase, WorkflowStatus

    store = f"file://{tmp_path}/store"
    quota = {"cpu": 1, "gpu": 0, "qpu": 1}
    run_dir = LocalBackend(store, quota).runs_dir / "hq-local"
    run_dir.mkdir(parents=True)
    batch = BatchStatus(index=0, flavor="cpu", phase="Succeeded", admission="finished")
    write_state(
        run_dir,
        WorkflowStatus(
            name="hq-local", backend="local", phase=WorkflowPhase.SUCCEEDED, batches=[batch]
        ),
    )
    trigger = KueueWaitTrigger("hq-local", "local", {"store_uri": store, "quota": quota})
    event = _first_event(trigger)
    assert event.payload["state"] == "done" and event.payload["summary"]["progress"] == "1/1"
