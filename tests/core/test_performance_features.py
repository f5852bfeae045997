"""Performance features: in-process execution, streaming reconstruction, weighted shots, GPU
fallbacks. Correctness only; timings live in benchmarks/, never in tests."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import exact_values
from qiskit.circuit.library import efficient_su2
from qiskit.quantum_info import PauliList

from benchmarks import cases as benchmark_cases
from hybrid_provider.core.cut.experiments import distinct_choices
from hybrid_provider.core.cut.job import subsystem_refs, write_job
from hybrid_provider.core.cut.plan import plan_cuts
from hybrid_provider.core.errors import InputError
from hybrid_provider.core.execute import deferred, paths, simulate
from hybrid_provider.core.execute.allocation import allocate_shots, proportional
from hybrid_provider.core.execute.batch import load_result, run_batch
from hybrid_provider.core.execute.choices import num_measured, run_choices
from hybrid_provider.core.execute.options import (
    DEFAULT_SAMPLER,
    ExecutionOptions,
    execution_options,
)
from hybrid_provider.core.execute.outcomes import Outcomes
from hybrid_provider.core.manifest import load_manifest, read_choices
from hybrid_provider.core.pipeline import estimate_in_process, predicted_std_errors
from hybrid_provider.core.reconstruct import arrays
from hybrid_provider.core.reconstruct.combine import (
    FactorAccumulator,
    combine_factors,
    reconstruct_job,
)


@pytest.fixture(scope="module")
def su2_case():
    circuit = efficient_su2(8, entanglement="linear", reps=2)
    circuit = circuit.assign_parameters(0.1 * np.arange(circuit.num_parameters))
    labels = ["Z" * 8, "X" * 8, "IIIYZIII"]
    plan = plan_cuts(circuit, PauliList(labels), partition_labels="AAAABBBB")
    return circuit, labels, plan


@pytest.fixture(scope="module")
def wire_case():
    """A qubit that talks to both halves in turn: find_cuts cuts its wire, not its gates."""
    case = benchmark_cases.wire_case()
    circuit, labels = case.circuit, case.observables
    plan = plan_cuts(circuit, PauliList(labels), max_subcircuit_qubits=4)
    assert plan.num_wire_cuts == 1
    return circuit, labels, plan


@pytest.mark.parametrize("case", ["su2_case", "wire_case"])
def test_in_process_exact_matches_statevector(case, request):
    circuit, labels, plan = request.getfixturevalue(case)
    result = estimate_in_process(plan, ExecutionOptions(mode="exact"), reconstruct_device="cpu")
    np.testing.assert_allclose(
        result.reconstruction.values, exact_values(circuit, labels), atol=1e-10
    )
    assert result.reconstruction.std_errors == [0.0] * len(labels)


def test_in_process_shots_within_standard_errors(su2_case):
    circuit, labels, plan = su2_case
    options = ExecutionOptions(mode="shots", shots=2000, seed=7)
    result = estimate_in_process(plan, options, reconstruct_device="cpu").reconstruction
    deviation = np.abs(np.asarray(result.values) - exact_values(circuit, labels))
    assert np.all(deviation < 5 * np.asarray(result.std_errors))


def test_streaming_reconstruction_equals_all_at_once(tmp_path, su2_case):
    """reconstruct_job reads batch by batch; the old all-in-memory path gives the same."""
    circuit, labels, plan = su2_case
    job = write_job(circuit, plan, str(tmp_path), "stream", num_batches=7)
    options = ExecutionOptions(mode="shots", shots=500, seed=3)
    for batch in job.manifest.batches:
        run_batch(job.manifest_uri, batch.index, options, manifest=job.manifest)
    streamed = reconstruct_job(job.manifest_uri, device="cpu")

    manifest = load_manifest(job.manifest_uri)
    parts = [load_result(job.manifest_uri, manifest, b.index)[0] for b in manifest.batches]
    tables = read_choices(job.manifest_uri, manifest)
    all_at_once = FactorAccumulator(np, manifest.subsystems, len(manifest.observables))
    all_at_once.add_outcomes(0, Outcomes.concatenate(parts))
    values, errors = combine_factors(np, tables.coefficients, tables.indices, all_at_once.factors())
    np.testing.assert_allclose(streamed.values, values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(streamed.std_errors, errors, rtol=0, atol=1e-12)


@pytest.mark.parametrize("options", [ExecutionOptions(), ExecutionOptions(mode="shots", shots=50)])
def test_accumulator_accepts_ranges_in_any_order(tmp_path, su2_case, options):
    circuit, labels, plan = su2_case
    job = write_job(circuit, plan, str(tmp_path), "order", num_batches=3)
    for batch in job.manifest.batches:
        run_batch(job.manifest_uri, batch.index, options, manifest=job.manifest)
    manifest = load_manifest(job.manifest_uri)
    forward = FactorAccumulator(np, manifest.subsystems, len(labels))
    backward = FactorAccumulator(np, manifest.subsystems, len(labels))
    results = [load_result(job.manifest_uri, manifest, b.index)[0] for b in manifest.batches]
    for batch, outcomes in zip(manifest.batches, results, strict=True):
        forward.add_batch(manifest, batch, outcomes)
    for batch, outcomes in reversed(list(zip(manifest.batches, results, strict=True))):
        backward.add_batch(manifest, batch, outcomes)
    for (m1, v1), (m2, v2) in zip(forward.factors(), backward.factors(), strict=True):
        np.testing.assert_array_equal(m1, m2)
        np.testing.assert_array_equal(v1, v2)


def test_proportional_keeps_budget_and_gives_everyone_a_shot():
    shots = proportional(1000, np.array([1.0, 2.0, 0.0, 7.0]))
    assert shots.sum() == 1000 and shots.min() >= 1
    assert shots[3] > shots[1] > shots[0]
    with pytest.raises(ValueError):
        proportional(3, np.ones(4))


def test_weighted_allocation_keeps_total_and_lowers_standard_error(wire_case):
    circuit, labels, plan = wire_case
    choices = distinct_choices(plan)
    refs = subsystem_refs(plan, choices)
    uniform = allocate_shots(4096, choices.coefficients, refs, choices.indices, "uniform")
    weighted = allocate_shots(4096, choices.coefficients, refs, choices.indices, "weighted")
    assert uniform.sum() == weighted.sum() == 4096 * len(uniform)
    assert len(set(weighted.tolist())) > 1
    before = predicted_std_errors(plan, 4096, "uniform")
    after = predicted_std_errors(plan, 4096, "weighted")
    assert np.all(after < before)


def test_weighted_allocation_in_a_job_records_per_subexperiment_shots(tmp_path, wire_case):
    circuit, labels, plan = wire_case
    job = write_job(circuit, plan, str(tmp_path), "weighted", num_batches=2)
    options = ExecutionOptions(mode="shots", shots=3000, seed=5, shot_allocation="weighted")
    for batch in job.manifest.batches:
        run_batch(job.manifest_uri, batch.index, options, manifest=job.manifest)
    manifest = load_manifest(job.manifest_uri)
    shots = np.concatenate(
        [load_result(job.manifest_uri, manifest, b.index)[0].shots for b in manifest.batches]
    )
    assert shots.sum() == 3000 * manifest.num_subexperiments
    assert len(set(shots.tolist())) > 1
    result = reconstruct_job(job.manifest_uri, device="cpu")
    deviation = np.abs(np.asarray(result.values) - exact_values(circuit, labels))
    assert np.all(deviation < 5 * np.asarray(result.std_errors))


def test_shot_allocation_refused_in_exact_mode():
    with pytest.raises(InputError):
        execution_options(mode="exact", shot_allocation="weighted")


@pytest.mark.parametrize("sampler", ["aer-sampler", DEFAULT_SAMPLER])
def test_per_circuit_shots_reach_every_shot_path(su2_case, sampler):
    _, _, plan = su2_case
    first = distinct_choices(plan).subsystems[0]
    segment = first.select(0, 3 // len(first.groups) or 1)
    counts = np.arange(1, num_measured([segment]) + 1) * 10
    options = ExecutionOptions(mode="shots", shots=100, sampler=sampler)
    (outcomes,) = run_choices([segment], options, seed=[1, 0], shots=counts)
    assert outcomes.shots.tolist() == counts.tolist()
    totals = np.add.reduceat(outcomes.weights, outcomes.offsets[:-1])
    assert totals.tolist() == counts.tolist()


def test_reconstruction_falls_back_to_numpy_without_a_gpu(monkeypatch, caplog):
    monkeypatch.setattr(arrays, "cupy_or_none", lambda: None)
    assert arrays.array_module("gpu") is np
    assert arrays.array_module("auto") is np
    assert "GPU was asked for" in caplog.text


def test_cupy_import_failure_means_numpy(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_cupy(name, *args, **kwargs):
        if name == "cupy":
            raise ImportError("no cupy here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cupy)
    assert arrays.cupy_or_none() is None


def test_aer_gpu_request_falls_back_to_cpu(monkeypatch, tmp_path, su2_case):
    """Without a GPU, device='gpu' runs (and reconstructs) on the CPU, in jobs and in process."""
    circuit, labels, plan = su2_case
    monkeypatch.setattr(simulate, "gpu_available", lambda: False)
    job = write_job(circuit, plan, str(tmp_path), "gpu", num_batches=1)
    report = run_batch(job.manifest_uri, 0, ExecutionOptions(device="gpu"), manifest=job.manifest)
    assert report.device == "cpu"
    result = estimate_in_process(plan, ExecutionOptions(device="gpu"), reconstruct_device="gpu")
    # the GPU request for reconstruction follows CuPy, not Aer: CuPy where it works, else NumPy
    assert result.reconstruction.array_module == arrays.array_module("gpu").__name__
    np.testing.assert_allclose(
        result.reconstruction.values, exact_values(circuit, labels), atol=1e-10
    )


@pytest.mark.parametrize("limit", [paths.MAX_PATH_BYTES, 0], ids=["paths", "over-budget"])
def test_pauli_paths_give_the_means_of_one_circuit_per_choice(monkeypatch, wire_case, limit):
    """Exact means come from a few Pauli-path states; they must agree with one circuit per
    choice. Where they do not apply (a wire cut's terms reset and measure) or would hold too
    much, one circuit per choice runs."""
    _, _, plan = wire_case
    subsystems = [*distinct_choices(plan).subsystems, *_su2_choices(3), *_wide_choices()]
    with monkeypatch.context() as patch:
        patch.setattr(paths, "pauli_path_means", lambda *a: None)  # one circuit per choice
        flat = [np.concatenate(list(deferred.exact_means(s))) for s in subsystems]
    outcomes = []
    real = paths.pauli_path_means
    monkeypatch.setattr(paths, "MAX_PATH_BYTES", limit)
    monkeypatch.setattr(
        paths, "pauli_path_means", lambda *a: outcomes.append(real(*a)) or outcomes[-1]
    )
    by_paths = [np.concatenate(list(deferred.exact_means(s))) for s in subsystems]
    used = [means is not None for means in outcomes]
    assert used == [False, False, *[bool(limit)] * (len(subsystems) - 2)]  # wire cut: never
    for ours, reference in zip(by_paths, flat, strict=True):
        np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-12)


def _wide_choices():
    """Two 10-qubit blocks, 2 cut CX: unfused subcircuits, cuts in the middle layers."""
    from benchmarks.wide import WideCase, plan_of

    return distinct_choices(plan_of(WideCase(2, 10, 2))).subsystems


def _su2_choices(cuts: int):
    case = benchmark_cases.scaling_case(cuts)
    plan = plan_cuts(case.circuit, PauliList(case.observables), partition_labels=case.partition)
    return distinct_choices(plan).subsystems
