"""The wide-circuit benchmark measures the right thing: its cases cut where they say, its MPS
reference is exact, and our two paths agree with it on the quick mode's smallest case."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from helpers import exact_values

from benchmarks import wide

SMALLEST = wide.QUICK_CASES[0]  # 2×10 qubits, 2 cut CX


@pytest.fixture(scope="module")
def reference_values() -> list[float]:
    return wide.reference(SMALLEST)["values"]


def test_the_partition_cuts_exactly_the_inter_block_cx():
    plan = wide.plan_of(SMALLEST)
    assert plan.partition_labels == "A" * 10 + "B" * 10
    assert plan.num_gate_cuts == SMALLEST.num_cuts == 2
    assert plan.num_wire_cuts == 0
    assert wide.distinct_term_choices(plan) == 2 * 5**2  # 5 distinct CX-cut terms per side


def test_three_blocks_cut_between_each_neighbouring_pair():
    case = wide.WideCase(3, 4, 2)
    plan = wide.plan_of(case)
    assert plan.num_gate_cuts == 4
    # the middle block takes part in all four cuts, the outer ones in two each
    assert wide.distinct_term_choices(plan) == 5**2 + 5**4 + 5**2


def test_the_unit_is_block_a_alone_with_the_same_layers():
    """Block A's gates in the wide circuit, minus the cut CX, are exactly the unit's circuit."""
    whole, block = SMALLEST.circuit(), SMALLEST.block()
    inside = [
        (i.operation.name, [whole.find_bit(q).index for q in i.qubits], i.operation.params)
        for i in whole.data
        if all(whole.find_bit(q).index < SMALLEST.width for q in i.qubits)
    ]
    alone = [
        (i.operation.name, [block.find_bit(q).index for q in i.qubits], i.operation.params)
        for i in block.data
    ]
    assert block.num_qubits == SMALLEST.width
    assert inside == alone


def test_observables_straddle_the_first_cut():
    labels = SMALLEST.observables().to_labels()
    assert labels[0] == "Z" * 20
    assert labels[1] == "I" * 9 + "ZZ" + "I" * 9  # qubits 9 and 10, either side of the cut
    assert labels[2] == "I" * 10 + "X" * 10  # block A: qubits 0-9 (Qiskit labels end in qubit 0)


def test_the_mps_reference_equals_the_statevector(reference_values):
    circuit = SMALLEST.circuit()
    expected = exact_values(circuit, SMALLEST.observables().to_labels())
    np.testing.assert_allclose(reference_values, expected, rtol=0, atol=1e-12)


def test_in_process_and_job_path_agree_with_the_reference(reference_values):
    assert wide.max_error(wide.ours(SMALLEST)["values"], reference_values) < wide.TOLERANCE
    assert wide.max_error(wide.job_path(SMALLEST)["values"], reference_values) < wide.TOLERANCE


@pytest.mark.parametrize(
    ("ours_err", "job_err", "disagreeing", "incomplete"),
    [
        (1e-12, 1e-12, [], []),
        (1e-8, 0.0, ["c"], []),
        (0.0, 2e-3, ["c"], []),
        (float("nan"), 0.0, ["c"], []),
        (1e-12, None, [], ["c"]),  # the job path ran over the time limit
        (1.0, None, ["c"], ["c"]),
        (None, None, [], ["c"]),
    ],
)
def test_a_compared_path_off_by_the_tolerance_fails_a_missing_one_is_incomplete(
    ours_err, job_err, disagreeing, incomplete
):
    rows = [{"case": "c", "ours_err": ours_err, "job_err": job_err}]
    assert wide.disagreeing(rows) == disagreeing
    assert wide.incomplete(rows) == incomplete


def test_a_measurement_over_the_time_limit_is_stopped_and_reported_as_none():
    slow = wide.Measurement(_sleeps, wide.statevector_simulator)
    assert wide.in_fresh_process(slow, SMALLEST, timeout=0.5) is None


def test_a_measurement_whose_process_crashes_fails_naming_it():
    crashing = wide.Measurement(_crashes, wide.statevector_simulator)
    with pytest.raises(wide.MeasurementFailed, match=r"_crashes for 2×10 died .*exit code 3"):
        wide.in_fresh_process(crashing, SMALLEST, timeout=120)


def test_the_reference_runs_after_its_own_warm_up():
    """Aer's MPS with LAPACK segfaults on 3×14 after a statevector run in the same process; the
    reference warms up with MPS instead (the MPS run itself takes milliseconds)."""
    three_by_fourteen = wide.FULL_CASES[2]
    result = wide.in_fresh_process(wide.MEASUREMENTS["reference"], three_by_fourteen, timeout=120)
    assert result is not None and result["max_bond_dimension"] >= 2


def _sleeps(case: wide.WideCase) -> dict:
    time.sleep(60)
    return {}


def _crashes(case: wide.WideCase) -> dict:
    os._exit(3)  # as a segfault in native code would: no exception, no result


@pytest.mark.slow
def test_quick_run_agrees_and_reports_units(tmp_path):
    out = tmp_path / "wide.json"
    assert wide.main(["--quick", "--json", str(out)]) == 0
    written = json.loads(out.read_text())
    assert [r["case"] for r in written["cases"]] == ["2×10", "3×8"]
    for row in written["cases"]:
        assert row["ours_units"] == pytest.approx(row["ours_s"] / row["unit_s"])
        assert max(row["ours_err"], row["job_err"]) < wide.TOLERANCE
        assert row["ours_peak_mb"] >= 0 and row["reference_max_bond"] >= 2
