"""The real engines for tests: one control plane per session, the chart installed into it.

The control plane (``cluster.py``) is the same one ``make cluster`` starts. The session starts
it in ``<repo>/.cluster-tests``, installs ``charts/hybrid-quantum`` with ``helm install`` (so
Kueue's webhooks and the API server judge every object), creates the store Secret the chart
expects, and points two Airflow connections at it. Skipped, with one line saying why, where Go
or the rights to make mount namespaces are missing.
"""

from __future__ import annotations

import json
import os
import tempfile

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="hq-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import cluster  # noqa: E402
import engines  # noqa: E402
import pytest  # noqa: E402
from engine_support import (  # noqa: E402
    CHART_VALUES,
    K8S_CONN,
    NAMESPACE,
    STATE,
    RealCluster,
    connection_extra,
    install_for_runs,
    skip_reason,
)


@pytest.fixture(scope="session")
def real_cluster() -> RealCluster:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    try:
        state = cluster.up(STATE)
    except engines.EngineUnavailable as exc:  # Go is here: a pin that does not build is a bug
        pytest.fail(f"the engines did not build: {exc}")
    try:
        store = install_for_runs(state, CHART_VALUES)
        yield RealCluster(state, state.api(), NAMESPACE, f"file://{store}")
    finally:
        cluster.down(STATE)


@pytest.fixture
def connections(real_cluster, monkeypatch):
    """Airflow connections to the real cluster; returns a function to change the extras."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{K8S_CONN.upper()}", json.dumps({
        "conn_type": "kubernetes",
        "extra": {"kube_config_path": str(real_cluster.kubeconfig),
                  "namespace": real_cluster.namespace}}))  # fmt: skip
    # Only the connection names the cluster's store: [hybrid_quantum] store_uri stays as the
    # rest of the session has it, so the example DAG's results Asset keeps its one URI.

    def configure(**overrides) -> dict:
        extra = connection_extra(real_cluster, **overrides)
        monkeypatch.setenv(
            "AIRFLOW_CONN_HYBRID_QUANTUM_DEFAULT",
            json.dumps({"conn_type": "hybrid_quantum", "extra": extra}),
        )
        return extra

    configure()
    return configure
