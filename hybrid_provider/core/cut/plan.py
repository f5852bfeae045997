"""Decide where to cut, and say what it will cost before anything runs.

Two ways in: explicit partition labels (one label per qubit, qubit 0 first) where every gate
spanning two partitions is cut, or automatic cut finding (``find_cuts``) under a
qubits-per-subcircuit limit, which may cut gates and wires. Either way a plan is refused, with
its cost, before anything is generated when it needs too many coefficients or subexperiments
wider than a simulator holds.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import NamedTuple

import rustworkx
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import CircuitInstruction, Clbit
from qiskit.converters import circuit_to_dag, dag_to_circuit
from qiskit.quantum_info import PauliList
from qiskit.transpiler.passes import RemoveBarriers
from qiskit_addon_cutting import (
    DeviceConstraints,
    OptimizationParameters,
    cut_gates,
    cut_wires,
    expand_observables,
    find_cuts,
    partition_problem,
)
from qiskit_addon_cutting.cutting_decomposition import PartitionedCuttingProblem
from qiskit_addon_cutting.instructions import CutWire
from qiskit_addon_cutting.qpd import BaseQPDGate, TwoQubitQPDGate

from hybrid_provider.core.cut import DEFAULT_MAX_COEFFICIENTS
from hybrid_provider.core.errors import CutPlanError, InputError
from hybrid_provider.core.manifest import CutSpec

#: The widest subexperiment a statevector simulator (Aer, on a CPU or a GPU) is asked to hold:
#: 2**32 amplitudes of 16 bytes are 64 GiB, the memory of a large node or of the largest GPUs.
MAX_SIMULATED_QUBITS = 32
#: How long automatic cut finding may search before the best plan found so far is taken.
FIND_CUTS_SECONDS = 10.0
#: The name of the marker ``find_cuts`` inserts where it cuts a wire.
CUT_WIRE = "cut_wire"
#: Every cut multiplies the number of coefficients by at least this (a gate cut by 6 or more,
#: a wire cut by 8), which bounds the cost of a plan from its number of cuts alone.
MIN_TERMS_PER_CUT = 6

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
]


class CutPlan(NamedTuple):
    """A partitioned problem, how to rebuild it, and what running it will cost.

    ``circuit`` (prepared for cutting) and ``cut`` are what a job stores: :func:`build_problem`
    turns them back into ``problem`` wherever a batch runs.
    """

    problem: PartitionedCuttingProblem
    circuit: QuantumCircuit
    cut: CutSpec
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

    @property
    def simulated_widths(self) -> dict[str, int]:
        """Qubits a subexperiment of each subcircuit needs in the simulator.

        Its own, plus one for each cut it takes part in: the simulator defers a cut's
        mid-circuit measurement to an extra qubit (``simulate.deferred_measurement_circuit``).
        """
        return {
            str(k): c.num_qubits + sum(isinstance(i.operation, BaseQPDGate) for i in c.data)
            for k, c in sorted(self.problem.subcircuits.items())
        }

    @property
    def log10_sampling_overhead(self) -> float:
        """The overhead's size even when it overflows a float (hopeless plans reach 1e+280)."""
        return sum(math.log10(float(basis.overhead)) for basis in self.problem.bases)

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
    """The circuit as cutting needs it, keeping what it computes.

    Barriers go: they only fence off compiler optimisations, but cut finding would read one as
    an instruction joining every qubit it spans into one subcircuit. Classical bits nothing
    uses go (registers left by removed final measurements): the addon refuses any. Gates
    outside :data:`SIMULATOR_BASIS` (custom, 3+ qubit) are rewritten into it once, because
    cutting needs gates of at most two qubits and the executor does not transpile each
    subexperiment. A circuit with none of these is returned unchanged.
    """
    names = {instruction.operation.name for instruction in circuit.data}
    if "barrier" in names:
        circuit = RemoveBarriers()(circuit)
    if circuit.num_clbits:
        circuit = _without_idle_classical_bits(circuit)
    if not names <= {*SIMULATOR_BASIS, "barrier"}:
        circuit = transpile(circuit, basis_gates=SIMULATOR_BASIS, optimization_level=0)
    return circuit


def _without_idle_classical_bits(circuit: QuantumCircuit) -> QuantumCircuit:
    dag = circuit_to_dag(circuit)
    idle = [wire for wire in dag.idle_wires() if isinstance(wire, Clbit)]
    if not idle:
        return circuit
    dag.remove_clbits(*idle)  # and every register holding one of them
    return dag_to_circuit(dag)


def plan_cuts(
    circuit: QuantumCircuit,
    observables: PauliList,
    *,
    partition_labels: Sequence[str] | str | None = None,
    max_subcircuit_qubits: int | None = None,
    seed: int = 111,
    max_coefficients: int = DEFAULT_MAX_COEFFICIENTS,
    max_simulated_qubits: int = MAX_SIMULATED_QUBITS,
    find_cuts_seconds: float = FIND_CUTS_SECONDS,
) -> CutPlan:
    """Plan the cuts: exactly one of ``partition_labels`` or ``max_subcircuit_qubits``.

    Refuses, saying what the plan would cost, before anything is generated: a plan that needs
    more than ``max_coefficients`` coefficients, or a subexperiment wider than
    ``max_simulated_qubits``. Automatic cut finding searches for ``find_cuts_seconds`` at most.

    Raises:
        InputError: the arguments contradict each other or are out of range.
        CutPlanError: no plan meets the limits.
    """
    if (partition_labels is None) == (max_subcircuit_qubits is None):
        raise InputError(
            "give exactly one of partition labels (e.g. 'AABB', one per qubit, qubit 0 first) "
            "or a qubits-per-subcircuit limit for automatic cut finding"
        )
    if seed < 0:
        raise InputError(f"the cut-finding seed must be 0 or more, got {seed}")
    if max_coefficients < 1:
        raise InputError(
            f"max_coefficients must be at least 1, got {max_coefficients} (the default, "
            f"{DEFAULT_MAX_COEFFICIENTS:,}, admits 6 cut CX gates)"
        )
    circuit = prepare_for_cutting(circuit)
    if partition_labels is not None:
        plan = _plan_from_labels(circuit, observables, partition_labels)
        advice = "choose partition labels that cut fewer gates"
    else:
        assert max_subcircuit_qubits is not None  # exactly one of the two, checked above
        search = _Search(max_subcircuit_qubits, seed, max_coefficients, find_cuts_seconds)
        plan = _plan_automatically(circuit, observables, search)
        advice = "raise the qubits-per-subcircuit limit"
    if plan.num_coefficients > max_coefficients:
        raise CutPlanError(
            f"no practical cut plan fits: the best plan needs {plan.num_cuts} cuts, "
            f"{readable_count(plan.num_coefficients)} coefficients and a sampling overhead of "
            f"{readable_magnitude(plan.log10_sampling_overhead)} (limit {max_coefficients:,} "
            f"coefficients); {advice}, or raise max_coefficients if you really mean it"
        )
    _check_simulable(plan, max_simulated_qubits)
    return plan


def _check_simulable(plan: CutPlan, limit: int) -> None:
    label, width = max(plan.simulated_widths.items(), key=lambda item: item[1])
    if width <= limit:
        return
    own = plan.subcircuit_widths[label]
    raise CutPlanError(
        f"subcircuit {label} needs {width} qubits to simulate ({own} of its own, "
        f"{width - own} for deferred cut measurements), but a statevector simulator (CPU or "
        f"GPU) holds at most {limit} ({16 * 2**limit / 2**30:,.0f} GiB): cut into narrower "
        "subcircuits (more partition labels, or a lower qubits-per-subcircuit limit)"
    )


def _plan_from_labels(
    circuit: QuantumCircuit, observables: PauliList, labels: Sequence[str] | str
) -> CutPlan:
    if isinstance(labels, str) or (
        isinstance(labels, Sequence) and all(isinstance(label, str) for label in labels)
    ):
        labels = list(labels)
    else:
        raise InputError(
            f"partition labels must be a string such as 'AABB' (one label per qubit, qubit 0 "
            f"first), got {type(labels).__name__}"
        )
    if len(labels) != circuit.num_qubits:
        raise InputError(
            f"{len(labels)} partition label(s) given for a {circuit.num_qubits}-qubit circuit; "
            "give one label per qubit, qubit 0 first (e.g. 'AABB')"
        )
    cut = CutSpec(partition_labels="".join(labels))
    problem = build_problem(circuit, observables, cut)
    return _describe(problem, circuit, cut, observables, "".join(labels))


class _Search(NamedTuple):
    """What automatic cut finding looks for, and for how long."""

    max_qubits: int
    seed: int
    max_coefficients: int
    seconds: float


def _plan_automatically(
    circuit: QuantumCircuit, observables: PauliList, search: _Search
) -> CutPlan:
    max_qubits = search.max_qubits
    if max_qubits < 1:
        raise InputError(f"the qubits-per-subcircuit limit must be at least 1, got {max_qubits}")
    if max_qubits >= circuit.num_qubits:
        raise CutPlanError(
            f"the circuit has {circuit.num_qubits} qubits and the limit is {max_qubits}: "
            "nothing needs cutting. Lower the limit or run the circuit directly"
        )
    _refuse_when_cuts_alone_cost_too_much(circuit, search)
    cut_circuit, _ = _find_cuts_in_time(circuit, search)
    cut = _spec_of(cut_circuit)
    problem = build_problem(circuit, observables, cut)
    plan = _describe(problem, circuit, cut, observables, "")
    widths = sorted(plan.subcircuit_widths.values(), reverse=True)
    if widths[0] > max_qubits or None in problem.subcircuits:
        raise CutPlanError(
            f"automatic cut finding found no plan with subcircuits of at most {max_qubits} "
            f"qubit(s): the best it found leaves subcircuits of {', '.join(map(str, widths))} "
            "qubits. Raise the limit or give partition labels"
        )
    return plan._replace(partition_labels=_labels_of(problem))


def _refuse_when_cuts_alone_cost_too_much(circuit: QuantumCircuit, search: _Search) -> None:
    """Refuse at once when even the fewest cuts possible need too many coefficients.

    A group of ``n`` qubits joined by two-qubit gates needs at least ``ceil(n / limit)``
    subcircuits, and each cut (of a gate or a wire) splits off at most one more.
    """
    cuts = sum(math.ceil(size / search.max_qubits) - 1 for size in _connected_sizes(circuit))
    if MIN_TERMS_PER_CUT**cuts > search.max_coefficients:
        raise CutPlanError(
            f"no practical cut plan fits {search.max_qubits} qubit(s) per subcircuit: this "
            f"{circuit.num_qubits}-qubit circuit needs at least {cuts} cuts for it, so at least "
            f"{readable_count(MIN_TERMS_PER_CUT**cuts)} coefficients (limit "
            f"{search.max_coefficients:,}); raise the qubits-per-subcircuit limit, or raise "
            "max_coefficients if you really mean it"
        )


def _connected_sizes(circuit: QuantumCircuit) -> list[int]:
    """Sizes of the groups of qubits that two-qubit gates join."""
    graph = rustworkx.PyGraph()
    graph.add_nodes_from(range(circuit.num_qubits))
    for instruction in circuit.data:
        if len(instruction.qubits) == 2:
            first, second = (circuit.find_bit(q).index for q in instruction.qubits)
            graph.add_edge(first, second, None)
    return [len(group) for group in rustworkx.connected_components(graph)]


def _find_cuts_in_time(circuit: QuantumCircuit, search: _Search) -> tuple[QuantumCircuit, dict]:
    """``find_cuts`` within ``search.seconds``: the best plan found by then.

    The addon's search cannot be interrupted and a hopeless one goes on for minutes, so it runs
    in a forked worker that is killed at the deadline. The worker first sends the greedy pass's
    plan (a fraction of a second), then the full search's: the last one received is used.
    """
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    worker = context.Process(target=_search_worker, args=(sender, circuit, search), daemon=True)
    worker.start()
    sender.close()
    deadline = time.monotonic() + search.seconds
    found = None
    try:
        while receiver.poll(max(0.0, deadline - time.monotonic())):
            try:
                found = receiver.recv()
            except EOFError:  # the worker sent everything and exited
                break
            if isinstance(found, ValueError):
                raise CutPlanError(
                    f"no cut plan fits {search.max_qubits} qubit(s) per subcircuit: {found}. "
                    "Raise the limit or give partition labels"
                ) from found
    finally:
        worker.kill()
        worker.join()
        receiver.close()
    if found is None:
        raise CutPlanError(
            f"automatic cut finding found no plan for {search.max_qubits} qubit(s) per "
            f"subcircuit in {search.seconds:g} s; give partition labels, or raise the limit"
        )
    return found


def _spec_of(cut_circuit: QuantumCircuit) -> CutSpec:
    """The cuts ``find_cuts`` marked: QPD gates by their index in the uncut circuit (the markers
    it inserted shift the rest), cut-wire markers by position and qubit."""
    gate_cuts, wire_cuts, markers = [], [], 0
    for position, instruction in enumerate(cut_circuit.data):
        if instruction.operation.name == CUT_WIRE:
            wire_cuts.append((position, cut_circuit.find_bit(instruction.qubits[0]).index))
            markers += 1
        elif isinstance(instruction.operation, TwoQubitQPDGate):
            gate_cuts.append(position - markers)
    return CutSpec(gate_cuts=gate_cuts, wire_cuts=wire_cuts)


def build_problem(
    circuit: QuantumCircuit, observables: PauliList, cut: CutSpec
) -> PartitionedCuttingProblem:
    """The partitioned problem of a prepared circuit cut as ``cut`` says: deterministic, so the
    cut stage and every batch get the same subcircuits from the same inputs."""
    if cut.partition_labels is not None:
        return partition_problem(
            circuit=circuit, partition_labels=list(cut.partition_labels), observables=observables
        )
    marked = cut_gates(circuit, cut.gate_cuts)[0] if cut.gate_cuts else circuit.copy()
    for position, qubit in cut.wire_cuts:
        marked.data.insert(position, CircuitInstruction(CutWire(), [marked.qubits[qubit]], []))
    with_ancillas = cut_wires(marked)
    expanded = expand_observables(observables, circuit, with_ancillas)
    return partition_problem(circuit=with_ancillas, observables=expanded)


def _search_worker(sender: Connection, circuit: QuantumCircuit, search: _Search) -> None:
    full_search = OptimizationParameters().max_backjumps
    constraints = DeviceConstraints(search.max_qubits)
    try:
        for backjumps in (0, full_search):  # 0: the greedy pass alone
            parameters = OptimizationParameters(seed=search.seed, max_backjumps=backjumps)
            sender.send(find_cuts(circuit, parameters, constraints))
    except ValueError as exc:  # the addon's way of saying no plan exists
        sender.send(exc)
    finally:
        sender.close()


def _labels_of(problem: PartitionedCuttingProblem) -> str:
    return ",".join(f"{label}:{c.num_qubits}" for label, c in sorted(problem.subcircuits.items()))


def _describe(
    problem: PartitionedCuttingProblem,
    circuit: QuantumCircuit,
    cut: CutSpec,
    observables: PauliList,
    labels: str,
) -> CutPlan:
    bases = problem.bases
    return CutPlan(
        problem=problem,
        circuit=circuit,
        cut=cut,
        observables=observables,
        num_qubits=circuit.num_qubits,
        partition_labels=labels,
        num_gate_cuts=len(bases) - len(cut.wire_cuts),
        num_wire_cuts=len(cut.wire_cuts),
        # Python floats: a hopeless plan's overhead becomes inf quietly, not with NumPy's warning
        sampling_overhead=math.prod(float(basis.overhead) for basis in bases),
        num_coefficients=math.prod(len(basis.maps) for basis in bases),
    )


def readable_count(count: int) -> str:
    """``46,656`` up to a million, then ``2.1e+07``: never a 280-digit number."""
    return f"{count:,}" if count < 10**6 else _exponent_form(math.log10(count))


def readable_magnitude(log10_value: float) -> str:
    """A positive number given by its log10: ``729``, ``2.531``, ``1.2e+280``, never ``inf``."""
    return f"{10**log10_value:.4g}" if log10_value < 6 else _exponent_form(log10_value)


def _exponent_form(log10_value: float) -> str:
    exponent = math.floor(log10_value)
    mantissa = round(10 ** (log10_value - exponent), 1)
    if mantissa >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:.1f}e+{exponent:02d}"
