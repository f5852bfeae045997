"""What the Kubernetes tests share: names, an emulated cluster bundle, fake manifests, specs.

Imported by module name (pytest puts this folder on sys.path; the tests folders are not
packages, like the rest of tests/).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from k8s_emulator import ArgoEmulation, EmulatedKubernetes, KueueEmulation

from hybrid_provider import constants as C
from hybrid_provider.backends.spec import BatchTask, WorkflowSpec
from hybrid_provider.core.execute.options import ExecutionOptions

_TESTS = str(Path(__file__).resolve().parents[2])
if _TESTS not in sys.path:
    sys.path.append(_TESTS)

from schema_validation import crd_path, validate_against_crd  # noqa: E402

NAMESPACE = "quantum"
K8S_CONN = "k8s_emu"
ARGO_UI = "https://argo.example.org"


def argo_crd() -> Path:
    """Argo's Workflow CRD from the pinned module (skips the test where it cannot be had)."""
    return crd_path("argo/argoproj.io_workflows.yaml")


def validate_workflow(obj: dict) -> None:
    validate_against_crd(obj, argo_crd())


@dataclass
class Cluster:
    server: EmulatedKubernetes
    argo: ArgoEmulation
    kueue: KueueEmulation
    namespace: str = NAMESPACE

    def workflows(self) -> list[dict]:
        return self.server.objects("argoproj.io", "workflows", self.namespace)


def make_spec(flavors, per_batch=10, **extra) -> WorkflowSpec:
    return WorkflowSpec(
        name="hq-nightly-submit-0123456789",
        manifest_uri="s3://bucket/jobs/job-1/manifest.json",
        job_name="job-1",
        execution=extra.pop("execution", ExecutionOptions()),
        batches=[
            BatchTask(index=i, flavor=f, num_subexperiments=per_batch)
            for i, f in enumerate(flavors)
        ],
        labels={C.DAG_ID_LABEL: "nightly", C.TASK_ID_LABEL: "submit", C.RUN_ID_LABEL: "r1"},
        **extra,
    )


CASES = {
    "plain": make_spec(["cpu"] * 4),
    "gpu": make_spec(["gpu"] * 3, priority_class="hybrid-quantum-interactive"),
    "qpu": make_spec(["qpu"] * 2, execution=ExecutionOptions(mode="shots", shots=4096)),
    "mixed": make_spec(["cpu", "gpu", "qpu", "cpu"], priority_class="hybrid-quantum-nightly"),
}


def write_fake_manifest(
    folder, num_batches: int = 4, num_subexperiments: int = 100, job: str = "job-test"
) -> str:
    """A valid manifest without circuits: enough for compiling and submitting workflows."""
    from datetime import datetime, timezone

    from hybrid_provider.core import store
    from hybrid_provider.core.manifest import (
        BatchRef,
        CutSpec,
        CutSummary,
        FileRef,
        JobManifest,
        SubsystemRef,
        write_manifest,
    )
    from hybrid_provider.core.provenance import CutRequest, JobProvenance, software

    per = -(-num_subexperiments // num_batches)
    batches = [
        BatchRef(
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
        num_choices=num_subexperiments,
        circuit=FileRef(path="circuit.qpy", sha256="0" * 64),
        plan_circuit=FileRef(path="plan/circuit.qpy", sha256="0" * 64),
        choices=FileRef(path="plan/choices.npz", sha256="0" * 64),
        cut=CutSpec(partition_labels="AABB"),
        subsystems=[
            SubsystemRef(
                label=label,
                width=2,
                first_choice=offset,
                offset=offset,
                num_groups=1,
                num_distinct=num_subexperiments // 2,
                num_cuts=1,
                subobservables=["ZZ"],
                sha256="0" * 64,
            )
            for label, offset in (("A", 0), ("B", num_subexperiments // 2))
        ],  # fmt: skip
        batches=batches,
        provenance=JobProvenance(
            software=software(),
            host="test",
            circuit_sha256="0" * 64,
            request=CutRequest(num_batches=num_batches),
        ),
    )
    uri = store.normalise_uri(f"{folder}/{job}/manifest.json")
    write_manifest(uri, manifest)
    return uri
