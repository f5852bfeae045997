"""Run one batch of subexperiments and put its outcomes in the store, once.

This is what a pod (``hybrid-quantum run-batch``) or a local worker runs. The result record is
written after the outcomes it checksums, so a record that exists and verifies means a finished
batch; a re-run finds it and returns without simulating again.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from qiskit import QuantumCircuit, qpy

from hybrid_provider.core import store
from hybrid_provider.core.errors import ArtifactError, InputError
from hybrid_provider.core.execute import ibm_runtime, samplers, simulate
from hybrid_provider.core.execute.allocation import allocate_shots
from hybrid_provider.core.execute.options import DEFAULT_SAMPLER, ExecutionOptions
from hybrid_provider.core.execute.outcomes import Outcomes, build_outcomes
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
    read_reconstruction_data,
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
    record = BatchRecord(
        batch=index,
        batch_sha256=batch.sha256,
        options=options,
        outcomes_sha256=store.sha256(data),
        outcomes_digest=outcomes.digest(),
        num_subexperiments=batch.count,
        duration_s=round(duration, 6),
        finished_at=datetime.now(timezone.utc),
        provenance=provenance,
    )
    write_record(manifest_uri, record)
    return BatchReport(index, batch.count, duration, skipped=False, device=provenance.device)


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
) -> tuple[Outcomes, BatchProvenance]:
    """The outcomes of batch ``index`` and how they were made, computed here and not stored.

    ``device`` forces the Aer device (``verify`` reruns on the one recorded); by default it is
    chosen from ``options.device`` and what this machine has.
    """
    batch = manifest.batches[index]
    circuits = qpy.load(io.BytesIO(read_artifact(manifest_uri, batch, f"batch {index}")))
    device = device or _device(options.device)
    seed = [options.seed, index]
    shots = batch_shots(manifest_uri, manifest, index, options)
    provider_jobs = None
    if sampler is None and is_runtime_sampler(options.sampler):  # a QPU provider
        per_circuit = shots or [options.shots or 0] * len(circuits)
        outcomes, provider_jobs = ibm_runtime.run_runtime_batch(
            manifest_uri, manifest, index, circuits, options, per_circuit
        )
    else:
        outcomes = execute_circuits(
            circuits, options, seed=seed, sampler=sampler, device=device, shots=shots
        )
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


def _simulator_name(options: ExecutionOptions, sampler) -> str:
    if sampler is not None:
        return f"{type(sampler).__module__}.{type(sampler).__qualname__}"
    if options.sampler != DEFAULT_SAMPLER:
        return options.sampler
    return "aer statevector"


def execute_circuits(
    circuits: list[QuantumCircuit],
    options: ExecutionOptions,
    *,
    seed: list[int],
    sampler=None,
    device: str = "cpu",
    shots: Sequence[int] | None = None,
) -> Outcomes:
    """Outcomes of the circuits; ``shots`` (one per circuit) overrides ``options.shots``."""
    observable_bits = simulate.observable_bit_counts(circuits)
    per_circuit = [options.shots or 0] * len(circuits) if shots is None else [int(n) for n in shots]
    if sampler is not None or options.sampler != DEFAULT_SAMPLER:
        chosen = sampler if sampler is not None else samplers.resolve_sampler(options.sampler)
        if options.mode == "exact":
            raise InputError("exact mode needs the built-in simulator, not a supplied sampler")
        distributions = samplers.run_on_sampler(chosen, circuits, per_circuit)
        return build_outcomes(distributions, per_circuit, observable_bits)
    distributions = simulate.exact_distributions(circuits, device=device)
    if options.mode == "exact":
        return build_outcomes(distributions, [0] * len(circuits), observable_bits)
    sampled = simulate.sample_distributions(distributions, per_circuit, seed=seed)
    return build_outcomes(sampled, per_circuit, observable_bits)


def batch_shots(
    manifest_uri: str, manifest: JobManifest, index: int, options: ExecutionOptions
) -> list[int] | None:
    """Per-circuit shots of batch ``index`` under weighted allocation; None means uniform."""
    if options.mode != "shots" or options.shot_allocation == "uniform":
        return None
    coefficients, indices = read_reconstruction_data(manifest_uri, manifest)
    shots = allocate_shots(
        options.shots or 0, coefficients, manifest.subsystems, indices, options.shot_allocation
    )
    batch = manifest.batches[index]
    return shots[batch.first : batch.first + batch.count].tolist()


def _device(asked: str) -> str:
    if asked == "cpu":
        return "cpu"
    if simulate.gpu_available():
        return "gpu"
    if asked == "gpu":
        log.warning("Aer GPU simulation was asked for but no GPU is available; using the CPU")
    return "cpu"


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
) -> tuple[Outcomes, BatchRecord]:
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
        outcomes = Outcomes.from_bytes(data)
    except (ValueError, KeyError, OSError) as exc:
        raise ArtifactError(f"the result of batch {index} cannot be read ({exc})") from exc
    if (
        outcomes.num_experiments != manifest.batches[index].count
        or outcomes.digest() != record.outcomes_digest
    ):
        raise ArtifactError(f"the result of batch {index} does not match its record")
    return outcomes, record
