"""Run one batch of term choices and put its outcomes in the store, once.

This is what a pod (``hybrid-quantum run-batch``) or a local worker runs: it rebuilds the
subcircuits from the stored plan, checks them against the manifest, and runs its range of
choices on the one execution path (:mod:`.choices`). The result record is
written after the outcomes it checksums, so a record that exists and verifies means a finished
batch; a re-run finds it and returns without simulating again.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from qiskit import qpy
from qiskit.quantum_info import PauliList

from hybrid_provider.core import store
from hybrid_provider.core.cut.experiments import SubsystemChoices, stored_choices, subsystem_digest
from hybrid_provider.core.cut.plan import build_problem
from hybrid_provider.core.errors import ArtifactError, InputError
from hybrid_provider.core.execute import ibm_runtime, simulate
from hybrid_provider.core.execute.allocation import allocate_shots
from hybrid_provider.core.execute.choices import run_choices
from hybrid_provider.core.execute.options import DEFAULT_SAMPLER, ExecutionOptions
from hybrid_provider.core.execute.outcomes import (
    BatchOutcomes,
    ExactMeans,
    concatenate,
    outcomes_from_bytes,
)
from hybrid_provider.core.execute.record import (
    BatchRecord,
    outcomes_uri,
    read_record,
    write_record,
)
from hybrid_provider.core.execute.runtime_options import is_runtime_sampler
from hybrid_provider.core.manifest import (
    JobManifest,
    load_manifest,
    read_artifact,
    read_choices,
)
from hybrid_provider.core.provenance import (
    BatchProvenance,
    Seeds,
    executor_from_environment,
    software,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchReport:
    index: int
    num_subexperiments: int
    duration_s: float
    skipped: bool
    device: str


def run_batch(
    manifest_uri: str,
    index: int,
    options: ExecutionOptions,
    *,
    sampler=None,
    manifest: JobManifest | None = None,
) -> BatchReport:
    """Run batch ``index`` unless a valid result of the same identity is already stored."""
    manifest_uri = store.normalise_uri(manifest_uri)
    manifest = manifest or load_manifest(manifest_uri)
    check_batch_index(manifest, index)
    batch = manifest.batches[index]
    if stored_result_valid(manifest_uri, manifest, index, options):
        return BatchReport(index, batch.count, 0.0, skipped=True, device="stored")
    started = time.perf_counter()
    outcomes, provenance = compute_batch(manifest_uri, manifest, index, options, sampler=sampler)
    duration = time.perf_counter() - started
    data = outcomes.to_bytes()
    store.write_bytes_atomic(outcomes_uri(manifest_uri, index), data)
    circuits = batch.count if options.mode == "exact" else manifest.num_measured(batch)
    record = BatchRecord(
        batch=index,
        batch_sha256=batch.sha256,
        options=options,
        outcomes_sha256=store.sha256(data),
        outcomes_digest=outcomes.digest(),
        num_subexperiments=circuits,
        duration_s=round(duration, 6),
        finished_at=datetime.now(timezone.utc),
        provenance=provenance,
    )
    write_record(manifest_uri, record)
    return BatchReport(index, circuits, duration, skipped=False, device=provenance.device)


def check_batch_index(manifest: JobManifest, index: int) -> None:
    if not 0 <= index < manifest.num_batches:
        raise InputError(
            f"batch {index} does not exist: the job has batches 0..{manifest.num_batches - 1}"
        )


def compute_batch(
    manifest_uri: str,
    manifest: JobManifest,
    index: int,
    options: ExecutionOptions,
    *,
    sampler=None,
    device: str | None = None,
) -> tuple[BatchOutcomes, BatchProvenance]:
    """The outcomes of batch ``index`` and how they were made, computed here and not stored.

    ``device`` forces the Aer device (``verify`` reruns on the one recorded); by default it is
    chosen from ``options.device`` and what this machine has.
    """
    batch = manifest.batches[index]
    subsystems = plan_choices(manifest_uri, manifest)
    segments = [
        subsystems[ref.label].select(start, end) for ref, start, end in manifest.segments(batch)
    ]
    device = device or simulate.choose_device(options.device)
    seed = [options.seed, index]
    shots = batch_shots(manifest_uri, manifest, index, options)
    provider_jobs = None
    outcomes: BatchOutcomes
    if sampler is None and is_runtime_sampler(options.sampler):  # a QPU provider
        outcomes, provider_jobs = ibm_runtime.run_runtime_batch(
            manifest_uri, manifest, index, segments, options, shots
        )
    else:
        parts = run_choices(
            segments, options, seed=seed, sampler=sampler, device=device, shots=shots
        )
        outcomes = concatenate(list(parts))
    supplied = sampler is not None or options.sampler != DEFAULT_SAMPLER
    provenance = BatchProvenance(
        software=software(),
        executor=executor_from_environment(),
        device=device,
        simulator=_simulator_name(options, sampler),
        threads=simulate.aer_threads(),
        seeds=Seeds(
            sampling_entropy=seed if options.mode == "shots" and not supplied else None,
            reproducible=not supplied,
        ),
        provider_jobs=provider_jobs,
    )
    return outcomes, provenance


def plan_choices(manifest_uri: str, manifest: JobManifest) -> dict[str, SubsystemChoices]:
    """Each subsystem's term choices, rebuilt from the stored plan.

    Kept for the last few plans: a local worker or ``verify`` runs several batches of one job.
    """
    key = (manifest_uri, manifest.plan_circuit.sha256, manifest.choices.sha256)
    if key not in _REBUILT:
        if len(_REBUILT) >= 4:
            _REBUILT.pop(next(iter(_REBUILT)))
        _REBUILT[key] = _rebuild_choices(manifest_uri, manifest)
    return _REBUILT[key]


_REBUILT: dict[tuple[str, str, str], dict[str, SubsystemChoices]] = {}


def _rebuild_choices(manifest_uri: str, manifest: JobManifest) -> dict[str, SubsystemChoices]:
    (circuit,) = qpy.load(io.BytesIO(read_artifact(manifest_uri, manifest.plan_circuit, "plan")))
    problem = build_problem(circuit, PauliList(manifest.observables), manifest.cut)
    tables = read_choices(manifest_uri, manifest)
    subsystems = {s.label: s for s in stored_choices(problem, tables.terms)}
    for ref in manifest.subsystems:
        rebuilt = subsystems.get(ref.label)
        if rebuilt is None or subsystem_digest(rebuilt) != ref.sha256:
            raise ArtifactError(
                f"subcircuit {ref.label} rebuilt from the stored plan differs from the one cut "
                "(another qiskit-addon-cutting release?); run the cut step again with this one"
            )
    return subsystems


def _simulator_name(options: ExecutionOptions, sampler) -> str:
    if sampler is not None:
        return f"{type(sampler).__module__}.{type(sampler).__qualname__}"
    if options.sampler != DEFAULT_SAMPLER:
        return options.sampler
    return "aer statevector"


def batch_shots(
    manifest_uri: str, manifest: JobManifest, index: int, options: ExecutionOptions
) -> np.ndarray | None:
    """Shots per measured subexperiment of batch ``index`` when weighted; None means uniform."""
    if options.mode != "shots" or options.shot_allocation == "uniform":
        return None
    tables = read_choices(manifest_uri, manifest)
    shots = allocate_shots(
        options.shots or 0,
        tables.coefficients,
        manifest.subsystems,
        tables.indices,
        options.shot_allocation,
    )
    first, end = manifest.measured_range(manifest.batches[index])
    return shots[first:end]


def stored_result_valid(
    manifest_uri: str, manifest: JobManifest, index: int, options: ExecutionOptions
) -> bool:
    """True when batch ``index`` has a result for these options whose checksum verifies."""
    try:
        load_result(manifest_uri, manifest, index, options)
    except ArtifactError:
        return False
    return True


def load_result(
    manifest_uri: str, manifest: JobManifest, index: int, options: ExecutionOptions | None = None
) -> tuple[BatchOutcomes, BatchRecord]:
    """Load a batch's outcomes after checking its record against the manifest and the options.

    Only the options' identity is compared: a result computed on another device still counts.
    """
    record = read_record(manifest_uri, index)
    if record.batch_sha256 != manifest.batches[index].sha256:
        raise ArtifactError(f"the result of batch {index} belongs to other subexperiments")
    if options is not None and record.options.identity() != options.identity():
        raise ArtifactError(f"the result of batch {index} was run with other options")
    data = store.read_verified(
        outcomes_uri(manifest_uri, index), record.outcomes_sha256, f"result of batch {index}"
    )
    try:
        outcomes = outcomes_from_bytes(data)
    except (ValueError, KeyError, OSError, TypeError) as exc:
        raise ArtifactError(f"the result of batch {index} cannot be read ({exc})") from exc
    batch = manifest.batches[index]
    rows = batch.count if isinstance(outcomes, ExactMeans) else manifest.num_measured(batch)
    if outcomes.num_rows != rows or outcomes.digest() != record.outcomes_digest:
        raise ArtifactError(f"the result of batch {index} does not match its record")
    return outcomes, record
