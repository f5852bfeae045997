"""Fixtures: an emulated Kubernetes API server and Airflow connections pointing at it.

AIRFLOW_HOME goes to a temporary directory before Airflow is imported, never ~/airflow
(tests/conftest.py does the same when the whole suite runs).
"""

from __future__ import annotations

import json
import os
import tempfile

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="hq-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import pytest  # noqa: E402
from k8s_emulator import ArgoEmulation, EmulatedKubernetes, KueueEmulation  # noqa: E402
from k8s_support import (  # noqa: E402
    ARGO_UI,
    K8S_CONN,
    NAMESPACE,
    Cluster,
    argo_crd,
    validate_workflow,
    write_fake_manifest,
)


def _start(monkeypatch, tmp_path, **server_args) -> Cluster:
    argo_crd()  # skips here, in the test's thread, where the upstream CRDs cannot be had
    server = EmulatedKubernetes(validators={"Workflow": validate_workflow}, **server_args).start()
    for queue in ("hybrid-quantum", "hybrid-quantum-qpu"):  # what the chart installs
        server.put("kueue.x-k8s.io", "localqueues", {
            "apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue",
            "metadata": {"name": queue, "namespace": NAMESPACE}})  # fmt: skip
    kueue = KueueEmulation(server)
    cluster = Cluster(server, ArgoEmulation(server, kueue), kueue)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{K8S_CONN.upper()}",
        json.dumps(
            {
                "conn_type": "kubernetes",
                "extra": {"kube_config": server.kubeconfig(NAMESPACE), "namespace": NAMESPACE},
            }
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_HYBRID_QUANTUM_DEFAULT",
        json.dumps(
            {
                "conn_type": "hybrid_quantum",
                "extra": {
                    "backend": "kubernetes",
                    "kubernetes_conn_id": K8S_CONN,
                    "store_uri": f"file://{tmp_path}/store",
                    "argo_ui_url": ARGO_UI,
                    "retry_limit": 3,
                },
            }
        ),
    )
    return cluster


@pytest.fixture
def cluster(monkeypatch, tmp_path):
    c = _start(monkeypatch, tmp_path)
    yield c
    c.server.stop()


@pytest.fixture
def old_kueue_cluster(monkeypatch, tmp_path):
    """A cluster whose Kueue serves only v1beta1 and has no visibility API."""
    c = _start(monkeypatch, tmp_path, kueue_versions=("v1beta1",), visibility=False)
    yield c
    c.server.stop()


@pytest.fixture
def manifest_uri(tmp_path) -> str:
    return write_fake_manifest(tmp_path / "store")
