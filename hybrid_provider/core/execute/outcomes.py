"""Subexperiment outcomes in one packed form, whatever produced them.

Each subexperiment's outcome is an integer whose low bits are the ``observable_measurements``
register and whose high bits are the ``qpd_measurements`` register, the layout
qiskit-addon-cutting uses for its own bookkeeping. Exact runs give a probability per outcome,
shot runs a count; reconstruction treats both as weights.
"""

from __future__ import annotations

import hashlib
import io
from typing import NamedTuple

import numpy as np
from qiskit import QuantumCircuit

OBSERVABLE_REGISTER = "observable_measurements"
QPD_REGISTER = "qpd_measurements"


class Outcomes(NamedTuple):
    """Ragged per-subexperiment outcome lists, stored flat (CSR) so they pack into one file."""

    offsets: np.ndarray  # int64, len = n + 1
    values: np.ndarray  # uint64 packed outcomes
    weights: np.ndarray  # float64 probabilities (exact) or counts (shots)
    shots: np.ndarray  # int64 per subexperiment; 0 means exact
    observable_bits: np.ndarray  # int64 per subexperiment

    @property
    def num_experiments(self) -> int:
        return len(self.offsets) - 1

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, **self._asdict())
        return buffer.getvalue()

    def digest(self) -> str:
        """sha256 of the arrays' content alone (dtype, shape, values), the same for equal
        outcomes however they were packed: the file's own bytes also hold zip timestamps."""
        digest = hashlib.sha256()
        for name, array in self._asdict().items():
            array = np.ascontiguousarray(array)
            digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    @classmethod
    def from_bytes(cls, data: bytes) -> Outcomes:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return cls(**{name: archive[name] for name in cls._fields})

    @classmethod
    def concatenate(cls, parts: list[Outcomes]) -> Outcomes:
        sizes = [len(part.values) for part in parts]
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        offsets = [part.offsets[:-1] + start for part, start in zip(parts, starts, strict=True)]
        offsets.append(np.array([sum(sizes)], dtype=np.int64))
        return cls(
            offsets=np.concatenate(offsets),
            values=np.concatenate([p.values for p in parts]),
            weights=np.concatenate([p.weights for p in parts]),
            shots=np.concatenate([p.shots for p in parts]),
            observable_bits=np.concatenate([p.observable_bits for p in parts]),
        )


def build_outcomes(
    per_experiment: list[tuple[np.ndarray, np.ndarray]],
    shots: list[int],
    observable_bits: list[int],
) -> Outcomes:
    sizes = [len(values) for values, _ in per_experiment]
    return Outcomes(
        offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        values=np.concatenate([v for v, _ in per_experiment]).astype(np.uint64),
        weights=np.concatenate([w for _, w in per_experiment]).astype(np.float64),
        shots=np.asarray(shots, dtype=np.int64),
        observable_bits=np.asarray(observable_bits, dtype=np.int64),
    )


def register_size(circuit: QuantumCircuit, name: str) -> int:
    for register in circuit.cregs:
        if register.name == name:
            return register.size
    return 0


def clbit_positions(circuit: QuantumCircuit) -> dict[int, int]:
    """Map each clbit (by index) to its bit position in the packed outcome."""
    observable_bits = register_size(circuit, OBSERVABLE_REGISTER)
    positions = {}
    for clbit_index, clbit in enumerate(circuit.clbits):
        for register, index in circuit.find_bit(clbit).registers:
            if register.name == OBSERVABLE_REGISTER:
                positions[clbit_index] = index
            elif register.name == QPD_REGISTER:
                positions[clbit_index] = observable_bits + index
    return positions
