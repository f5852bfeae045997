"""Planning, de-duplicated subexperiments, and reconstruction against independent references.

References: Qiskit's exact EstimatorV2 (StatevectorEstimator) on the uncut circuit, and
qiskit-addon-cutting's own generate_cutting_experiments / reconstruct_expectation_values.
Tolerances: exact mode 1e-8; shot mode 4 standard errors; same-results reconstruction 1e-10.
"""

from __future__ import annotations

import math
import re
import time
import warnings

import numpy as np
import pytest
from helpers import exact_values, random_ansatz, run_job, wire_cut_circuit
from qiskit import QuantumCircuit, qasm2
from qiskit.circuit.library import efficient_su2
from qiskit.primitives import PrimitiveResult, SamplerPubResult
from qiskit.primitives.containers import BitArray, DataBin
from qiskit.quantum_info import PauliList
from qiskit_addon_cutting import generate_cutting_experiments, reconstruct_expectation_values

from hybrid_provider.core.cut import plan as plan_module
from hybrid_provider.core.cut.experiments import distinct_choices, measured_circuits
from hybrid_provider.core.cut.job import write_job
from hybrid_provider.core.cut.plan import (
    FIND_CUTS_SECONDS,
    plan_cuts,
    readable_count,
    readable_magnitude,
)
from hybrid_provider.core.errors import CutPlanError, InputError
from hybrid_provider.core.execute.batch import load_result, plan_choices
from hybrid_provider.core.execute.deferred import compile_subsystem, deferred_term_circuit
from hybrid_provider.core.execute.options import ExecutionOptions
from hybrid_provider.core.inputs import load_circuit
from hybrid_provider.core.manifest import load_manifest, read_choices

EXACT_TOLERANCE = 1e-8


def test_plan_from_labels_reports_cost_before_anything_runs():
    circuit = random_ansatz(12, reps=3)
    plan = plan_cuts(circuit, PauliList(["Z" * 12, "X" * 12]), partition_labels="AAAAAABBBBBB")
    assert plan.num_gate_cuts == 3 and plan.num_wire_cuts == 0
    assert plan.subcircuit_widths == {"A": 6, "B": 6}
    assert plan.sampling_overhead == pytest.approx(9**3)
    assert plan.num_coefficients == 6**3


def test_plan_errors_name_the_fix():
    circuit = random_ansatz(4, reps=1)
    observables = PauliList(["ZZZZ"])
    with pytest.raises(InputError, match="one label per qubit"):
        plan_cuts(circuit, observables, partition_labels="AAB")
    with pytest.raises(InputError, match="exactly one of"):
        plan_cuts(circuit, observables)
    with pytest.raises(CutPlanError, match="nothing needs cutting"):
        plan_cuts(circuit, observables, max_subcircuit_qubits=4)
    with pytest.raises(InputError, match="at least 1"):
        plan_cuts(circuit, observables, max_subcircuit_qubits=0)


def test_a_limit_no_practical_plan_meets_is_refused_before_generation():
    circuit = random_ansatz(12, reps=3)
    with pytest.raises(
        CutPlanError, match="no practical cut plan fits.*raise the qubits-per-subcircuit"
    ):
        plan_cuts(circuit, PauliList(["Z" * 12]), max_subcircuit_qubits=2)
    with pytest.raises(CutPlanError, match="choose partition labels that cut fewer gates"):
        plan_cuts(circuit, PauliList(["Z" * 12]), partition_labels="ABABABABABAB")


def test_three_qubit_gates_are_rewritten_before_cutting():
    from qiskit import QuantumCircuit

    circuit = QuantumCircuit(4)
    circuit.h(0)
    circuit.ccx(0, 1, 2)
    circuit.cx(2, 3)
    plan = plan_cuts(circuit, PauliList(["ZZZZ"]), partition_labels="AABB")
    assert plan.num_gate_cuts >= 1


# --- circuits as people write them ---------------------------------------------------------


def _with_barriers(num_qubits: int) -> QuantumCircuit:
    """The ansatz with a barrier between its layers, as circuit libraries and QASM files have."""
    circuit = efficient_su2(num_qubits, entanglement="linear", reps=2, insert_barriers=True)
    values = np.random.default_rng(5).uniform(0, 2 * np.pi, circuit.num_parameters)
    return circuit.assign_parameters(values)


def test_barriers_do_not_glue_qubits_together_in_automatic_cut_finding(tmp_path):
    circuit = _with_barriers(8)
    assert circuit.count_ops()["barrier"] >= 2
    observables = ["Z" * 8, "XXIIIIZZ"]
    job, result = run_job(circuit, observables, tmp_path, max_subcircuit_qubits=4)
    assert job.manifest.plan.subcircuit_widths == {"0": 4, "1": 4}
    assert job.manifest.plan.num_cuts == 2
    np.testing.assert_allclose(
        result.values, exact_values(circuit, observables), rtol=0, atol=EXACT_TOLERANCE
    )


def _measured_with_a_spare_register() -> str:
    """QASM as exported from a notebook: final measurements, and a register nothing uses."""
    return qasm2.dumps(random_ansatz(4, reps=1).measure_all(inplace=False)).replace(
        "creg meas[4];", "creg meas[4];\ncreg spare[2];"
    )


@pytest.mark.parametrize(
    "plan_options",
    [{"partition_labels": "AABB"}, {"max_subcircuit_qubits": 2}],
    ids=["labels", "find-cuts"],
)
def test_classical_registers_left_after_final_measurements_are_dropped(tmp_path, plan_options):
    circuit = load_circuit(_measured_with_a_spare_register())
    assert [r.name for r in circuit.cregs] == ["spare"]  # the measured one went with them
    job, result = run_job(circuit, ["ZZZZ", "XXXX"], tmp_path, **plan_options)
    np.testing.assert_allclose(
        result.values,
        exact_values(circuit.remove_final_measurements(inplace=False), ["ZZZZ", "XXXX"]),
        rtol=0,
        atol=EXACT_TOLERANCE,
    )


def test_a_hopeless_plan_reads_in_powers_of_ten_without_warnings():
    circuit = random_ansatz(12, reps=40)  # 11 CX gates per layer, all cut
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy's overflow warning included
        with pytest.raises(CutPlanError) as refusal:
            plan_cuts(circuit, PauliList(["Z" * 12]), partition_labels="AB" * 6)
    message = str(refusal.value)
    assert "440 cuts, 2.4e+342 coefficients and a sampling overhead of 7.4e+419" in message
    assert "inf" not in message and not re.search(r"\d{8}", message)


def test_a_limit_too_tight_for_the_width_is_refused_before_cut_finding():
    circuit = random_ansatz(40, reps=1)
    started = time.perf_counter()
    with pytest.raises(CutPlanError, match=r"needs at least 9 cuts.*at least 1\.0e\+07"):
        plan_cuts(circuit, PauliList(["Z" * 40]), max_subcircuit_qubits=4)
    assert time.perf_counter() - started < 1.0


def test_cut_finding_stops_at_its_time_budget():
    circuit = efficient_su2(20, entanglement="full", reps=2)
    circuit = circuit.assign_parameters(np.ones(circuit.num_parameters))
    started = time.perf_counter()
    with pytest.raises(CutPlanError, match=r"300 cuts, 2\.8e\+233 coefficients"):
        plan_cuts(circuit, PauliList(["Z" * 20]), max_subcircuit_qubits=5, find_cuts_seconds=2)
    assert time.perf_counter() - started < 6.0  # the full search takes 20 s or more
    assert FIND_CUTS_SECONDS <= 10


def test_cut_finding_that_finds_no_plan_in_time_says_so(monkeypatch):
    monkeypatch.setattr(plan_module, "find_cuts", lambda *args: time.sleep(30))
    with pytest.raises(
        CutPlanError, match=r"found no plan for 3 qubit\(s\) per subcircuit in 0\.5 s"
    ):
        plan_cuts(
            random_ansatz(6), PauliList(["Z" * 6]), max_subcircuit_qubits=3, find_cuts_seconds=0.5
        )


def test_subexperiments_wider_than_the_simulator_are_refused_at_cut_time():
    circuit = random_ansatz(12, reps=3)
    with pytest.raises(
        CutPlanError,
        match=r"subcircuit A needs 9 qubits to simulate \(6 of its own, 3 for deferred",
    ):
        plan_cuts(
            circuit,
            PauliList(["Z" * 12]),
            partition_labels="A" * 6 + "B" * 6,
            max_simulated_qubits=8,
        )
    plan = plan_cuts(circuit, PauliList(["Z" * 12]), partition_labels="A" * 6 + "B" * 6)
    assert plan.simulated_widths == {"A": 9, "B": 9}
    widths = [
        deferred_term_circuit(compile_subsystem(s.subcircuit), positions).circuit.num_qubits
        for s in distinct_choices(plan).subsystems
        for positions in s.positions
    ]
    assert max(widths) == 9  # the bound is what the simulator allocates


@pytest.mark.parametrize(
    ("count", "text"),
    [(9, "9"), (46_656, "46,656"), (999_999, "999,999"), (6**9, "1.0e+07"), (6**360, "1.4e+280")],
    ids=["9", "46656", "999999", "6**9", "6**360"],
)
def test_counts_read_exactly_when_small_and_in_powers_of_ten_when_huge(count, text):
    assert readable_count(count) == text


@pytest.mark.parametrize(
    ("log10", "text"),
    [(math.log10(9), "9"), (math.log10(2.5314), "2.531"), (5.0, "1e+05"), (419.87, "7.4e+419"),
     (math.log10(9.96e9), "1.0e+10")],
)  # fmt: skip
def test_overheads_never_read_inf(log10, text):
    assert readable_magnitude(log10) == text


@pytest.mark.parametrize(
    ("circuit", "plan_options"),
    [
        (random_ansatz(6, reps=2), {"partition_labels": "AAABBB"}),
        (wire_cut_circuit(), {"max_subcircuit_qubits": 3}),
    ],
    ids=["gate-cuts", "wire-cut"],
)
def test_distinct_subexperiments_equal_the_addons_circuit_for_circuit(circuit, plan_options):
    observables = PauliList(["Z" * circuit.num_qubits, "X" * circuit.num_qubits])
    plan = plan_cuts(circuit, observables, **plan_options)
    ours = distinct_choices(plan)
    theirs, coefficients = generate_cutting_experiments(
        plan.problem.subcircuits, plan.problem.subobservables, np.inf
    )
    theirs = {str(label): circuits for label, circuits in theirs.items()}
    np.testing.assert_allclose(ours.coefficients, [c for c, _ in coefficients], rtol=0, atol=1e-15)
    for subsystem in ours.subsystems:
        mine = list(measured_circuits(subsystem))
        num_groups = len(subsystem.groups)
        assert len(mine) < len(theirs[subsystem.label])
        for i, distinct in enumerate(ours.indices[subsystem.label]):
            for k in range(num_groups):
                assert (
                    mine[distinct * num_groups + k] == theirs[subsystem.label][i * num_groups + k]
                )


def test_reference_case_deduplicates_864_subexperiments_to_500(tmp_path):
    circuit = random_ansatz(12, reps=3)
    plan = plan_cuts(circuit, PauliList(["Z" * 12, "X" * 12]), partition_labels="AAAAAABBBBBB")
    manifest = write_job(circuit, plan, str(tmp_path), "dedup", num_batches=4).manifest
    assert manifest.num_subexperiments_redundant == 864
    assert manifest.num_subexperiments == 2 * 5**3 * 2  # subsystems x choices x groups
    assert manifest.num_choices == 2 * 5**3  # what exact mode simulates


@pytest.mark.parametrize(
    ("circuit", "observables", "plan_options"),
    [
        (
            random_ansatz(8, reps=2),
            ["Z" * 8, "X" * 8, "IIIZZIII", "Y" * 8],
            {"partition_labels": "AAAABBBB"},
        ),
        (random_ansatz(6, reps=2), ["ZZZZZZ", "XIXIXI"], {"partition_labels": "AABBCC"}),
        (random_ansatz(7, reps=2), ["ZZZZZZZ", "IXXIIYI"], {"max_subcircuit_qubits": 4}),
        (wire_cut_circuit(), ["ZZZZZ", "XIIXI", "IIZII"], {"max_subcircuit_qubits": 3}),
    ],
    ids=["two-halves", "three-parts", "find-cuts", "find-cuts-wire"],
)
def test_exact_mode_matches_estimator_v2(tmp_path, circuit, observables, plan_options):
    job, result = run_job(circuit, observables, tmp_path, **plan_options)
    np.testing.assert_allclose(
        result.values, exact_values(circuit, observables), rtol=0, atol=EXACT_TOLERANCE
    )
    assert result.std_errors == [0.0] * len(observables)
    if "max_subcircuit_qubits" in plan_options:
        assert (
            max(job.manifest.plan.subcircuit_widths.values())
            <= plan_options["max_subcircuit_qubits"]
        )
    if circuit.num_qubits == 5:
        assert job.manifest.plan.num_wire_cuts >= 1


def test_shot_mode_lands_within_four_standard_errors(tmp_path):
    circuit = random_ansatz(6, reps=2)
    observables = ["ZZZZZZ", "IIZZII", "XXXXXX"]
    _, result = run_job(
        circuit,
        observables,
        tmp_path,
        options=ExecutionOptions(mode="shots", shots=4000, seed=11),
        partition_labels="AAABBB",
    )
    errors = np.asarray(result.std_errors)
    assert np.all(errors > 0)
    deviation = np.abs(np.asarray(result.values) - exact_values(circuit, observables))
    assert np.all(deviation < 4 * errors), (deviation, errors)


def test_standard_errors_match_the_spread_of_repeated_runs(tmp_path):
    """The delta-method error is the real spread: 30 seeds, sample std within 35 % of it."""
    circuit = random_ansatz(4, reps=1)
    values, errors = [], []
    for seed in range(30):
        _, result = run_job(
            circuit,
            ["ZZZZ"],
            tmp_path / str(seed),
            options=ExecutionOptions(mode="shots", shots=500, seed=seed),
            num_batches=1,
            partition_labels="AABB",
        )
        values.append(result.values[0])
        errors.append(result.std_errors[0])
    assert np.std(values, ddof=1) == pytest.approx(np.mean(errors), rel=0.35)


def test_aer_sampler_v2_path_in_shot_mode(tmp_path):
    circuit = random_ansatz(4, reps=1)
    observables = ["ZZZZ", "XXII"]
    _, result = run_job(
        circuit,
        observables,
        tmp_path,
        options=ExecutionOptions(mode="shots", shots=2000, sampler="aer-sampler"),
        partition_labels="AABB",
    )
    deviation = np.abs(np.asarray(result.values) - exact_values(circuit, observables))
    assert np.all(deviation < 4 * np.asarray(result.std_errors))


def _addon_results(manifest_uri, manifest, outcomes_by_experiment, indices, circuits):
    """Rebuild SamplerV2 results in the addon's order (coefficient-major, then group)."""
    results = {}
    for subsystem in manifest.subsystems:
        pubs = []
        for i in range(len(indices[subsystem.label])):
            for k in range(subsystem.num_groups):
                s = subsystem.offset + indices[subsystem.label][i] * subsystem.num_groups + k
                values, counts, observable_bits = outcomes_by_experiment[s]
                samples = np.repeat(values, counts.astype(int))
                qpd_bits = next(r.size for r in circuits[s].cregs if r.name == "qpd_measurements")
                mask = (1 << observable_bits) - 1
                data = DataBin(
                    observable_measurements=BitArray.from_samples(
                        [int(v) & mask for v in samples], observable_bits
                    ),
                    qpd_measurements=BitArray.from_samples(
                        [int(v) >> observable_bits for v in samples], qpd_bits
                    ),
                )
                pubs.append(SamplerPubResult(data))
        results[subsystem.label] = PrimitiveResult(pubs)
    return results


def test_reconstruction_equals_the_addons_on_the_same_sampler_results(tmp_path):
    circuit = random_ansatz(6, reps=1)
    observables = ["ZZZZZZ", "XXIIXX"]
    job, result = run_job(
        circuit,
        observables,
        tmp_path,
        options=ExecutionOptions(mode="shots", shots=300, seed=5),
        num_batches=2,
        partition_labels="AAABBB",
    )
    manifest = load_manifest(job.manifest_uri)
    tables = read_choices(job.manifest_uri, manifest)
    coefficients, indices = tables.coefficients, tables.indices
    circuits = [
        circuit
        for subsystem in plan_choices(job.manifest_uri, manifest).values()
        for circuit in measured_circuits(subsystem)
    ]
    outcomes_by_experiment = []
    for batch in manifest.batches:
        outcomes, _ = load_result(job.manifest_uri, manifest, batch.index)
        for j in range(outcomes.num_experiments):
            window = slice(outcomes.offsets[j], outcomes.offsets[j + 1])
            outcomes_by_experiment.append(
                (
                    outcomes.values[window],
                    outcomes.weights[window],
                    int(outcomes.observable_bits[j]),
                )
            )
    addon_results = _addon_results(
        job.manifest_uri, manifest, outcomes_by_experiment, indices, circuits
    )
    subobservables = {s.label: PauliList(s.subobservables) for s in manifest.subsystems}
    addon_values = reconstruct_expectation_values(
        addon_results, [(c, None) for c in coefficients], subobservables
    )
    np.testing.assert_allclose(result.values, addon_values, rtol=0, atol=1e-10)


@pytest.mark.slow
def test_a_caller_supplied_noisy_device_backend_runs_in_shot_mode(tmp_path):
    """A fake IBM device (Aer with its noise model) named by import path, as pods would."""
    circuit = random_ansatz(4, reps=1)
    observables = ["ZZZZ", "IIZZ"]
    _, result = run_job(
        circuit,
        observables,
        tmp_path,
        options=ExecutionOptions(
            mode="shots", shots=2000, sampler="qiskit_ibm_runtime.fake_provider:FakeManilaV2"
        ),
        num_batches=1,
        partition_labels="AABB",
    )
    deviation = np.abs(np.asarray(result.values) - exact_values(circuit, observables))
    assert np.all(np.asarray(result.std_errors) > 0)
    assert np.all(deviation < 0.35), deviation  # noise biases the values; they stay in range
