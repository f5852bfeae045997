"""flavor="auto" on the kubernetes backend: telemetry read through the API, one workflow
whose batches are spread over the flavors the decision chose."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG
from k8s_support import NAMESPACE

from hybrid_provider.backends.kubernetes.compile import batches_of
from hybrid_provider.constants import Flavor
from hybrid_provider.hooks.hybrid_quantum import HybridQuantumHook
from hybrid_provider.operators.submit import ArgoSubmitOperator

RUN_ID = "scheduled__2026-12-02T00:00:00+00:00"


def _queues(cluster, gpu_quota="2", cpu_used="0"):
    """The chart's queues: cpu and gpu flavors in the simulators ClusterQueue, a QPU queue."""
    for name, target in (("hybrid-quantum", "hybrid-quantum-simulators"),
                         ("hybrid-quantum-qpu", "hybrid-quantum-qpu")):  # fmt: skip
        cluster.server.put("kueue.x-k8s.io", "localqueues", {
            "kind": "LocalQueue", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"clusterQueue": target}})  # fmt: skip
    cluster.server.put("kueue.x-k8s.io", "clusterqueues", {
        "kind": "ClusterQueue", "metadata": {"name": "hybrid-quantum-simulators"},
        "spec": {"resourceGroups": [{"flavors": [
            {"name": "hybrid-quantum-cpu", "resources": [
                {"name": "cpu", "nominalQuota": "2200m"}, {"name": "memory", "nominalQuota": "8Gi"}]},
            {"name": "hybrid-quantum-gpu", "resources": [
                {"name": "cpu", "nominalQuota": "8"}, {"name": "memory", "nominalQuota": "64Gi"},
                {"name": "nvidia.com/gpu", "nominalQuota": gpu_quota}]}]}]},
        "status": {"pendingWorkloads": 0, "flavorsUsage": [
            {"name": "hybrid-quantum-cpu", "resources": [{"name": "cpu", "total": cpu_used}]}]}})  # fmt: skip


def test_the_backend_reads_its_queues_into_a_snapshot(cluster):
    _queues(cluster, cpu_used="1100m")
    snapshot = HybridQuantumHook().get_backend().telemetry()
    cpu, gpu, qpu = (snapshot.of(f) for f in Flavor)
    assert (cpu.slots, cpu.in_use, cpu.pending) == (2, 1, 0)
    assert (gpu.slots, gpu.in_use) == (2, 0)
    assert (qpu.has_queue, qpu.slots, qpu.note) == (True, 0, "its ClusterQueue cannot be read")
    assert snapshot.max_parallel is None


def test_auto_submits_one_workflow_over_the_flavors_it_chose(cluster, manifest_uri, capsys):
    _queues(cluster)
    with DAG(dag_id="nightly", schedule=None, start_date=pendulum.datetime(2026, 11, 1)):
        submit = ArgoSubmitOperator(task_id="submit", manifest_uri=manifest_uri, flavor="auto")
    result = submit.execute({"run_id": RUN_ID})
    (workflow,) = cluster.workflows()
    flavors = sorted({flavor for _, flavor in batches_of(workflow)})
    assert flavors == ["cpu", "gpu"] and result["placement"] == "cpu 2, gpu 2"
    assert "qpu: not eligible (exact mode never runs on a QPU)" in capsys.readouterr().out
