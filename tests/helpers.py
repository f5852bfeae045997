"""Circuits and references shared by the tests."""

from __future__ import annotations

import numpy as np


def random_ansatz(num_qubits: int, reps: int = 2, seed: int = 7):
    """A bound EfficientSU2 circuit with linear entanglement: cheap, entangling, cuttable."""
    from qiskit.circuit.library import efficient_su2

    circuit = efficient_su2(num_qubits, entanglement="linear", reps=reps)
    values = np.random.default_rng(seed).uniform(0, 2 * np.pi, circuit.num_parameters)
    return circuit.assign_parameters(values)


def wire_cut_circuit():
    """Qubit 2 talks to both halves: find_cuts prefers one wire cut over several gate cuts."""
    from qiskit import QuantumCircuit

    rng = np.random.default_rng(3)
    circuit = QuantumCircuit(5)
    for qubit in range(5):
        circuit.ry(rng.uniform(0, 3), qubit)
    for target in (0, 1):
        circuit.cx(2, target)
        circuit.ry(rng.uniform(0, 3), 2)
    circuit.cx(0, 1)
    for target in (3, 4):
        circuit.cx(2, target)
        circuit.rx(rng.uniform(0, 3), 2)
    circuit.cx(3, 4)
    circuit.cx(2, 3)
    circuit.ry(0.3, 4)
    circuit.cx(2, 4)
    return circuit


def exact_values(circuit, observables) -> np.ndarray:
    """Qiskit's exact EstimatorV2 on the uncut circuit: the independent reference."""
    from qiskit.primitives import StatevectorEstimator
    from qiskit.quantum_info import SparsePauliOp

    pubs = [(circuit, [SparsePauliOp(label) for label in observables])]
    return np.asarray(StatevectorEstimator().run(pubs).result()[0].data.evs)


def run_job(circuit, observables, store, options=None, num_batches=3, **plan_options):
    """Cut, run every batch in-process and reconstruct; returns (job, reconstruction)."""
    from hybrid_provider.core.cut.job import write_job
    from hybrid_provider.core.cut.plan import plan_cuts
    from hybrid_provider.core.execute.batch import run_batch
    from hybrid_provider.core.execute.options import ExecutionOptions
    from hybrid_provider.core.inputs import parse_observables
    from hybrid_provider.core.reconstruct.combine import reconstruct_job

    plan = plan_cuts(circuit, parse_observables(observables, circuit.num_qubits), **plan_options)
    job = write_job(circuit, plan, str(store), "job", num_batches)
    options = options or ExecutionOptions()
    for batch in job.manifest.batches:
        run_batch(job.manifest_uri, batch.index, options)
    return job, reconstruct_job(job.manifest_uri, device="cpu")
