"""Generate each distinct subexperiment once, with the index that maps coefficients onto them.

``generate_cutting_experiments`` builds one circuit per (coefficient, subsystem, observable
group), so a subsystem touched by fewer cuts than the whole circuit gets the same circuit many
times (qiskit-addon-cutting issue #262). We walk the same weights in the same order with the
addon's own building blocks, but build a subsystem's circuit once per distinct choice of its
QPD terms, and record for every coefficient which distinct circuit it uses. A test checks the
result against ``generate_cutting_experiments`` circuit for circuit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import PauliList
from qiskit_addon_cutting.cutting_experiments import (
    _append_measurement_circuit,
    _append_measurement_register,
    _consolidate_resets,
    _get_bases_by_partition,
    _get_mapping_ids_by_partition,
    _remove_final_resets,
    _remove_resets_in_zero_state,
)
from qiskit_addon_cutting.qpd import decompose_qpd_instructions, generate_qpd_weights
from qiskit_addon_cutting.utils.observable_grouping import ObservableCollection

from hybrid_provider.core.cut.plan import CutPlan


@dataclass(frozen=True)
class SubsystemLayout:
    """Where a subsystem's subexperiments sit in the flat list; which one each coefficient uses."""

    label: str
    offset: int
    num_groups: int
    num_distinct: int
    #: For coefficient i, the distinct circuit (0..num_distinct-1) of this subsystem it uses.
    index: np.ndarray
    subobservables: list[str]


class CuttingExperiments(NamedTuple):
    circuits: list[QuantumCircuit]
    coefficients: np.ndarray
    subsystems: list[SubsystemLayout]

    @property
    def num_redundant(self) -> int:
        """How many circuits the addon's generator would have built."""
        return len(self.coefficients) * sum(s.num_groups for s in self.subsystems)


@dataclass(frozen=True)
class SubsystemChoices:
    """The distinct QPD term choices of one subsystem, in first-use order."""

    label: str
    subcircuit: QuantumCircuit
    gate_ids: list[list[int]]
    #: Per distinct choice, the term of each of this subsystem's cuts, in ``gate_ids`` order.
    terms: list[tuple[int, ...]]
    #: For coefficient i, the distinct choice (0..len(terms)-1) it uses.
    index: np.ndarray
    observables: PauliList

    @property
    def positions(self) -> list[dict[int, int]]:
        """Per distinct choice: instruction position of each QPD gate -> its term."""
        places = [position for (position,) in self.gate_ids]
        return [dict(zip(places, local, strict=True)) for local in self.terms]

    @property
    def subobservables(self) -> list[str]:
        return self.observables.to_labels()


class DistinctChoices(NamedTuple):
    coefficients: np.ndarray
    subsystems: list[SubsystemChoices]


def distinct_choices(plan: CutPlan) -> DistinctChoices:
    """The coefficients (addon order) and each subsystem's distinct term choices; no circuits."""
    problem = plan.problem
    subcircuits = {str(k): v for k, v in problem.subcircuits.items()}
    subobservables = {str(k): v for k, v in problem.subobservables.items()}
    gate_ids, map_positions = _get_mapping_ids_by_partition(subcircuits)
    bases = _get_bases_by_partition(subcircuits, gate_ids)
    weights = generate_qpd_weights(bases, num_samples=np.inf)
    ordered = sorted(weights.items(), key=lambda item: item[1][0], reverse=True)
    coefficients = _coefficients(bases, ordered)
    subsystems = []
    for label in sorted(subcircuits):
        canonical = _canonical_terms(subcircuits[label], gate_ids[label])
        distinct: dict[tuple[int, ...], int] = {}
        index = np.empty(len(ordered), dtype=np.int64)
        for i, (map_ids, _) in enumerate(ordered):
            local = tuple(
                canon[map_ids[j]] for canon, j in zip(canonical, map_positions[label], strict=True)
            )
            index[i] = distinct.setdefault(local, len(distinct))
        subsystems.append(
            SubsystemChoices(
                label=label,
                subcircuit=subcircuits[label],
                gate_ids=gate_ids[label],
                terms=list(distinct),
                index=index,
                observables=subobservables[label],
            )
        )
    return DistinctChoices(coefficients, subsystems)


def generate_distinct_experiments(plan: CutPlan) -> CuttingExperiments:
    """The flat list is subsystem-major, then distinct term choice, then observable group."""
    choices = distinct_choices(plan)
    circuits: list[QuantumCircuit] = []
    layouts: list[SubsystemLayout] = []
    for subsystem in choices.subsystems:
        collection = ObservableCollection(subsystem.observables)
        offset = len(circuits)
        for local in subsystem.terms:
            circuits.extend(
                _subexperiment(subsystem.subcircuit, subsystem.gate_ids, local, group)
                for group in collection.groups
            )
        layouts.append(
            SubsystemLayout(
                label=subsystem.label,
                offset=offset,
                num_groups=len(collection.groups),
                num_distinct=len(subsystem.terms),
                index=subsystem.index,
                subobservables=subsystem.subobservables,
            )
        )
    return CuttingExperiments(
        circuits=circuits, coefficients=choices.coefficients, subsystems=layouts
    )


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
    circuit = _append_measurement_register(subcircuit, group)
    decompose_qpd_instructions(circuit, gate_ids, map_ids, inplace=True)
    _append_measurement_circuit(circuit, group, inplace=True)
    _remove_resets_in_zero_state(circuit)
    _remove_final_resets(circuit)
    _consolidate_resets(circuit)
    return circuit
