"""Simulate term choices exactly, without building the measured subexperiment circuits.

The subexperiments measure mid-circuit, which would make Aer simulate shot by shot. The cutting
decompositions never condition on those outcomes, so each measurement is deferred: a QPD
measurement becomes a CX onto a fresh ancilla read at the end, a reset a switch to a fresh qubit.
We walk each subcircuit once per distinct QPD term choice and emit that unitary circuit directly,
reusing the subcircuit's own instruction objects. This is the one rewrite every simulated batch
uses, in a pod, a local worker or in process.

* Exact mode needs no outcomes at all: one circuit per distinct term choice (not per observable
  group) ends in one Aer ``SaveExpectationValue`` per subobservable, the Pauli on the final qubits
  times Z on every QPD ancilla. That product is exactly the sign the addon's reconstruction reads
  off the measured bits, so the subsystem factors come out of Aer directly.
* Shot mode needs outcome distributions per observable group: the group's basis change is applied
  and Aer saves the probabilities of the measured and QPD bits, packed in the same bit layout as
  :class:`~.outcomes.Outcomes`, so shots are drawn and reconstructed as on the job path.

Circuits go to Aer in chunks with ``max_parallel_experiments`` set, so both cores work and a 5-cut
plan (thousands of circuits) never sits in memory all at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import CircuitInstruction, Gate
from qiskit.circuit.library import CXGate, HGate, SXGate, UnitaryGate
from qiskit.quantum_info import Operator, Pauli
from qiskit_addon_cutting.cutting_experiments import _get_pauli_indices
from qiskit_addon_cutting.qpd import BaseQPDGate
from qiskit_aer.library import (
    SaveExpectationValue,
    SaveProbabilities,
    SaveStatevector,
    SetStatevector,
)

from hybrid_provider.core.cut.experiments import SubsystemChoices
from hybrid_provider.core.errors import InputError
from hybrid_provider.core.execute import paths
from hybrid_provider.core.execute.simulate import PROBABILITIES_LABEL, aer_simulator

#: Circuits handed to Aer per call: large enough to amortise the call, small enough to bound memory.
CHUNK = 512
#: Widest subcircuit whose gates between cuts are fused into one unitary (2^8 x 2^8 matrices).
FUSE_MAX_QUBITS = 8

_CX = CXGate()
_H = HGate()
_SX = SXGate()


class DeferredCircuit(NamedTuple):
    """A unitary circuit, where each original qubit ends, and the QPD ancillas to read."""

    circuit: QuantumCircuit
    final: list[int]  # final position of each subcircuit qubit
    qpd: list[int]  # ancillas holding the QPD measurement outcomes, in measurement order


class Program(NamedTuple):
    """A subcircuit compiled once: gates between its cuts fused, QPD gates left as slots.

    Each step is ``("gate", (operation, qubits))``, ``("fused", unitary)`` acting on every
    subcircuit qubit, or ``("qpd", (position, gate, qubits))``.
    """

    width: int
    steps: list[tuple[str, Any]]


def compile_subsystem(subcircuit: QuantumCircuit, fuse: bool | None = None) -> Program:
    """Fuse each run of unitary gates between two cuts into one matrix (up to
    :data:`FUSE_MAX_QUBITS` qubits), so every subexperiment is a handful of instructions.

    Aer spends most of a small circuit's time converting it instruction by instruction; the
    fusion is done once per subsystem, not per subexperiment.
    """
    width = subcircuit.num_qubits
    fuse = width <= FUSE_MAX_QUBITS if fuse is None else fuse
    index_of = {qubit: i for i, qubit in enumerate(subcircuit.qubits)}
    steps: list[tuple[str, Any]] = []
    pending: list[tuple[object, tuple[int, ...]]] = []

    def flush() -> None:
        if not pending:
            return
        if fuse and len(pending) > 1:
            segment = QuantumCircuit(width)
            for operation, qubits in pending:
                segment._append(
                    CircuitInstruction(operation, tuple(segment.qubits[q] for q in qubits))
                )
            steps.append(("fused", UnitaryGate(Operator(segment), check_input=False)))
        else:
            steps.extend(("gate", item) for item in pending)
        pending.clear()

    for position, instruction in enumerate(subcircuit.data):
        operation = instruction.operation
        qubits = tuple(index_of[q] for q in instruction.qubits)
        if operation.name == "barrier":
            continue
        if isinstance(operation, BaseQPDGate):
            flush()
            steps.append(("qpd", (position, operation, qubits)))
        elif operation.name in ("measure", "reset") or not isinstance(operation, Gate):
            flush()
            steps.append(("gate", (operation, qubits)))
        else:
            pending.append((operation, qubits))
    flush()
    return Program(width, steps)


class _Builder:
    """Emits the deferred-measurement operations of program steps, tracking where each qubit
    is (a reset moves it to a fresh qubit) and which ancillas hold QPD outcomes."""

    def __init__(self, width: int):
        self.current = list(range(width))
        self.qpd: list[int] = []
        self.width = width
        self.operations: list[tuple[object, tuple[int, ...]]] = []

    def step(self, kind: str, step, positions: dict[int, int]) -> None:
        if kind == "fused":
            self.operations.append((step, tuple(self.current)))
        elif kind == "gate":
            self.apply(*step)
        else:
            position, gate, qubits = step
            for local in gate.basis.maps[positions[position]][gate.qubit_id]:
                self.apply(local, qubits)

    def apply(self, operation, qubits: tuple[int, ...]) -> None:
        name = operation.name
        if name == "barrier":
            return
        if name in ("qpd_measure", "measure"):
            self.operations.append((_CX, (self.current[qubits[0]], self.width)))
            if name == "qpd_measure":
                self.qpd.append(self.width)
            self.width += 1
        elif name == "reset":
            self.current[qubits[0]] = self.width
            self.width += 1
        elif not isinstance(operation, Gate):
            raise InputError(
                f"the circuit has a '{name}' instruction; in-process simulation supports "
                "unitary gates, measurements and resets only"
            )
        else:
            self.operations.append((operation, tuple(self.current[q] for q in qubits)))

    def circuit(self, initial: np.ndarray | None = None) -> DeferredCircuit:
        """The operations as a circuit, starting from ``initial`` (padded with |0> for the
        qubits added since) when given."""
        circuit = QuantumCircuit(self.width)
        bits = circuit.qubits
        if initial is not None:
            padded = np.zeros(2**self.width, dtype=np.complex128)
            padded[: len(initial)] = initial
            circuit._append(CircuitInstruction(SetStatevector(padded), tuple(bits)))
        for operation, qargs in self.operations:
            circuit._append(CircuitInstruction(operation, tuple(bits[q] for q in qargs)))
        return DeferredCircuit(circuit, list(self.current), list(self.qpd))


def deferred_term_circuit(program: Program, positions: dict[int, int]) -> DeferredCircuit:
    """The program with the QPD gate at instruction ``p`` replaced by term ``positions[p]``."""
    builder = _Builder(program.width)
    for kind, step in program.steps:
        builder.step(kind, step, positions)
    return builder.circuit()


def _pauli_on(deferred: DeferredCircuit, label: str) -> Pauli:
    """The subobservable (label, rightmost letter on qubit 0) moved to the final qubits, times Z
    on every QPD ancilla."""
    letters = ["I"] * deferred.circuit.num_qubits
    for qubit, position in enumerate(deferred.final):
        letters[position] = label[len(label) - 1 - qubit]
    for ancilla in deferred.qpd:
        letters[ancilla] = "Z"
    return Pauli("".join(reversed(letters)))


def _expectation_circuit(deferred: DeferredCircuit, labels: list[str]) -> QuantumCircuit:
    circuit = deferred.circuit
    qubits = circuit.qubits
    for o, label in enumerate(labels):
        save = SaveExpectationValue(_pauli_on(deferred, label), label=f"e{o}")
        circuit._append(CircuitInstruction(save, tuple(qubits)))
    return circuit


def _probability_circuit(deferred: DeferredCircuit, group) -> QuantumCircuit:
    """Copy of the deferred circuit with the group's basis change and saved probabilities.

    Saved qubit ``i`` is bit ``i`` of the packed outcome: first the group's measured qubits (the
    observable register), then the QPD ancillas (the QPD register), as the addon lays them out.
    """
    circuit = deferred.circuit.copy()
    qubits = circuit.qubits
    x, z = group.general_observable.x, group.general_observable.z
    measured = _get_pauli_indices(group)
    saved = []
    for qubit in measured:
        target = deferred.final[qubit]
        if x[qubit]:
            circuit._append(CircuitInstruction(_SX if z[qubit] else _H, (qubits[target],)))
        saved.append(target)
    saved.extend(deferred.qpd)
    circuit._append(
        CircuitInstruction(
            SaveProbabilities(len(saved), label=PROBABILITIES_LABEL),
            tuple(qubits[q] for q in saved),
        )
    )
    return circuit


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _run(circuits: list[QuantumCircuit], device: str):
    simulator = aer_simulator(device)
    result = simulator.run(circuits, max_parallel_experiments=0).result()
    if not result.success:
        raise RuntimeError(f"Aer failed to simulate a chunk of subexperiments: {result.status}")
    return result


def observable_bits(group) -> int:
    """Bits of a group's observable register: the qubits it measures."""
    return len(_get_pauli_indices(group))


def exact_means(subsystem: SubsystemChoices, device: str = "cpu") -> Iterator[np.ndarray]:
    """Exact mean of each subobservable (columns) for each choice (rows), chunk by chunk.

    The choices come from a few Pauli-path states (:mod:`.paths`) where that method applies
    (cuts of gates); otherwise each choice runs as one whole circuit, many per Aer call.
    """
    labels = subsystem.subobservables
    program = compile_subsystem(subsystem.subcircuit)
    means = paths.pauli_path_means(
        program.width,
        program.steps,
        subsystem.terms,
        labels,
        lambda start, steps: _simulate(program.width, start, steps, device),
    )
    if means is not None:
        yield means
        return
    circuits = (
        _expectation_circuit(deferred_term_circuit(program, positions), labels)
        for positions in subsystem.positions
    )
    for chunk in _chunks(circuits, CHUNK):
        yield _read_means(_run(chunk, device), len(chunk), len(labels))


def _read_means(result, count: int, num_labels: int) -> np.ndarray:
    rows = [[np.real(result.data(i)[f"e{o}"]) for o in range(num_labels)] for i in range(count)]
    return np.array(rows, dtype=np.float64).reshape(count, num_labels)


def _simulate(
    width: int, start: np.ndarray | None, steps: Sequence[tuple[str, Any]], device: str
) -> np.ndarray:
    """The state unitary program steps end in, from ``start`` (None: |0…0>)."""
    builder = _Builder(width)
    for kind, step in steps:
        builder.step(kind, step, {})
    circuit = builder.circuit(start).circuit
    circuit._append(CircuitInstruction(SaveStatevector(width), tuple(circuit.qubits)))
    result = _run([circuit], device)
    return np.asarray(result.data(0)["statevector"], dtype=np.complex128)


def probabilities(
    subsystem: SubsystemChoices, device: str = "cpu"
) -> Iterator[tuple[list[tuple[np.ndarray, np.ndarray]], list[int]]]:
    """Exact outcome distributions of the measured subexperiments (choice, then observable
    group), chunk by chunk: ``([(packed values, probabilities)], observable bits)``."""
    groups = subsystem.groups
    program = compile_subsystem(subsystem.subcircuit)

    def circuits():
        for positions in subsystem.positions:
            deferred = deferred_term_circuit(program, positions)
            for group in groups:
                yield _probability_circuit(deferred, group), observable_bits(group)

    for chunk in _chunks(circuits(), CHUNK):
        result = _run([circuit for circuit, _ in chunk], device)
        distributions = []
        for i in range(len(chunk)):
            weights = np.asarray(result.data(i)[PROBABILITIES_LABEL], dtype=np.float64)
            values = np.arange(len(weights), dtype=np.uint64)
            keep = weights > 1e-15
            distributions.append((values[keep], weights[keep]))
        yield distributions, [bits for _, bits in chunk]
