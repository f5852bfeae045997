"""Benchmark cases: circuits, observables and how each is cut."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit.library import efficient_su2


class Case(NamedTuple):
    name: str
    circuit: QuantumCircuit
    observables: list[str]
    partition: str | None = None  # labels, or None for find_cuts
    max_qubits: int | None = None


def su2(num_qubits: int, reps: int) -> QuantumCircuit:
    circuit = efficient_su2(num_qubits, entanglement="linear", reps=reps)
    return circuit.assign_parameters(0.1 * np.arange(circuit.num_parameters))


def reference_case(num_qubits: int = 12, reps: int = 3) -> Case:
    """The issue's case: efficient_su2(12, linear, reps=3), Z*12 and X*12, cut 6|6 (3 CX)."""
    half = num_qubits // 2
    return Case(
        f"su2 {num_qubits}q r{reps}",
        su2(num_qubits, reps),
        ["Z" * num_qubits, "X" * num_qubits],
        partition="A" * half + "B" * (num_qubits - half),
    )


def wire_case() -> Case:
    """Qubit 3 talks to qubits 0-2, then to 4-6: find_cuts cuts its wire once (8 terms)."""
    circuit = QuantumCircuit(7)
    for q in range(7):
        circuit.ry(0.3 + 0.1 * q, q)
    for q in range(3):
        circuit.cx(q, 3)
        circuit.rz(0.2 * q + 0.1, 3)
    for q in range(4, 7):
        circuit.cx(3, q)
        circuit.ry(0.15 * q, q)
    for q in range(7):
        circuit.rx(0.05 * q + 0.2, q)
    return Case("wire cut 7q", circuit, ["Z" * 7, "IIIZIIZ", "X" * 7], max_qubits=4)


def find_cuts_case() -> Case:
    """find_cuts on efficient_su2(10, linear, reps=2) with at most 5 qubits per subcircuit."""
    return Case("find_cuts su2 10q", su2(10, 2), ["Z" * 10, "IIIIZZIIII"], max_qubits=5)


def scaling_case(cuts: int) -> Case:
    """efficient_su2(12, linear, reps=k) cut 6|6: one CX crosses per rep, so k cuts."""
    case = reference_case(12, cuts)
    return case._replace(name=f"scaling {cuts} cut(s)")
