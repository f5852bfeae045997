"""Run a cut plan in this process, without building the measured subexperiment circuits.

The job path (``write_job`` → ``run_batch``) builds each distinct subexperiment the way the addon
does (copy the subcircuit, decompose its QPD gates, add registers and measurements), stores it as
QPY, and later rewrites it into a unitary circuit for Aer. In one process all of that can be
skipped: we walk each subcircuit once per distinct QPD term choice and emit the deferred-
measurement unitary directly (a QPD measurement is a CX onto a fresh ancilla, a reset a switch to
a fresh qubit, see :mod:`.simulate`), reusing the subcircuit's own instruction objects.

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

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import CircuitInstruction, Gate
from qiskit.circuit.library import CXGate, HGate, SXGate, UnitaryGate
from qiskit.quantum_info import Operator, Pauli
from qiskit_addon_cutting.cutting_experiments import _get_pauli_indices
from qiskit_addon_cutting.qpd import BaseQPDGate
from qiskit_addon_cutting.utils.observable_grouping import ObservableCollection
from qiskit_aer.library import SaveExpectationValue, SaveProbabilities

from hybrid_provider.core.cut.experiments import DistinctChoices, distinct_choices
from hybrid_provider.core.cut.plan import CutPlan
from hybrid_provider.core.errors import InputError
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


def deferred_term_circuit(program: Program, positions: dict[int, int]) -> DeferredCircuit:
    """The program with the QPD gate at instruction ``p`` replaced by term ``positions[p]``."""
    current = list(range(program.width))
    operations: list[tuple[object, tuple[int, ...]]] = []
    qpd: list[int] = []
    width = program.width

    def apply(operation, qubits: tuple[int, ...]) -> None:
        nonlocal width
        name = operation.name
        if name == "barrier":
            return
        if name in ("qpd_measure", "measure"):
            operations.append((_CX, (current[qubits[0]], width)))
            if name == "qpd_measure":
                qpd.append(width)
            width += 1
        elif name == "reset":
            current[qubits[0]] = width
            width += 1
        elif not isinstance(operation, Gate):
            raise InputError(
                f"the circuit has a '{name}' instruction; in-process simulation supports "
                "unitary gates, measurements and resets only"
            )
        else:
            operations.append((operation, tuple(current[q] for q in qubits)))

    for kind, step in program.steps:
        if kind == "fused":
            operations.append((step, tuple(current)))
        elif kind == "gate":
            apply(*step)
        else:
            position, gate, qubits = step
            for local in gate.basis.maps[positions[position]][gate.qubit_id]:
                apply(local, qubits)
    circuit = QuantumCircuit(width)
    bits = circuit.qubits
    for operation, qargs in operations:
        circuit._append(CircuitInstruction(operation, tuple(bits[q] for q in qargs)))
    return DeferredCircuit(circuit, list(current), qpd)


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


@dataclass(frozen=True)
class SubsystemFactors:
    """Exact mean of each subobservable (columns) for each distinct term choice (rows)."""

    label: str
    index: np.ndarray
    means: np.ndarray


def _chunks(items: Iterator, size: int) -> Iterator[list]:
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


def exact_factors(
    plan: CutPlan, device: str = "cpu", choices: DistinctChoices | None = None
) -> tuple[np.ndarray, list[SubsystemFactors]]:
    """The coefficients and, per subsystem, the exact factor of every distinct term choice."""
    choices = choices or distinct_choices(plan)
    factors = []
    for subsystem in choices.subsystems:
        labels = subsystem.subobservables
        program = compile_subsystem(subsystem.subcircuit)
        rows: list[list[float]] = []
        circuits = (
            _expectation_circuit(deferred_term_circuit(program, positions), labels)
            for positions in subsystem.positions
        )
        for chunk in _chunks(circuits, CHUNK):
            result = _run(chunk, device)
            rows.extend(
                [float(np.real(result.data(i)[f"e{o}"])) for o in range(len(labels))]
                for i in range(len(chunk))
            )
        means = np.asarray(rows, dtype=np.float64).reshape(len(subsystem.positions), len(labels))
        factors.append(SubsystemFactors(subsystem.label, subsystem.index, means))
    return choices.coefficients, factors


def group_distributions(
    plan: CutPlan, device: str = "cpu", choices: DistinctChoices | None = None
) -> Iterator[tuple[int, list[tuple[np.ndarray, np.ndarray]], list[int]]]:
    """Exact outcome distributions of the measured subexperiments, in the job's flat order.

    Yields ``(first flat index, [(packed values, probabilities)], observable bits)`` per chunk;
    the flat order (subsystem, distinct term choice, observable group) is the one
    :func:`~hybrid_provider.core.cut.experiments.generate_distinct_experiments` uses.
    """
    choices = choices or distinct_choices(plan)
    first = 0
    for subsystem in choices.subsystems:
        groups = ObservableCollection(subsystem.observables).groups
        program = compile_subsystem(subsystem.subcircuit)

        def circuits(subsystem=subsystem, groups=groups, program=program):
            for positions in subsystem.positions:
                deferred = deferred_term_circuit(program, positions)
                for group in groups:
                    yield (
                        _probability_circuit(deferred, group),
                        len(_get_pauli_indices(group)),
                        len(deferred.qpd),
                    )

        for chunk in _chunks(circuits(), CHUNK):
            result = _run([c for c, _, _ in chunk], device)
            distributions, widths = [], []
            for i, (_, observable_bits, _) in enumerate(chunk):
                probabilities = np.asarray(result.data(i)[PROBABILITIES_LABEL], dtype=np.float64)
                values = np.arange(len(probabilities), dtype=np.uint64)
                keep = probabilities > 1e-15
                distributions.append((values[keep], probabilities[keep]))
                widths.append(observable_bits)
            yield first, distributions, widths
            first += len(chunk)
