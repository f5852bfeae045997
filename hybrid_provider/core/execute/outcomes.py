"""What a batch computes, in one of two packed forms.

Shot runs (and exact distributions sampled into shots) give :class:`Outcomes`: per measured
subexperiment, integers whose low bits are the ``observable_measurements`` register and whose
high bits are the ``qpd_measurements`` register, the layout qiskit-addon-cutting uses, each with
a count. Exact runs give :class:`ExactMeans`: per term choice, the exact expectation of each
subobservable (times the QPD signs), which is all reconstruction needs, whatever the width.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any, NamedTuple

import numpy as np

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
        return _npz(self._asdict())

    def digest(self) -> str:
        return _digest(self._asdict())

    @property
    def num_rows(self) -> int:
        return self.num_experiments

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


class ExactMeans(NamedTuple):
    """Exact factors: one row per term choice, one column per observable."""

    means: np.ndarray  # float64 (choices, observables)

    @property
    def num_rows(self) -> int:
        return len(self.means)

    def to_bytes(self) -> bytes:
        return _npz(self._asdict())

    def digest(self) -> str:
        return _digest(self._asdict())

    @classmethod
    def concatenate(cls, parts: list[ExactMeans]) -> ExactMeans:
        return cls(np.concatenate([part.means for part in parts]))


BatchOutcomes = Outcomes | ExactMeans


def concatenate(parts: list[BatchOutcomes]) -> BatchOutcomes:
    """Chunks of one batch, in order, as one result (all chunks are of one kind)."""
    if all(isinstance(part, ExactMeans) for part in parts):
        return ExactMeans.concatenate([p for p in parts if isinstance(p, ExactMeans)])
    return Outcomes.concatenate([p for p in parts if isinstance(p, Outcomes)])


def outcomes_from_bytes(data: bytes) -> BatchOutcomes:
    """Either form, told apart by the arrays the file holds."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        kind = ExactMeans if set(archive.files) == set(ExactMeans._fields) else Outcomes
        return kind(**{name: archive[name] for name in kind._fields})


def _npz(arrays: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _digest(arrays: dict[str, np.ndarray]) -> str:
    """sha256 of the arrays' content alone (dtype, shape, values), the same for equal results
    however they were packed: the file's own bytes also hold zip timestamps."""
    digest = hashlib.sha256()
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


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
