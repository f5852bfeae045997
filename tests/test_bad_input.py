"""Bad input, refused: the specification of what every entry point does with it.

For each case, through the CLI (``hybrid-quantum``), the operators and the connection: exit
status 2 (CLI) or a task failure Airflow does not retry (``AirflowFailException``); one line
that names the problem and what to do; no traceback; nothing written to the store; under 10 s
and bounded memory. Cases run in process; the few that must show a real exit status, or whose
old behaviour was a hang or a runaway allocation, run in a subprocess under a time and memory
limit.
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest
from airflow.sdk.exceptions import AirflowFailException
from helpers import random_ansatz
from qiskit import QuantumCircuit, qasm2

from hybrid_provider.cli import main
from hybrid_provider.operators.cut import CutCircuitOperator
from hybrid_provider.operators.reconstruct import CupyReconstructOperator
from hybrid_provider.operators.submit import ArgoSubmitOperator

ROOT = Path(__file__).resolve().parents[1]
CONTEXT = {"run_id": "manual__2026-11-28T00:00:00+00:00"}
SECONDS = 10.0
#: Peak memory a refusal may add to the process (the 2**31-qubit register used to take 7 GB).
MEMORY_MB = 300
ERROR_PREFIX = "hybrid-quantum: error: "

BELL4 = qasm2.dumps(random_ansatz(4, reps=1))
PARAMETRISED = (
    'OPENQASM 3.0;\ninclude "stdgates.inc";\ninput float theta;\nqubit[2] q;\n'
    "rx(theta) q[0];\ncx q[0], q[1];\n"
)
QASM2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
QASM3 = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'


def _wide_circuit(num_qubits: int) -> str:
    circuit = QuantumCircuit(num_qubits)
    for qubit in range(num_qubits - 1):
        circuit.cx(qubit, qubit + 1)
    return qasm2.dumps(circuit)


#: Circuit files the CLI cases name as ``{inputs}/<name>``.
FILES: dict[str, str | bytes] = {
    "ok.qasm": BELL4,
    "parametrised.qasm": PARAMETRISED,
    "empty.qasm": "",
    "blank.qasm": "  \n\n\t\n",
    "comment-only.qasm": "// nothing here\n",
    "header-only.qasm": "OPENQASM 2.0;\n",
    "binary.qasm": bytes(range(256)),
    "junk.qpy": b"QISKIT but not really",
    "include-passwd.qasm": QASM2.replace("qelib1.inc", "/etc/passwd") + "qreg q[2];\n",
    "include-relative.qasm": QASM2 + 'include "gates.inc";\nqreg q[2];\n',
    "include-qasm3.qasm": QASM3 + 'include "/etc/hostname";\nqubit[2] q;\n',
    "gates.inc": "secret-token-in-a-file\n",
    "qreg-100k.qasm": QASM2 + "qreg q[100000];\nh q[0];\n",
    "qreg-2e31.qasm": QASM2 + "qreg q[2147483648];\nh q[0];\n",
    "creg-2e31.qasm": QASM2 + "qreg q[2];\ncreg c[2147483648];\nh q[0];\n",
    "qubit-2e31.qasm": QASM3 + "qubit[2147483648] q;\nh q[0];\n",
    "qubit-expression.qasm": QASM3 + "qubit[1 << 31] q;\nh q[0];\n",
    "physical-qubit.qasm": QASM3 + "h $99999;\n",
    "many-registers.qasm": QASM2 + "".join(f"qreg r{i}[600];\n" for i in range(2)),
    "angle-inf.qasm": QASM2 + "qreg q[2];\nrx(1e400) q[0];\ncx q[0],q[1];\n",
    "angle-nan.qasm": QASM2 + "qreg q[2];\nrx(1e400-1e400) q[0];\ncx q[0],q[1];\n",
    "mid-measure.qasm": QASM2 + "qreg q[2];\ncreg c[2];\nh q[0];\nmeasure q[0] -> c[0];\n"
    "cx q[0],q[1];\n",
    "reset.qasm": QASM2 + "qreg q[2];\nh q[0];\nreset q[0];\ncx q[0],q[1];\n",
    "if.qasm": QASM2 + "qreg q[2];\ncreg c[1];\nmeasure q[0] -> c[0];\nif(c==1) x q[1];\n",
    "unknown-gate.qasm": QASM2 + "qreg q[2];\nfoo q[0];\n",
    "qasm3-bad.qasm": QASM3 + "qubit[2] q;\nh q[7];\n",
    "no-header.qasm": "qreg q[2];\nh q[0];\n",
    "wide70.qasm": _wide_circuit(70),
    "wide1001.qasm": _wide_circuit(2).replace("qreg q[2];", "qreg q[1001];"),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    for name, content in FILES.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    (folder / "a-folder.qasm").mkdir()
    (folder / "plain-file").write_text("not a folder\n")
    two = QuantumCircuit(2)
    two.h(0)
    from qiskit import qpy

    with open(folder / "two.qpy", "wb") as handle:
        qpy.dump([two, two], handle)
    return folder


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> str:
    """A valid cut job for the cases that need one (its own store, never written by a case)."""
    store = tmp_path_factory.mktemp("job-store")
    operator = CutCircuitOperator(
        task_id="cut",
        circuit=BELL4,
        observables="ZZZZ",
        partition_labels="AABB",
        num_batches=2,
        job_name="valid/job",
        store_uri=str(store),
    )
    return operator.execute(CONTEXT)["manifest_uri"]


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


class Outcome(NamedTuple):
    message: str
    seconds: float
    added_mb: float


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _assert_refused(outcome: Outcome, expected: str) -> None:
    """One line, naming the problem (``expected``), no traceback, quick and small."""
    assert "Traceback" not in outcome.message
    assert len(outcome.message.strip().splitlines()) == 1, outcome.message
    assert re.search(expected, outcome.message), outcome.message
    assert outcome.seconds < SECONDS, f"refused after {outcome.seconds:.1f} s"
    assert outcome.added_mb < MEMORY_MB, f"peak memory grew by {outcome.added_mb:.0f} MB"


# --- the CLI, in process --------------------------------------------------------------------

EST = "estimate {circuit} --observables {obs} --store {store}"
OK = "{inputs}/ok.qasm"

#: (id, command line, a pattern the one error line must match). ``{store}`` is a fresh folder.
CLI_CASES: list[tuple[str, str, str]] = [
    # the circuit file
    (
        "missing-file",
        "cut {inputs}/nothere.qasm --observables ZZ --partition AB --store {store}",
        "circuit file not found",
    ),
    (
        "folder-as-circuit",
        "cut {inputs}/a-folder.qasm --observables ZZ --partition AB --store {store}",
        "cannot read circuit file",
    ),
    (
        "empty-file",
        "cut {inputs}/empty.qasm --observables ZZ --partition AB --store {store}",
        r"empty\.qasm is empty.*OpenQASM",
    ),
    (
        "blank-file",
        "cut {inputs}/blank.qasm --observables ZZ --partition AB --store {store}",
        r"blank\.qasm is empty",
    ),
    (
        "comment-only-file",
        "cut {inputs}/comment-only.qasm --observables ZZ --partition AB --store {store}",
        "has no qubits.*declare",
    ),
    (
        "header-only-file",
        "cut {inputs}/header-only.qasm --observables ZZ --partition AB --store {store}",
        "has no qubits.*declare",
    ),
    (
        "binary-file",
        "cut {inputs}/binary.qasm --observables ZZ --partition AB --store {store}",
        "not valid OpenQASM 2",
    ),
    (
        "junk-qpy",
        "cut {inputs}/junk.qpy --observables ZZ --partition AB --store {store}",
        "not valid QPY.*qiskit.qpy.dump",
    ),
    (
        "two-circuit-qpy",
        "cut {inputs}/two.qpy --observables ZZ --partition AB --store {store}",
        "must hold exactly one circuit",
    ),
    (
        "include-absolute",
        "cut {inputs}/include-passwd.qasm --observables ZZ --partition AB --store {store}",
        r"include.*only qelib1\.inc.*stdgates\.inc",
    ),
    (
        "include-relative",
        "cut {inputs}/include-relative.qasm --observables ZZ --partition AB --store {store}",
        r"include.*only qelib1\.inc.*stdgates\.inc",
    ),
    (
        "include-qasm3",
        "cut {inputs}/include-qasm3.qasm --observables ZZ --partition AB --store {store}",
        r"include.*only qelib1\.inc.*stdgates\.inc",
    ),
    (
        "qreg-100k",
        "cut {inputs}/qreg-100k.qasm --observables ZZ --partition AB --store {store}",
        r"declares 100,000 qubits.*at most 1,000",
    ),
    (
        "qreg-2e31",
        "cut {inputs}/qreg-2e31.qasm --observables ZZ --partition AB --store {store}",
        r"declares 2,147,483,648 qubits.*at most 1,000",
    ),
    (
        "creg-2e31",
        "cut {inputs}/creg-2e31.qasm --observables ZZ --partition AB --store {store}",
        r"declares 2,147,483,648 classical bits.*at most 1,000",
    ),
    (
        "qubit-2e31",
        "cut {inputs}/qubit-2e31.qasm --observables ZZ --partition AB --store {store}",
        r"declares 2,147,483,648 qubits",
    ),
    (
        "qubit-size-expression",
        "cut {inputs}/qubit-expression.qasm --observables ZZ --partition AB --store {store}",
        r"size '1 << 31'.*whole number",
    ),
    (
        "physical-qubit-99999",
        "cut {inputs}/physical-qubit.qasm --observables ZZ --partition AB --store {store}",
        r"declares 100,000 qubits",
    ),
    (
        "registers-add-up",
        "cut {inputs}/many-registers.qasm --observables ZZ --partition AB --store {store}",
        r"declares 1,200 qubits",
    ),
    (
        "1001-qubits",
        "cut {inputs}/wide1001.qasm --observables ZZ --partition AB --store {store}",
        r"declares 1,001 qubits",
    ),
    (
        "angle-infinite",
        "cut {inputs}/angle-inf.qasm --observables ZZ --partition AB --store {store}",
        r"angle 'inf'.*rx.*finite",
    ),
    (
        "angle-nan",
        "cut {inputs}/angle-nan.qasm --observables ZZ --partition AB --store {store}",
        r"angle 'nan'.*rx.*finite",
    ),
    (
        "mid-circuit-measure",
        "cut {inputs}/mid-measure.qasm --observables ZZ --partition AB --store {store}",
        "mid-circuit 'measure'",
    ),
    (
        "reset",
        "cut {inputs}/reset.qasm --observables ZZ --partition AB --store {store}",
        "mid-circuit 'reset'",
    ),
    (
        "classical-if",
        "cut {inputs}/if.qasm --observables ZZ --partition AB --store {store}",
        "control-flow|mid-circuit",
    ),
    (
        "unknown-gate",
        "cut {inputs}/unknown-gate.qasm --observables ZZ --partition AB --store {store}",
        "not valid OpenQASM 2",
    ),
    (
        "qasm3-bad-index",
        "cut {inputs}/qasm3-bad.qasm --observables ZZ --partition AB --store {store}",
        "not valid OpenQASM 3",
    ),
    (
        "no-header",
        "cut {inputs}/no-header.qasm --observables ZZ --partition AB --store {store}",
        "OPENQASM",
    ),
    (
        "unbound-parameter",
        "cut {inputs}/parametrised.qasm --observables ZZ --partition AB --store {store}",
        "unbound parameter.*--parameters",
    ),
    # parameters
    (
        "parameter-not-a-number",
        "cut {inputs}/parametrised.qasm --observables ZZ --partition AB "
        "--parameters abc --store {store}",
        "--parameters must be comma-separated numbers",
    ),
    (
        "parameter-nan",
        "cut {inputs}/parametrised.qasm --observables ZZ --partition AB "
        "--parameters nan --store {store}",
        r"parameter value 'nan'.*finite",
    ),
    (
        "parameter-inf",
        "cut {inputs}/parametrised.qasm --observables ZZ --partition AB "
        "--parameters inf --store {store}",
        r"parameter value 'inf'.*finite",
    ),
    (
        "parameter-minus-inf",
        "cut {inputs}/parametrised.qasm --observables ZZ --partition AB "
        "--parameters=-inf --store {store}",
        r"parameter value '-inf'.*finite",
    ),
    (
        "parameter-overflow",
        "cut {inputs}/parametrised.qasm --observables ZZ --partition AB "
        "--parameters 1e400 --store {store}",
        r"parameter value 'inf'.*finite",
    ),
    (
        "parameter-count",
        "cut {inputs}/parametrised.qasm --observables ZZ --partition AB "
        "--parameters 1,2 --store {store}",
        "2 parameter value.*1 parameter",
    ),
    (
        "parameters-for-none",
        "cut {inputs}/ok.qasm --observables ZZZZ --partition AABB --parameters 1 --store {store}",
        "1 parameter value.*0 parameter",
    ),
    # observables
    (
        "observable-length",
        "cut {inputs}/ok.qasm --observables ZZ --partition AABB --store {store}",
        "has 2 letters but the circuit has 4 qubits",
    ),
    (
        "observable-letter",
        "cut {inputs}/ok.qasm --observables ZZAB --partition AABB --store {store}",
        "letter.*use only I, X, Y, Z",
    ),
    (
        "observable-empty",
        "cut {inputs}/ok.qasm --observables , --partition AABB --store {store}",
        "no observables given",
    ),
    (
        "observable-unicode",
        "cut {inputs}/ok.qasm --observables ZZZℤ --partition AABB --store {store}",
        "use only I, X, Y, Z",
    ),
    # the cut
    (
        "partition-short",
        "cut {inputs}/ok.qasm --observables ZZZZ --partition AB --store {store}",
        "one label per qubit",
    ),
    (
        "partition-empty",
        "cut {inputs}/ok.qasm --observables ZZZZ --partition= --store {store}",
        "one label per qubit",
    ),
    (
        "limit-zero",
        "cut {inputs}/ok.qasm --observables ZZZZ --max-subcircuit-qubits 0 --store {store}",
        "at least 1",
    ),
    (
        "limit-negative",
        "cut {inputs}/ok.qasm --observables ZZZZ --max-subcircuit-qubits=-3 --store {store}",
        "at least 1",
    ),
    (
        "limit-too-high",
        "cut {inputs}/ok.qasm --observables ZZZZ --max-subcircuit-qubits 4 --store {store}",
        "nothing needs cutting",
    ),
    (
        "coefficients-zero",
        "cut {inputs}/ok.qasm --observables ZZZZ --partition AABB "
        "--max-coefficients 0 --store {store}",
        "max_coefficients must be at least 1",
    ),
    (
        "coefficients-negative",
        "cut {inputs}/ok.qasm --observables ZZZZ --partition AABB "
        "--max-coefficients=-1 --store {store}",
        "max_coefficients must be at least 1",
    ),
    (
        "coefficients-too-few",
        "cut {inputs}/ok.qasm --observables ZZZZ --partition ABAB "
        "--max-coefficients 10 --store {store}",
        "no practical cut plan fits",
    ),
    (
        "batches-zero",
        "cut {inputs}/ok.qasm --observables ZZZZ --partition AABB --batches 0 --store {store}",
        "number of batches must be at least 1",
    ),
    (
        "batches-negative",
        "cut {inputs}/ok.qasm --observables ZZZZ --partition AABB --batches=-2 --store {store}",
        "number of batches must be at least 1",
    ),
    (
        "too-wide-to-simulate",
        "cut {inputs}/wide70.qasm --observables "
        + "Z" * 70
        + " --partition "
        + "A" * 35
        + "B" * 35
        + " --store {store}",
        r"36 qubits.*simulator.*holds at most 32.*narrower",
    ),
    # execution options
    (
        "shots-zero",
        EST.format(circuit=OK, obs="ZZZZ", store="{store}") + " --partition AABB --shots 0",
        "positive number of shots",
    ),
    (
        "shots-negative",
        EST.format(circuit=OK, obs="ZZZZ", store="{store}") + " --partition AABB --shots=-5",
        "positive number of shots",
    ),
    (
        "shots-1e19",
        EST.format(circuit=OK, obs="ZZZZ", store="{store}") + " --partition AABB "
        "--shots 10000000000000000000",
        r"at most 1,000,000,000 shots",
    ),
    (
        "shots-just-over",
        EST.format(circuit=OK, obs="ZZZZ", store="{store}") + " --partition AABB "
        "--shots 1000000001",
        r"at most 1,000,000,000 shots",
    ),
    (
        "seed-negative",
        EST.format(circuit=OK, obs="ZZZZ", store="{store}") + " --partition AABB "
        "--shots 100 --seed=-1",
        r"seed.*0 or more",
    ),
    (
        "seed-huge",
        EST.format(circuit=OK, obs="ZZZZ", store="{store}") + " --partition AABB "
        "--shots 100 --seed 100000000000000000000",
        r"seed.*at most",
    ),
    (
        "sampler-function",
        EST.format(circuit=OK, obs="ZZZZ", store="{store}") + " --partition "
        "AABB --shots 100 --sampler os:getcwd",
        r"'os:getcwd' is not a SamplerV2",
    ),
    (
        "sampler-constant",
        EST.format(circuit=OK, obs="ZZZZ", store="{store}") + " --partition "
        "AABB --shots 100 --sampler math:pi",
        r"'math:pi' is not a SamplerV2",
    ),
    (
        "sampler-class",
        EST.format(circuit=OK, obs="ZZZZ", store="{store}") + " --partition "
        "AABB --shots 100 --sampler collections:OrderedDict",
        "is not a SamplerV2",
    ),
    (
        "sampler-missing-module",
        EST.format(circuit=OK, obs="ZZZZ", store="{store}")
        + " --partition AABB --shots 100 --sampler nosuchmodule:Sampler",
        "cannot import sampler",
    ),
    (
        "sampler-missing-attribute",
        EST.format(circuit=OK, obs="ZZZZ", store="{store}")
        + " --partition AABB --shots 100 --sampler qiskit:NoSuchSampler",
        "cannot import sampler",
    ),
    (
        "sampler-no-colon",
        EST.format(circuit=OK, obs="ZZZZ", store="{store}") + " --partition "
        "AABB --shots 100 --sampler mysampler",
        "unknown sampler 'mysampler'",
    ),
    (
        "sampler-bad-path",
        EST.format(circuit=OK, obs="ZZZZ", store="{store}") + " --partition "
        "AABB --shots 100 --sampler 'a b:c'",
        "unknown sampler",
    ),
    (
        "sampler-in-exact-mode",
        EST.format(circuit=OK, obs="ZZZZ", store="{store}")
        + " --partition AABB --exact --sampler aer-sampler",
        "exact mode needs the built-in",
    ),
    (
        "weighted-in-exact-mode",
        EST.format(circuit=OK, obs="ZZZZ", store="{store}")
        + " --partition AABB --exact --shot-allocation weighted",
        "shot mode only",
    ),
    # the store and the job name
    (
        "store-under-a-file",
        "cut {inputs}/ok.qasm --observables ZZZZ --partition AABB "
        "--store {inputs}/plain-file/store",
        r"plain-file is a file.*store",
    ),
    (
        "store-dotdot-uri",
        "cut {inputs}/ok.qasm --observables ZZZZ --partition AABB "
        "--store file://{store}/../elsewhere",
        r"'\.\.'",
    ),
    (
        "store-dotdot-memory",
        "cut {inputs}/ok.qasm --observables ZZZZ --partition AABB --store memory://bucket/../other",
        r"'\.\.'",
    ),
    (
        "store-unknown-protocol",
        "cut {inputs}/ok.qasm --observables ZZZZ --partition AABB --store nosuch://bucket",
        "cannot open store URI",
    ),
    (
        "job-dotdot",
        "cut {inputs}/ok.qasm --observables ZZZZ --partition AABB "
        "--store {store}/a/b --job ../../escape",
        r"'\.\./\.\./escape'.*'\.\.' segment",
    ),
    (
        "job-dotdot-inside",
        "cut {inputs}/ok.qasm --observables ZZZZ --partition AABB "
        "--store {store}/a/b --job x/../../../escape",
        r"'\.\.' segment",
    ),
    (
        "job-dot",
        "cut {inputs}/ok.qasm --observables ZZZZ --partition AABB --store {store} --job ./",
        r"'\.' or '\.\.' segment",
    ),
    # run-batch, reconstruct, workflow
    (
        "run-batch-missing-manifest",
        "run-batch {store}/none/manifest.json --batch 0 --exact",
        "manifest not found",
    ),
    (
        "run-batch-index-too-high",
        "run-batch {manifest} --batch 99 --exact",
        "batch 99 does not exist",
    ),
    (
        "run-batch-index-negative",
        "run-batch {manifest} --batch=-1 --exact",
        "batch -1 does not exist",
    ),
    (
        "run-batch-shots-1e19",
        "run-batch {manifest} --batch 0 --shots 10000000000000000000",
        r"at most 1,000,000,000 shots",
    ),
    (
        "run-batch-seed-negative",
        "run-batch {manifest} --batch 0 --shots 10 --seed=-7",
        r"seed.*0 or more",
    ),
    (
        "run-batch-manifest-dotdot",
        "run-batch file://{store}/../x/manifest.json --batch 0 --exact",
        r"'\.\.'",
    ),
    (
        "run-batch-manifest-is-circuit",
        "run-batch {inputs}/ok.qasm --batch 0 --exact",
        "not valid JSON",
    ),
    (
        "run-batch-manifest-folder",
        "run-batch {inputs}/a-folder.qasm --batch 0 --exact",
        "cannot read manifest",
    ),
    ("reconstruct-missing", "reconstruct {store}/nothere.json", "manifest not found"),
    ("workflow-name-not-dns", "workflow {manifest} --name My_Run", r"'My_Run'.*DNS-1123"),
    ("verify-batch-missing", "verify {manifest} --batches 99", "batch 99 does not exist"),
    ("verify-sample-zero", "verify {manifest} --sample 0", "--sample needs at least 1 batch"),
    ("verify-manifest-dotdot", "verify file://{store}/../m/manifest.json", r"'\.\.'"),
    ("workflow-name-too-long", "workflow {manifest} --name " + "a" * 64, "DNS-1123"),
    (
        "workflow-shots-1e19",
        "workflow {manifest} --shots 10000000000000000000",
        r"at most 1,000,000,000 shots",
    ),
]

#: Mistakes argparse catches: exit 2, usage, then one error line.
ARGPARSE_CASES: list[tuple[str, str, str]] = [
    (
        "shots-not-a-number",
        "estimate {inputs}/ok.qasm --observables ZZZZ --partition AABB --shots many",
        "invalid int value",
    ),
    (
        "device-tpu",
        "estimate {inputs}/ok.qasm --observables ZZZZ --partition AABB --exact --device tpu",
        "invalid choice: 'tpu'",
    ),
    (
        "limit-not-a-number",
        "cut {inputs}/ok.qasm --observables ZZZZ --max-subcircuit-qubits abc",
        "invalid int value",
    ),
    ("no-observables", "cut {inputs}/ok.qasm --partition AABB", "--observables"),
    (
        "both-cut-ways",
        "cut {inputs}/ok.qasm --observables ZZZZ --partition AABB --max-subcircuit-qubits 2",
        "not allowed with argument",
    ),
    (
        "neither-mode",
        "estimate {inputs}/ok.qasm --observables ZZZZ --partition AABB",
        "one of the arguments --exact --shots is required",
    ),
    ("flavor-tpu", "workflow {manifest} --flavor tpu", "invalid choice: 'tpu'"),
    ("unknown-command", "explode", "invalid choice"),
]


def _argv(template: str, inputs: Path, store: Path, manifest: str) -> list[str]:
    import shlex

    return shlex.split(template.format(inputs=inputs, store=store, manifest=manifest))


def _run_cli(argv: list[str], capsys) -> tuple[int, str, Outcome]:
    before, started = _peak_mb(), time.perf_counter()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    seconds = time.perf_counter() - started
    err = capsys.readouterr().err
    return code, err, Outcome(err, seconds, _peak_mb() - before)


@pytest.mark.parametrize(("template", "expected"), [c[1:] for c in CLI_CASES],
                         ids=[c[0] for c in CLI_CASES])  # fmt: skip
def test_the_cli_refuses_with_exit_2_and_one_line(
    template, expected, inputs, job, tmp_path, capsys
):
    store = tmp_path / "store"
    untouched = _files(tmp_path), _files(inputs)
    code, err, outcome = _run_cli(_argv(template, inputs, store, job), capsys)
    assert code == 2, err
    assert err.startswith(ERROR_PREFIX), err
    _assert_refused(outcome, expected)
    assert (_files(tmp_path), _files(inputs)) == untouched, "something was written"


@pytest.mark.parametrize(("template", "expected"), [c[1:] for c in ARGPARSE_CASES],
                         ids=[c[0] for c in ARGPARSE_CASES])  # fmt: skip
def test_argparse_mistakes_exit_2_with_usage_and_one_error_line(
    template, expected, inputs, job, tmp_path, capsys
):
    code, err, outcome = _run_cli(_argv(template, inputs, tmp_path, job), capsys)
    assert code == 2
    usage, _, error_line = err.strip().rpartition("\n")
    assert usage.startswith("usage: hybrid-quantum")
    assert re.match(r"hybrid-quantum( [\w-]+)?: error: ", error_line)
    _assert_refused(outcome._replace(message=error_line), expected)
    assert not _files(tmp_path)


# --- the CLI as a process: real exit status, old hangs and runaway allocations --------------

PROCESS_CASES: list[tuple[str, str, str]] = [
    ("qreg-100k-used-to-hang", "qreg-100k.qasm", "declares 100,000 qubits"),
    ("qreg-2e31-used-to-take-7GB", "qreg-2e31.qasm", "declares 2,147,483,648 qubits"),
    ("qubit-2e31-qasm3", "qubit-2e31.qasm", "declares 2,147,483,648 qubits"),
    ("creg-2e31", "creg-2e31.qasm", "declares 2,147,483,648 classical bits"),
]
#: Address space for the child: Python with Qiskit and NumPy maps about 1.3 GB.
PROCESS_ADDRESS_SPACE = 3 * 1024**3
#: A fresh interpreter imports Qiskit first (seconds on a busy 2-core machine); the refusal
#: itself is held to SECONDS by the same files in process, above.
PROCESS_SECONDS = 30.0


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (PROCESS_ADDRESS_SPACE, PROCESS_ADDRESS_SPACE))


@pytest.mark.parametrize(("name", "expected"), [c[1:] for c in PROCESS_CASES],
                         ids=[c[0] for c in PROCESS_CASES])  # fmt: skip
def test_the_console_script_refuses_huge_registers_quickly_and_small(
    name, expected, inputs, tmp_path
):
    command = [sys.executable, "-m", "hybrid_provider.cli", "estimate", str(inputs / name),
               "--observables", "ZZ", "--partition", "AB", "--exact", "--store", str(tmp_path)]  # fmt: skip
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, cwd=ROOT, timeout=PROCESS_SECONDS,
            preexec_fn=_limit_memory,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"the CLI was still running after {PROCESS_SECONDS:.0f} s")
    assert completed.returncode == 2, completed.stderr[-2000:]
    assert completed.stderr.startswith(ERROR_PREFIX)
    _assert_refused(Outcome(completed.stderr, 0.0, 0.0), expected)
    assert not _files(tmp_path)


# --- the operators ----------------------------------------------------------------------------


def _cut_operator(store: Path, **overrides):
    arguments = {
        "task_id": "cut",
        "circuit": BELL4,
        "observables": "ZZZZ",
        "partition_labels": "AABB",
        "job_name": "dag/run/cut",
        "store_uri": str(store),
        **overrides,
    }
    if "max_subcircuit_qubits" in overrides and "partition_labels" not in overrides:
        arguments.pop("partition_labels")
    return CutCircuitOperator(**arguments)


def _submit_operator(store: Path, manifest: str, **overrides):
    arguments = {"task_id": "submit", "manifest_uri": manifest, "store_uri": str(store)}
    return ArgoSubmitOperator(**{**arguments, **overrides})


def _reconstruct_operator(store: Path, manifest: str, **overrides):
    return CupyReconstructOperator(**{"task_id": "reconstruct", "manifest_uri": manifest,
                                      **overrides})  # fmt: skip


_PARAMETRISED_ARGS = {"circuit": PARAMETRISED, "observables": "ZZ", "partition_labels": "AB"}

#: (id, which operator, its arguments, the pattern). ``{inputs}``/``{store}`` are filled in.
OPERATOR_CASES: list[tuple[str, str, dict, str]] = [
    (
        "cut-limit-abc",
        "cut",
        {"max_subcircuit_qubits": "abc"},
        r"max_subcircuit_qubits must be a whole number.*'abc'",
    ),
    (
        "cut-limit-float",
        "cut",
        {"max_subcircuit_qubits": 2.5},
        r"max_subcircuit_qubits must be a whole number",
    ),
    ("cut-limit-zero", "cut", {"max_subcircuit_qubits": 0}, "at least 1"),
    (
        "cut-limit-list",
        "cut",
        {"max_subcircuit_qubits": [2]},
        r"max_subcircuit_qubits must be a whole number",
    ),
    ("cut-batches-x", "cut", {"num_batches": "x"}, r"num_batches must be a whole number"),
    ("cut-batches-zero", "cut", {"num_batches": 0}, "number of batches must be at least 1"),
    ("cut-batches-none", "cut", {"num_batches": None}, r"num_batches must be a whole number"),
    (
        "cut-coefficients-many",
        "cut",
        {"max_coefficients": "many"},
        r"max_coefficients must be a whole number",
    ),
    ("cut-coefficients-zero", "cut", {"max_coefficients": 0}, "at least 1"),
    ("cut-seed-x", "cut", {"cut_seed": "x"}, r"cut_seed must be a whole number"),
    ("cut-seed-negative", "cut", {"cut_seed": -1}, r"seed must be 0 or more"),
    (
        "cut-both-ways",
        "cut",
        {"partition_labels": "AABB", "max_subcircuit_qubits": 2, "circuit": BELL4},
        "exactly one of",
    ),
    ("cut-neither-way", "cut", {"partition_labels": None}, "exactly one of"),
    ("cut-labels-number", "cut", {"partition_labels": 1234}, "partition labels must be a string"),
    ("cut-observables-number", "cut", {"observables": 1234}, r"observables.*Pauli strings"),
    ("cut-observables-bad", "cut", {"observables": "ZZQZ"}, "use only I, X, Y, Z"),
    ("cut-no-circuit", "cut", {"circuit": ""}, "no circuit given"),
    ("cut-circuit-number", "cut", {"circuit": 42}, "no circuit given"),
    (
        "cut-circuit-include",
        "cut",
        {"circuit": FILES["include-passwd.qasm"]},
        r"include.*only qelib1\.inc",
    ),
    (
        "cut-circuit-2e31",
        "cut",
        {"circuit": FILES["qreg-2e31.qasm"], "observables": "ZZ", "partition_labels": "AB"},
        "declares 2,147,483,648 qubits",
    ),
    ("cut-circuit-empty-file", "cut", {"circuit": "{inputs}/empty.qasm"}, "is empty"),
    (
        "cut-parameter-nan",
        "cut",
        {**_PARAMETRISED_ARGS, "parameters": [float("nan")]},
        r"parameter value 'nan'.*finite",
    ),
    (
        "cut-parameter-inf-by-name",
        "cut",
        {**_PARAMETRISED_ARGS, "parameters": {"theta": float("inf")}},
        r"parameter value 'inf'.*finite",
    ),
    (
        "cut-parameter-text",
        "cut",
        {**_PARAMETRISED_ARGS, "parameters": ["x"]},
        r"parameter value 'x'.*number",
    ),
    (
        "cut-parameters-string",
        "cut",
        {**_PARAMETRISED_ARGS, "parameters": "0.5"},
        r"parameters must be a list.*mapping",
    ),
    (
        "cut-parameters-number",
        "cut",
        {**_PARAMETRISED_ARGS, "parameters": 0.5},
        r"parameters must be a list.*mapping",
    ),
    (
        "cut-parameter-unknown-name",
        "cut",
        {**_PARAMETRISED_ARGS, "parameters": {"phi": 1}},
        "no parameter.*named phi",
    ),
    ("cut-job-dotdot", "cut", {"job_name": "../../escape"}, r"'\.\.' segment"),
    ("cut-job-dotdot-inside", "cut", {"job_name": "dag/../../../escape"}, r"'\.\.' segment"),
    ("cut-store-dotdot", "cut", {"store_uri": "file://{store}/../elsewhere"}, r"'\.\.'"),
    (
        "cut-store-under-file",
        "cut",
        {"store_uri": "{inputs}/plain-file/store"},
        r"plain-file is a file",
    ),
    ("cut-store-number", "cut", {"store_uri": 42}, r"store path or URI must be text"),
    (
        "cut-too-wide-to-simulate",
        "cut",
        {
            "circuit": FILES["wide70.qasm"],
            "observables": "Z" * 70,
            "partition_labels": "A" * 35 + "B" * 35,
        },
        r"simulator.*holds at most 32",
    ),
    ("submit-mode-fast", "submit", {"mode": "fast"}, r"'exact' or 'shots'"),
    ("submit-shots-x", "submit", {"mode": "shots", "shots": "x"}, r"shots must be a whole number"),
    (
        "submit-shots-1e19",
        "submit",
        {"mode": "shots", "shots": 10**19},
        r"at most 1,000,000,000 shots",
    ),
    ("submit-shots-zero", "submit", {"mode": "shots", "shots": 0}, "positive number of shots"),
    ("submit-shots-in-exact", "submit", {"shots": 100}, "exact mode takes no shot count"),
    (
        "submit-seed-negative",
        "submit",
        {"mode": "shots", "shots": 10, "seed": -1},
        r"seed.*0 or more",
    ),
    ("submit-seed-x", "submit", {"mode": "shots", "shots": 10, "seed": "x"}, r"seed"),
    ("submit-device-tpu", "submit", {"device": "tpu"}, r"'cpu', 'gpu' or 'auto'"),
    (
        "submit-sampler-syntax",
        "submit",
        {"mode": "shots", "shots": 10, "sampler": "my sampler"},
        "unknown sampler",
    ),
    ("submit-sampler-exact", "submit", {"sampler": "aer-sampler"}, "exact mode needs"),
    (
        "submit-allocation",
        "submit",
        {"mode": "shots", "shots": 10, "shot_allocation": "random"},
        r"'uniform' or 'weighted'",
    ),
    ("submit-flavor-tpu", "submit", {"flavor": "tpu"}, "unknown flavor 'tpu'"),
    ("submit-workflow-name", "submit", {"workflow_name": "My_Run"}, r"'My_Run'.*DNS-1123"),
    ("submit-workflow-name-long", "submit", {"workflow_name": "a" * 64}, "DNS-1123"),
    (
        "submit-manifest-missing",
        "submit",
        {"manifest_uri": "{store}/none/manifest.json"},
        "manifest not found",
    ),
    ("submit-manifest-none", "submit", {"manifest_uri": None}, "store path or URI must be text"),
    (
        "submit-manifest-dotdot",
        "submit",
        {"manifest_uri": "file://{store}/../m/manifest.json"},
        r"'\.\.'",
    ),
    (
        "submit-backend-slurm",
        "submit",
        {"backend": "slurm"},
        "unknown backend: .*must be one of kubernetes, local",
    ),
    (
        "submit-store-s3-local",
        "submit",
        {"store_uri": "memory://bucket"},
        "local backend keeps its runs",
    ),
    ("reconstruct-device-tpu", "reconstruct", {"device": "tpu"}, r"unknown device 'tpu'"),
    (
        "reconstruct-verify-sample-x",
        "reconstruct",
        {"verify_sample": "x"},
        r"verify_sample must be a whole number",
    ),
    (
        "reconstruct-missing",
        "reconstruct",
        {"manifest_uri": "{store}/none/manifest.json"},
        "manifest not found",
    ),
    (
        "reconstruct-dotdot",
        "reconstruct",
        {"manifest_uri": "file://{store}/../m/manifest.json"},
        r"'\.\.'",
    ),
]


def _fill(value, inputs: Path, store: Path):
    if isinstance(value, str) and ("{inputs}" in value or "{store}" in value):
        return value.replace("{inputs}", str(inputs)).replace("{store}", str(store))
    return value


def _operator(kind: str, arguments: dict, store: Path, manifest: str):
    if kind == "cut":
        return _cut_operator(store, **arguments)
    if kind == "submit":
        return _submit_operator(store, manifest, **arguments)
    return _reconstruct_operator(store, manifest, **arguments)


def _refused_task(operator) -> Outcome:
    before, started = _peak_mb(), time.perf_counter()
    with pytest.raises(AirflowFailException) as failure:
        operator.execute(CONTEXT)
    return Outcome(str(failure.value), time.perf_counter() - started, _peak_mb() - before)


@pytest.mark.parametrize(("kind", "arguments", "expected"), [c[1:] for c in OPERATOR_CASES],
                         ids=[c[0] for c in OPERATOR_CASES])  # fmt: skip
def test_the_operators_fail_the_task_without_retry(
    kind, arguments, expected, inputs, job, tmp_path
):
    store = tmp_path / "store"
    job_store = Path(job.removeprefix("file://")).parents[2]
    arguments = {k: _fill(v, inputs, store) for k, v in arguments.items()}
    operator = _operator(kind, arguments, store, job)
    untouched = _files(tmp_path), _files(inputs), _files(job_store)
    _assert_refused(_refused_task(operator), expected)
    assert (_files(tmp_path), _files(inputs), _files(job_store)) == untouched


# --- the connection ---------------------------------------------------------------------------

#: (id, the connection's extra, the pattern). Each is used by a submit task.
CONNECTION_CASES: list[tuple[str, dict, str]] = [
    ("quota-not-json", {"local_quota": "{cpu: 1"}, "local_quota must be JSON"),
    ("quota-word", {"local_quota": '{"cpu": "two"}'}, r"local_quota.*'cpu'.*whole number"),
    ("quota-fraction", {"local_quota": '{"cpu": 1.5}'}, r"local_quota.*'cpu'.*whole number"),
    ("quota-negative", {"local_quota": '{"cpu": -1}'}, r"local_quota.*'cpu'.*0 or more"),
    ("quota-list", {"local_quota": "[1, 2]"}, r"local_quota must be a JSON object"),
    ("quota-number", {"local_quota": "2"}, r"local_quota must be a JSON object"),
    ("quota-unknown-flavor", {"local_quota": '{"tpu": 1}'}, r"unknown flavor 'tpu'"),
    ("quota-boolean", {"local_quota": '{"cpu": true}'}, r"'cpu'.*whole number"),
    (
        "backend-unknown",
        {"backend": "slurm"},
        "unknown backend: .*must be one of kubernetes, local",
    ),
    ("store-dotdot", {"store_uri": "file://{store}/../elsewhere"}, r"'\.\.'"),
    ("store-under-file", {"store_uri": "{inputs}/plain-file/store"}, r"plain-file is a file"),
    ("store-number", {"store_uri": 42}, r"store path or URI must be text"),
]


@pytest.mark.parametrize(("extra", "expected"), [c[1:] for c in CONNECTION_CASES],
                         ids=[c[0] for c in CONNECTION_CASES])  # fmt: skip
def test_a_bad_connection_fails_the_task_without_retry(
    extra, expected, inputs, job, tmp_path, monkeypatch
):
    store = tmp_path / "store"
    extra = {"backend": "local", "store_uri": str(store), **extra}
    extra = {k: _fill(v, inputs, store) for k, v in extra.items()}
    monkeypatch.setenv(
        "AIRFLOW_CONN_HQ_BAD", json.dumps({"conn_type": "hybrid_quantum", "extra": extra})
    )
    operator = ArgoSubmitOperator(task_id="submit", manifest_uri=job, hybrid_conn_id="hq_bad")
    job_store = Path(job.removeprefix("file://")).parents[2]
    untouched = _files(tmp_path), _files(job_store)
    _assert_refused(_refused_task(operator), expected)
    assert (_files(tmp_path), _files(job_store)) == untouched


def test_the_suite_has_at_least_a_hundred_cases():
    cases = (CLI_CASES, ARGPARSE_CASES, PROCESS_CASES, OPERATOR_CASES, CONNECTION_CASES)
    assert sum(len(c) for c in cases) >= 100
