"""ISA circuits for a device: one layout per subcircuit, on the device's best qubits.

A device runs only circuits in its instruction set and on its coupling map (ISA circuits), and
the subexperiments of one subcircuit must run on the same physical qubits for their results to
combine. So each subcircuit gets one line of connected qubits with the least readout and
two-qubit-gate error for its width, pinned in the store by the first batch that chooses it, and
all its subexperiments are transpiled onto it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from qiskit import QuantumCircuit

from hybrid_provider.core import layout as store_layout
from hybrid_provider.core import store
from hybrid_provider.core.errors import InputError
from hybrid_provider.core.execute.runtime_options import RuntimeOptions
from hybrid_provider.core.manifest import JobManifest, artifact_uri
from hybrid_provider.core.provenance import IsaCircuits


def best_qubits(target: Any, width: int) -> list[int]:
    """``width`` connected physical qubits in a line with the least readout and gate error.

    A greedy walk from every qubit, each step to the neighbour whose two-qubit gate and readout
    errors add least; the cheapest complete walk wins (ties: the lowest qubit numbers).

    Raises:
        InputError: the device has no ``width`` connected qubits.
    """
    device = _Calibration.of(target)
    walks = [device.walk(start, width) for start in sorted(device.readout)]
    complete = [(score, path) for score, path in walks if len(path) == width]
    if not complete:
        raise InputError(
            f"the device has no {width} connected qubits for a subcircuit of that width; cut "
            "the circuit into narrower subcircuits (max_subcircuit_qubits)"
        )
    return min(complete)[1]


class _Calibration(NamedTuple):
    """Readout error per qubit and the best two-qubit gate error per coupled pair."""

    readout: dict[int, float]
    edges: dict[frozenset[int], float]

    @classmethod
    def of(cls, target: Any) -> _Calibration:
        readout = {qargs[0]: error for qargs, error in _errors(target, "measure").items()}
        edges: dict[frozenset[int], float] = {}
        for name in _two_qubit_gates(target):
            for qargs, error in _errors(target, name).items():
                pair = frozenset(qargs)
                edges[pair] = min(error, edges.get(pair, error))
        return cls(readout, edges)

    def walk(self, start: int, width: int) -> tuple[float, list[int]]:
        """The greedy line from ``start`` (shorter than ``width`` where it gets stuck)."""
        path, score = [start], self.readout[start]
        while len(path) < width:
            steps = [
                (error + self.readout.get(other, 0.0), other)
                for pair, error in self.edges.items()
                if path[-1] in pair
                for other in pair - {path[-1]}
                if other not in path
            ]
            if not steps:
                break
            cost, chosen = min(steps)
            path.append(chosen)
            score += cost
        return score, path


def _errors(target: Any, name: str) -> dict[tuple[int, ...], float]:
    """Error of each qargs of an operation (a missing error counts as none)."""
    return {
        tuple(qargs): float(getattr(props, "error", None) or 0.0)
        for qargs, props in target[name].items()
        if qargs is not None
    }


def _two_qubit_gates(target: Any) -> list[str]:
    return [
        name
        for name in target.operation_names
        if target.operation_from_name(name).num_qubits == 2 and name not in ("barrier",)
    ]


class IsaBatch(NamedTuple):
    circuits: list[QuantumCircuit]
    summaries: list[IsaCircuits]


def isa_circuits(
    circuits: list[QuantumCircuit],
    subsystems: list[str],
    backend: Any,
    runtime: RuntimeOptions,
    *,
    layouts: dict[str, list[int]],
    seed: int,
) -> IsaBatch:
    """Transpile each subcircuit's subexperiments once, all on that subcircuit's layout.

    ``subsystems`` names the subcircuit of each circuit; ``layouts`` gives each one's qubits.
    """
    from qiskit.transpiler import generate_preset_pass_manager

    isa: list[QuantumCircuit | None] = [None] * len(circuits)
    summaries = []
    for label in dict.fromkeys(subsystems):
        positions = [i for i, s in enumerate(subsystems) if s == label]
        manager = generate_preset_pass_manager(
            optimization_level=runtime.optimization_level,
            target=backend.target,
            initial_layout=layouts[label],
            seed_transpiler=seed,
        )
        transpiled = manager.run([circuits[i] for i in positions])
        for position, circuit in zip(positions, transpiled, strict=True):
            isa[position] = circuit
        summaries.append(
            IsaCircuits(
                subsystem=label,
                width=len(layouts[label]),
                layout=layouts[label],
                depth=max(c.depth() for c in transpiled),
                two_qubit_gates=max(_two_qubit_count(c) for c in transpiled),
            )
        )
    return IsaBatch([c for c in isa if c is not None], summaries)


def _two_qubit_count(circuit: QuantumCircuit) -> int:
    return sum(
        1
        for instruction in circuit.data
        if instruction.operation.num_qubits == 2
        and not getattr(instruction.operation, "_directive", False)
    )


def layout_uri(manifest_uri: str, backend: str, label: str) -> str:
    return artifact_uri(manifest_uri, store_layout.pinned_layout(backend, label))


def pinned_layouts(
    manifest_uri: str, manifest: JobManifest, backend: Any, labels: list[str]
) -> dict[str, list[int]]:
    """Each subcircuit's layout: the one already pinned for this job and device, or a new one.

    The first batch to run chooses and pins it; later batches read it, so a recalibration of
    the device between batches cannot split one subcircuit over two sets of qubits.
    """
    widths = {s.label: s.width for s in manifest.subsystems}
    layouts = {}
    for label in dict.fromkeys(labels):
        uri = layout_uri(manifest_uri, backend.name, label)
        if store.exists(uri):
            layouts[label] = list(store.read_sealed_json(uri, "pinned layout")["layout"])
            continue
        layouts[label] = best_qubits(backend.target, widths[label])
        store.write_sealed_json(
            uri, {"backend": backend.name, "subsystem": label, "layout": layouts[label]}
        )
    return layouts
