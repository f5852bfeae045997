"""Kueue's queues as a placement snapshot: the pure reading of LocalQueue, ClusterQueue and
visibility JSON (the kubernetes backend's round trip is in tests/backends/kubernetes)."""

from __future__ import annotations

import pytest

from hybrid_provider.backends.kubernetes.compile import KubernetesOptions
from hybrid_provider.backends.kubernetes.telemetry import (
    KueueQueues,
    kueue_snapshot,
    pod_requests,
    quantity,
)
from hybrid_provider.constants import Flavor
from hybrid_provider.placement import History, JobShape, place


def local_queue(name, cluster_queue, active=True):
    return {"metadata": {"name": name}, "spec": {"clusterQueue": cluster_queue},
            "status": {"conditions": [{"type": "Active", "status": str(active)}]}}  # fmt: skip


def cluster_queue(flavors: dict[str, dict[str, str]], used: dict[str, dict[str, str]],
                  pending=0):  # fmt: skip
    """The chart's shape: one resource group, a quota per ResourceFlavor."""
    return {
        "spec": {"resourceGroups": [{"flavors": [
            {"name": f, "resources": [{"name": r, "nominalQuota": q} for r, q in quota.items()]}
            for f, quota in flavors.items()]}]},
        "status": {"pendingWorkloads": pending, "admittedWorkloads": 1, "flavorsUsage": [
            {"name": f, "resources": [{"name": r, "total": t} for r, t in use.items()]}
            for f, use in used.items()]},
    }  # fmt: skip


SIMULATORS = cluster_queue(
    {"hybrid-quantum-cpu": {"cpu": "8", "memory": "32Gi"},
     "hybrid-quantum-gpu": {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "2"}},
    {"hybrid-quantum-cpu": {"cpu": "4400m", "memory": "8448Mi"},
     "hybrid-quantum-gpu": {"cpu": "0", "memory": "0", "nvidia.com/gpu": "0"}},
    pending=3,
)  # fmt: skip


def test_quantities_and_what_one_batch_pod_asks_for():
    assert [quantity(q) for q in ("500m", "2Gi", 4, "1k")] == [0.5, 2**31, 4.0, 1000.0]
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        quantity("two")
    assert pod_requests("gpu", KubernetesOptions()) == {
        "cpu": 2.1, "memory": 8 * 2**30 + 64 * 2**20, "nvidia.com/gpu": 1.0
    }  # fmt: skip


def test_the_snapshot_counts_slots_in_batch_pods_and_the_queue_ahead():
    queues = KueueQueues(
        local_queues={"hybrid-quantum": local_queue("hybrid-quantum", "simulators")},
        cluster_queues={"simulators": SIMULATORS},
        pending={"hybrid-quantum": {"items": [{"metadata": {"name": "pod-a"}}]}},
    )
    snapshot = kueue_snapshot(KubernetesOptions(), queues)
    cpu, gpu, qpu = (snapshot.of(f) for f in Flavor)
    # cpu: 8 cores / 1.1 per pod = 7 slots; 4.4 used leaves 3.6 = 3 free
    assert (cpu.slots, cpu.in_use, cpu.pending) == (7, 4, 3)
    assert (gpu.slots, gpu.in_use, gpu.pending) == (2, 0, 3)  # the two GPUs bind
    assert (qpu.has_queue, qpu.note) == (False, "no LocalQueue hybrid-quantum-qpu")


def test_an_inactive_queue_a_flavor_without_quota_and_an_unreadable_cluster_queue():
    queues = KueueQueues(
        local_queues={"hybrid-quantum": local_queue("hybrid-quantum", "simulators"),
                      "hybrid-quantum-qpu": local_queue("hybrid-quantum-qpu", "qpu", False)},
        cluster_queues={"simulators": cluster_queue(
            {"hybrid-quantum-cpu": {"cpu": "8", "memory": "32Gi"}}, {})},
        pending={},
    )  # fmt: skip
    snapshot = kueue_snapshot(KubernetesOptions(), queues)
    assert snapshot.of(Flavor.GPU).note == (
        "ResourceFlavor hybrid-quantum-gpu has no quota for one batch pod"
    )
    assert snapshot.of(Flavor.QPU).note == "LocalQueue hybrid-quantum-qpu is not active"
    unreadable = KueueQueues({"hybrid-quantum": local_queue("hybrid-quantum", "simulators")},
                             {"simulators": None}, {})  # fmt: skip
    cpu = kueue_snapshot(KubernetesOptions(), unreadable).of(Flavor.CPU)
    assert (cpu.has_queue, cpu.slots, cpu.pending) == (True, 0, None)


def test_placement_on_a_kueue_snapshot_never_picks_a_flavor_it_cannot_run():
    queues = KueueQueues(
        local_queues={"hybrid-quantum": local_queue("hybrid-quantum", "simulators")},
        cluster_queues={"simulators": SIMULATORS},
        pending={},
    )
    shape = JobShape(batches=dict.fromkeys(range(20), 50), width=4, mode="shots")
    placement = place(shape, kueue_snapshot(KubernetesOptions(), queues), History())
    assert set(placement.assignment.values()) <= {Flavor.CPU, Flavor.GPU}
