"""Aer's statevector simulator as the executors use it, and sampling of exact distributions.

A deferred-measurement circuit (:mod:`.deferred`) is unitary, so one statevector run gives the
exact joint distribution of its classical bits; shot mode samples that distribution, which is
what a noiseless simulator's shots are.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache

import numpy as np

from hybrid_provider.core.provenance import THREADS_VARIABLE

log = logging.getLogger(__name__)

PROBABILITIES_LABEL = "outcome_probabilities"


def aer_threads() -> int:
    """Threads Aer will use here, resolved (never 0)."""
    return int(os.environ.get(THREADS_VARIABLE, "0")) or os.cpu_count() or 1


def aer_simulator(device: str):
    return _aer_simulator(device, aer_threads())


@lru_cache(maxsize=8)
def _aer_simulator(device: str, threads: int):
    from qiskit_aer import AerSimulator

    return AerSimulator(method="statevector", device=device.upper(), max_parallel_threads=threads)


def choose_device(asked: str) -> str:
    """``cpu``, ``gpu`` or ``auto`` (the GPU when there is one) as the device Aer will use."""
    if asked == "cpu":
        return "cpu"
    if gpu_available():
        return "gpu"
    if asked == "gpu":
        log.warning("Aer GPU simulation was asked for but no GPU is available; using the CPU")
    return "cpu"


def gpu_available() -> bool:
    try:
        return "GPU" in aer_simulator("cpu").available_devices()
    except Exception:  # an Aer build without GPU support raises on the query
        return False


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
