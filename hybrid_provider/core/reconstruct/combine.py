"""Combine batch outcomes into expectation values with standard errors, vectorised.

Per subexperiment, the mean of (-1)^parity(outcome & mask) over its outcomes (masks select the
observable's measured bits plus every QPD bit) is computed by popcount parity and one segmented
sum; per subsystem those means are gathered by the coefficient index and multiplied; one dot
product with the coefficients gives the values. Standard errors come from the delta method:
distinct subexperiments are independent, each mean has variance (1 - e^2)/shots, and the
gradient of the estimate with respect to it is accumulated over every coefficient that uses it.
Loops run over subsystems, observable groups and observables only, never shots or coefficients.
"""

from __future__ import annotations

import io
import time
from typing import NamedTuple

import numpy as np
from qiskit.quantum_info import PauliList
from qiskit_addon_cutting.utils.observable_grouping import ObservableCollection

from hybrid_provider.core import store
from hybrid_provider.core.errors import ArtifactError
from hybrid_provider.core.execute.batch import load_result
from hybrid_provider.core.execute.outcomes import Outcomes
from hybrid_provider.core.manifest import JobManifest, load_manifest, read_artifact
from hybrid_provider.core.reconstruct import arrays

ALL_BITS = np.uint64(0xFFFFFFFFFFFFFFFF)


class Reconstruction(NamedTuple):
    observables: list[str]
    values: list[float]
    std_errors: list[float]
    mode: str
    shots: int | None
    array_module: str
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return self._asdict()


class _Group(NamedTuple):
    """One observable group of one subsystem: which experiments measure it, with which masks."""

    experiments: np.ndarray  # flat subexperiment ids, one per distinct term choice
    masks: np.ndarray  # uint64 bitmask over the observable register, one per commuting observable


def reconstruct_job(manifest_uri: str, device: str = "auto") -> Reconstruction:
    """Reconstruct a finished job; refuses, naming them, when batches are missing or corrupt."""
    started = time.perf_counter()
    manifest_uri = store.normalise_uri(manifest_uri)
    manifest = load_manifest(manifest_uri)
    outcomes, options = _collect_outcomes(manifest_uri, manifest)
    with np.load(
        io.BytesIO(read_artifact(manifest_uri, manifest.reconstruction, "reconstruction data"))
    ) as npz:
        coefficients = npz["coefficients"]
        indices = {s.label: npz[f"index_{s.label}"] for s in manifest.subsystems}
    xp = arrays.array_module(device)
    data, shots = prepare_outcomes(xp, outcomes)
    values, errors = combine(xp, manifest, coefficients, indices, data, shots)
    return Reconstruction(
        observables=manifest.observables,
        values=[float(v) for v in values],
        std_errors=[float(e) for e in errors],
        mode=options["mode"],
        shots=options["shots"],
        array_module=xp.__name__,
        seconds=time.perf_counter() - started,
    )


def _collect_outcomes(manifest_uri: str, manifest: JobManifest) -> tuple[Outcomes, dict]:
    parts, problems, options = [], [], []
    for batch in manifest.batches:
        try:
            outcomes, record = load_result(manifest_uri, manifest, batch.index)
        except ArtifactError as exc:
            problems.append(f"batch {batch.index}: {exc}")
            continue
        parts.append(outcomes)
        options.append(record["options"])
    if problems:
        raise ArtifactError(
            f"cannot reconstruct: {len(problems)} of {manifest.num_batches} batch result(s) are "
            "missing or invalid; run those batches again (hybrid-quantum run-batch, or re-run the "
            "submit task):\n  " + "\n  ".join(problems)
        )
    distinct = {tuple(sorted(o.items())) for o in options}
    if len(distinct) > 1:
        raise ArtifactError(
            "cannot reconstruct: batches were run with different execution options; "
            "run them again with one set of options"
        )
    return Outcomes.concatenate(parts), options[0]


def prepare_outcomes(xp, outcomes: Outcomes) -> tuple[dict, np.ndarray]:
    """Outcomes on the array device with weights normalised per subexperiment, and the shots."""
    lengths = np.diff(outcomes.offsets)
    if np.any(lengths <= 0):
        raise ArtifactError("a batch result has a subexperiment without outcomes; re-run it")
    totals = np.add.reduceat(outcomes.weights, outcomes.offsets[:-1])
    device_data = {
        "values": xp.asarray(outcomes.values),
        "weights": xp.asarray(outcomes.weights / np.repeat(totals, lengths)),
        "offsets": outcomes.offsets,
        "lengths": lengths,
        "observable_bits": outcomes.observable_bits,
    }
    shots = outcomes.shots.astype(np.float64)
    return device_data, shots


def _group_means(xp, data: dict, group: _Group):
    """Mean of (-1)^parity(outcome & full mask) per experiment of the group, per mask."""
    experiments = group.experiments
    starts = data["offsets"][experiments]
    lengths = data["lengths"][experiments]
    rows = arrays.ranges(xp, xp.asarray(starts), xp.asarray(lengths))
    values = data["values"][rows]
    weights = data["weights"][rows]
    observable_bits = int(data["observable_bits"][experiments[0]])
    qpd_mask = ALL_BITS << np.uint64(observable_bits)
    masks = xp.asarray(group.masks | qpd_mask)
    signs = 1.0 - 2.0 * arrays.parity(xp, values[:, None] & masks[None, :]).astype(xp.float64)
    return arrays.segment_sums(xp, weights[:, None] * signs, xp.asarray(lengths))


def combine(xp, manifest: JobManifest, coefficients, indices, data, shots):
    """Values and standard errors for every observable of the job."""
    num_observables = len(manifest.observables)
    coefficients = xp.asarray(coefficients)
    factors, factor_variances = [], []
    for subsystem in manifest.subsystems:
        mean, variance = _subsystem_means(xp, subsystem, data, shots, num_observables)
        index = xp.asarray(indices[subsystem.label])
        factors.append((index, mean))
        factor_variances.append(variance)
    gathered = [mean[index] for index, mean in factors]  # (coefficients, observables) each
    product = xp.ones_like(gathered[0])
    for term in gathered:
        product = product * term
    values = coefficients @ product
    variance = xp.zeros(num_observables)
    for position, ((index, mean), sub_variance) in enumerate(
        zip(factors, factor_variances, strict=True)
    ):
        others = xp.ones_like(gathered[0])
        for other_position, term in enumerate(gathered):
            if other_position != position:
                others = others * term
        gradient = coefficients[:, None] * others
        for o in range(num_observables):
            per_experiment = xp.bincount(index, weights=gradient[:, o], minlength=mean.shape[0])
            variance[o] += xp.sum(per_experiment**2 * sub_variance[:, o])
    return arrays.to_numpy(values), arrays.to_numpy(xp.sqrt(variance))


def _subsystem_means(xp, subsystem, data, shots, num_observables):
    """(distinct experiments x observables) means and variances of one subsystem's factor."""
    collection = ObservableCollection(PauliList(subsystem.subobservables))
    distinct = np.arange(subsystem.num_distinct)
    group_means, group_variances = [], []
    for k, group in enumerate(collection.groups):
        experiments = subsystem.offset + distinct * subsystem.num_groups + k
        means = _group_means(
            xp, data, _Group(experiments, np.asarray(group.pauli_bitmasks, dtype=np.uint64))
        )
        group_shots = xp.asarray(shots[experiments])[:, None]
        safe_shots = xp.where(group_shots > 0, group_shots, 1.0)
        group_variances.append(xp.where(group_shots > 0, (1.0 - means**2) / safe_shots, 0.0))
        group_means.append(means)
    mean = xp.zeros((subsystem.num_distinct, num_observables))
    variance = xp.zeros((subsystem.num_distinct, num_observables))
    for o, pauli in enumerate(PauliList(subsystem.subobservables)):
        entries = collection.lookup[pauli]
        for k, n in entries:
            mean[:, o] += group_means[k][:, n] / len(entries)
            variance[:, o] += group_variances[k][:, n] / len(entries) ** 2
    return mean, variance
