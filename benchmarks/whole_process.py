"""Whole processes, imports included: the addon's pipeline, our CLI (job path and in process),
and the example DAG under ``airflow dags test``, on the same 12-qubit, 3-cut case.

    python -m benchmarks.whole_process            # everything (the addon's shot runs: minutes)
    python -m benchmarks.whole_process --quick    # no addon shot run, no DAG

Each command runs in a fresh child process; wall time and the child's peak RSS are measured
from outside (``os.wait4``). Ratios are against figures measured in the same run. Exits 1 when
an exact answer is off by more than 1e-8.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
from qiskit import qasm2
from rich.console import Console
from rich.table import Table

from benchmarks import cases
from benchmarks.measure import machine

REPOSITORY = Path(__file__).resolve().parent.parent
DAG_ID = "nightly_circuit_cutting"
DAG_DATE = "2026-11-27"
EXACT_TOLERANCE = 1e-8
console = Console(width=200)


class Run(NamedTuple):
    label: str
    seconds: float
    peak_mb: float
    output: str


def run(label: str, command: list[str], env: dict[str, str] | None = None) -> Run:
    """Run ``command`` to completion; its wall time and peak resident memory."""
    started = time.perf_counter()
    child = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=REPOSITORY,
    )
    assert child.stdout is not None
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{label} failed ({child.returncode}):\n{output[-3000:]}")
    return Run(label, seconds, usage.ru_maxrss / 1024, output)


def addon_main(mode: str) -> None:
    """The addon tutorial as one process: what a user of the addon alone would run."""
    from benchmarks import reference

    case = cases.reference_case()
    prepared = reference.prepare(case)
    if mode == "exact":
        results, _ = reference.exact_sample(prepared)
    else:
        isa, _ = reference.transpile(prepared)
        results, _ = reference.sample(isa, int(mode))
    values, _ = reference.reconstruct(prepared, results)
    print(json.dumps({"values": values}))


def our_commands(folder: Path) -> dict[str, list[str]]:
    case = cases.reference_case()
    circuit = folder / "case.qasm"
    circuit.write_text(qasm2.dumps(case.circuit))
    estimate = [
        str(Path(sys.executable).with_name("hybrid-quantum")),
        "estimate",
        str(circuit),
        "--observables",
        ",".join(case.observables),
        "--partition",
        case.partition or "",
        "--exact",
        "--json",
    ]
    return {
        "ours, job path (CLI estimate, 8 batches)": [*estimate, "--store", str(folder / "store")],
        "ours, in process (CLI estimate --in-process)": [*estimate, "--in-process"],
    }


def values_of(output: str) -> list[float]:
    return json.loads(output[output.index("{") :])["values"]


def dag_and_cli(folder: Path) -> list[Run]:
    """``airflow dags test`` of the example DAG (after ``airflow db migrate``, not timed) and
    the CLI on the very job it cuts (same circuit, parameters, observables and batches)."""
    home = folder / "airflow"
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPOSITORY / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    run("airflow db migrate", [airflow, "db", "migrate"], env)
    dag = run("example DAG (airflow dags test)", [airflow, "dags", "test", DAG_ID, DAG_DATE], env)
    manifests = sorted((home / "hybrid-quantum").glob("**/manifest.json"))
    circuit = manifests[0].parent / "circuit.qpy"
    manifest = json.loads(manifests[0].read_text())
    cli = run(
        "the DAG's job, CLI estimate (job path)",
        [
            str(Path(sys.executable).with_name("hybrid-quantum")),
            "estimate",
            str(circuit),
            "--observables",
            ",".join(manifest["observables"]),
            "--partition",
            manifest["plan"]["partition_labels"],
            "--batches",
            str(len(manifest["batches"])),
            "--exact",
            "--store",
            str(folder / "dag-cli-store"),
            "--json",
        ],
    )
    return [dag, cli]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the addon's shot run and DAG")
    parser.add_argument("--addon", help=argparse.SUPPRESS)  # the child process: exact or shots
    args = parser.parse_args(argv)
    if args.addon:
        addon_main(args.addon)
        return 0
    console.print(machine())
    from benchmarks.run import exact_values

    exact = np.asarray(exact_values(cases.reference_case()))
    addon = [sys.executable, "-m", "benchmarks.whole_process", "--addon"]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as folder:
        for label, command in our_commands(Path(folder)).items():
            runs.append(run(label, command))
        runs.append(run("addon tutorial, exact (ExactSampler)", [*addon, "exact"]))
        if not args.quick:
            for shots in (1000, 4096):
                label = f"addon tutorial, {shots:,} shots (Aer SamplerV2)"
                runs.append(run(label, [*addon, str(shots)]))
            runs.extend(dag_and_cli(Path(folder)))
    failures = report(runs, exact)
    return 1 if failures else 0


def report(runs: list[Run], exact: np.ndarray) -> list[str]:
    ours = {r.label: r for r in runs}
    table = Table(title="Whole processes, imports included (12 qubits, 3 cut CX)")
    for column in ("process", "wall s", "peak RSS MB", "× job path", "× in process", "|err|"):
        table.add_column(column)
    job = next(r for r in runs if r.label.startswith("ours, job path"))
    in_process = next(r for r in runs if r.label.startswith("ours, in process"))
    failures = []
    for entry in runs:
        error = "—"
        if entry.label.startswith(("ours", "addon")):  # the reference case's values
            difference = float(np.max(np.abs(np.asarray(values_of(entry.output)) - exact)))
            error = f"{difference:.1e}"
            if "shots" not in entry.label and difference > EXACT_TOLERANCE:
                failures.append(f"{entry.label}: off by {difference:.1e}")
        table.add_row(
            entry.label,
            f"{entry.seconds:.2f}",
            f"{entry.peak_mb:.0f}",
            f"{entry.seconds / job.seconds:.1f}",
            f"{entry.seconds / in_process.seconds:.1f}",
            error,
        )
    console.print(table)
    if "example DAG (airflow dags test)" in ours:
        dag, cli = ours["example DAG (airflow dags test)"], runs[-1]
        console.print(f"DAG end to end / CLI on the same job: {dag.seconds / cli.seconds:.2f}×")
    for failure in failures:
        console.print(f"[red]FAIL[/] {failure}")
    return failures


if __name__ == "__main__":
    raise SystemExit(main())
