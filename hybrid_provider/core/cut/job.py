"""Write a cut job to the store: circuit, batches of subexperiments, reconstruction data, manifest.

The manifest goes last, so a crash mid-way leaves no job that looks complete. Writing the same
job twice (a retried task) finds the existing manifest with the same fingerprint and reuses it.
"""

from __future__ import annotations

import hashlib
import io
import time
from datetime import datetime, timezone
from typing import Any, NamedTuple

import numpy as np
from qiskit import QuantumCircuit, qpy

from hybrid_provider.core import store
from hybrid_provider.core.cut.experiments import CuttingExperiments, generate_distinct_experiments
from hybrid_provider.core.cut.plan import CutPlan
from hybrid_provider.core.errors import ArtifactError, InputError
from hybrid_provider.core.manifest import (
    MANIFEST_NAME,
    BatchRef,
    CutSummary,
    FileRef,
    JobManifest,
    SubsystemRef,
    load_manifest,
    write_manifest,
)
from hybrid_provider.core.provenance import (
    CutRequest,
    JobProvenance,
    Origin,
    host_platform,
    software,
)


class WrittenJob(NamedTuple):
    manifest_uri: str
    manifest: JobManifest
    reused: bool


def fingerprint(circuit: QuantumCircuit, plan: CutPlan, num_batches: int) -> str:
    digest = hashlib.sha256(_qpy_bytes([circuit]))
    digest.update(",".join(plan.observables.to_labels()).encode())
    digest.update(f"|{plan.partition_labels}|{plan.num_cuts}|{num_batches}".encode())
    return digest.hexdigest()


def write_job(
    circuit: QuantumCircuit,
    plan: CutPlan,
    store_uri: str,
    job_name: str,
    num_batches: int,
    plan_seconds: float = 0.0,
    *,
    request: CutRequest | None = None,
    origin: Origin | None = None,
) -> WrittenJob:
    """Write the job, or find the same one written before.

    ``plan_seconds`` (the caller's planning time) is added to the time spent here, so the
    manifest records what the whole cut stage cost. ``request`` (what the caller asked for) and
    ``origin`` (the Airflow task, if any) go into the manifest's provenance.
    """
    started = time.perf_counter()
    if num_batches < 1:
        raise InputError(f"the number of batches must be at least 1, got {num_batches}")
    job_uri = store.join(store.normalise_uri(store_uri), job_name)
    manifest_uri = store.join(job_uri, MANIFEST_NAME)
    job_fingerprint = fingerprint(circuit, plan, num_batches)
    if store.exists(manifest_uri):
        existing = load_manifest(manifest_uri)
        if existing.fingerprint == job_fingerprint:
            return WrittenJob(manifest_uri, existing, reused=True)
        raise ArtifactError(
            f"a different cut job already exists at {job_uri} (other circuit, observables or "
            "options); choose another job name or delete that job first"
        )
    experiments = generate_distinct_experiments(plan)
    circuit_ref = _put(job_uri, "circuit.qpy", _qpy_bytes([circuit]))
    reconstruction_ref = _put(job_uri, "reconstruction.npz", _reconstruction_bytes(experiments))
    batches = _write_batches(job_uri, experiments.circuits, num_batches)
    manifest = JobManifest(
        job_name=job_name,
        created_at=datetime.now(timezone.utc),
        cut_seconds=round(plan_seconds + time.perf_counter() - started, 6),
        fingerprint=job_fingerprint,
        observables=plan.observables.to_labels(),
        plan=CutSummary.model_validate(plan.summary()),
        num_subexperiments=len(experiments.circuits),
        num_subexperiments_redundant=experiments.num_redundant,
        circuit=circuit_ref,
        reconstruction=reconstruction_ref,
        subsystems=_subsystem_refs(plan, experiments),
        batches=batches,
        provenance=JobProvenance(
            software=software(),
            host=host_platform(),
            circuit_sha256=circuit_ref.sha256,
            request=request or CutRequest(num_batches=num_batches),
            origin=origin,
        ),
    )
    write_manifest(manifest_uri, manifest)
    return WrittenJob(manifest_uri, manifest, reused=False)


def _put(job_uri: str, relative: str, data: bytes) -> FileRef:
    store.write_bytes_atomic(store.join(job_uri, relative), data)
    return FileRef(path=relative, sha256=store.sha256(data))


def _qpy_bytes(circuits: list[QuantumCircuit]) -> bytes:
    buffer = io.BytesIO()
    qpy.dump(circuits, buffer)
    return buffer.getvalue()


def _reconstruction_bytes(experiments: CuttingExperiments) -> bytes:
    arrays: dict[str, Any] = {"coefficients": experiments.coefficients}
    arrays.update({f"index_{s.label}": s.index for s in experiments.subsystems})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _subsystem_refs(plan: CutPlan, experiments: CuttingExperiments) -> list[SubsystemRef]:
    widths = plan.subcircuit_widths
    return [
        SubsystemRef(
            label=s.label,
            width=widths[s.label],
            offset=s.offset,
            num_groups=s.num_groups,
            num_distinct=s.num_distinct,
            subobservables=s.subobservables,
        )
        for s in experiments.subsystems
    ]


def _write_batches(
    job_uri: str, circuits: list[QuantumCircuit], num_batches: int
) -> list[BatchRef]:
    bounds = np.linspace(0, len(circuits), min(num_batches, len(circuits)) + 1).round().astype(int)
    batches = []
    for index, (first, end) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        ref = _put(
            job_uri, f"subexperiments/batch-{index:05d}.qpy", _qpy_bytes(circuits[first:end])
        )
        batches.append(
            BatchRef(**ref.model_dump(), index=index, first=int(first), count=int(end - first))
        )
    return batches
