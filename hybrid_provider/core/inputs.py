"""Turn what a user hands over (QASM, a file, QPY, a circuit; Pauli strings) into Qiskit objects.

Every failure here is the user's to fix, so each message says what was wrong and what to pass.
QASM text is checked before it is parsed: register sizes (a parser allocates what a program
declares) and includes (only the standard gate libraries, so no other file is ever read).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from numbers import Real
from typing import TypeAlias

from qiskit import QuantumCircuit, qpy
from qiskit.quantum_info import PauliList

from hybrid_provider.core.errors import InputError
from hybrid_provider.core.store import read_bytes

CircuitSource: TypeAlias = QuantumCircuit | str | bytes
ParameterValues = Sequence[float] | Mapping[str, float] | None

#: The widest circuit (and the most classical bits) accepted. Subexperiments must fit a
#: simulator (32 qubits) and every cut multiplies the coefficients by 6 or more, so no
#: practical plan exists for a circuit a few hundred qubits wide.
MAX_QUBITS = 1000
#: The only files a program may include: the gate libraries the parsers know by heart.
STANDARD_INCLUDES = ("qelib1.inc", "stdgates.inc")

_PAULI_LETTERS = frozenset("IXYZ")
_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", flags=re.DOTALL)
_INCLUDE = re.compile(r'\binclude\s*"([^"]*)"')
#: Declarations with a size: ``qreg q[4];`` ``creg c[4];`` (OpenQASM 2) and ``qubit[4] q;``
#: ``bit[4] c;`` (OpenQASM 3); the size group is whatever stands between the brackets.
_SIZED = re.compile(
    r"\b(?:(?P<old>qreg|creg)\s+[A-Za-z_]\w*\s*\[(?P<old_size>[^\]]*)\]"
    r"|(?P<new>qubit|bit)\s*\[(?P<new_size>[^\]]*)\]\s*[A-Za-z_])"
)
_SINGLE = re.compile(r"\b(qubit|bit)\s+[A-Za-z_]")
_PHYSICAL = re.compile(r"\$(\d+)")


def load_circuit(source: CircuitSource, parameters: ParameterValues = None) -> QuantumCircuit:
    """Load a circuit from QASM 2/3 text, a ``.qasm``/``.qpy`` path or URI, QPY bytes or a circuit.

    Final measurements are dropped (we estimate observables, the cutting adds its own);
    parameters are bound when values are given, and must all be bound by the end.
    """
    circuit = _parse(source)
    if any(instruction.operation.name == "measure" for instruction in circuit.data):
        circuit = circuit.remove_final_measurements(inplace=False)  # slow: only when needed
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
        return _check_width(source.copy(), "the circuit")
    if isinstance(source, bytes):
        return _check_width(_from_qpy(source, "the QPY data given"), "the QPY data given")
    if not isinstance(source, str) or not source.strip():
        raise InputError(
            "no circuit given: pass OpenQASM 2/3 text, a .qasm or .qpy file path/URI, "
            "or a qiskit QuantumCircuit"
        )
    text = source.strip()
    if text.startswith("OPENQASM") or "\n" in text:
        return _check_width(_from_qasm(text, "the QASM text given"), "the QASM text given")
    data = read_bytes(text, what="circuit file")
    if not data.strip():
        raise InputError(
            f"{text} is empty: give a file holding an OpenQASM 2/3 program or a QPY circuit"
        )
    if text.lower().endswith(".qpy"):
        return _check_width(_from_qpy(data, text), text)
    return _check_width(_from_qasm(data.decode("utf-8", errors="replace"), text), text)


def _check_width(circuit: QuantumCircuit, origin: str) -> QuantumCircuit:
    if circuit.num_qubits == 0:
        raise InputError(
            f"{origin} has no qubits; declare a register (qreg q[4]; in OpenQASM 2, "
            "qubit[4] q; in OpenQASM 3) and the gates on it"
        )
    _check_sizes(circuit.num_qubits, circuit.num_clbits, origin)
    return circuit


def _check_sizes(qubits: int, clbits: int, origin: str) -> None:
    for count, kind in ((qubits, "qubits"), (clbits, "classical bits")):
        if count > MAX_QUBITS:
            raise InputError(
                f"{origin} declares {count:,} {kind}; at most {MAX_QUBITS:,} are accepted (no "
                "practical cut plan exists for a wider circuit): declare fewer"
            )


def _check_declarations(text: str, origin: str) -> None:
    """Refuse includes of other files and oversized registers before a parser sees the text."""
    code = _COMMENTS.sub(" ", text)
    for match in _INCLUDE.finditer(code):
        if match.group(1) not in STANDARD_INCLUDES:
            raise InputError(
                f'{origin} includes "{match.group(1)}": only {" and ".join(STANDARD_INCLUDES)} '
                "can be included; define the gates you need in the program itself"
            )
    totals = {"quantum": 0, "classical": 0}
    for match in _SIZED.finditer(code):
        size = match.group("old_size") if match.group("old") else match.group("new_size")
        if not re.fullmatch(r"[0-9]+", size.strip()):
            raise InputError(
                f"{origin} declares a register of size '{size.strip()}': give every register "
                "size as a whole number, e.g. qubit[4] q; or qreg q[4];"
            )
        kind = match.group("old") or match.group("new")
        totals["quantum" if kind in ("qreg", "qubit") else "classical"] += int(size)
    for match in _SINGLE.finditer(code):
        totals["quantum" if match.group(1) == "qubit" else "classical"] += 1
    physical = [int(index) + 1 for index in _PHYSICAL.findall(code)]
    _check_sizes(max([totals["quantum"], *physical]), totals["classical"], origin)


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
    _check_declarations(text, origin)
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
        unknown = sorted(set(parameters) - set(by_name), key=str)
        if unknown:
            raise InputError(
                f"the circuit has no parameter(s) named {', '.join(map(str, unknown))}; its "
                f"parameters are {', '.join(sorted(by_name)) or 'none'}"
            )
        return circuit.assign_parameters(
            {by_name[k]: _parameter_value(v) for k, v in parameters.items()}
        )
    if isinstance(parameters, str | bytes) or not isinstance(parameters, Iterable):
        raise InputError(
            "parameters must be a list of numbers (in the circuit's parameter order) or a "
            f"mapping of parameter names to numbers, got {type(parameters).__name__}"
        )
    values = [_parameter_value(v) for v in parameters]
    if len(values) != circuit.num_parameters:
        raise InputError(
            f"{len(values)} parameter value(s) given but the circuit has "
            f"{circuit.num_parameters} parameter(s), in order: "
            + ", ".join(p.name for p in circuit.parameters)
        )
    return circuit.assign_parameters(values)


def _parameter_value(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(
            f"parameter value {value!r} is not a number; pass numbers such as 0.5"
        ) from None
    if not math.isfinite(number):
        raise InputError(
            f"parameter value '{number}' is not finite; pass finite numbers (angles in radians)"
        )
    return number


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
        for angle in operation.params:
            if isinstance(angle, Real) and not math.isfinite(angle):
                raise InputError(
                    f"angle '{float(angle)}' of a '{operation.name}' gate is not finite; give "
                    "every angle as a finite number (radians)"
                )


def parse_observables(observables: str | Iterable[str] | PauliList, num_qubits: int) -> PauliList:
    """Parse Pauli strings (Qiskit's order: the rightmost letter acts on qubit 0).

    Accepts ``"ZZII,XXXX"``, a list of strings, or a ``PauliList``.
    """
    if isinstance(observables, PauliList):
        labels = observables.to_labels()
    elif isinstance(observables, str):
        labels = [part.strip() for part in observables.split(",") if part.strip()]
    elif isinstance(observables, Iterable):
        labels = [str(part).strip() for part in observables]
    else:
        raise InputError(
            "observables must be Pauli strings such as 'ZZII,XXXX' (one comma-separated "
            f"string or a list), got {type(observables).__name__}"
        )
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
