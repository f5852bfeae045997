"""The addon's tutorial pipeline, stage by stage, timed: the baseline we compare against."""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
from qiskit.quantum_info import PauliList
from qiskit_addon_cutting import (
    cut_wires,
    expand_observables,
    find_cuts,
    generate_cutting_experiments,
    partition_problem,
    reconstruct_expectation_values,
)
from qiskit_addon_cutting.automated_cut_finding import DeviceConstraints, OptimizationParameters

from benchmarks.cases import Case


class Prepared(NamedTuple):
    subexperiments: dict
    coefficients: list
    subobservables: dict
    seconds: dict[str, float]


def prepare(case: Case, seed: int = 111) -> Prepared:
    """partition_problem (after find_cuts/cut_wires where asked) and generate_cutting_experiments."""
    observables = PauliList(case.observables)
    started = time.perf_counter()
    if case.partition is not None:
        problem = partition_problem(
            circuit=case.circuit, partition_labels=case.partition, observables=observables
        )
    else:
        cut, _ = find_cuts(
            case.circuit, OptimizationParameters(seed=seed), DeviceConstraints(case.max_qubits)
        )
        with_ancillas = cut_wires(cut)
        expanded = expand_observables(observables, case.circuit, with_ancillas)
        problem = partition_problem(circuit=with_ancillas, observables=expanded)
    subexperiments, coefficients = generate_cutting_experiments(
        circuits=problem.subcircuits, observables=problem.subobservables, num_samples=np.inf
    )
    seconds = {"generate": time.perf_counter() - started}
    return Prepared(subexperiments, coefficients, problem.subobservables, seconds)


def transpile(prepared: Prepared) -> tuple[dict, float]:
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_aer import AerSimulator

    started = time.perf_counter()
    manager = generate_preset_pass_manager(optimization_level=1, backend=AerSimulator())
    isa = {label: manager.run(circuits) for label, circuits in prepared.subexperiments.items()}
    return isa, time.perf_counter() - started


def sample(isa: dict, shots: int, seed: int = 1234) -> tuple[dict, float]:
    from qiskit_aer.primitives import SamplerV2

    started = time.perf_counter()
    sampler = SamplerV2(seed=seed)
    results = {
        label: sampler.run(circuits, shots=shots).result() for label, circuits in isa.items()
    }
    return results, time.perf_counter() - started


def exact_sample(prepared: Prepared) -> tuple[dict, float]:
    """The addon's own exact route: ExactSampler on the untranspiled subexperiments."""
    from qiskit_addon_cutting.utils.simulation import ExactSampler

    started = time.perf_counter()
    sampler = ExactSampler()
    results = {
        label: sampler.run(circuits).result() for label, circuits in prepared.subexperiments.items()
    }
    return results, time.perf_counter() - started


def reconstruct(prepared: Prepared, results: dict) -> tuple[list[float], float]:
    started = time.perf_counter()
    values = reconstruct_expectation_values(results, prepared.coefficients, prepared.subobservables)
    return [float(v) for v in values], time.perf_counter() - started
