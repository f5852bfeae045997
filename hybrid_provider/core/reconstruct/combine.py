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

import json
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from qiskit.quantum_info import PauliList
from qiskit_addon_cutting.utils.observable_grouping import ObservableCollection

from hybrid_provider.core import store
from hybrid_provider.core.errors import ArtifactError
from hybrid_provider.core.execute.batch import load_result
from hybrid_provider.core.execute.outcomes import BatchOutcomes, ExactMeans, Outcomes
from hybrid_provider.core.execute.record import BatchRecord
from hybrid_provider.core.manifest import BatchRef, JobManifest, load_manifest, read_choices
from hybrid_provider.core.provenance import mixed_software
from hybrid_provider.core.reconstruct import arrays

ALL_BITS = np.uint64(0xFFFFFFFFFFFFFFFF)
#: (means, variances) of one subsystem, each (distinct choices x observables), as arrays of the
#: array module in use (NumPy or CuPy).
Factors = tuple[Any, Any]


class Reconstruction(NamedTuple):
    observables: list[str]
    values: list[float]
    std_errors: list[float]
    mode: str
    shots: int | None
    array_module: str
    seconds: float
    #: Packages whose version differs between batches: ``name: {version: [batch, …]}``.
    mixed_software: dict[str, dict[str, list[int]]] = {}

    def as_dict(self) -> dict[str, object]:
        return self._asdict()


class _Group(NamedTuple):
    """One observable group of one subsystem: which experiments measure it, with which masks."""

    experiments: np.ndarray  # flat subexperiment ids, one per distinct term choice
    masks: np.ndarray  # uint64 bitmask over the observable register, one per commuting observable


def reconstruct_job(manifest_uri: str, device: str = "auto") -> Reconstruction:
    """Reconstruct a finished job; refuses, naming them, when batches are missing or corrupt.

    Batches are read and reduced one at a time (per distinct subexperiment: a mean per
    observable), so memory holds one batch's outcomes plus small per-subsystem tables, however
    many cuts the job has.
    """
    started = time.perf_counter()
    manifest_uri = store.normalise_uri(manifest_uri)
    manifest = load_manifest(manifest_uri)
    tables = read_choices(manifest_uri, manifest)
    xp = arrays.array_module(device)
    accumulator = FactorAccumulator(xp, manifest.subsystems, len(manifest.observables))
    records: dict[int, BatchRecord] = {}
    problems: list[str] = []
    for batch in manifest.batches:
        try:
            outcomes, record = load_result(manifest_uri, manifest, batch.index)
        except ArtifactError as exc:
            problems.append(f"batch {batch.index}: {exc}")
            continue
        if not problems:  # once a batch is missing the result is refused; just keep checking
            accumulator.add_batch(manifest, batch, outcomes)
        records[batch.index] = record
        del outcomes
    if problems:
        raise ArtifactError(
            f"cannot reconstruct: {len(problems)} of {manifest.num_batches} batch result(s) are "
            "missing or invalid; run those batches again (hybrid-quantum run-batch, or re-run the "
            "submit task):\n  " + "\n  ".join(problems)
        )
    identities = {json.dumps(r.options.identity(), sort_keys=True) for r in records.values()}
    if len(identities) > 1:
        raise ArtifactError(
            "cannot reconstruct: batches were run with different execution options (mode, "
            "shots, seed, sampler or allocation); run them again with one set of options"
        )
    values, errors = combine_factors(xp, tables.coefficients, tables.indices, accumulator.factors())
    options = records[0].options
    return Reconstruction(
        observables=manifest.observables,
        values=[float(v) for v in values],
        std_errors=[float(e) for e in errors],
        mode=options.mode,
        shots=options.shots,
        array_module=xp.__name__,
        seconds=time.perf_counter() - started,
        mixed_software=mixed_software({i: r.provenance.software for i, r in records.items()}),
    )


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


class FactorAccumulator:
    """Per-subsystem factor tables filled batch by batch, so each batch's outcomes can be
    dropped as soon as they are added.

    Shot outcomes cover a range of measured subexperiments (a subsystem's are
    ``offset + distinct * num_groups + group``) and fill the rows of the groups they cover;
    exact means cover a range of term choices (a subsystem's are ``first_choice + distinct``)
    and fill whole rows, with no variance.
    """

    def __init__(self, xp, subsystems, num_observables: int):
        self.xp = xp
        self.subsystems = list(subsystems)
        self.num_observables = num_observables
        self._collections = [
            ObservableCollection(PauliList(s.subobservables)) for s in self.subsystems
        ]
        if any(
            len(c.groups) != s.num_groups
            for s, c in zip(self.subsystems, self._collections, strict=True)
        ):
            raise ArtifactError("the manifest's observable groups do not match its observables")
        self._means = [
            [xp.zeros((s.num_distinct, len(g.commuting_observables))) for g in c.groups]
            for s, c in zip(self.subsystems, self._collections, strict=True)
        ]
        self._shots = [
            [np.zeros(s.num_distinct) for _ in c.groups]
            for s, c in zip(self.subsystems, self._collections, strict=True)
        ]
        self._filled = [
            [np.zeros(s.num_distinct, dtype=bool) for _ in c.groups]
            for s, c in zip(self.subsystems, self._collections, strict=True)
        ]
        self._exact = [xp.zeros((s.num_distinct, num_observables)) for s in self.subsystems]
        self._exact_filled = [np.zeros(s.num_distinct, dtype=bool) for s in self.subsystems]

    def add_batch(self, manifest: JobManifest, batch: BatchRef, outcomes: BatchOutcomes) -> None:
        if isinstance(outcomes, ExactMeans):
            self.add_means(batch.first, outcomes)
        else:
            self.add_outcomes(manifest.measured_range(batch)[0], outcomes)

    def add_means(self, first: int, exact: ExactMeans) -> None:
        """Add the exact means of term choices ``first .. first + exact.num_rows - 1``."""
        end = first + exact.num_rows
        for s, subsystem in enumerate(self.subsystems):
            start = max(first, subsystem.first_choice)
            stop = min(end, subsystem.first_choice + subsystem.num_distinct)
            if start >= stop:
                continue
            rows = np.arange(start, stop) - subsystem.first_choice
            self._exact[s][self.xp.asarray(rows)] = self.xp.asarray(
                exact.means[start - first : stop - first]
            )
            self._exact_filled[s][rows] = True

    def add_outcomes(self, first: int, outcomes: Outcomes) -> None:
        """Add the outcomes of measured experiments ``first .. first + num_experiments - 1``."""
        xp = self.xp
        data, shots = prepare_outcomes(xp, outcomes)
        end = first + outcomes.num_experiments
        for s, (subsystem, collection) in enumerate(
            zip(self.subsystems, self._collections, strict=True)
        ):
            distinct = np.arange(subsystem.num_distinct)
            for k, group in enumerate(collection.groups):
                flat = subsystem.offset + distinct * subsystem.num_groups + k
                inside = (flat >= first) & (flat < end)
                if not inside.any():
                    continue
                local = flat[inside] - first
                masks = np.asarray(group.pauli_bitmasks, dtype=np.uint64)
                rows = distinct[inside]
                self._means[s][k][xp.asarray(rows)] = _group_means(xp, data, _Group(local, masks))
                self._shots[s][k][rows] = shots[local]
                self._filled[s][k][rows] = True

    def factors(self) -> list[Factors]:
        """(means, variances), each (distinct choices x observables), per subsystem."""
        xp = self.xp
        if all(f.all() for f in self._exact_filled):
            return [(means, xp.zeros(means.shape)) for means in self._exact]
        if not all(f.all() for groups in self._filled for f in groups):
            raise ArtifactError("cannot reconstruct: some subexperiments have no outcomes")
        result = []
        for s, (subsystem, collection) in enumerate(
            zip(self.subsystems, self._collections, strict=True)
        ):
            mean = xp.zeros((subsystem.num_distinct, self.num_observables))
            variance = xp.zeros((subsystem.num_distinct, self.num_observables))
            group_variances = []
            for k in range(len(collection.groups)):
                group_shots = xp.asarray(self._shots[s][k])[:, None]
                safe = xp.where(group_shots > 0, group_shots, 1.0)
                means = self._means[s][k]
                group_variances.append(xp.where(group_shots > 0, (1.0 - means**2) / safe, 0.0))
            for o, pauli in enumerate(PauliList(subsystem.subobservables)):
                entries = collection.lookup[pauli]
                for k, n in entries:
                    mean[:, o] += self._means[s][k][:, n] / len(entries)
                    variance[:, o] += group_variances[k][:, n] / len(entries) ** 2
            result.append((mean, variance))
        return result


def combine_factors(xp, coefficients, indices: dict, factors: Sequence[Factors]):
    """Values and standard errors from per-subsystem (means, variances), in subsystem order.

    ``indices`` maps each subsystem label to its coefficient -> distinct choice index, in the
    same order as ``factors`` (dict insertion order).
    """
    coefficients = xp.asarray(coefficients)
    index_list = [xp.asarray(index) for index in indices.values()]
    gathered = [mean[index] for index, (mean, _) in zip(index_list, factors, strict=True)]
    product = xp.ones_like(gathered[0])
    for term in gathered:
        product = product * term
    values = coefficients @ product
    num_observables = gathered[0].shape[1]
    variance = xp.zeros(num_observables)
    for position, (index, (mean, sub_variance)) in enumerate(zip(index_list, factors, strict=True)):
        if not bool(xp.any(sub_variance)):
            continue  # exact factors contribute no variance
        others = xp.ones_like(gathered[0])
        for other_position, term in enumerate(gathered):
            if other_position != position:
                others = others * term
        gradient = coefficients[:, None] * others
        for o in range(num_observables):
            per_experiment = xp.bincount(index, weights=gradient[:, o], minlength=mean.shape[0])
            variance[o] += xp.sum(per_experiment**2 * sub_variance[:, o])
    return arrays.to_numpy(values), arrays.to_numpy(xp.sqrt(variance))
