"""The example DAG on a real cluster (Argo Workflows + Kueue + the chart), e.g. kind.

Skipped unless ``HYBRID_TEST_KUBECONFIG`` is set. See docs/kubernetes.md, "Testing against a
real cluster", for a kind recipe. Environment:

  HYBRID_TEST_KUBECONFIG   kubeconfig of the cluster (required)
  HYBRID_TEST_NAMESPACE    tenant namespace the chart was installed for (default: quantum)
  HYBRID_TEST_STORE_URI    artifact store both this machine and the pods reach, e.g.
                           s3://bucket/hq (with the chart's store Secret) (required)
  HYBRID_TEST_IMAGE        executor image loaded into the cluster (default: the chart's)
  HYBRID_TEST_ARGO_UI      Argo UI base URL, for the link (optional)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

KUBECONFIG = os.environ.get("HYBRID_TEST_KUBECONFIG")

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.slow,
    pytest.mark.skipif(not KUBECONFIG, reason="HYBRID_TEST_KUBECONFIG is not set"),
]

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = os.environ.get("HYBRID_TEST_NAMESPACE", "quantum")


@pytest.fixture
def connections(monkeypatch):
    store = os.environ.get("HYBRID_TEST_STORE_URI")
    if not store:
        pytest.skip("HYBRID_TEST_STORE_URI is not set (the pods need a store they can reach)")
    monkeypatch.setenv(
        "AIRFLOW_CONN_HYBRID_TEST_K8S",
        json.dumps(
            {
                "conn_type": "kubernetes",
                "extra": {"kube_config_path": KUBECONFIG, "namespace": NAMESPACE},
            }
        ),
    )
    extra = {
        "backend": "kubernetes",
        "kubernetes_conn_id": "hybrid_test_k8s",
        "namespace": NAMESPACE,
        "store_uri": store,
        "argo_ui_url": os.environ.get("HYBRID_TEST_ARGO_UI"),
    }
    if os.environ.get("HYBRID_TEST_IMAGE"):
        extra["image"] = os.environ["HYBRID_TEST_IMAGE"]
    monkeypatch.setenv(
        "AIRFLOW_CONN_HYBRID_QUANTUM_DEFAULT",
        json.dumps({"conn_type": "hybrid_quantum", "extra": extra}),
    )
    monkeypatch.setenv("AIRFLOW__HYBRID_QUANTUM__STORE_URI", store)


def test_cluster_serves_argo_and_kueue(connections):
    from hybrid_provider.hooks.kubernetes import ArgoKueueHook

    hook = ArgoKueueHook(kubernetes_conn_id="hybrid_test_k8s")
    hook.list_workflows(NAMESPACE)
    assert hook.get_local_queue("hybrid-quantum", NAMESPACE) is not None, "install the chart"


def test_example_dag_runs_on_the_cluster(connections):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "nightly_circuit_cutting", REPO / "dags" / "nightly_circuit_cutting.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run = module.dag.test(run_conf={"mode": "exact", "num_batches": 4, "flavor": "cpu"})
    assert run.state == "success"
