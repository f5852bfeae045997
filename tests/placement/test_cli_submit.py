"""``hybrid-quantum submit --flavor auto``: the operator's placement without Airflow."""

from __future__ import annotations

import json

from helpers import random_ansatz
from qiskit.quantum_info import PauliList

from hybrid_provider.cli import main
from hybrid_provider.core.cut.job import write_job
from hybrid_provider.core.cut.plan import plan_cuts
from hybrid_provider.placement import load_history
from hybrid_provider.placement.decide import read_decision


def test_submit_auto_places_runs_and_learns(tmp_path, capsys):
    circuit = random_ansatz(6, reps=1)
    plan = plan_cuts(circuit, PauliList(["ZZZZZZ"]), partition_labels="AAABBB")
    job = write_job(circuit, plan, str(tmp_path), "job", num_batches=4)
    quota = '{"cpu": 1, "gpu": 1, "qpu": 1}'
    argv = ["submit", job.manifest_uri, "--store", str(tmp_path), "--flavor", "auto",
            "--local-quota", quota, "--exact", "--wait", "--json"]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"]["phase"] == "Succeeded"
    assert sorted(out["placement"]["assignment"].values()) == ["cpu", "cpu", "gpu", "gpu"]
    assert read_decision(job.manifest_uri).workflow == out["workflow_name"]
    assert [run.workflow for run in load_history(str(tmp_path)).runs] == [out["workflow_name"]]


def test_submit_auto_refuses_a_quota_with_nowhere_to_run(tmp_path, capsys):
    circuit = random_ansatz(4, reps=1)
    plan = plan_cuts(circuit, PauliList(["ZZZZ"]), partition_labels="AABB")
    job = write_job(circuit, plan, str(tmp_path), "job", num_batches=2)
    argv = ["submit", job.manifest_uri, "--store", str(tmp_path), "--flavor", "auto",
            "--local-quota", '{"cpu": 0, "gpu": 0, "qpu": 2}', "--exact"]  # fmt: skip
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("hybrid-quantum: error: flavor auto found no flavor to run on")
    assert "qpu: exact mode never runs on a QPU" in error and error.count("\n") == 1
