"""Each subsystem's distinct QPD term choices, with the index that maps coefficients onto them.

``generate_cutting_experiments`` builds one circuit per (coefficient, subsystem, observable
group), so a subsystem touched by fewer cuts than the whole circuit gets the same circuit many
times (qiskit-addon-cutting issue #262). We walk the same weights in the same order with the
addon's own building blocks, but keep a subsystem's term choice once, and record for every
coefficient which distinct choice it uses. No circuit is built here: a job stores the plan and
these choices, and each executor builds what it runs where it runs (:func:`measured_circuits`
for samplers, which a test checks against ``generate_cutting_experiments`` circuit for circuit).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from typing import NamedTuple

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import PauliList
from qiskit_addon_cutting.cutting_decomposition import PartitionedCuttingProblem
from qiskit_addon_cutting.cutting_experiments import (
    _append_measurement_circuit,
    _append_measurement_register,
    _consolidate_resets,
    _get_bases_by_partition,
    _get_mapping_ids_by_partition,
    _remove_final_resets,
    _remove_resets_in_zero_state,
)
from qiskit_addon_cutting.qpd import BaseQPDGate, decompose_qpd_instructions, generate_qpd_weights
from qiskit_addon_cutting.utils.observable_grouping import ObservableCollection

from hybrid_provider.core.cut.plan import CutPlan


@dataclass(frozen=True)
class SubsystemChoices:
    """Distinct QPD term choices of one subsystem (all of them, or a batch's slice).

    What every executor works from: a simulator builds the deferred-measurement circuit of each
    choice, a sampler the measured circuit of each choice and observable group.
    """

    label: str
    subcircuit: QuantumCircuit
    gate_ids: list[list[int]]
    #: One row per choice: the term of each of this subsystem's cuts, in ``gate_ids`` order.
    terms: np.ndarray
    observables: PauliList

    @property
    def positions(self) -> list[dict[int, int]]:
        """Per choice: instruction position of each QPD gate -> its term."""
        places = [position for (position,) in self.gate_ids]
        return [dict(zip(places, map(int, row), strict=True)) for row in self.terms]

    @property
    def subobservables(self) -> list[str]:
        return self.observables.to_labels()

    @cached_property
    def collection(self) -> ObservableCollection:
        return ObservableCollection(self.observables)

    @property
    def groups(self) -> list:
        return self.collection.groups

    def select(self, start: int, end: int) -> SubsystemChoices:
        return replace(self, terms=self.terms[start:end])


class DistinctChoices(NamedTuple):
    coefficients: np.ndarray
    subsystems: list[SubsystemChoices]
    #: Per subsystem label: for coefficient i, the distinct choice it uses.
    indices: dict[str, np.ndarray]


def distinct_choices(plan: CutPlan) -> DistinctChoices:
    """The coefficients (addon order) and each subsystem's distinct term choices; no circuits."""
    subcircuits, subobservables, gate_ids = _parts(plan.problem)
    _, map_positions = _get_mapping_ids_by_partition(subcircuits)
    bases = _get_bases_by_partition(subcircuits, gate_ids)
    weights = generate_qpd_weights(bases, num_samples=np.inf)
    ordered = sorted(weights.items(), key=lambda item: item[1][0], reverse=True)
    subsystems, indices = [], {}
    for label in sorted(subcircuits):
        canonical = _canonical_terms(subcircuits[label], gate_ids[label])
        distinct: dict[tuple[int, ...], int] = {}
        index = np.empty(len(ordered), dtype=np.int64)
        for i, (map_ids, _) in enumerate(ordered):
            local = tuple(
                canon[map_ids[j]] for canon, j in zip(canonical, map_positions[label], strict=True)
            )
            index[i] = distinct.setdefault(local, len(distinct))
        terms = np.array(list(distinct), dtype=np.int16).reshape(len(distinct), len(canonical))
        subsystems.append(
            SubsystemChoices(
                label, subcircuits[label], gate_ids[label], terms, subobservables[label]
            )
        )
        indices[label] = index
    return DistinctChoices(_coefficients(bases, ordered), subsystems, indices)


def stored_choices(
    problem: PartitionedCuttingProblem, terms: dict[str, np.ndarray]
) -> list[SubsystemChoices]:
    """Each subsystem's choices from a rebuilt problem and the terms the cut stage stored."""
    subcircuits, subobservables, gate_ids = _parts(problem)
    return [
        SubsystemChoices(label, subcircuits[label], gate_ids[label], rows, subobservables[label])
        for label, rows in terms.items()
    ]


def _parts(problem: PartitionedCuttingProblem):
    subcircuits = {str(k): v for k, v in problem.subcircuits.items()}
    subobservables = {str(k): v for k, v in problem.subobservables.items()}
    gate_ids, _ = _get_mapping_ids_by_partition(subcircuits)
    return subcircuits, subobservables, gate_ids


def subsystem_digest(subsystem: SubsystemChoices) -> str:
    """sha256 of a subcircuit's instructions and cuts: equal subcircuits, equal digests.

    A batch rebuilds its subcircuit from the stored plan; comparing this with the manifest's
    catches a rebuild that came out different (another qiskit-addon-cutting, say).
    """
    digest = hashlib.sha256()
    circuit = subsystem.subcircuit
    for instruction in circuit.data:
        operation = instruction.operation
        qubits = [circuit.find_bit(q).index for q in instruction.qubits]
        digest.update(f"{operation.name}|{qubits}|{[repr(p) for p in operation.params]};".encode())
        if isinstance(operation, BaseQPDGate):
            for term in operation.basis.maps:
                digest.update(repr([[op.name for op in side] for side in term]).encode())
    digest.update(",".join(subsystem.subobservables).encode())
    return digest.hexdigest()


def measured_circuits(subsystem: SubsystemChoices) -> Iterator[QuantumCircuit]:
    """The measured subexperiment of each choice and observable group, in that order: what a
    sampler or a device runs, built with the addon's own building blocks."""
    groups = subsystem.groups
    for row in subsystem.terms:
        for group in groups:
            yield _subexperiment(subsystem.subcircuit, subsystem.gate_ids, tuple(row), group)


def _canonical_terms(subcircuit: QuantumCircuit, gate_ids: list[list[int]]) -> list[list[int]]:
    """Per cut in this subsystem: each QPD term mapped to the first term with the same local ops.

    Two terms of a cut differ on one side only sometimes (a cut CX has 6 terms but only 5
    distinct circuits per side); a subsystem needs one circuit per distinct local choice.
    """
    canonical = []
    for (position,) in gate_ids:
        gate = subcircuit.data[position].operation
        local_ops = [tuple(term[gate.qubit_id]) for term in gate.basis.maps]
        canonical.append([local_ops.index(ops) for ops in local_ops])
    return canonical


def _coefficients(bases, ordered) -> np.ndarray:
    """The addon's formula, kept identical so reconstructions agree to rounding."""
    kappa = np.prod([basis.kappa for basis in bases])
    total = sum(weight for _, (weight, _) in ordered)
    signs = [
        np.sign(np.prod([basis.coeffs[m] for basis, m in zip(bases, map_ids, strict=True)]))
        for map_ids, _ in ordered
    ]
    weights = np.array([weight for _, (weight, _) in ordered], dtype=float)
    return (weights / total) * (kappa * np.array(signs, dtype=float))


def _subexperiment(subcircuit, gate_ids, map_ids, group) -> QuantumCircuit:
    """As the addon's ``generate_cutting_experiments`` builds one (a test compares them)."""
    circuit = _append_measurement_register(subcircuit, group)
    decompose_qpd_instructions(circuit, gate_ids, map_ids, inplace=True)
    _append_measurement_circuit(circuit, group, inplace=True)
    _remove_resets_in_zero_state(circuit)
    _remove_final_resets(circuit)
    _consolidate_resets(circuit)
    return circuit
