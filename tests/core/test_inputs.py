"""Loading circuits and observables: every accepted form, and a clear error for each bad one."""

from __future__ import annotations

import io

import pytest
from helpers import random_ansatz
from qiskit import QuantumCircuit, qasm2, qasm3, qpy

from hybrid_provider.core.errors import ArtifactError, InputError
from hybrid_provider.core.inputs import load_circuit, parse_observables


def _bell() -> QuantumCircuit:
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    return circuit


def test_qasm2_text_qasm3_text_files_and_qpy_all_load_the_same_circuit(tmp_path):
    bell = _bell()
    (tmp_path / "bell.qasm").write_text(qasm3.dumps(bell))
    buffer = io.BytesIO()
    qpy.dump(bell, buffer)
    (tmp_path / "bell.qpy").write_bytes(buffer.getvalue())
    sources = [
        qasm2.dumps(bell),
        qasm3.dumps(bell),
        "// a comment before the header\n" + qasm3.dumps(bell),
        str(tmp_path / "bell.qasm"),
        f"file://{tmp_path / 'bell.qpy'}",
        buffer.getvalue(),
        bell,
    ]
    for source in sources:
        loaded = load_circuit(source)
        assert loaded.num_qubits == 2
        assert [i.operation.name for i in loaded.data] == ["h", "cx"]


def test_final_measurements_are_dropped_and_parameters_bound_by_list_or_name():
    circuit = random_ansatz(3, reps=1).copy()
    circuit.measure_all()
    assert all(i.operation.name != "measure" for i in load_circuit(circuit).data)

    from qiskit.circuit import Parameter

    theta = Parameter("theta")
    parametrised = QuantumCircuit(1)
    parametrised.rx(theta, 0)
    assert load_circuit(parametrised, [0.5]).data[0].operation.params == [0.5]
    assert load_circuit(parametrised, {"theta": 0.25}).data[0].operation.params == [0.25]


@pytest.mark.parametrize(
    ("source", "parameters", "message"),
    [
        ("OPENQASM 2.0;\nqreg q[2];\nfoo q[0];", None, "not valid OpenQASM 2"),
        ("OPENQASM 3.0;\nqubit[2] q;\nh q[7];", None, "not valid OpenQASM 3"),
        ("", None, "no circuit given"),
    ],
)
def test_bad_circuits_name_the_problem(source, parameters, message):
    with pytest.raises(InputError, match=message):
        load_circuit(source, parameters)


def test_missing_file_and_bad_qpy_and_unbound_parameters(tmp_path):
    with pytest.raises(ArtifactError, match="not found"):
        load_circuit(str(tmp_path / "nothere.qasm"))
    (tmp_path / "junk.qpy").write_bytes(b"not qpy at all")
    with pytest.raises(InputError, match="not valid QPY"):
        load_circuit(str(tmp_path / "junk.qpy"))
    from qiskit.circuit.library import efficient_su2

    with pytest.raises(InputError, match="unbound parameter"):
        load_circuit(efficient_su2(2, reps=1))
    with pytest.raises(InputError, match="2 parameter value"):
        load_circuit(efficient_su2(2, reps=1), [0.1, 0.2])


def test_mid_circuit_measurement_is_refused():
    circuit = QuantumCircuit(2, 1)
    circuit.h(0)
    circuit.measure(0, 0)
    circuit.cx(0, 1)
    with pytest.raises(InputError, match="mid-circuit 'measure'"):
        load_circuit(circuit)


def test_observables_in_qiskit_order_and_their_errors():
    parsed = parse_observables("ZZII, xxxx", 4)
    assert parsed.to_labels() == ["ZZII", "XXXX"]
    assert parse_observables(["ZI"], 2)[0].z.tolist() == [False, True]  # rightmost is qubit 0
    with pytest.raises(InputError, match="has 3 letters but the circuit has 4 qubits"):
        parse_observables("ZZZ", 4)
    with pytest.raises(InputError, match="letter"):
        parse_observables("ZZAB", 4)
    with pytest.raises(InputError, match="no observables"):
        parse_observables(" , ", 4)


QASM2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
QASM3 = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (QASM2 + 'include "/etc/passwd";\nqreg q[2];', r'includes "/etc/passwd": only qelib1\.inc'),
        (QASM3 + 'include "mine.inc";\nqubit[2] q;', r'includes "mine\.inc"'),
        (QASM2 + "qreg q[1001];", r"declares 1,001 qubits; at most 1,000"),
        (QASM2 + "qreg a[600];\nqreg b[600];", r"declares 1,200 qubits"),
        (QASM2 + "qreg q[2];\ncreg c[4294967296];", r"declares 4,294,967,296 classical bits"),
        (QASM3 + "qubit[2147483648] q;", r"declares 2,147,483,648 qubits"),
        (QASM3 + "qubit[2 + 3] q;", r"size '2 \+ 3'.*whole number"),
        (QASM2 + "qreg q[²];", r"size '²'.*whole number"),
        (QASM3 + "h $1000;", r"declares 1,001 qubits"),
        ("OPENQASM 2.0;\n// qreg q[2];", "has no qubits; declare a register"),
        (QASM2 + "qreg q[2];\nrx(1e400) q[0];", r"angle 'inf' of a 'rx' gate is not finite"),
        (QASM2 + "qreg q[1];\nu(1e400-1e400,0,0) q[0];", r"angle 'nan' of a 'u' gate"),
    ],
    ids=[
        "include-absolute", "include-other", "1001-qubits", "registers-add-up",
        "huge-creg", "huge-qubit", "size-expression", "size-superscript", "physical-qubit", "no-qubits",
        "angle-inf", "angle-nan",
    ],
)  # fmt: skip
def test_qasm_is_checked_before_it_is_parsed(text, message):
    with pytest.raises(InputError, match=message):
        load_circuit(text)


def test_standard_includes_commented_ones_and_declared_sizes_up_to_the_limit_pass():
    assert (
        load_circuit(QASM2 + '// include "/etc/passwd";\nqreg q[1000];\nh q[0];').num_qubits == 1000
    )
    assert load_circuit(QASM3 + "qubit[3] q;\nqubit r;\nbit[3] c;\nh q[0];").num_qubits == 4


def test_an_empty_file_is_called_empty(tmp_path):
    (tmp_path / "empty.qasm").write_text("\n \n")
    with pytest.raises(InputError, match=r"empty\.qasm is empty: give a file holding"):
        load_circuit(str(tmp_path / "empty.qasm"))
    with pytest.raises(InputError, match="the circuit has no qubits"):
        load_circuit(QuantumCircuit())


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ([float("nan")], r"parameter value 'nan' is not finite"),
        ([float("-inf")], r"parameter value '-inf' is not finite"),
        ({"theta": float("inf")}, r"parameter value 'inf' is not finite"),
        (["half"], r"parameter value 'half' is not a number"),
        ([None], r"parameter value None is not a number"),
        ("0.5", r"parameters must be a list of numbers.*got str"),
        (0.5, r"parameters must be a list of numbers.*got float"),
    ],
    ids=["nan", "minus-inf", "inf-by-name", "word", "none", "string", "number"],
)
def test_parameter_values_must_be_finite_numbers(parameters, message):
    from qiskit.circuit import Parameter

    circuit = QuantumCircuit(1)
    circuit.rx(Parameter("theta"), 0)
    with pytest.raises(InputError, match=message):
        load_circuit(circuit, parameters)


def test_observables_of_the_wrong_type_are_named():
    with pytest.raises(InputError, match="observables must be Pauli strings.*got int"):
        parse_observables(1234, 4)
