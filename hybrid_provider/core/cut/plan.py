"""Decide where to cut, and say what it will cost before anything runs.

Two ways in: explicit partition labels (one label per qubit, qubit 0 first) where every gate
spanning two partitions is cut, or automatic cut finding (``find_cuts``) under a
qubits-per-subcircuit limit, which may cut gates and wires.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from qiskit import QuantumCircuit, transpile
from qiskit.quantum_info import PauliList
from qiskit_addon_cutting import (
    DeviceConstraints,
    OptimizationParameters,
    cut_wires,
    expand_observables,
    find_cuts,
    partition_problem,
)
from qiskit_addon_cutting.cutting_decomposition import PartitionedCuttingProblem

from hybrid_provider.core.cut import DEFAULT_MAX_COEFFICIENTS
from hybrid_provider.core.errors import CutPlanError, InputError

#: Gates Aer simulates natively and the addon knows how to cut (two-qubit ones).
SIMULATOR_BASIS = [
    "id",
    "x",
    "y",
    "z",
    "h",
    "s",
    "sdg",
    "t",
    "tdg",
    "sx",
    "sxdg",
    "rx",
    "ry",
    "rz",
    "p",
    "u",
    "u1",
    "u2",
    "u3",
    "r",
    "cx",
    "cy",
    "cz",
    "cp",
    "crx",
    "cry",
    "crz",
    "csx",
    "swap",
    "ecr",
    "rxx",
    "ryy",
    "rzz",
    "rzx",
    "barrier",
]


class CutPlan(NamedTuple):
    """A partitioned problem and what running it will cost."""

    problem: PartitionedCuttingProblem
    observables: PauliList
    num_qubits: int
    partition_labels: str
    num_gate_cuts: int
    num_wire_cuts: int
    sampling_overhead: float
    num_coefficients: int

    @property
    def labels(self) -> list[str]:
        return sorted(str(label) for label in self.problem.subcircuits)

    @property
    def subcircuit_widths(self) -> dict[str, int]:
        return {str(k): c.num_qubits for k, c in sorted(self.problem.subcircuits.items())}

    @property
    def num_cuts(self) -> int:
        return self.num_gate_cuts + self.num_wire_cuts

    def summary(self) -> dict[str, object]:
        return {
            "num_qubits": self.num_qubits,
            "partition_labels": self.partition_labels,
            "num_cuts": self.num_cuts,
            "num_gate_cuts": self.num_gate_cuts,
            "num_wire_cuts": self.num_wire_cuts,
            "subcircuit_widths": self.subcircuit_widths,
            "sampling_overhead": self.sampling_overhead,
            "num_coefficients": self.num_coefficients,
        }


def prepare_for_cutting(circuit: QuantumCircuit) -> QuantumCircuit:
    """Rewrite gates outside :data:`SIMULATOR_BASIS` (custom, 3+ qubit) into it, once.

    Cutting needs gates of at most two qubits, and the executor runs the subexperiments
    without transpiling each one; a circuit already in the basis is returned unchanged.
    """
    if all(inst.operation.name in SIMULATOR_BASIS for inst in circuit.data):
        return circuit
    gates = [name for name in SIMULATOR_BASIS if name != "barrier"]  # barriers pass through
    return transpile(circuit, basis_gates=gates, optimization_level=0)


def plan_cuts(
    circuit: QuantumCircuit,
    observables: PauliList,
    *,
    partition_labels: Sequence[str] | str | None = None,
    max_subcircuit_qubits: int | None = None,
    seed: int = 111,
    max_coefficients: int = DEFAULT_MAX_COEFFICIENTS,
) -> CutPlan:
    """Plan the cuts: exactly one of ``partition_labels`` or ``max_subcircuit_qubits``.

    Refuses a plan that needs more than ``max_coefficients`` coefficients before anything is
    generated, saying what the plan would cost.
    """
    if (partition_labels is None) == (max_subcircuit_qubits is None):
        raise InputError(
            "give exactly one of partition labels (e.g. 'AABB', one per qubit, qubit 0 first) "
            "or a qubits-per-subcircuit limit for automatic cut finding"
        )
    circuit = prepare_for_cutting(circuit)
    if partition_labels is not None:
        plan = _plan_from_labels(circuit, observables, partition_labels)
        advice = "choose partition labels that cut fewer gates"
    else:
        plan = _plan_automatically(circuit, observables, int(max_subcircuit_qubits), seed)
        advice = "raise the qubits-per-subcircuit limit"
    if plan.num_coefficients > max_coefficients:
        raise CutPlanError(
            f"no practical cut plan fits: the best plan needs {plan.num_cuts} cuts, "
            f"{plan.num_coefficients:,} coefficients and a sampling overhead of "
            f"{plan.sampling_overhead:.3g} (limit {max_coefficients:,} coefficients); {advice}, "
            "or raise max_coefficients if you really mean it"
        )
    return plan


def _plan_from_labels(
    circuit: QuantumCircuit, observables: PauliList, labels: Sequence[str] | str
) -> CutPlan:
    labels = list(labels)
    if len(labels) != circuit.num_qubits:
        raise InputError(
            f"{len(labels)} partition label(s) given for a {circuit.num_qubits}-qubit circuit; "
            "give one label per qubit, qubit 0 first (e.g. 'AABB')"
        )
    problem = partition_problem(circuit=circuit, partition_labels=labels, observables=observables)
    return _describe(problem, observables, circuit.num_qubits, "".join(labels), wire_cuts=0)


def _plan_automatically(
    circuit: QuantumCircuit, observables: PauliList, max_qubits: int, seed: int
) -> CutPlan:
    if max_qubits < 1:
        raise InputError(f"the qubits-per-subcircuit limit must be at least 1, got {max_qubits}")
    if max_qubits >= circuit.num_qubits:
        raise CutPlanError(
            f"the circuit has {circuit.num_qubits} qubits and the limit is {max_qubits}: "
            "nothing needs cutting. Lower the limit or run the circuit directly"
        )
    try:
        cut_circuit, metadata = find_cuts(
            circuit, OptimizationParameters(seed=seed), DeviceConstraints(max_qubits)
        )
    except ValueError as exc:
        raise CutPlanError(
            f"no cut plan fits {max_qubits} qubit(s) per subcircuit: {exc}. "
            "Raise the limit or give partition labels"
        ) from exc
    with_ancillas = cut_wires(cut_circuit)
    expanded = expand_observables(observables, circuit, with_ancillas)
    problem = partition_problem(circuit=with_ancillas, observables=expanded)
    wire_cuts = sum(1 for kind, _ in metadata["cuts"] if kind == "Wire Cut")
    plan = _describe(problem, observables, circuit.num_qubits, "", wire_cuts=wire_cuts)
    too_wide = {k: w for k, w in plan.subcircuit_widths.items() if w > max_qubits}
    if too_wide or None in problem.subcircuits:
        raise CutPlanError(
            f"no cut plan fits {max_qubits} qubit(s) per subcircuit (best found: widths "
            f"{plan.subcircuit_widths}, sampling overhead {plan.sampling_overhead:.4g}). "
            "Raise the limit or give partition labels"
        )
    return plan._replace(partition_labels=_labels_of(problem))


def _labels_of(problem: PartitionedCuttingProblem) -> str:
    return ",".join(f"{label}:{c.num_qubits}" for label, c in sorted(problem.subcircuits.items()))


def _describe(
    problem: PartitionedCuttingProblem,
    observables: PauliList,
    num_qubits: int,
    labels: str,
    wire_cuts: int,
) -> CutPlan:
    bases = problem.bases
    return CutPlan(
        problem=problem,
        observables=observables,
        num_qubits=num_qubits,
        partition_labels=labels,
        num_gate_cuts=len(bases) - wire_cuts,
        num_wire_cuts=wire_cuts,
        sampling_overhead=float(math.prod(basis.overhead for basis in bases)),
        num_coefficients=int(math.prod(len(basis.maps) for basis in bases)),
    )
