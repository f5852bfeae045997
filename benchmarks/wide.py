"""Wide circuits, too wide for one statevector, cut into blocks: time in units of one block.

    python -m benchmarks.wide                # 2×16, 2×20 and 3×14 qubits (minutes or more)
    python -m benchmarks.wide --quick        # 2×10 and 3×8 qubits (well under a minute)
    python -m benchmarks.wide --json FILE    # also write every measurement to FILE
    python -m benchmarks.wide --timeout 600  # seconds per measurement (default 1800)

Each case is k blocks of n qubits, efficient_su2-like (RY, RZ on every qubit, then a CX chain
inside each block, per layer), with cut CX gates between neighbouring blocks in the middle
layers; the partition is one letter per block. Every measurement runs in a fresh spawned
process, so its peak memory is its own:

* the *unit*: one Aer statevector simulation (SaveExpectationValue) of one uncut block, same
  depth: what a case would cost if each block could be simulated once;
* ours: ``plan_cuts`` + ``estimate_in_process`` (exact), and the job path: ``write_job`` + every
  ``run_batch`` + ``reconstruct_job`` in a temporary store, as the DAG does on one machine;
* an independent exact reference: Aer's matrix-product-state simulator, no bond-dimension cap,
  a 1e-16 truncation threshold and LAPACK's SVD (Aer's own SVD is off by ~1e-10 on these
  circuits; LAPACK's agrees with a statevector to ~1e-14). Bond dimensions here stay small, so
  nothing is truncated; the largest one is reported.

A measurement that runs past ``--timeout`` seconds is stopped and reported as over the limit.
Exits 1 when either of our paths differs from the reference by 1e-8 or more, 2 when nothing
differs but something ran over the limit (so not everything was compared).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

import numpy as np
from qiskit import QuantumCircuit
from qiskit.quantum_info import Pauli, PauliList
from qiskit_addon_cutting.qpd import SingleQubitQPDGate
from qiskit_aer import AerSimulator
from rich.console import Console
from rich.table import Table

from benchmarks.measure import machine, measure
from hybrid_provider.core.cut.job import write_job
from hybrid_provider.core.cut.plan import CutPlan, plan_cuts
from hybrid_provider.core.execute.batch import run_batch
from hybrid_provider.core.execute.options import ExecutionOptions
from hybrid_provider.core.pipeline import estimate_in_process
from hybrid_provider.core.reconstruct.combine import reconstruct_job

TOLERANCE = 1e-8
UNIT_REPEATS = 5
NUM_BATCHES = 4
_BOND_DIMENSIONS = re.compile(r"BD=\[([\d ]+)\]")

console = Console(width=200)


class WideCase(NamedTuple):
    """``blocks`` blocks of ``width`` qubits, ``cuts`` cut CX between each neighbouring pair."""

    blocks: int
    width: int
    cuts: int
    seed: int = 7

    @property
    def num_qubits(self) -> int:
        return self.blocks * self.width

    @property
    def num_cuts(self) -> int:
        return (self.blocks - 1) * self.cuts

    @property
    def layers(self) -> int:
        """One layer before the cut ones and one after: the cuts sit in the middle."""
        return self.cuts + 2

    @property
    def name(self) -> str:
        return f"{self.blocks}×{self.width}"

    @property
    def partition(self) -> str:
        """One letter per block, qubit 0 first."""
        return "".join(chr(ord("A") + b) * self.width for b in range(self.blocks))

    def circuit(self) -> QuantumCircuit:
        """The whole wide circuit: per layer rotations, CX chains per block, then (in the middle
        layers) one CX from the last qubit of each block to the first of the next."""
        return _layered(self, self.blocks, cut_layers=range(1, 1 + self.cuts))

    def block(self) -> QuantumCircuit:
        """One block alone, same layers, no cut CX: the unit's circuit."""
        return _layered(self, 1, cut_layers=range(0))

    def observables(self) -> PauliList:
        """Z on every qubit; Z on the two qubits either side of the first cut; X on block A."""
        n = self.num_qubits
        return PauliList(
            [
                Pauli("Z" * n),
                _pauli(n, {self.width - 1: "Z", self.width: "Z"}),
                _pauli(n, dict.fromkeys(range(self.width), "X")),
            ]
        )


def _layered(case: WideCase, blocks: int, cut_layers: range) -> QuantumCircuit:
    """Angles are drawn per whole-circuit qubit from a seeded generator, so a block's gates are
    the same whether it is built alone or within the wide circuit (for block 0)."""
    angles = np.random.default_rng(case.seed).uniform(0.0, 0.4, (case.layers, case.num_qubits, 2))
    n = case.width
    circuit = QuantumCircuit(blocks * n)
    for layer in range(case.layers):
        for qubit in range(blocks * n):
            circuit.ry(angles[layer, qubit, 0], qubit)
            circuit.rz(angles[layer, qubit, 1], qubit)
        for start in range(0, blocks * n, n):
            for qubit in range(start, start + n - 1):
                circuit.cx(qubit, qubit + 1)
        if layer in cut_layers:
            for start in range(n, blocks * n, n):
                circuit.cx(start - 1, start)
    return circuit


def _pauli(num_qubits: int, letters: dict[int, str]) -> Pauli:
    """A Pauli from {qubit: letter}; Qiskit labels put qubit 0 last."""
    return Pauli("".join(letters.get(q, "I") for q in reversed(range(num_qubits))))


FULL_CASES = [WideCase(2, 16, 2), WideCase(2, 20, 3), WideCase(3, 14, 2)]
QUICK_CASES = [WideCase(2, 10, 2), WideCase(3, 8, 1)]


def distinct_term_choices(plan: CutPlan) -> int:
    """Distinct subexperiments any exact method must cover: per subcircuit, the product over its
    cut gates of how many different operations the QPD terms put on its side of the gate."""
    total = 0
    for subcircuit in plan.problem.subcircuits.values():
        count = 1
        for instruction in subcircuit.data:
            gate = instruction.operation
            if isinstance(gate, SingleQubitQPDGate):
                sides = {_ops_key(term[gate.qubit_id]) for term in gate.basis.maps}
                count *= len(sides)
        total += count
    return total


def _ops_key(operations) -> tuple:
    return tuple((op.name, tuple(float(p) for p in op.params)) for op in operations)


def plan_of(case: WideCase) -> CutPlan:
    return plan_cuts(case.circuit(), case.observables(), partition_labels=case.partition)


def ours(case: WideCase) -> dict[str, Any]:
    """Plan + in-process exact execution + reconstruction, as `estimate --in-process` does."""
    result = estimate_in_process(plan_of(case), ExecutionOptions(mode="exact"))
    return {"values": list(result.reconstruction.values), "stages": dict(result.timings)}


def job_path(case: WideCase) -> dict[str, Any]:
    """The DAG's path on one machine: write_job → every run_batch → reconstruct_job."""
    options = ExecutionOptions(mode="exact")
    circuit = case.circuit()
    with tempfile.TemporaryDirectory() as store:
        plan = plan_cuts(circuit, case.observables(), partition_labels=case.partition)
        job = write_job(circuit, plan, store, "wide", NUM_BATCHES)
        for index in range(NUM_BATCHES):
            run_batch(job.manifest_uri, index, options)
        return {"values": list(reconstruct_job(job.manifest_uri).values)}


def unit(case: WideCase) -> dict[str, Any]:
    """One statevector simulation of one block with its Z…Z expectation value: the fastest of a
    few runs, each timed alone. On a shared machine the runs vary several-fold (Aer's OpenMP
    threads wait on each other when other processes hold the cores); the fastest is the cost
    itself, and the smaller unit makes the case's count of units, if anything, larger."""
    circuit = case.block()
    circuit.save_expectation_value(Pauli("Z" * case.width), range(case.width))
    simulator = statevector_simulator()
    seconds = []
    for _ in range(UNIT_REPEATS):
        started = time.perf_counter()
        simulator.run(circuit).result()
        seconds.append(time.perf_counter() - started)
    return {"seconds": min(seconds), "all_seconds": seconds}


def statevector_simulator() -> AerSimulator:
    return AerSimulator(method="statevector")


def mps_simulator() -> AerSimulator:
    """Untruncated MPS with LAPACK's SVD, logging bond dimensions."""
    return AerSimulator(
        method="matrix_product_state",
        matrix_product_state_truncation_threshold=1e-16,
        matrix_product_state_max_bond_dimension=None,
        mps_lapack=True,
        mps_log_data=True,
    )


def reference(case: WideCase) -> dict[str, Any]:
    """Exact values from Aer's MPS simulator, untruncated, with the largest bond dimension."""
    circuit = case.circuit()
    for index, pauli in enumerate(case.observables()):
        circuit.save_expectation_value(pauli, range(case.num_qubits), label=f"o{index}")
    result = mps_simulator().run(circuit).result()
    data = result.data()
    log = str(result.results[0].metadata.get("MPS_log_data", ""))
    bonds = [int(d) for match in _BOND_DIMENSIONS.findall(log) for d in match.split()]
    return {
        "values": [float(np.real(data[f"o{i}"])) for i in range(len(case.observables()))],
        "max_bond_dimension": max(bonds, default=None),
    }


class Measurement(NamedTuple):
    """What to time, and the Aer simulator to warm up first in its process.

    Aer's first run in a process loads its libraries, which is no part of a case's time. The
    warm-up uses the measurement's own method: Aer 0.18's MPS with LAPACK segfaults (in its
    bundled OpenBLAS) when a statevector run came first in the same process.
    """

    function: Callable[[WideCase], dict]
    simulator: Callable[[], AerSimulator]


MEASUREMENTS = {
    "unit": Measurement(unit, statevector_simulator),
    "ours": Measurement(ours, statevector_simulator),
    "job": Measurement(job_path, statevector_simulator),
    "reference": Measurement(reference, mps_simulator),
}


class MeasurementFailed(RuntimeError):
    """A measurement's process died (a crash in native code) before it sent its result."""


def _warm_up(simulator: AerSimulator) -> None:
    circuit = QuantumCircuit(1)
    circuit.save_expectation_value(Pauli("Z"), [0])
    simulator.run(circuit).result()


def _measured_in_child(measurement: Measurement, case: WideCase) -> dict[str, Any]:
    _warm_up(measurement.simulator())
    measured = measure(measurement.function, case)
    return {
        **measured.value,
        "wall_s": measured.seconds,
        "peak_mb": measured.peak_mb,
        "process_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _child(sender: Connection, measurement: Measurement, case: WideCase) -> None:
    sender.send(_measured_in_child(measurement, case))
    sender.close()


def in_fresh_process(
    measurement: Measurement, case: WideCase, timeout: float
) -> dict[str, Any] | None:
    """Run one measurement in a new spawned interpreter (imports done before the clock starts);
    None when it runs past ``timeout`` seconds (the interpreter is then killed).

    Raises:
        MeasurementFailed: the process died without a result (its own output says why).
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, measurement, case), daemon=True)
    process.start()
    sender.close()  # the child holds the only writer: its death reads as end of file here
    try:
        if not receiver.poll(timeout):
            return None
        return receiver.recv()
    except EOFError:
        process.join()
        raise MeasurementFailed(
            f"{measurement.function.__name__} for {case.name} died in its process (exit code "
            f"{process.exitcode}) before sending a result; its output above says why"
        ) from None
    finally:
        process.kill()
        process.join()


def run_case(case: WideCase, timeout: float) -> dict[str, Any]:
    load = os.getloadavg()[0]
    console.print(f"[bold]{case.name}[/], {case.num_cuts} cut CX (load average {load:.1f})")
    measured: dict[str, dict[str, Any] | None] = {}
    for name, measurement in MEASUREMENTS.items():
        measured[name] = in_fresh_process(measurement, case, timeout)
        console.print(f"  {name}: " + _seconds(_field(measured[name], "wall_s")))
    unit_s = _field(measured["unit"], "seconds")
    expected = _field(measured["reference"], "values")
    row = {
        "case": case.name,
        "load_average": load,
        "qubits": case.num_qubits,
        "layers": case.layers,
        "cuts": case.num_cuts,
        "distinct": distinct_term_choices(plan_of(case)),
        "timeout_s": timeout,
        "unit_s": unit_s,
        "unit_all_s": _field(measured["unit"], "all_seconds"),
        "reference_s": _field(measured["reference"], "wall_s"),
        "reference_max_bond": _field(measured["reference"], "max_bond_dimension"),
        "reference_values": expected,
        "ours_stages": _field(measured["ours"], "stages"),
    }
    for path in ("ours", "job"):
        row.update(_path_fields(path, measured[path], unit_s, expected))
    return row


def _field(measured: dict[str, Any] | None, key: str) -> Any:
    """A measurement's field, or None when the measurement ran over the time limit."""
    return None if measured is None else measured[key]


def _path_fields(
    path: str, measured: dict[str, Any] | None, unit_s: float | None, expected: list[float] | None
) -> dict[str, Any]:
    """One path's time, time in units, peak memory, values and error (None where not measured)."""
    seconds = _field(measured, "wall_s")
    values = _field(measured, "values")
    return {
        f"{path}_s": seconds,
        f"{path}_units": seconds / unit_s if seconds and unit_s else None,
        f"{path}_peak_mb": _field(measured, "peak_mb"),
        f"{path}_process_peak_mb": _field(measured, "process_peak_mb"),
        f"{path}_values": values,
        f"{path}_err": max_error(values, expected) if values and expected else None,
    }


def max_error(values: list[float], expected: list[float]) -> float:
    return float(np.max(np.abs(np.asarray(values) - np.asarray(expected))))


def disagreeing(rows: list[dict[str, Any]]) -> list[str]:
    """Cases where a path that was compared is 1e-8 or more from the reference (or NaN)."""
    return [
        r["case"]
        for r in rows
        if any(r[key] is not None and not r[key] < TOLERANCE for key in ("ours_err", "job_err"))
    ]


def incomplete(rows: list[dict[str, Any]]) -> list[str]:
    """Cases where something ran past the time limit, so not everything was compared."""
    return [r["case"] for r in rows if r["ours_err"] is None or r["job_err"] is None]


def _seconds(value: float | None) -> str:
    return "over the time limit" if value is None else f"{value:.2f} s"


def _number(value: float | None, form: str) -> str:
    return "—" if value is None else format(value, form)


def report(rows: list[dict[str, Any]]) -> None:
    table = Table(title="Wide circuits, exact: ours vs Aer MPS; time in units of one block's "
                  "statevector simulation, each measured in a fresh process")  # fmt: skip
    for column in ["case", "qubits", "cuts", "distinct circuits", "unit s", "time (s)",
                   "time in units", "peak MB", "job path s", "job units", "job peak MB",
                   "reference s", "MPS max bond", "max error", "check"]:  # fmt: skip
        table.add_column(column)
    for r in rows:
        errors = [e for e in (r["ours_err"], r["job_err"]) if e is not None]
        error = max(errors, default=None)
        check = (
            "[red]FAIL[/]" if r["case"] in disagreeing([r])
            else "[yellow]incomplete[/]" if r["case"] in incomplete([r])
            else "[green]ok[/]"
        )  # fmt: skip
        table.add_row(
            r["case"], str(r["qubits"]), str(r["cuts"]), str(r["distinct"]),
            _number(r["unit_s"], ".4f"), _number(r["ours_s"], ".2f"),
            _number(r["ours_units"], ".0f"), _number(r["ours_peak_mb"], ".0f"),
            _number(r["job_s"], ".2f"), _number(r["job_units"], ".0f"),
            _number(r["job_peak_mb"], ".0f"), _number(r["reference_s"], ".2f"),
            str(r["reference_max_bond"]), _number(error, ".1e"), check,
        )  # fmt: skip
    console.print(table)


def commit() -> str:
    """The checked-out commit, so a table says what it measured."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2×10 and 3×8 qubits, seconds")
    parser.add_argument("--json", help="also write every measurement to this file")
    parser.add_argument(
        "--timeout",
        type=float,
        default=1800.0,
        help="seconds one measurement may take before it is stopped and reported as over the "
        "limit (default 1800)",
    )
    args = parser.parse_args(argv)
    about = {**machine(), "commit": commit()}
    console.print(about)
    try:
        rows = [
            run_case(case, args.timeout) for case in (QUICK_CASES if args.quick else FULL_CASES)
        ]
    except MeasurementFailed as failed:
        console.print(f"[red]{failed}[/]")
        return 1
    report(rows)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"machine": about, "cases": rows}, handle, indent=2)
    failures = disagreeing(rows)
    if failures:
        console.print(f"[red]differs from the MPS reference by {TOLERANCE} or more:[/] "
                      + ", ".join(failures))  # fmt: skip
        return 1
    unfinished = incomplete(rows)
    if unfinished:
        console.print(f"[yellow]not fully compared (a measurement ran over {args.timeout:.0f} s):"
                      "[/] " + ", ".join(unfinished))  # fmt: skip
        return 2
    console.print("[green]all cases agree with the MPS reference[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
