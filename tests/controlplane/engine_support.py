"""Helpers of the real-engine tests: the cluster handle, the chart install, the connections."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cluster
import pytest
from kubeapi import KubeApi

REPO = Path(__file__).resolve().parents[2]
STATE = REPO / ".cluster-tests"
NAMESPACE = "quantum"
K8S_CONN = "hq_real_cluster"
RELEASE = "hq"
#: Small pods and a queue that fits two of them: the quota scenario asserts exactly that. The
#: QPU flavor (its own ClusterQueue, one slot on the node that advertises the resource) is on,
#: so that ``flavor="auto"`` has a second flavor to place and move batches to.
POD_CPU, POD_MEMORY = "500m", "256Mi"
CHART_VALUES = {
    "tenantNamespaces": [NAMESPACE],
    "kueue": {
        "flavors": {"gpu": {"enabled": False}, "qpu": {"enabled": True}},
        "clusterQueues": {"simulators": {"quotas": [
            {"flavor": "cpu", "cpu": "1200m", "memory": "2Gi"}]}},
    },
}  # fmt: skip


@dataclass
class RealCluster:
    state: cluster.State
    api: KubeApi
    namespace: str
    store_uri: str

    @property
    def kubeconfig(self) -> Path:
        return self.state.kubeconfig

    def custom(self, plural: str, name: str = "", group: str = "argoproj.io",
               version: str = "v1alpha1") -> str:  # fmt: skip
        path = f"/apis/{group}/{version}/namespaces/{self.namespace}/{plural}"
        return f"{path}/{name}" if name else path

    def items(self, path: str, **params) -> list[dict]:
        return (self.api.get(path, **params) or {}).get("items") or []

    def pods(self, selector: str = "") -> list[dict]:
        return self.items(f"/api/v1/namespaces/{self.namespace}/pods", labelSelector=selector)

    def workflow(self, name: str) -> dict | None:
        return self.api.get(self.custom("workflows", name))

    def wait_for(self, what: str, check, timeout: float = 180, interval: float = 0.5):
        return cluster.wait_for(what, check, timeout, interval=interval)


def skip_reason() -> str | None:
    if shutil.which("go") is None:
        return "Go is not installed: the real-engine suite builds Kubernetes, Kueue and Argo"
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return "the node agent needs root and unshare(1) to give pods their own mounts"
    return None


def helm_binary() -> str:
    beside = Path(sys.executable).parent / "helm"
    found = str(beside) if beside.is_file() else shutil.which("helm")
    if not found:
        pytest.skip("helm is not installed (python scripts/install_helm.py)")
    return found


def install_chart(state: cluster.State, values: dict) -> None:
    values_file = state.path / "chart-values.json"
    values_file.write_text(json.dumps(values))
    subprocess.run(
        [helm_binary(), "upgrade", "--install", RELEASE, str(REPO / "charts/hybrid-quantum"),
         "--namespace", NAMESPACE, "--create-namespace", "--kubeconfig", str(state.kubeconfig),
         "-f", str(values_file), "--wait", "--timeout", "2m"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip


def install_for_runs(state: cluster.State, values: dict) -> Path:
    """The chart installed with ``values``, the (empty) store Secret its pods reference, and
    the store folder the pods share with this machine; returns that folder."""
    install_chart(state, values)
    state.api().apply({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                       "metadata": {"name": "hybrid-quantum-store", "namespace": NAMESPACE},
                       "data": {}})  # fmt: skip
    store = state.path / "store"
    store.mkdir(exist_ok=True)
    return store


def connection_extra(real: RealCluster, **overrides) -> dict:
    return {
        "backend": "kubernetes",
        "kubernetes_conn_id": K8S_CONN,
        "namespace": real.namespace,
        "store_uri": real.store_uri,
        "image": "hybrid-quantum-executor:test",
        "resources": {"cpu": {"cpu": POD_CPU, "memory": POD_MEMORY}},
        "retry_backoff": "1s",
        "retry_backoff_cap": "2s",
        "active_deadline_seconds": 600,
        **overrides,
    }


def sample_until(check, sample, timeout: float, interval: float = 0.2) -> list:
    """Call ``sample`` every ``interval`` until ``check`` is true; return the samples."""
    samples = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        samples.append(sample())
        if check():
            return samples
        time.sleep(interval)
    raise TimeoutError(f"not done after {timeout:.0f} s")
