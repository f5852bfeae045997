"""Turn what a user hands over (QASM, a file, QPY, a circuit; Pauli strings) into Qiskit objects.

Every failure here is the user's to fix, so each message says what was wrong and what to pass.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping, Sequence

from qiskit import QuantumCircuit, qpy
from qiskit.quantum_info import PauliList

from hybrid_provider.core.errors import InputError
from hybrid_provider.core.store import read_bytes

CircuitSource = QuantumCircuit | str | bytes
ParameterValues = Sequence[float] | Mapping[str, float] | None

_PAULI_LETTERS = frozenset("IXYZ")


def load_circuit(source: CircuitSource, parameters: ParameterValues = None) -> QuantumCircuit:
    """Load a circuit from QASM 2/3 text, a ``.qasm``/``.qpy`` path or URI, QPY bytes or a circuit.

    Final measurements are dropped (we estimate observables, the cutting adds its own);
    parameters are bound when values are given, and must all be bound by the end.
    """
    circuit = _parse(source)
    circuit = circuit.remove_final_measurements(inplace=False)
    if parameters is not None:
        circuit = _bind(circuit, parameters)
    if circuit.num_parameters:
        names = ", ".join(sorted(p.name for p in circuit.parameters)[:5])
        raise InputError(
            f"the circuit has {circuit.num_parameters} unbound parameter(s) ({names}); "
            "pass values for them (parameters=[...] or --parameters)"
        )
    _reject_unsupported_instructions(circuit)
    return circuit


def _parse(source: CircuitSource) -> QuantumCircuit:
    if isinstance(source, QuantumCircuit):
        return source.copy()
    if isinstance(source, bytes):
        return _from_qpy(source, "the QPY data given")
    if not isinstance(source, str) or not source.strip():
        raise InputError(
            "no circuit given: pass OpenQASM 2/3 text, a .qasm or .qpy file path/URI, "
            "or a qiskit QuantumCircuit"
        )
    text = source.strip()
    if text.startswith("OPENQASM") or "\n" in text:
        return _from_qasm(text, "the QASM text given")
    data = read_bytes(text, what="circuit file")
    if text.lower().endswith(".qpy"):
        return _from_qpy(data, text)
    return _from_qasm(data.decode("utf-8", errors="replace"), text)


def _from_qpy(data: bytes, origin: str) -> QuantumCircuit:
    try:
        circuits = qpy.load(io.BytesIO(data))
    except Exception as exc:  # qpy raises several unrelated types on bad data
        raise InputError(
            f"{origin} is not valid QPY ({exc}); write it with qiskit.qpy.dump"
        ) from exc
    if len(circuits) != 1 or not isinstance(circuits[0], QuantumCircuit):
        raise InputError(f"{origin} must hold exactly one circuit, it holds {len(circuits)}")
    return circuits[0]


def _from_qasm(text: str, origin: str) -> QuantumCircuit:
    version_3 = re.search(r"^\s*OPENQASM\s+3", text, flags=re.MULTILINE) is not None
    try:
        if version_3:
            from qiskit import qasm3

            return qasm3.loads(text)
        from qiskit import qasm2

        return qasm2.loads(text, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
    except Exception as exc:
        kind = "OpenQASM 3" if version_3 else "OpenQASM 2"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"{origin} is not valid {kind}: {first_line}. "
            "Check the program (it must start with an 'OPENQASM 2.0;' or 'OPENQASM 3.0;' line)"
        ) from exc


def _bind(circuit: QuantumCircuit, parameters: ParameterValues) -> QuantumCircuit:
    if isinstance(parameters, Mapping):
        by_name = {p.name: p for p in circuit.parameters}
        unknown = sorted(set(parameters) - set(by_name))
        if unknown:
            raise InputError(
                f"the circuit has no parameter(s) named {', '.join(unknown)}; its parameters "
                f"are {', '.join(sorted(by_name)) or 'none'}"
            )
        return circuit.assign_parameters({by_name[k]: float(v) for k, v in parameters.items()})
    values = [float(v) for v in parameters]
    if len(values) != circuit.num_parameters:
        raise InputError(
            f"{len(values)} parameter value(s) given but the circuit has "
            f"{circuit.num_parameters} parameter(s), in order: "
            + ", ".join(p.name for p in circuit.parameters)
        )
    return circuit.assign_parameters(values)


def _reject_unsupported_instructions(circuit: QuantumCircuit) -> None:
    for instruction in circuit.data:
        operation = instruction.operation
        if operation.name in ("measure", "reset"):
            raise InputError(
                f"the circuit has a mid-circuit '{operation.name}'; circuit cutting estimates "
                "observables of a unitary circuit: remove it (final measurements are dropped)"
            )
        if getattr(operation, "blocks", None):
            raise InputError(
                f"the circuit has a control-flow instruction '{operation.name}'; "
                "circuit cutting needs a circuit without classical control flow"
            )


def parse_observables(observables: str | Iterable[str] | PauliList, num_qubits: int) -> PauliList:
    """Parse Pauli strings (Qiskit's order: the rightmost letter acts on qubit 0).

    Accepts ``"ZZII,XXXX"``, a list of strings, or a ``PauliList``.
    """
    if isinstance(observables, PauliList):
        labels = observables.to_labels()
    elif isinstance(observables, str):
        labels = [part.strip() for part in observables.split(",") if part.strip()]
    else:
        labels = [str(part).strip() for part in observables]
    if not labels:
        raise InputError("no observables given: pass Pauli strings such as 'ZZII,XXXX'")
    for label in labels:
        bad = sorted(set(label.upper()) - _PAULI_LETTERS)
        if bad:
            raise InputError(
                f"observable '{label}' has letter(s) {''.join(bad)}; use only I, X, Y, Z"
            )
        if len(label) != num_qubits:
            raise InputError(
                f"observable '{label}' has {len(label)} letters but the circuit has "
                f"{num_qubits} qubits; give one letter per qubit, the rightmost acting on qubit 0"
            )
    return PauliList([label.upper() for label in labels])
