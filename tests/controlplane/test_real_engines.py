"""The Kubernetes path on the real engines: kube-apiserver, Kueue and Argo built from upstream.

This file is the specification of the kubernetes backend where it meets the real controllers:
the chart installs through their webhooks, the nightly DAG gives exact values, Kueue's quota
and preemption are respected and reported, Argo's retries do what we ask of them, and bad
configuration fails with a message that names it, leaving nothing running. Pods run through the
node agent (``node_agent.py``); everything else is the upstream code.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest
from engine_support import K8S_CONN, NAMESPACE, RealCluster, install_chart, sample_until

from hybrid_provider.backends.kubernetes.status import argo_pod_name

pytestmark = [pytest.mark.slow, pytest.mark.engines]

REPO = Path(__file__).resolve().parents[2]
OBSERVABLES = ["ZZZZ", "XXII", "IZZI"]


# --- helpers ---------------------------------------------------------------------------------


def small_job(real: RealCluster, name: str, num_batches: int):
    """A 4-qubit ansatz cut into 2 + 2 qubits, written to the cluster's store."""
    from helpers import random_ansatz

    from hybrid_provider.core.cut.job import write_job
    from hybrid_provider.core.cut.plan import plan_cuts
    from hybrid_provider.core.inputs import parse_observables

    circuit = random_ansatz(4, reps=1, seed=len(name))
    plan = plan_cuts(circuit, parse_observables(OBSERVABLES, 4), partition_labels="AABB")
    return write_job(circuit, plan, real.store_uri, name, num_batches), circuit


def backend(real: RealCluster, **options):
    from engine_support import connection_extra

    from hybrid_provider.backends.kubernetes.backend import KubernetesBackend

    extra = connection_extra(real, **options)
    for key in ("backend", "kubernetes_conn_id", "store_uri"):
        extra.pop(key)
    return KubernetesBackend(store_uri=real.store_uri, kubernetes_conn_id=K8S_CONN, **extra)


def spec_for(job, name: str, **kwargs):
    from hybrid_provider.backends.spec import compile_spec
    from hybrid_provider.core.execute.options import ExecutionOptions

    return compile_spec(job.manifest, job.manifest_uri, name, ExecutionOptions(), **kwargs)


def sensor(name: str):
    from hybrid_provider.sensors.kueue_wait import KueueWaitSensor

    return KueueWaitSensor(task_id=f"wait-{name}", workflow_name=name, poke_interval=1)


def wait_with_sensor(name: str, timeout: float = 300) -> dict:
    """Poke like the sensor in reschedule mode until it is done; its result."""
    from airflow.sdk import PokeReturnValue

    waiting = sensor(name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = waiting.poke({})
        if isinstance(result, PokeReturnValue) and result.is_done:
            return result.xcom_value
        time.sleep(1)
    raise TimeoutError(f"workflow {name} not finished after {timeout:.0f} s")


def wait_with_trigger(runner, name: str, timeout: float = 300) -> dict:
    """Wait as the deferred sensor does, in the triggerer: the trigger's event."""
    import asyncio

    from hybrid_provider.triggers.kueue_wait import KueueWaitTrigger

    trigger = KueueWaitTrigger(workflow_name=name, backend="kubernetes",
                               backend_config=runner.config(), poll_interval=1)  # fmt: skip

    async def first_event() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(first_event(), timeout))


def assert_exact(job, circuit) -> None:
    from helpers import exact_values

    from hybrid_provider.core.reconstruct.combine import reconstruct_job

    result = reconstruct_job(job.manifest_uri, device="cpu")
    np.testing.assert_allclose(result.values, exact_values(circuit, OBSERVABLES), atol=1e-8)


def assert_within_errors(job, circuit) -> None:
    """Shot mode: within 4 standard errors (plus a floor) of Qiskit's exact values."""
    from helpers import exact_values

    from hybrid_provider.core.reconstruct.combine import reconstruct_job

    result = reconstruct_job(job.manifest_uri, device="cpu")
    deviation = np.abs(np.asarray(result.values) - exact_values(circuit, OBSERVABLES))
    assert np.all(deviation <= 4 * np.asarray(result.std_errors) + 1e-3), deviation


def admitted_workloads(real: RealCluster) -> list[str]:
    """Workloads holding quota now: QuotaReserved and not Finished."""
    held = []
    path = f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{real.namespace}/workloads"
    for workload in real.items(path):
        conditions = {c["type"]: c["status"] for c in workload.get("status", {}).get(
            "conditions", [])}  # fmt: skip
        if conditions.get("QuotaReserved") == "True" and conditions.get("Finished") != "True":
            held.append(workload["metadata"]["name"])
    return held


def argo_batch_metrics(real: RealCluster) -> dict[tuple[str, tuple], float]:
    """The batch templates' custom metrics on Argo's controller ``/metrics`` (compile.py's
    ``batch_metrics``): (name, sorted labels) -> value, for every ``hybrid_quantum_`` sample.
    Argo 4 serves counters without ``_total``; a ``_total`` is dropped all the same, so the
    names read the same after an exporter change."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://127.0.0.1:{real.state.ports['argo-metrics']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name.removesuffix("_total"), tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if "hybrid_quantum_" in s.name
    }


def live_pods(real: RealCluster, workflow: str) -> list[dict]:
    return [p for p in real.pods(f"workflows.argoproj.io/workflow={workflow}")
            if p.get("status", {}).get("phase") in ("Pending", "Running")]  # fmt: skip


# --- the chart and the DAG -------------------------------------------------------------------


def test_the_chart_installs_through_the_webhooks_and_the_token_secret_is_filled(real_cluster):
    api, ns = real_cluster.api, real_cluster.namespace

    def queue_active() -> bool:
        queue = api.get("/apis/kueue.x-k8s.io/v1beta2/clusterqueues/hybrid-quantum-simulators")
        conditions = (queue.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Active" and c["status"] == "True" for c in conditions)

    real_cluster.wait_for("Kueue to activate the ClusterQueue", queue_active, timeout=60)
    assert api.get(f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{ns}/localqueues/hybrid-quantum")
    assert api.get(real_cluster.custom("workflowtemplates", "hybrid-quantum-batch"))
    token = api.get(
        f"/api/v1/namespaces/{ns}/secrets/hybrid-quantum-executor.service-account-token"
    )
    assert token["type"] == "kubernetes.io/service-account-token"
    assert {"token", "ca.crt"} <= set(token.get("data") or {}), "the token controller filled it"


def test_the_nightly_dag_runs_on_the_real_engines_with_exact_values(connections, airflow_db):
    import csv

    import pendulum
    from airflow.utils.state import DagRunState

    spec = importlib.util.spec_from_file_location(
        "nightly_on_real_engines", REPO / "dags" / "nightly_circuit_cutting.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run = module.dag.test(
        logical_date=pendulum.datetime(2026, 11, 21, tz="UTC"),
        run_conf={"mode": "exact", "num_batches": 4, "flavor": "cpu"},
    )
    assert run.state == DagRunState.SUCCESS
    published = run.get_task_instance("publish").xcom_pull(task_ids="publish")
    with open(published.removeprefix("file://"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    values = np.array([float(row["value"]) for row in rows])
    exact = np.array([float(row["exact"]) for row in rows])
    np.testing.assert_allclose(values, exact, rtol=0, atol=1e-8)


# --- Kueue: quota and preemption -------------------------------------------------------------


def test_a_quota_for_two_pods_admits_at_most_two_batches_at_once(real_cluster, connections):
    from hybrid_provider.core.errors import BackendError
    from hybrid_provider.core.execute.options import ExecutionOptions

    job, circuit = small_job(real_cluster, "quota-eight", 8)
    runner = backend(real_cluster)
    spec = spec_for(job, "hq-quota-eight")
    metrics_before = argo_batch_metrics(real_cluster)
    runner.submit(spec)
    assert runner.submit(spec).name == spec.name, "a second submit reattaches"
    other = spec.model_copy(update={"execution": ExecutionOptions(mode="shots", shots=64)})
    with pytest.raises(BackendError, match="already exists .* with another spec"):
        runner.submit(other)
    workflows = real_cluster.items(real_cluster.custom("workflows"),
                                   labelSelector="hybrid-quantum.io/job=quota-eight")  # fmt: skip
    assert len(workflows) == 1
    samples = sample_until(
        lambda: runner.status("hq-quota-eight").phase.finished,
        lambda: len(admitted_workloads(real_cluster)),
        timeout=300,
    )
    status = runner.status("hq-quota-eight")
    assert status.phase.value == "Succeeded", status.summary_line()
    assert max(samples) <= 2, f"more than two Workloads held quota: {max(samples)}"
    assert max(samples) == 2, "the quota was never used to the full"
    assert_exact(job, circuit)
    assert_ran_in_pods(job, workflow="hq-quota-eight", flavor="cpu")
    # Argo's controller serves the batch templates' metrics: 8 attempts that succeeded, and
    # the time to success of 8 batches
    attempts = ("argo_workflows_hybrid_quantum_batch_attempts",
                (("flavor", "cpu"), ("status", "Succeeded")))  # fmt: skip
    seconds = ("argo_workflows_hybrid_quantum_batch_seconds_count", (("flavor", "cpu"),))

    def grown() -> dict[tuple[str, tuple], float]:
        now = argo_batch_metrics(real_cluster)
        return {key: value - metrics_before.get(key, 0.0) for key, value in now.items()}

    real_cluster.wait_for(
        "Argo's batch metrics",
        lambda: sum(v for (name, _), v in grown().items() if "batch_attempts" in name) >= 8,
        timeout=30,
    )
    delta = grown()
    print("Argo batch metrics grown by the run:", delta)
    assert delta[attempts] == 8 and delta[seconds] == 8, delta


def assert_ran_in_pods(job, *, workflow: str, flavor: str) -> None:
    """Every batch record names the pod, node and workflow it ran in (downward API, Argo)."""
    from hybrid_provider.core.execute.record import read_record

    for batch in job.manifest.batches:
        executor = read_record(job.manifest_uri, batch.index).provenance.executor
        assert executor.kind == "pod" and executor.pod and executor.pod.startswith(workflow)
        assert (executor.workflow, executor.flavor, executor.namespace) == (
            workflow, flavor, NAMESPACE,
        )  # fmt: skip
        assert executor.pod_uid and executor.node, executor


def test_the_sensor_logs_queue_positions_while_batches_wait(real_cluster, connections, capsys):
    job, circuit = small_job(real_cluster, "quota-positions", 6)
    backend(real_cluster).submit(spec_for(job, "hq-quota-positions"))
    wait_with_sensor("hq-quota-positions")
    logged = capsys.readouterr().out.splitlines()  # the task logger writes to stdout
    waiting = [line for line in logged if "Waiting for admission" in line]
    assert any("position" in line and "LocalQueue hybrid-quantum" in line for line in waiting), (
        waiting[:5]
    )
    assert_exact(job, circuit)


def test_a_preempted_batch_is_retried_reported_and_the_values_stay_exact(
    real_cluster, connections, capsys
):
    """Nightly batches that take 20 s each hold the quota; an interactive run preempts one."""
    from hybrid_provider.core.execute.options import ExecutionOptions

    nightly, circuit = small_job(real_cluster, "preempt-nightly", 4)
    urgent, urgent_circuit = small_job(real_cluster, "preempt-urgent", 1)
    slow = backend(real_cluster, extra_env={"PYTHONPATH": str(Path(__file__).parent)})
    shots = ExecutionOptions(mode="shots", shots=2000, sampler="slow_sampler:SlowSampler")
    slow.submit(spec_for(nightly, "hq-preempt-nightly", priority_class="hybrid-quantum-nightly")
                .model_copy(update={"execution": shots}))  # fmt: skip
    real_cluster.wait_for(
        "two nightly batches running",
        lambda: (
            sum(b.phase.value == "Running" for b in slow.status("hq-preempt-nightly").batches) == 2
        ),  # fmt: skip
    )
    runner = backend(real_cluster)
    runner.submit(spec_for(urgent, "hq-preempt-urgent",
                           priority_class="hybrid-quantum-interactive"))  # fmt: skip
    wait_with_sensor("hq-preempt-urgent")
    wait_with_sensor("hq-preempt-nightly")
    status = runner.status("hq-preempt-nightly")
    assert status.phase.value == "Succeeded", status.summary_line()
    preempted = [b for b in status.batches if b.preemptions]
    assert preempted, [b.model_dump() for b in status.batches]
    # Kueue stopped a running pod (SIGTERM, exit 143) and deleted it; Argo ran the batch
    # again in a new pod (a retry, or the same node's pod made anew when the old one vanished
    # before Argo saw it end). Either way the batch finished after its preemption.
    for batch in preempted:
        assert batch.phase.value == "Succeeded"
        assert batch.finished_at > batch.preemptions[-1].at
    workflow = real_cluster.workflow("hq-preempt-nightly")
    nodes = [n for n in workflow["status"]["nodes"].values() if n["type"] == "Pod"]
    again = {str(batch.index) for batch in preempted}
    pods_made = {
        argo_pod_name("hq-preempt-nightly", node): 0
        for node in nodes
        if any(
            p["name"] == "batch" and p.get("value") in again for p in node["inputs"]["parameters"]
        )
    }
    for event in real_cluster.items(f"/api/v1/namespaces/{NAMESPACE}/events"):
        involved = event["involvedObject"]
        if event["reason"] == "CreatedWorkload" and involved["name"] in pods_made:
            pods_made[involved["name"]] += 1
    assert sum(pods_made.values()) >= len(preempted) + 1, pods_made
    logged = [line for line in capsys.readouterr().out.splitlines() if "Preempted: " in line]
    assert any(f"batch {preempted[0].index} " in line for line in logged), logged[:3]
    assert_within_errors(nightly, circuit)
    assert_exact(urgent, urgent_circuit)


# --- Argo: retries -----------------------------------------------------------------------------


def test_a_batch_failing_on_bad_input_is_not_retried_and_the_task_fails_with_its_message(
    real_cluster, connections
):
    from airflow.sdk.exceptions import AirflowFailException

    from hybrid_provider.backends.spec import BatchTask

    job, _ = small_job(real_cluster, "bad-input", 2)
    spec = spec_for(job, "hq-bad-input")
    spec = spec.model_copy(update={"batches": [BatchTask(index=7, num_subexperiments=1)]})
    runner = backend(real_cluster)
    runner.submit(spec)
    with pytest.raises(AirflowFailException, match="batch 7 does not exist"):
        wait_with_sensor("hq-bad-input", timeout=120)
    (batch,) = runner.status("hq-bad-input").batches
    assert batch.attempts == 1, "exit code 2 is bad input: never retried"


def test_a_failed_workflow_retried_by_airflow_reruns_only_what_did_not_finish(
    real_cluster, connections
):
    job, circuit = small_job(real_cluster, "replace", 6)
    runner = backend(real_cluster)
    spec = spec_for(job, "hq-replace")
    first = runner.submit(spec)
    real_cluster.wait_for("two finished batches",
                          lambda: runner.status("hq-replace").done >= 2)  # fmt: skip
    runner.stop("hq-replace")
    real_cluster.wait_for("the stopped workflow to fail",
                          lambda: runner.status("hq-replace").phase.value == "Failed")  # fmt: skip
    finished = [b.index for b in runner.status("hq-replace").batches
                if b.phase.value == "Succeeded"]  # fmt: skip
    stamps = _result_stamps(job, finished)
    old_uid = real_cluster.workflow("hq-replace")["metadata"]["uid"]

    second = runner.submit(spec)  # the task's next try: same name, same spec
    assert second.name == first.name
    new_uid = real_cluster.workflow("hq-replace")["metadata"]["uid"]
    assert new_uid != old_uid
    seen = sample_until(
        lambda: runner.status("hq-replace").phase.finished,
        lambda: len(real_cluster.items(real_cluster.custom("workflows"),
                                       labelSelector="hybrid-quantum.io/job=replace")),
        timeout=300,
    )  # fmt: skip
    assert max(seen) == 1, "never a second workflow alongside"
    assert runner.status("hq-replace").phase.value == "Succeeded"
    owners = {ref["uid"] for pod in real_cluster.pods("workflows.argoproj.io/workflow=hq-replace")
              for ref in pod["metadata"].get("ownerReferences", [])}  # fmt: skip
    assert old_uid not in owners, "no pod of the failed workflow was adopted"
    assert _result_stamps(job, finished) == stamps, "finished batches were not run again"
    assert_exact(job, circuit)


def _result_stamps(job, indices: list[int]) -> dict[int, tuple[int, ...]]:
    """Modification times of each batch's stored result files (a rerun rewrites them)."""
    from hybrid_provider.core.execute.record import outcomes_uri, record_uri

    return {
        index: tuple(
            Path(uri(job.manifest_uri, index).removeprefix("file://")).stat().st_mtime_ns
            for uri in (outcomes_uri, record_uri)
        )
        for index in indices
    }


# --- stopping and bad configuration ---------------------------------------------------------


def test_a_killed_task_stops_the_workflow_and_leaves_no_pod_running(real_cluster, connections):
    job, _ = small_job(real_cluster, "killed", 6)
    runner = backend(real_cluster)
    runner.submit(spec_for(job, "hq-killed"))
    real_cluster.wait_for("a running batch", lambda: any(
        b.phase.value == "Running" for b in runner.status("hq-killed").batches))  # fmt: skip
    sensor("hq-killed").on_kill()
    real_cluster.wait_for(
        "the workflow to stop", lambda: runner.status("hq-killed").phase.finished, timeout=60
    )
    real_cluster.wait_for("no live pod", lambda: not live_pods(real_cluster, "hq-killed"),
                          timeout=45)  # fmt: skip


def test_a_missing_store_secret_fails_the_wait_naming_it_and_stops_the_workflow(
    real_cluster, connections
):
    from airflow.sdk.exceptions import AirflowFailException

    connections(store_secret="no-such-store-secret")
    job, _ = small_job(real_cluster, "no-secret", 2)
    runner = backend(real_cluster, store_secret="no-such-store-secret")
    runner.submit(spec_for(job, "hq-no-secret"))
    started = time.monotonic()
    with pytest.raises(AirflowFailException, match='secret "no-such-store-secret" not found'):
        wait_with_sensor("hq-no-secret", timeout=120)
    assert time.monotonic() - started < 60
    real_cluster.wait_for("no live pod", lambda: not live_pods(real_cluster, "hq-no-secret"),
                          timeout=45)  # fmt: skip


def test_a_missing_local_queue_fails_the_submit_naming_it(real_cluster, connections):
    from hybrid_provider.core.errors import InputError

    job, _ = small_job(real_cluster, "no-queue", 2)
    runner = backend(real_cluster)
    with pytest.raises(InputError, match="LocalQueue 'no-such-queue' .* does not exist"):
        runner.submit(spec_for(job, "hq-no-queue", queue_name="no-such-queue"))
    assert real_cluster.workflow("hq-no-queue") is None, "nothing was created"


def test_without_the_executor_token_secret_pods_cannot_start_and_the_wait_says_why(
    real_cluster, connections
):
    """What every run on a real cluster hit before the chart created the Secret."""
    from airflow.sdk.exceptions import AirflowFailException

    secret = (f"/api/v1/namespaces/{NAMESPACE}/secrets/"
              "hybrid-quantum-executor.service-account-token")  # fmt: skip
    real_cluster.api.call("DELETE", secret)
    try:
        job, _ = small_job(real_cluster, "no-token", 1)
        backend(real_cluster).submit(spec_for(job, "hq-no-token"))
        with pytest.raises(AirflowFailException, match="service-account-token.* not found"):
            wait_with_sensor("hq-no-token", timeout=120)
    finally:
        from engine_support import CHART_VALUES

        install_chart(real_cluster.state, CHART_VALUES)


# --- flavor="auto": telemetry from Kueue, re-placement through Argo ----------------------------


def test_auto_places_on_real_queues_and_a_waiting_batch_moves_to_a_free_flavor(
    real_cluster, connections, capsys
):
    """Two slow batches of another run fill the cpu quota. An ``auto`` job placed from Kueue's
    real queues waits on cpu (the QPU's prior is far slower); once it has waited the
    re-placement time, the wait (the trigger, as a deferred sensor waits) moves it to the free
    qpu slot: its pending pod is withdrawn and Argo makes it again on qpu. It runs once, there,
    while the cpu quota is still held."""
    from hybrid_provider.core.execute.options import ExecutionOptions
    from hybrid_provider.core.execute.record import read_record
    from hybrid_provider.placement import History, JobShape, place
    from hybrid_provider.placement.decide import placed_spec

    blockers, _ = small_job(real_cluster, "auto-blockers", 2)
    slow = backend(real_cluster, extra_env={"PYTHONPATH": str(Path(__file__).parent)})
    shots = ExecutionOptions(mode="shots", shots=2000, sampler="slow_sampler:SlowSampler")
    slow.submit(spec_for(blockers, "hq-auto-blockers").model_copy(update={"execution": shots}))
    runner = backend(real_cluster)
    # Kueue updates a ClusterQueue's usage about a second after it admits (measured here)
    real_cluster.wait_for(
        "the cpu quota held by two running batches",
        lambda: runner.telemetry().of("cpu").in_use == 2,
    )
    snapshot = runner.telemetry()
    cpu, qpu = snapshot.of("cpu"), snapshot.of("qpu")
    assert (cpu.slots, cpu.in_use, qpu.slots, qpu.in_use) == (2, 2, 1, 0), snapshot.line()
    assert not snapshot.of("gpu").eligible, "the chart here has no gpu flavor"

    job, circuit = small_job(real_cluster, "auto-moved", 1)
    exact = place(JobShape.of(job.manifest, "exact"), snapshot, History())
    assert exact.flavors == ["cpu"], "exact mode never goes to a QPU, even with cpu full"
    spec, placement = placed_spec(
        runner, job.manifest, job.manifest_uri, "hq-auto-moved",
        ExecutionOptions(mode="shots", shots=4000), requested="auto",
        store_uri=real_cluster.store_uri, replace_after=2.0,
    )  # fmt: skip
    assert placement.assignment == {0: "cpu"}, placement.lines()
    runner.submit(spec)
    event = wait_with_trigger(runner, "hq-auto-moved")  # deferred, the sensor's default
    assert event["state"] == "done", event
    logged = capsys.readouterr()
    status = runner.status("hq-auto-moved")
    (batch,) = status.batches
    assert (batch.flavor, batch.moved_from, batch.attempts) == ("qpu", ["cpu"], 1), batch
    assert "moved from cpu to qpu: not admitted after" in logged.out + logged.err
    assert read_record(job.manifest_uri, 0).provenance.executor.flavor == "qpu"
    assert not slow.status("hq-auto-blockers").phase.finished, "it did not wait for cpu"
    assert_within_errors(job, circuit)
    # the pod Kueue never admitted was the only one withdrawn: one Workload per pod made, and
    # the moved batch's pod ran on the qpu flavor's node
    workloads = real_cluster.items(f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{NAMESPACE}/workloads")
    mine = [w for w in workloads if w["metadata"]["name"].startswith("pod-hq-auto-moved")]
    queues = sorted(w["spec"]["queueName"] for w in mine)
    assert queues in (["hybrid-quantum-qpu"], ["hybrid-quantum", "hybrid-quantum-qpu"]), queues
    assert read_record(job.manifest_uri, 0).provenance.executor.node == "qpu-node-0"

    # the moves ConfigMap belongs to the workflow: deleting the workflow leaves nothing behind
    moves = f"/api/v1/namespaces/{NAMESPACE}/configmaps/hq-auto-moved-moves"
    assert real_cluster.api.get(moves)["data"]["batch-0.flavor"] == "qpu"
    real_cluster.api.call("DELETE", real_cluster.custom("workflows", "hq-auto-moved"))
    real_cluster.wait_for("the moves ConfigMap collected with its workflow",
                          lambda: real_cluster.api.get(moves) is None, timeout=60)  # fmt: skip
    wait_with_sensor("hq-auto-blockers")


def test_a_pod_that_changed_since_it_was_read_is_not_withdrawn(real_cluster, connections):
    """The withdrawal's guard on the real API server: a delete made with a stale
    resourceVersion is refused, and the pod stays."""
    from hybrid_provider.hooks.kubernetes import ArgoKueueHook

    job, _ = small_job(real_cluster, "withdraw-guard", 1)
    runner = backend(real_cluster)
    runner.submit(spec_for(job, "hq-withdraw-guard"))
    selector = "workflows.argoproj.io/workflow=hq-withdraw-guard"
    real_cluster.wait_for("its pod", lambda: real_cluster.pods(selector))
    (pod,) = real_cluster.pods(selector)
    stale = {**pod, "metadata": {**pod["metadata"], "resourceVersion": "1"}}
    assert ArgoKueueHook(kubernetes_conn_id=K8S_CONN).delete_pending_pod(stale) is False
    assert real_cluster.pods(selector), "the pod is still there"
    wait_with_sensor("hq-withdraw-guard")
