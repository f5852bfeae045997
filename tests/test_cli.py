"""The hybrid-quantum CLI: JSON output for scripts, clean errors (exit 2) for people."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import exact_values, random_ansatz
from qiskit import qasm3

from hybrid_provider.cli import main


@pytest.fixture
def circuit_file(tmp_path):
    circuit = random_ansatz(6, reps=2)
    path = tmp_path / "ansatz.qasm"
    path.write_text(qasm3.dumps(circuit))
    return circuit, path


def test_estimate_json_gives_values_errors_counts_and_timings(tmp_path, circuit_file, capsys):
    circuit, path = circuit_file
    code = main(
        ["estimate", str(path), "--observables", "ZZZZZZ,XXIIXX", "--partition", "AAABBB",
         "--exact", "--store", str(tmp_path / "store"), "--json"]
    )  # fmt: skip
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose(
        payload["values"], exact_values(circuit, ["ZZZZZZ", "XXIIXX"]), atol=1e-8
    )
    assert payload["std_errors"] == [0.0, 0.0]
    assert payload["num_subexperiments"] > 0
    assert set(payload["timings"]) == {"cut", "execute", "reconstruct", "total"}


def test_stages_chain_cut_run_batch_reconstruct(tmp_path, circuit_file, capsys):
    _, path = circuit_file
    store = str(tmp_path / "store")
    assert main(["cut", str(path), "--observables", "ZZZZZZ", "--max-subcircuit-qubits", "4",
                 "--store", store, "--batches", "2", "--json"]) == 0  # fmt: skip
    manifest_uri = json.loads(capsys.readouterr().out)["manifest_uri"]
    assert main(["run-batch", manifest_uri, "--all", "--shots", "500"]) == 0
    assert "batch 2/2 done" in capsys.readouterr().out
    assert main(["reconstruct", manifest_uri, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["mode"] == "shots" and result["std_errors"][0] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--observables", "ZZZ", "--partition", "AAABBB", "--exact"],
            "has 3 letters but the circuit has 6",
        ),
        (
            ["--observables", "ZZZZZZ", "--partition", "AAABBB", "--shots", "0"],
            "positive number of shots",
        ),
        (["--observables", "ZZZZZZ", "--partition", "AB", "--exact"], "one label per qubit"),
        (
            [
                "--observables",
                "ZZZZZZ",
                "--partition",
                "AAABBB",
                "--exact",
                "--max-coefficients",
                "10",
            ],
            "no practical cut plan fits",
        ),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(tmp_path, circuit_file, capsys, args, message):
    _, path = circuit_file
    assert main(["estimate", str(path), "--store", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not list(tmp_path.rglob("manifest.json")) and not list(tmp_path.rglob("*.qpy"))


def test_the_installed_console_script_reports_a_missing_manifest(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "hybrid_provider.cli", "reconstruct", str(tmp_path / "none.json")],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 2
    assert "manifest not found" in completed.stderr and "Traceback" not in completed.stderr


def test_estimate_in_process_agrees_with_the_store_path(tmp_path, circuit_file, capsys):
    circuit, path = circuit_file
    common = [
        "estimate",
        str(path),
        "--observables",
        "ZZZZZZ,XXIIXX",
        "--partition",
        "AAABBB",
        "--exact",
    ]
    assert main([*common, "--in-process", "--json"]) == 0
    in_process = json.loads(capsys.readouterr().out)
    assert main([*common, "--store", str(tmp_path / "store"), "--json"]) == 0
    via_store = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose(in_process["values"], via_store["values"], atol=1e-10)
    np.testing.assert_allclose(
        in_process["values"], exact_values(circuit, ["ZZZZZZ", "XXIIXX"]), atol=1e-8
    )
