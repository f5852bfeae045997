"""Write a cut job to the store: the circuit, the plan (not its circuits), batches, manifest.

A job holds the prepared circuit, where it is cut, and each subsystem's distinct QPD term
choices; a batch is a range of those choices, and whoever runs it builds the circuits it needs
there (:mod:`hybrid_provider.core.execute.choices`). Nothing per subexperiment is written.

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

from hybrid_provider.core import layout, store
from hybrid_provider.core.cut.experiments import (
    DistinctChoices,
    distinct_choices,
    subsystem_digest,
)
from hybrid_provider.core.cut.plan import CutPlan
from hybrid_provider.core.errors import ArtifactError, InputError
from hybrid_provider.core.manifest import (
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
    """sha256 of what the job computes: the circuit's instructions (not its name or metadata:
    Qiskit names a loaded circuit ``circuit-<counter>``, which differs between two loads of
    one file in a process), the observables and the cut."""
    anonymous = circuit.copy(name="circuit")
    anonymous.metadata = {}
    digest = hashlib.sha256(_qpy_bytes([anonymous]))
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
    manifest_uri = store.join(job_uri, layout.MANIFEST)
    job_fingerprint = fingerprint(circuit, plan, num_batches)
    if store.exists(manifest_uri):
        existing = load_manifest(manifest_uri)
        if existing.fingerprint == job_fingerprint:
            return WrittenJob(manifest_uri, existing, reused=True)
        raise ArtifactError(
            f"a different cut job already exists at {job_uri} (other circuit, observables or "
            "options); choose another job name or delete that job first"
        )
    choices = distinct_choices(plan)
    circuit_ref = _put(job_uri, layout.CIRCUIT, _qpy_bytes([circuit]))
    plan_circuit_ref = _put(job_uri, layout.PLAN_CIRCUIT, _qpy_bytes([plan.circuit]))
    choices_ref = _put(job_uri, layout.PLAN_CHOICES, _choice_bytes(choices))
    subsystems = subsystem_refs(plan, choices)
    num_choices = sum(s.num_distinct for s in subsystems)
    manifest = JobManifest(
        job_name=job_name,
        created_at=datetime.now(timezone.utc),
        cut_seconds=round(plan_seconds + time.perf_counter() - started, 6),
        fingerprint=job_fingerprint,
        observables=plan.observables.to_labels(),
        plan=CutSummary.model_validate(plan.summary()),
        num_subexperiments=sum(s.num_distinct * s.num_groups for s in subsystems),
        num_subexperiments_redundant=plan.num_coefficients * sum(s.num_groups for s in subsystems),
        num_choices=num_choices,
        circuit=circuit_ref,
        plan_circuit=plan_circuit_ref,
        choices=choices_ref,
        cut=plan.cut,
        subsystems=subsystems,
        batches=_batches(num_choices, num_batches, plan_circuit_ref.sha256 + choices_ref.sha256),
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


def _choice_bytes(choices: DistinctChoices) -> bytes:
    arrays: dict[str, Any] = {"coefficients": choices.coefficients}
    for subsystem in choices.subsystems:
        arrays[f"index_{subsystem.label}"] = choices.indices[subsystem.label]
        arrays[f"terms_{subsystem.label}"] = subsystem.terms
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def subsystem_refs(plan: CutPlan, choices: DistinctChoices) -> list[SubsystemRef]:
    """Where each subsystem's choices and measured subexperiments sit in the job's flat orders."""
    widths = plan.subcircuit_widths
    refs: list[SubsystemRef] = []
    offset = first_choice = 0
    for subsystem in choices.subsystems:
        num_distinct, num_groups = len(subsystem.terms), len(subsystem.groups)
        refs.append(
            SubsystemRef(
                label=subsystem.label,
                width=widths[subsystem.label],
                first_choice=first_choice,
                offset=offset,
                num_groups=num_groups,
                num_distinct=num_distinct,
                num_cuts=len(subsystem.gate_ids),
                subobservables=subsystem.subobservables,
                sha256=subsystem_digest(subsystem),
            )
        )
        offset += num_distinct * num_groups
        first_choice += num_distinct
    return refs


def _batches(num_choices: int, num_batches: int, plan_sha256: str) -> list[BatchRef]:
    """Near-equal contiguous ranges of term choices; each identified by the plan and its range."""
    bounds = np.linspace(0, num_choices, min(num_batches, num_choices) + 1).round().astype(int)
    return [
        BatchRef(
            index=index,
            first=int(first),
            count=int(end - first),
            sha256=hashlib.sha256(f"{plan_sha256}|{first}|{end}".encode()).hexdigest(),
        )
        for index, (first, end) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))
    ]
