"""Outcome distributions of subexperiments from one batched Aer statevector run.

Subexperiments measure mid-circuit, which makes Aer simulate shot by shot. The cutting
decompositions never condition on those outcomes, so each measurement can be deferred: copy the
qubit onto a fresh ancilla with a CX and read the ancilla at the end (a reset becomes a switch to
a fresh ancilla). The whole circuit is then unitary, one statevector run gives the exact joint
distribution of every classical bit, and shot mode samples that distribution, which is what a
noiseless simulator's shots are.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import CircuitInstruction
from qiskit.circuit.library import CXGate
from qiskit_aer.library import SaveProbabilities

from hybrid_provider.core.errors import InputError
from hybrid_provider.core.execute.outcomes import (
    OBSERVABLE_REGISTER,
    clbit_positions,
    register_size,
)
from hybrid_provider.core.provenance import THREADS_VARIABLE

PROBABILITIES_LABEL = "outcome_probabilities"


def deferred_measurement_circuit(circuit: QuantumCircuit) -> tuple[QuantumCircuit, list[int]]:
    """A unitary circuit and the outcome bit position of each qubit it saves probabilities of."""
    positions = clbit_positions(circuit)
    qubit_index = {qubit: i for i, qubit in enumerate(circuit.qubits)}
    clbit_index = {clbit: i for i, clbit in enumerate(circuit.clbits)}
    last_use = _last_use(circuit, qubit_index)
    current = list(range(circuit.num_qubits))
    width = circuit.num_qubits
    operations: list[tuple[object, list[int]]] = []
    source_of_bit: dict[int, int] = {}
    for step, instruction in enumerate(circuit.data):
        operation = instruction.operation
        qubits = [qubit_index[q] for q in instruction.qubits]
        if getattr(operation, "condition", None) is not None or getattr(operation, "blocks", None):
            raise InputError(
                "a subexperiment has classically controlled operations; exact simulation "
                "supports the cutting decompositions only"
            )
        if operation.name == "barrier":
            continue
        if operation.name == "measure":
            qubit = current[qubits[0]]
            bit = positions.get(clbit_index[instruction.clbits[0]])
            if last_use[qubits[0]] > step:
                operations.append((CXGate(), [qubit, width]))
                qubit, width = width, width + 1
            if bit is not None:
                source_of_bit[bit] = qubit
        elif operation.name == "reset":
            current[qubits[0]], width = width, width + 1
        else:
            operations.append((operation, [current[q] for q in qubits]))
    deferred = QuantumCircuit(width)
    for operation, qargs in operations:
        deferred._append(CircuitInstruction(operation, [deferred.qubits[q] for q in qargs]))
    bits = sorted(source_of_bit)
    saved = [source_of_bit[b] for b in bits]
    deferred.append(SaveProbabilities(len(saved), label=PROBABILITIES_LABEL), saved)
    return deferred, bits


def _last_use(circuit: QuantumCircuit, qubit_index: dict) -> list[int]:
    last = [-1] * circuit.num_qubits
    for step, instruction in enumerate(circuit.data):
        if instruction.operation.name == "barrier":
            continue
        for qubit in instruction.qubits:
            last[qubit_index[qubit]] = step
    return last


def aer_threads() -> int:
    """Threads Aer will use here, resolved (never 0)."""
    return int(os.environ.get(THREADS_VARIABLE, "0")) or os.cpu_count() or 1


def aer_simulator(device: str):
    return _aer_simulator(device, aer_threads())


@lru_cache(maxsize=8)
def _aer_simulator(device: str, threads: int):
    from qiskit_aer import AerSimulator

    return AerSimulator(method="statevector", device=device.upper(), max_parallel_threads=threads)


def gpu_available() -> bool:
    try:
        return "GPU" in aer_simulator("cpu").available_devices()
    except Exception:  # an Aer build without GPU support raises on the query
        return False


def exact_distributions(
    circuits: list[QuantumCircuit], device: str = "cpu"
) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each circuit: (packed outcome values, probabilities), zero-probability ones dropped."""
    deferred = [deferred_measurement_circuit(c) for c in circuits]
    # Many small circuits: run them side by side on every core rather than one at a time.
    result = (
        aer_simulator(device).run([d for d, _ in deferred], max_parallel_experiments=0).result()
    )
    if not result.success:
        raise RuntimeError(f"Aer failed to simulate the batch: {result.status}")
    distributions = []
    for index, (_, bits) in enumerate(deferred):
        probabilities = np.asarray(result.data(index)[PROBABILITIES_LABEL], dtype=np.float64)
        values = _scatter_bits(len(probabilities), bits)
        keep = probabilities > 1e-15
        distributions.append((values[keep], probabilities[keep]))
    return distributions


def _scatter_bits(size: int, bits: list[int]) -> np.ndarray:
    """Packed outcome value of each probability index (bit i of the index goes to bits[i])."""
    index = np.arange(size, dtype=np.uint64)
    values = np.zeros(size, dtype=np.uint64)
    for i, position in enumerate(bits):
        values |= ((index >> np.uint64(i)) & np.uint64(1)) << np.uint64(position)
    return values


def sample_distributions(
    distributions: list[tuple[np.ndarray, np.ndarray]], shots, seed
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Draw outcomes from each distribution; returns (values, counts) with counts > 0.

    ``shots`` is one count for every distribution or a sequence with one per distribution;
    ``seed`` is anything ``numpy.random.default_rng`` takes (or a Generator).
    """
    rng = np.random.default_rng(seed)
    per_distribution = np.broadcast_to(np.asarray(shots, dtype=np.int64), (len(distributions),))
    sampled = []
    for (values, probabilities), count in zip(distributions, per_distribution, strict=True):
        counts = rng.multinomial(int(count), probabilities / probabilities.sum())
        keep = counts > 0
        sampled.append((values[keep], counts[keep].astype(np.float64)))
    return sampled


def observable_bit_counts(circuits: list[QuantumCircuit]) -> list[int]:
    return [register_size(c, OBSERVABLE_REGISTER) for c in circuits]
