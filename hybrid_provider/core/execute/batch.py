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
from datetime import datetime, timezone
from typing import NamedTuple

import numpy as np
from qiskit import QuantumCircuit, qpy

from hybrid_provider.core import store
from hybrid_provider.core.errors import ArtifactError, InputError
from hybrid_provider.core.execute import samplers, simulate
from hybrid_provider.core.execute.allocation import allocate_shots
from hybrid_provider.core.execute.options import DEFAULT_SAMPLER, ExecutionOptions
from hybrid_provider.core.execute.outcomes import Outcomes, build_outcomes
from hybrid_provider.core.manifest import JobManifest, artifact_uri, load_manifest, read_artifact

log = logging.getLogger(__name__)


class BatchReport(NamedTuple):
    index: int
    num_subexperiments: int
    duration_s: float
    skipped: bool
    device: str


def outcomes_uri(manifest_uri: str, index: int) -> str:
    return artifact_uri(manifest_uri, f"results/batch-{index:05d}.npz")


def record_uri(manifest_uri: str, index: int) -> str:
    return artifact_uri(manifest_uri, f"results/batch-{index:05d}.json")


def run_batch(
    manifest_uri: str,
    index: int,
    options: ExecutionOptions,
    *,
    sampler=None,
    manifest: JobManifest | None = None,
) -> BatchReport:
    """Run batch ``index`` unless a valid result for the same options is already stored."""
    manifest_uri = store.normalise_uri(manifest_uri)
    manifest = manifest or load_manifest(manifest_uri)
    if not 0 <= index < manifest.num_batches:
        raise InputError(
            f"batch {index} does not exist: the job has batches 0..{manifest.num_batches - 1}"
        )
    batch = manifest.batches[index]
    if stored_result_valid(manifest_uri, manifest, index, options):
        return BatchReport(index, batch.count, 0.0, skipped=True, device="stored")
    started = time.perf_counter()
    circuits = qpy.load(io.BytesIO(read_artifact(manifest_uri, batch, f"batch {index}")))
    device = _device(options.device)
    outcomes = execute_circuits(
        circuits,
        options,
        seed=[options.seed, index],
        sampler=sampler,
        device=device,
        shots=batch_shots(manifest_uri, manifest, index, options),
    )
    duration = time.perf_counter() - started
    data = outcomes.to_bytes()
    store.write_bytes_atomic(outcomes_uri(manifest_uri, index), data)
    store.write_json_atomic(
        record_uri(manifest_uri, index),
        {
            "batch": index,
            "batch_sha256": batch.sha256,
            "options": options.model_dump(),
            "outcomes_sha256": store.sha256(data),
            "num_subexperiments": batch.count,
            "device": device,
            "duration_s": round(duration, 6),
            "finished_at": datetime.now(timezone.utc).isoformat(),
        },
    )
    return BatchReport(index, batch.count, duration, skipped=False, device=device)


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
    per_circuit = [options.shots] * len(circuits) if shots is None else [int(n) for n in shots]
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
    with np.load(
        io.BytesIO(read_artifact(manifest_uri, manifest.reconstruction, "reconstruction data"))
    ) as npz:
        coefficients = npz["coefficients"]
        indices = {s.label: npz[f"index_{s.label}"] for s in manifest.subsystems}
    shots = allocate_shots(
        options.shots, coefficients, manifest.subsystems, indices, options.shot_allocation
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
) -> tuple[Outcomes, dict]:
    """Load a batch's outcomes after checking its record against the manifest and the options."""
    uri = record_uri(manifest_uri, index)
    if not store.exists(uri):
        raise ArtifactError(f"batch {index} has no result yet ({uri})")
    record = store.read_json(uri, what=f"result record of batch {index}")
    if record.get("batch_sha256") != manifest.batches[index].sha256:
        raise ArtifactError(f"the result of batch {index} belongs to other subexperiments")
    if options is not None and record.get("options") != options.model_dump():
        raise ArtifactError(f"the result of batch {index} was run with other options")
    data = store.read_verified(
        outcomes_uri(manifest_uri, index),
        record.get("outcomes_sha256", ""),
        f"result of batch {index}",
    )
    outcomes = Outcomes.from_bytes(data)
    if outcomes.count != manifest.batches[index].count:
        raise ArtifactError(f"the result of batch {index} has the wrong number of subexperiments")
    return outcomes, record
