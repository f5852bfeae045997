"""The placement benchmark's Kubernetes side: the real-engine control plane, set up like the
local backend's quota.

It starts the control plane of ``tests/controlplane`` (kube-apiserver, etcd, Kueue and Argo
built from their upstream modules, the node agent standing in for the kubelet) in
``.cluster-bench``, installs the chart with one ClusterQueue per flavor (so that Kueue never
lends one flavor's quota to another's pods) holding 2 cpu, 1 gpu and 1 qpu batch pods, and
gives the benchmark a ``KubernetesBackend`` per environment (a run's environment reaches its
pods through the connection's ``extra_env``). Everything is stopped again afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / ".cluster-bench"
NAMESPACE = "quantum"
CONNECTION = "hq_bench_cluster"
#: Each batch pod asks for this (Argo's wait container adds 100m and 64Mi).
POD = {"cpu": "500m", "memory": "256Mi"}
SLOT = {"cpu": 600, "memory": 320}  # millicores and MiB of one pod as Kueue counts it
QUEUES = {"cpu": "hybrid-quantum", "gpu": "hybrid-quantum-gpu", "qpu": "hybrid-quantum-qpu"}
#: The chart's ClusterQueue key behind each flavor's LocalQueue.
CLUSTER_QUEUES = {"cpu": "simulators", "gpu": "gpu", "qpu": "qpu"}


def chart_values(quota: dict[str, int]) -> dict[str, Any]:
    """One ClusterQueue per flavor, each with room for ``quota[flavor]`` batch pods."""

    def room(flavor: str) -> dict[str, Any]:
        slots = quota[flavor]
        entry = {"flavor": flavor, "cpu": f"{SLOT['cpu'] * slots}m",
                 "memory": f"{SLOT['memory'] * slots}Mi"}  # fmt: skip
        if flavor != "cpu":
            entry[flavor] = slots
        return entry

    return {
        "tenantNamespaces": [NAMESPACE],
        "kueue": {
            "flavors": {"gpu": {"enabled": True}, "qpu": {"enabled": True}},
            "clusterQueues": {
                "simulators": {"quotas": [room("cpu")]},
                "gpu": {
                    "name": "hybrid-quantum-gpu",
                    "queueingStrategy": "BestEffortFIFO",
                    "preemption": {},
                    "quotas": [room("gpu")],
                },  # fmt: skip
                "qpu": {"quotas": [room("qpu")]},
            },
            "localQueues": {QUEUES[flavor]: key for flavor, key in CLUSTER_QUEUES.items()},
        },
    }


class KueueBench:
    """What ``benchmarks.placement`` runs against: a store the pods can reach, a backend for
    telemetry and status, and ``submit`` with a run's environment."""

    name = "kubernetes"
    poll_s = 0.5

    def __init__(self, folder: Path):
        self.folder = folder
        self.store = f"file://{folder / 'store'}"
        self.backend = self.backend_with({})

    def backend_with(self, env: dict[str, str]) -> Any:
        from hybrid_provider.backends.kubernetes.backend import KubernetesBackend

        image = "hybrid-quantum-executor:bench"
        return KubernetesBackend(
            store_uri=self.store,
            kubernetes_conn_id=CONNECTION,
            namespace=NAMESPACE,
            image=image,
            gpu_image=image,
            local_queues=dict(QUEUES),
            resources={"cpu": dict(POD), "gpu": {**POD, "gpu": 1}, "qpu": {**POD, "qpu": 1}},
            extra_env={"PYTHONPATH": str(REPO), **env},
            retry_backoff="1s",
            retry_backoff_cap="2s",
        )

    def submit(self, spec: Any, env: dict[str, str]) -> None:
        self.backend_with(env).submit(spec)


@contextmanager
def kueue_bench(quota: dict[str, int]) -> Iterator[KueueBench]:
    """The control plane up with the chart installed, and down again afterwards."""
    sys.path.insert(0, str(REPO / "tests" / "controlplane"))
    import cluster
    from engine_support import install_for_runs

    state = cluster.up(STATE)
    try:
        install_for_runs(state, chart_values(quota))
        os.environ[f"AIRFLOW_CONN_{CONNECTION.upper()}"] = json.dumps({
            "conn_type": "kubernetes",
            "extra": {"kube_config_path": str(state.kubeconfig), "namespace": NAMESPACE}})  # fmt: skip
        yield KueueBench(STATE)
    finally:
        cluster.down(STATE)
        shutil.rmtree(STATE / "store", ignore_errors=True)
