"""Fixtures: an emulated Kubernetes API server and Airflow connections pointing at it.

AIRFLOW_HOME goes to a temporary directory before Airflow is imported, never ~/airflow.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="hq-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import pytest  # noqa: E402

from tests.kubernetes.k8s_emulator import (  # noqa: E402
    ArgoEmulation,
    EmulatedKubernetes,
    KueueEmulation,
)
from tests.schema_validation import crd_path, validate_against_crd  # noqa: E402

NAMESPACE = "quantum"
K8S_CONN = "k8s_emu"
ARGO_UI = "https://argo.example.org"


def validate_workflow(obj: dict) -> None:
    validate_against_crd(obj, crd_path("argo/argoproj.io_workflows.yaml"))


@dataclass
class Cluster:
    server: EmulatedKubernetes
    argo: ArgoEmulation
    kueue: KueueEmulation
    namespace: str = NAMESPACE

    def workflows(self) -> list[dict]:
        return self.server.objects("argoproj.io", "workflows", self.namespace)


def _start(monkeypatch, tmp_path, **server_args) -> Cluster:
    server = EmulatedKubernetes(validators={"Workflow": validate_workflow}, **server_args).start()
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


def write_fake_manifest(
    folder, num_batches: int = 4, num_subexperiments: int = 100, job: str = "job-test"
) -> str:
    """A valid manifest without circuits: enough for compiling and submitting workflows."""
    from datetime import datetime, timezone

    from hybrid_provider.core import store
    from hybrid_provider.core.manifest import BatchRef, CutSummary, FileRef, JobManifest

    per = -(-num_subexperiments // num_batches)
    batches = [
        BatchRef(
            path=f"batches/{i}.npz",
            sha256="0" * 64,
            index=i,
            first=i * per,
            count=max(0, min(per, num_subexperiments - i * per)),
        )
        for i in range(num_batches)
    ]
    manifest = JobManifest(
        job_name=job,
        created_at=datetime(2026, 11, 28, tzinfo=timezone.utc),
        fingerprint="f" * 64,
        observables=["ZZZZ"],
        plan=CutSummary(
            num_qubits=4,
            partition_labels="AABB",
            num_cuts=1,
            num_gate_cuts=1,
            num_wire_cuts=0,
            subcircuit_widths={"A": 2, "B": 2},
            sampling_overhead=9.0,
            num_coefficients=6,
        ),
        num_subexperiments=num_subexperiments,
        num_subexperiments_redundant=num_subexperiments,
        circuit=FileRef(path="circuit.qpy", sha256="0" * 64),
        reconstruction=FileRef(path="reconstruction.npz", sha256="0" * 64),
        subsystems=[],
        batches=batches,
    )
    uri = store.normalise_uri(f"{folder}/{job}/manifest.json")
    store.write_bytes_atomic(uri, manifest.model_dump_json().encode())
    return uri


@pytest.fixture
def manifest_uri(tmp_path) -> str:
    return write_fake_manifest(tmp_path / "store")
